"""Stream records in Redis: one per (call, name), all of a call in one hash.

Every change is one Lua script, so each webhook or job step is a single atomic
round trip, and enqueuing a job happens inside the same script as the record
change that needs it. See the README's Guarantees section for the reasoning.
"""

import asyncio
import functools
import json
import time
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime, timedelta
from importlib.resources import files
from typing import Any, Concatenate, Literal, ParamSpec, TypedDict, TypeVar, cast

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from service import jobs

P = ParamSpec("P")
T = TypeVar("T")

Status = Literal["pending", "in-progress", "stopped", "failed", "skipped"]
Outcome = Literal["created", "stopped", "skipped", "failed", "retry"]
Action = Literal["create", "stop", "done", "busy", "gone"]
# A live call's records are kept at least this long even if its end is never reported.
LIVE_GRACE = timedelta(days=1)


class TwilioError(TypedDict):
    code: int | None
    message: str
    more_info: str | None


class StreamRecord(TypedDict):
    call_sid: str
    account_sid: str
    name: str
    sid: str | None
    status: Status
    desired: Literal["started", "stopped"]
    track: str
    url: str
    profile: str | None
    parameters: dict[str, str]
    date_updated: str | None
    uri: str | None
    error: TwilioError | None
    attempts: int
    created_at: str
    updated_at: str
    answered_at: str | None
    started_at: str | None
    restart_of: str | None  # the first stream of a restart chain, for a restarted one
    restart: int  # 0 for a first start, n for the n-th restart


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def now_ms() -> int:
    return int(time.time() * 1000)


def new_record(
    *,
    call_sid: str,
    account_sid: str,
    name: str,
    url: str,
    track: str,
    parameters: dict[str, str],
    profile: str | None,
    answered_at: str | None,
    restart_of: str | None = None,
    restart: int = 0,
) -> StreamRecord:
    """A pending record, as a claim creates it."""
    stamp = now_iso()
    return StreamRecord(
        call_sid=call_sid, account_sid=account_sid, name=name, sid=None, status="pending",
        desired="started", track=track, url=url, profile=profile, parameters=parameters,
        date_updated=None, uri=None, error=None, attempts=0, created_at=stamp,
        updated_at=stamp, answered_at=answered_at, started_at=None, restart_of=restart_of,
        restart=restart,
    )  # fmt: skip


_FIELDS = tuple(StreamRecord.__annotations__)


def _decode(raw: bytes | str) -> StreamRecord:
    """A record in the documented field order, without the worker's lease."""
    data = json.loads(raw)
    if data.get("parameters") == []:  # Lua's cjson cannot tell {} from []
        data["parameters"] = {}
    return cast(StreamRecord, {field: data.get(field) for field in _FIELDS})


def _sorted(fields: dict[bytes, bytes]) -> list[StreamRecord]:
    """A call's records from its hash, oldest first."""
    return sorted(
        (_decode(raw) for name, raw in fields.items() if not name.startswith(b"@")),
        key=lambda r: (r["created_at"], r["name"]),
    )


def _script(redis: Redis, name: str) -> AsyncScript:
    lua = files("service") / "lua"
    source = (lua / "common.lua").read_text() + (lua / f"{name}.lua").read_text()
    return redis.register_script(source)


def _bounded(
    method: Callable[Concatenate["Records", P], Awaitable[T]],
) -> Callable[Concatenate["Records", P], Awaitable[T]]:
    """Give up on Redis after the records' deadline: one timer per operation, where
    redis-py's socket timeout would start two per command."""

    @functools.wraps(method)
    async def bounded(self: "Records", /, *args: P.args, **kwargs: P.kwargs) -> T:
        async with asyncio.timeout(self.deadline):
            return await method(self, *args, **kwargs)

    return bounded


class Records:
    """The only code that reads or writes stream records."""

    def __init__(
        self, redis: Redis, *, queue: str, record_ttl: timedelta, deadline: float | None = None
    ) -> None:
        self.redis = redis
        self.deadline = deadline
        self.queue = queue
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
        return f"callstreams:call:{call_sid}"

    @staticmethod
    def account_key(account_sid: str) -> str:
        return f"callstreams:account:{account_sid}:calls"

    async def _claim(
        self, call_sid: str, records: Iterable[StreamRecord], defer_ms: int, only_live: bool
    ) -> list[tuple[str, bytes | None]]:
        argv: list[Any] = [now_iso(), self.live_ttl, self.ended_ttl, 0, int(only_live)]
        stamp = now_ms()
        account_sid = ""
        for record in records:
            account_sid = record["account_sid"]
            argv[3] += 1
            argv.append(json.dumps(record))
            start = jobs.job(jobs.START, call_sid, record["name"], now_ms=stamp, defer_ms=defer_ms)
            argv.extend(start.argv())
        keys = [self.key(call_sid), self.queue, self.account_key(account_sid)]
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

    @_bounded
    async def request_stop(self, call_sid: str, name: str) -> StreamRecord | None:
        """Ask for a stream to stop; None when there is no such record."""
        stop = jobs.job(jobs.STOP, call_sid, name)
        raw = await self._request_stop(
            keys=[self.key(call_sid), self.queue],
            args=[name, now_iso(), now_ms(), *stop.argv()],
        )
        return _decode(raw) if raw else None

    async def begin(
        self, call_sid: str, name: str, kind: Literal["start", "stop"], lease: timedelta
    ) -> tuple[Action, StreamRecord | None]:
        """Decide a job's action and, when it calls Twilio, take the record's lease."""
        action, raw = await self._begin(
            keys=[self.key(call_sid)],
            args=[name, kind, now_ms(), int(lease.total_seconds() * 1000), now_iso()],
        )
        return cast(Action, action.decode()), _decode(raw) if raw else None

    async def finish(
        self, call_sid: str, name: str, outcome: Outcome, **patch: object
    ) -> StreamRecord | None:
        """Record Twilio's answer for a record this worker holds the lease on."""
        stop = jobs.job(jobs.STOP, call_sid, name)
        raw = await self._finish(
            keys=[self.key(call_sid), self.queue],
            args=[name, outcome, json.dumps(patch), now_iso(), *stop.argv()],
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
    async def list(self, call_sid: str) -> list[StreamRecord]:
        fields = await cast(Awaitable[dict[bytes, bytes]], self.redis.hgetall(self.key(call_sid)))
        return _sorted(fields)
