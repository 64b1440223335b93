"""Stream records in Redis: one per (call, name), all of a call in one compact value.

Every change is one Lua script, so each webhook or job step is a single atomic
round trip, and enqueuing a job happens inside the same script as the record
change that needs it. See the README's Guarantees section for the reasoning, and
`lua/common.lua` for the stored form (rows of fields by position, about a third of
the memory of JSON objects). Calls stored in the earlier form, a hash of JSON
records, are read as well and rewritten in the compact form on their next change.
"""

import asyncio
import functools
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Concatenate, Literal, ParamSpec, TypeVar, cast

import orjson
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import OutOfMemoryError, ReadOnlyError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from service import queue as queue_wire
from service.clock import now_ms
from service.record import (
    FINAL,
    RECORD,
    StreamRecord,
    compact_date,
    from_row,
    stream_uri,
    to_row,
)
from service.scripts import Batched, script

P = ParamSpec("P")
T = TypeVar("T")

CALL_KEY = "callstreams:call:"  # + CallSid: the call and its records
ACCOUNT_KEY = "callstreams:account:"  # + AccountSid + ":calls": the account's calls by time
# Calls with unfinished records, by the time of their last Twilio event (Redis ms).
UNSETTLED_KEY = "callstreams:calls:unsettled"
RECONCILER_KEY = "callstreams:reconciler"  # whose turn it is to reconcile
Outcome = Literal["created", "stopped", "skipped", "failed", "retry"]
Action = Literal["create", "poll", "stop", "done", "busy", "gone", "elsewhere"]
ClaimMode = Literal["answered", "door", "operator", "restart"]
Claim = Literal["claimed", "exists", "ended"]
# A live call's records are kept at least this long even if its end is never reported.
LIVE_GRACE = timedelta(days=1)


# What a store operation raises when Redis cannot answer: not reachable, too slow, or
# unable to write (out of memory, a replica after a failover).
_UNAVAILABLE = (RedisConnectionError, RedisTimeoutError, OutOfMemoryError, ReadOnlyError, OSError)


class StoreUnavailable(Exception):
    """Redis did not answer in time or refused to write: nothing was stored."""


class WrongAccount(Exception):
    """The call belongs to another account than the one the request is for: nothing
    was changed."""


class WrongStream(Exception):
    """A stream callback names a stream whose known SID is another: nothing was changed."""


def _record(call_sid: str, raw: bytes | str) -> StreamRecord:
    """A record as a script answers it: the call's account, the name, the row."""
    account_sid, name, row = orjson.loads(raw)
    return from_row(call_sid, account_sid, name, row)


class Claimed:
    """What a claim found for one record: its outcome, and the record as stored,
    decoded only when it is asked for (a webhook needs just the outcome)."""

    __slots__ = ("_call_sid", "_raw", "_record", "name", "outcome")

    def __init__(self, outcome: Claim, call_sid: str, name: str, raw: bytes) -> None:
        self.outcome = outcome
        self.name = name
        self._call_sid = call_sid
        self._raw = raw
        self._record: StreamRecord | None = None

    @property
    def record(self) -> StreamRecord:
        if self._record is None:
            self._record = _record(self._call_sid, self._raw)
        return self._record


def _oldest_first(records: list[StreamRecord]) -> list[StreamRecord]:
    return sorted(records, key=lambda r: (r["created_at"], r["name"]))


@dataclass(frozen=True)
class Call:
    """A call as stored, as far as Python reads it: how it ended, and its records (the
    front door's facts are the scripts' alone)."""

    ended: str | None = None  # the terminal status, once the call ended
    records: list[StreamRecord] = field(default_factory=list)

    @property
    def unsettled(self) -> list[StreamRecord]:
        return [r for r in self.records if r["status"] not in FINAL]

    @classmethod
    def parse(cls, call_sid: str, raw: bytes) -> "Call":
        stored = orjson.loads(raw)  # trailing nulls are left out
        rows, account_sid, ended = (*stored, None, None)[:3]
        records = [from_row(call_sid, account_sid, name, row) for name, row in rows.items()]
        return cls(ended, _oldest_first(records))

    @classmethod
    def parse_hash(cls, fields: dict[bytes, bytes]) -> "Call":
        """A call stored in the earlier form: a hash of JSON records and '@' facts."""
        records = [
            RECORD.validate_json(raw) for name, raw in fields.items() if not name.startswith(b"@")
        ]
        ended = fields.get(b"@ended")
        return cls(ended.decode() if ended else None, _oldest_first(records))


