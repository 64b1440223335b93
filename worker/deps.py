"""What the worker's jobs and its reconciler share, opened once per worker process in
`on_startup`, and the one way they call Twilio (timed and counted)."""

import time
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import timedelta

from service.config import Settings
from service.store import Records
from worker.metrics import WorkerMetrics
from worker.retry import RetryPolicy
from worker.twilio import Answer, TwilioClient


@dataclass(frozen=True)
class Deps:
    settings: Settings
    records: Records
    twilio: TwilioClient
    policy: RetryPolicy
    metrics: WorkerMetrics
    lease: timedelta


async def request(deps: Deps, operation: str, call: Awaitable[Answer]) -> Answer:
    """Make one Twilio request, with its duration and outcome in the metrics."""
    started = time.perf_counter()
    answer = await call
    deps.metrics.twilio_seconds.labels(operation).observe(time.perf_counter() - started)
    code = str(answer.error["code"]) if answer.error and answer.error["code"] else ""
    deps.metrics.twilio_requests.labels(operation, answer.kind, code).inc()
    return answer
