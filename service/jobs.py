"""The arq jobs that the web process and the worker share by name.

Job payloads are written by our own Lua scripts (see `records.py`) so that a
record and its job are created in one step; this module builds them exactly as
arq's `enqueue_job` would, serialised as JSON rather than pickle.
"""

import json
import time
from dataclasses import dataclass
from typing import Any

from arq.jobs import serialize_job

START = "start_stream"
STOP = "stop_stream"
# A job not started within this time is dropped by arq; the record stays pending
# and says so, which is better than a stream starting hours late.
JOB_EXPIRY_MS = 3_600_000


def dumps(data: dict[str, Any]) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()


def loads(raw: bytes) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(raw)
    return data


@dataclass(frozen=True)
class JobSpec:
    """Everything a script needs to enqueue one arq job."""

    job_id: str
    payload: bytes
    score: int
    expires_ms: int

    def argv(self) -> list[bytes | str | int]:
        return [self.job_id, self.payload, self.score, self.expires_ms]


def job(
    function: str, call_sid: str, name: str, *, now_ms: int | None = None, defer_ms: int = 0
) -> JobSpec:
    """The job for `function` on one stream; its id is stable so that it is queued once."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    payload = serialize_job(function, (call_sid, name), {}, None, now_ms, serializer=dumps)
    return JobSpec(f"{function}:{call_sid}:{name}", payload, now_ms + defer_ms, JOB_EXPIRY_MS)