def _bounded(
    method: Callable[Concatenate["Records", P], Awaitable[T]],
) -> Callable[Concatenate["Records", P], Awaitable[T]]:
    """Give up on Redis after the records' deadline (one timer per operation, where
    redis-py's socket timeout would start two per command), and say so in one type."""

    @functools.wraps(method)
    async def bounded(self: "Records", /, *args: P.args, **kwargs: P.kwargs) -> T:
        try:
            async with asyncio.timeout(self.deadline):
                return await method(self, *args, **kwargs)
        except TimeoutError:
            raise StoreUnavailable("no answer from Redis within the deadline") from None
        except _UNAVAILABLE as error:
            raise StoreUnavailable(type(error).__name__) from error

    return bounded


def _script(redis: Redis, name: str) -> Any:
    return script(redis, "common", name)


class Records:
    """The only code that reads or writes stream records."""

    def __init__(
        self, redis: Redis, *, queue: str, record_ttl: timedelta, deadline: float | None = None
    ) -> None:
        self.redis = redis
        self.deadline = deadline
        self.queue = queue
        self.channel = queue_wire.wake_channel(queue)
        self.ended_ttl = int(record_ttl.total_seconds())
        self.live_ttl = int((record_ttl + LIVE_GRACE).total_seconds())
        self._claim = Batched(redis, _script(redis, "claim"))
        self._call_ended = _script(redis, "call_ended")
        self._stream_event = _script(redis, "stream_event")
        self._request_stop = _script(redis, "request_stop")
        self._begin = Batched(redis, _script(redis, "begin"))
        self._finish = Batched(redis, _script(redis, "finish"))
        self._answered = _script(redis, "answered")
        self._skip_unanswered = _script(redis, "skip_unanswered")
        self._take_due = _script(redis, "take_due")

    @staticmethod
    def key(call_sid: str) -> str:
        return CALL_KEY + call_sid

    @staticmethod
    def account_key(account_sid: str) -> str:
        return f"{ACCOUNT_KEY}{account_sid}:calls"

    @_bounded
    async def claim(
        self,
        call_sid: str,
        records: Sequence[StreamRecord],
        mode: ClaimMode = "answered",
        defer: timedelta = timedelta(0),
    ) -> list[Claimed]:
        """Create each record not yet there and enqueue its start job, in one step.

        Once the call ended, the record is created `skipped`, saying why (a restart is
        not created at all: `ended` without a record). See `lua/claim.lua` for the modes.
        The records are of one account; WrongAccount if the call is another's.
        """
        account_sid = records[0]["account_sid"]
        stamp = now_ms()
        argv: list[Any] = [
            stamp, self.live_ttl, self.ended_ttl, mode, call_sid, self.channel, account_sid,
        ]  # fmt: skip
        defer_ms = int(defer.total_seconds() * 1000)
        job_keys = []
        for record in records:
            start = queue_wire.job(
                queue_wire.START, call_sid, record["name"], at_ms=stamp, defer_ms=defer_ms
            )
            job_keys.append(start.key)
            argv += [record["name"], orjson.dumps(to_row(record)), *start.argv()]
        keys = [
            self.key(call_sid), self.queue, self.account_key(account_sid), UNSETTLED_KEY,
            *job_keys,
        ]  # fmt: skip
        result = await self._claim(keys=keys, args=argv)
        if result == [b"wrong-account"]:
            raise WrongAccount(call_sid)
        return [
            Claimed(cast(Claim, result[2 * i].decode()), call_sid, record["name"], raw)
            for i, record in enumerate(records)
            if (raw := result[2 * i + 1])
        ]

    @_bounded
    async def call_ended(self, call_sid: str, account_sid: str, status: str, why: str = "") -> None:
        """Mark the call ended: its streams stop, starts not yet made are skipped; `why`
        says how the end was learnt when not from Twilio's status callback."""
        done = await self._call_ended(
            keys=[self.key(call_sid), UNSETTLED_KEY],
            args=[status, now_ms(), self.ended_ttl, call_sid, why, account_sid],
        )
        if not done:
            raise WrongAccount(call_sid)

    @_bounded
    async def stream_event(
        self,
        call_sid: str,
        account_sid: str,
        stream_sid: str,
        stream_name: str,
        event: str,
        message: str,
    ) -> tuple[StreamRecord, bool] | None:
        """Apply a stream status callback: the record, and whether this was its first
        `stream-started`; None when no record has that stream. WrongAccount or
        WrongStream when the callback contradicts what is known of the call."""
        result = await self._stream_event(
            keys=[self.key(call_sid), UNSETTLED_KEY],
            args=[stream_sid, stream_name, event, message, now_ms(), call_sid, account_sid],
        )
        if result == [b"wrong-account"]:
            raise WrongAccount(call_sid)
        if result == [b"wrong-sid"]:
            raise WrongStream(stream_name)
        return (_record(call_sid, result[0]), result[1] == 1) if result else None

    def _follow_up(self, job: queue_wire.JobSpec) -> tuple[str, list[bytes | str | int]]:
        """A job a script may enqueue: its key, and its arguments (channel first)."""
        return job.key, [self.channel, *job.argv()]

    @_bounded
    async def request_stop(
        self, call_sid: str, name: str, account_sid: str | None = None
    ) -> StreamRecord | None:
        """Ask for a stream to stop; None when there is no such record (of `account_sid`,
        when given)."""
        job_key, enqueue = self._follow_up(queue_wire.job(queue_wire.STOP, call_sid, name))
        raw = await self._request_stop(
            keys=[self.key(call_sid), self.queue, job_key],
            args=[name, now_ms(), *enqueue, account_sid or ""],
        )
        return _record(call_sid, raw) if raw else None

    @_bounded
    async def begin(
        self,
        call_sid: str,
        name: str,
        kind: Literal["start", "stop"],
        lease: timedelta,
        run: queue_wire.Run,
    ) -> tuple[Action, StreamRecord | None, int | None]:
        """Take the job `run` and decide its action; when it calls Twilio, take the
        record's lease (a record leased by another job: `busy`, the job tried again
        after the lease). Also how long ago (ms) the call came in through the front
        door, while its answer has not been seen (see `lua/begin.lua`)."""
        lease_ms = int(lease.total_seconds() * 1000)
        action, raw, waited = await self._begin(
            keys=[self.key(call_sid), *run.keys],
            args=[name, kind, now_ms(), lease_ms, run.job_id, run.lock_ms, lease_ms],
        )
        record = _record(call_sid, raw) if raw else None
        return cast(Action, action.decode()), record, waited if waited >= 0 else None

    @_bounded
    async def finish(
        self,
        call_sid: str,
        name: str,
        outcome: Outcome,
        run: queue_wire.Run,
        again: float | None = None,
        /,
        **patch: object,
    ) -> StreamRecord | None:
        """Record Twilio's answer for a record this worker holds the lease on, and
        complete the job: done, or due again `again` seconds from now."""
        job_key, enqueue = self._follow_up(queue_wire.job(queue_wire.STOP, call_sid, name))
        run_key, running, _ = run.keys
        stamp = now_ms()
        again_ms = "" if again is None else stamp + int(again * 1000)
        raw = await self._finish(
            keys=[self.key(call_sid), self.queue, job_key, run_key, running],
            args=[name, outcome, orjson.dumps(patch), stamp, *enqueue, run.job_id, again_ms],
        )
        return _record(call_sid, raw) if raw else None

    @staticmethod
    def twilio_patch(call_sid: str, account_sid: str, body: dict[str, Any]) -> dict[str, Any]:
        """What a record keeps of Twilio's Stream resource; the usual `uri` is implied."""
        sid, uri = body.get("sid"), body.get("uri")
        if isinstance(sid, str) and uri == stream_uri(account_sid, call_sid, sid):
            uri = None
        return {"sid": sid, "date_updated": compact_date(body.get("date_updated")), "uri": uri}

    @_bounded
    async def answered(self, call_sid: str) -> None:
        """The front-door call's answer was seen: its waiting records get their answer time."""
        await self._answered(keys=[self.key(call_sid)], args=[now_ms()])

    @_bounded
    async def skip_unanswered(self, call_sid: str, reason: str) -> int:
        """Skip the starts still waiting for the call's answer; how many were."""
        skipped: int = await self._skip_unanswered(
            keys=[self.key(call_sid)], args=[now_ms(), reason]
        )
        return skipped

    async def _read(self, call_sid: str) -> Call:
        key = self.key(call_sid)
        try:
            raw = await self.redis.get(key)
        except ResponseError as error:
            if "WRONGTYPE" not in str(error):
                raise
            return Call.parse_hash(
                await cast(Awaitable[dict[bytes, bytes]], self.redis.hgetall(key))
            )
        return Call.parse(call_sid, raw) if raw else Call()

    @_bounded
    async def call(self, call_sid: str) -> Call:
        """The call's records, and how it ended if it did."""
        return await self._read(call_sid)

    @_bounded
    async def take_due(self, period: timedelta, limit: int) -> list[str]:
        """Calls with no Twilio event for `period`, each marked checked now."""
        taken = await self._take_due(
            keys=[UNSETTLED_KEY], args=[int(period.total_seconds() * 1000), limit]
        )
        return [sid.decode() for sid in taken]

    @_bounded
    async def recheck(self, call_sid: str, period: timedelta, after: timedelta) -> None:
        """Check the call again `after` from now, not a whole `period` (a failed check)."""
        due = now_ms() - int((period - after).total_seconds() * 1000)
        await self.redis.zadd(UNSETTLED_KEY, {call_sid: due}, xx=True)

    @_bounded
    async def take_turn(self, owner: str, length: timedelta) -> bool:
        """The reconciler's turn for `length`, unless another worker has it."""
        ms = int(length.total_seconds() * 1000)
        return bool(await self.redis.set(RECONCILER_KEY, owner, nx=True, px=ms))

    @_bounded
    async def settle(self, call_sid: str) -> None:
        """The call's records are all final: nothing is left to check against Twilio."""
        await self.redis.zrem(UNSETTLED_KEY, call_sid)

    @_bounded
    async def calls(
        self, account_sid: str, limit: int
    ) -> list[tuple[str, str | None, list[StreamRecord]]]:
        """The account's most recent calls: SID, how the call ended (if it did), records."""
        found = await self.redis.zrevrange(self.account_key(account_sid), 0, limit - 1)
        sids = [sid.decode() for sid in found]
        async with self.redis.pipeline(transaction=False) as pipe:
            for sid in sids:
                pipe.get(self.key(sid))
            values = await pipe.execute(raise_on_error=False)
        calls = [
            # A call still in the earlier form: WRONGTYPE, read as a hash instead.
            await self._read(sid) if isinstance(raw, ResponseError) else
            (Call.parse(sid, raw) if raw else Call())
            for sid, raw in zip(sids, values, strict=True)
        ]  # fmt: skip
        return [
            (sid, call.ended, call.records)
            for sid, call in zip(sids, calls, strict=True)
            if call.records
        ]

    @_bounded
    async def get(self, call_sid: str, name: str) -> StreamRecord | None:
        return next((r for r in (await self._read(call_sid)).records if r["name"] == name), None)

    @_bounded
    async def of_call(self, call_sid: str) -> list[StreamRecord]:
        """The call's records, oldest first."""
        return (await self._read(call_sid)).records
