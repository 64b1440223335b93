"""Stream records in Redis: one per (call, name), all of a call in one hash.

Every change is one Lua script, so each webhook or job step is a single atomic
round trip, and enqueuing a job happens inside the same script as the record
change that needs it. See the README's Guarantees section for the reasoning.
"""

import asyncio
import functools
import json
from collections.abc import Awaitable, Callable, Iterable
from datetime import timedelta
from typing import Any, Concatenate, Literal, ParamSpec, TypeVar, cast

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import OutOfMemoryError, ReadOnlyError
from redis.exceptions import TimeoutError as RedisTimeoutError

from service import queue as queue_wire
from service.clock import now_iso, now_ms
from service.record import RECORD, StreamRecord
from service.scripts import script

P = ParamSpec("P")
T = TypeVar("T")

CALL_KEY = "callstreams:call:"  # + CallSid: the call's hash, one field per stream name
ACCOUNT_KEY = "callstreams:account:"  # + AccountSid + ":calls": the account's calls by time
Outcome = Literal["created", "stopped", "skipped", "failed", "retry"]
Action = Literal["create", "stop", "done", "busy", "gone"]
# A live call's records are kept at least this long even if its end is never reported.
LIVE_GRACE = timedelta(days=1)


# What a store operation raises when Redis cannot answer: not reachable, too slow, or
# unable to write (out of memory, a replica after a failover).
_UNAVAILABLE = (RedisConnectionError, RedisTimeoutError, OutOfMemoryError, ReadOnlyError, OSError)


class StoreUnavailable(Exception):
    """Redis did not answer in time or refused to write: nothing was stored."""


def _decode(raw: bytes | str) -> StreamRecord:
    """A record in the documented field order, without the worker's lease."""
    return RECORD.validate_json(raw)


def _sorted(fields: dict[bytes, bytes]) -> list[StreamRecord]:
    """A call's records from its hash, oldest first."""
    return sorted(
        (_decode(raw) for name, raw in fields.items() if not name.startswith(b"@")),
        key=lambda r: (r["created_at"], r["name"]),
    )


