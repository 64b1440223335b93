"""arq's wire format, owned here: job ids, payloads, keys, the wake channel, taking a job.

The web process never calls arq: its Lua scripts write a job in the same step as the
record that needs it (see `store.py`), byte for byte as arq's `enqueue_job` would,
with JSON rather than pickle. The worker runs those jobs with arq, woken by a PUBLISH
on the wake channel (see `worker/wakeup.py`). arq is pinned below its next minor
release, and `tests/test_queue.py` fails if the internals used here change shape.
"""

import json
from dataclasses import dataclass
from typing import Any

from arq.constants import in_progress_key_prefix, job_key_prefix
from arq.jobs import serialize_job
from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from service.clock import now_ms
from service.scripts import script

START = "start_stream"  # (call_sid, name): create a stream
STOP = "stop_stream"  # (call_sid, name): stop a stream
# A job not started within this time is dropped by arq; the record stays pending
# and says so, which is better than a stream starting hours late.
JOB_EXPIRY_MS = 3_600_000


def dumps(data: dict[str, Any]) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()


def loads(raw: bytes) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(raw)
    return data


def wake_channel(queue: str) -> str:
    """Where every enqueue announces its job id, so that a worker starts it at once."""
    return f"{queue}:wake"


def job_key(job_id: str) -> str:
    return job_key_prefix + job_id


def in_progress_key(job_id: str) -> str:
    return in_progress_key_prefix + job_id


@dataclass(frozen=True)
class JobSpec:
    """Everything a script needs to enqueue one arq job: its key, and its arguments."""

    job_id: str
    payload: bytes
    score: int
    expires_ms: int

    @property
    def key(self) -> str:
        return job_key(self.job_id)

    def argv(self) -> list[bytes | str | int]:
        return [self.job_id, self.payload, self.score, self.expires_ms]


def job(function: str, *args: str, at_ms: int | None = None, defer_ms: int = 0) -> JobSpec:
    """The job for `function` with `args`; its id is made of them, so that the same work
    is queued once."""
    at_ms = now_ms() if at_ms is None else at_ms
    payload = serialize_job(function, args, {}, None, at_ms, serializer=dumps)
    return JobSpec(":".join((function, *args)), payload, at_ms + defer_ms, JOB_EXPIRY_MS)


class Taker:
    """Marks a due job running, in one round trip (arq's own start takes three)."""

    def __init__(self, redis: Redis, queue: str, lock_ms: int) -> None:
        self._script: AsyncScript = script(redis, "take_job")
        self._queue = queue
        self._lock_ms = lock_ms

    async def take(self, job_id: str) -> int | None:
        """The job's score if this worker may run it now; None if it is running
        elsewhere, finished, or deferred."""
        score = await self._script(
            keys=[in_progress_key(job_id), self._queue], args=[job_id, now_ms(), self._lock_ms]
        )
        return None if score is None else int(score)
