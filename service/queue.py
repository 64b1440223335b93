"""arq's wire format, owned here: job ids, payloads, keys, the wake channel, a job run.

The web process never calls arq: its Lua scripts write a job in the same step as the
record that needs it (see `store.py`), byte for byte as arq's `enqueue_job` would,
with JSON rather than pickle. The worker, woken by a PUBLISH on the wake channel,
takes and completes those jobs in the scripts that change their records (`Run`):
an arq job's id already names its function and arguments. arq is pinned below its
next minor release, and `tests/test_queue.py` fails if the internals used here
change shape.
"""

from dataclasses import dataclass
from typing import Any

import orjson
from arq.constants import in_progress_key_prefix, job_key_prefix
from arq.jobs import serialize_job

from service.clock import now_ms

START = "start_stream"  # (call_sid, name): create a stream
STOP = "stop_stream"  # (call_sid, name): stop a stream
# A job not started within this time is dropped by arq; the record stays pending
# and says so, which is better than a stream starting hours late.
JOB_EXPIRY_MS = 3_600_000


def dumps(data: dict[str, Any]) -> bytes:
    return orjson.dumps(data)


def loads(raw: bytes) -> dict[str, Any]:
    data: dict[str, Any] = orjson.loads(raw)
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


@dataclass(frozen=True)
class Run:
    """A job a worker runs: taken, and then done or retried, in the same Lua steps as
    the record it works on (see `store.py`), where arq takes three round trips to
    start a job and one to finish it."""

    job_id: str
    queue: str
    lock_ms: int  # how long the job stays marked running should its worker die

    @property
    def keys(self) -> list[str]:
        """The job's key, its running mark, the queue: in this order in the scripts."""
        return [job_key(self.job_id), in_progress_key(self.job_id), self.queue]


def parse_job_id(job_id: str) -> tuple[str, tuple[str, ...]] | None:
    """The function and arguments a job id of ours stands for; None for any other id."""
    function, *args = job_id.split(":")
    return (function, tuple(args)) if function in (START, STOP) and len(args) == 2 else None