def _script(redis: Redis, name: str) -> Any:
    return script(redis, "common", name)


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
        self._claim_script = _script(redis, "claim")
        self._call_ended = _script(redis, "call_ended")
        self._stream_event = _script(redis, "stream_event")
        self._request_stop = _script(redis, "request_stop")
        self._begin = _script(redis, "begin")
        self._finish = _script(redis, "finish")

    @staticmethod
    def key(call_sid: str) -> str:
        return CALL_KEY + call_sid

    @staticmethod
    def account_key(account_sid: str) -> str:
        return f"{ACCOUNT_KEY}{account_sid}:calls"

    async def _claim(
        self, call_sid: str, records: Iterable[StreamRecord], defer_ms: int, only_live: bool
    ) -> list[tuple[str, bytes | None]]:
        argv: list[Any] = [
            now_iso(), self.live_ttl, self.ended_ttl, int(only_live), call_sid, self.channel,
        ]  # fmt: skip
        stamp = now_ms()
        account_sid = ""
        job_keys = []
        for record in records:
            account_sid = record["account_sid"]
            argv.append(RECORD.dump_json(record))
            start = queue_wire.job(
                queue_wire.START, call_sid, record["name"], at_ms=stamp, defer_ms=defer_ms
            )
            job_keys.append(start.key)
            argv.extend(start.argv())
        keys = [self.key(call_sid), self.queue, self.account_key(account_sid), *job_keys]
        result = await self._claim_script(keys=keys, args=argv)
        return [(result[i].decode(), result[i + 1] or None) for i in range(0, len(result), 2)]

    @_bounded
    async def claim(
        self, call_sid: str, records: Iterable[StreamRecord]
    ) -> list[tuple[Literal["claimed", "exists", "ended"], StreamRecord]]:
        """Create each record not yet there and enqueue its start job, in one step.

        Once the call ended, the record is created `skipped`, saying why.
        """
        return [
            (cast(Literal["claimed", "exists", "ended"], outcome), _decode(raw or b""))
            for outcome, raw in await self._claim(call_sid, records, 0, only_live=False)
        ]

    @_bounded
    async def restart(
        self, call_sid: str, record: StreamRecord, defer: timedelta
    ) -> StreamRecord | None:
        """Claim a restart's record, its start `defer` from now; None if the call ended
        or the restart already exists (a repeated stream-error delivery)."""
        defer_ms = int(defer.total_seconds() * 1000)
        [(outcome, raw)] = await self._claim(call_sid, [record], defer_ms, only_live=True)
        return _decode(raw) if outcome == "claimed" and raw else None

    @_bounded
    async def call_ended(self, call_sid: str, status: str) -> None:
        """Mark the call ended: its streams stop, starts not yet made are skipped."""
        await self._call_ended(
            keys=[self.key(call_sid)], args=[status, now_iso(), now_ms(), self.ended_ttl]
        )

    @_bounded
    async def stream_event(
        self, call_sid: str, stream_sid: str, stream_name: str, event: str, message: str
    ) -> tuple[StreamRecord, bool] | None:
        """Apply a stream status callback: the record, and whether this was its first
        `stream-started`; None when no record has that stream."""
        result = await self._stream_event(
            keys=[self.key(call_sid)], args=[stream_sid, stream_name, event, message, now_iso()]
        )
        return (_decode(result[0]), result[1] == 1) if result else None

    def _stop_job(self, call_sid: str, name: str) -> tuple[str, list[bytes | str | int]]:
        """The stop job's key, and the arguments that enqueue it (channel first)."""
        stop = queue_wire.job(queue_wire.STOP, call_sid, name)
        return stop.key, [self.channel, *stop.argv()]

    @_bounded
    async def request_stop(self, call_sid: str, name: str) -> StreamRecord | None:
        """Ask for a stream to stop; None when there is no such record."""
        job_key, enqueue = self._stop_job(call_sid, name)
        raw = await self._request_stop(
            keys=[self.key(call_sid), self.queue, job_key],
            args=[name, now_iso(), now_ms(), *enqueue],
        )
        return _decode(raw) if raw else None

    @_bounded
    async def begin(
        self, call_sid: str, name: str, kind: Literal["start", "stop"], lease: timedelta
    ) -> tuple[Action, StreamRecord | None]:
        """Decide a job's action and, when it calls Twilio, take the record's lease."""
        action, raw = await self._begin(
            keys=[self.key(call_sid)],
            args=[name, kind, now_ms(), int(lease.total_seconds() * 1000), now_iso()],
        )
        return cast(Action, action.decode()), _decode(raw) if raw else None

    @_bounded
    async def finish(
        self, call_sid: str, name: str, outcome: Outcome, /, **patch: object
    ) -> StreamRecord | None:
        """Record Twilio's answer for a record this worker holds the lease on."""
        job_key, enqueue = self._stop_job(call_sid, name)
        raw = await self._finish(
            keys=[self.key(call_sid), self.queue, job_key],
            args=[name, outcome, json.dumps(patch), now_iso(), *enqueue],
        )
        return _decode(raw) if raw else None

    @_bounded
    async def calls(
        self, account_sid: str, limit: int
    ) -> list[tuple[str, str | None, list[StreamRecord]]]:
        """The account's most recent calls: SID, how the call ended (if it did), records."""
        sids = await self.redis.zrevrange(self.account_key(account_sid), 0, limit - 1)
        async with self.redis.pipeline(transaction=False) as pipe:
            for sid in sids:
                pipe.hgetall(self.key(sid.decode()))
            hashes = await pipe.execute()
        return [
            (sid.decode(), ended.decode() if (ended := fields.get(b"@ended")) else None,
             _sorted(fields))
            for sid, fields in zip(sids, hashes, strict=True)
            if fields
        ]  # fmt: skip

    @_bounded
    async def get(self, call_sid: str, name: str) -> StreamRecord | None:
        raw = await cast(Awaitable[bytes | None], self.redis.hget(self.key(call_sid), name))
        return _decode(raw) if raw and not name.startswith("@") else None

    @_bounded
    async def of_call(self, call_sid: str) -> list[StreamRecord]:
        """The call's records, oldest first."""
        fields = await cast(Awaitable[dict[bytes, bytes]], self.redis.hgetall(self.key(call_sid)))
        return _sorted(fields)
