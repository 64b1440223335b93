"""The worker's jobs: converge one stream record to its desired state.

Each job takes the record's lease (`Records.begin`), makes at most one Twilio
request, and records the answer (`Records.finish`). A transient Twilio failure is
retried by arq after the policy's delay, never by sleeping in the job; a Redis
blip is ridden out by the worker's Redis client (see `worker/settings.py`).
"""

from typing import Any, Literal

import structlog
from arq import Retry

from service.clock import seconds_since
from service.record import StreamRecord
from service.store import Action, Outcome
from worker import answers
from worker.deps import Deps, request
from worker.twilio import Answer, Kind

log = structlog.get_logger("callstreams.worker")

# What each Twilio answer means for the record, per request.
CREATE: dict[Kind, Outcome] = {
    "ok": "created", "exists": "created", "not-in-progress": "skipped", "not-found": "skipped",
}  # fmt: skip
STOP: dict[Kind, Outcome] = {
    "ok": "stopped", "not-found": "stopped", "not-in-progress": "stopped",
}  # fmt: skip
# Stopping by name after an attempt of unknown outcome: 404 means it never existed.
STOP_UNSURE: dict[Kind, Outcome] = {
    "ok": "stopped", "not-found": "skipped", "not-in-progress": "skipped",
}  # fmt: skip


async def _conclude(
    deps: Deps, record: StreamRecord, operation: str, answer: Answer, meaning: dict[Kind, Outcome]
) -> str:
    """Persist what `answer` means; raise Retry for a transient failure still in budget."""
    call_sid, name = record["call_sid"], record["name"]
    outcome: Outcome = meaning.get(answer.kind, "failed")
    if answer.kind == "transient":
        if not deps.policy.exhausted(record["attempts"], record["created_at"]):
            await deps.records.finish(call_sid, name, "retry", error=answer.error)
            delay = deps.policy.delay(record["attempts"], answer.retry_after)
            log.info("retrying", call_sid=call_sid, stream=name, delay=round(delay, 3))
            deps.metrics.retries.labels(operation).inc()
            raise Retry(defer=delay)
        outcome = "failed"
    body = answer.body
    error = None if outcome in ("created", "stopped") else answer.error
    await deps.records.finish(
        call_sid, name, outcome, sid=body.get("sid"), date_updated=body.get("date_updated"),
        uri=body.get("uri"), error=error,
    )  # fmt: skip
    code = str(error["code"]) if error and error["code"] is not None else ""
    deps.metrics.stream_outcomes.labels(record["profile"] or "", operation, outcome, code).inc()
    log.info(outcome, call_sid=call_sid, stream=name, attempts=record["attempts"], error=error)
    return outcome


async def _begin(
    deps: Deps, call_sid: str, name: str, kind: Literal["start", "stop"]
) -> tuple[Action, StreamRecord | None, int | None]:
    """The action and the record, its lease taken; no record when there is nothing to do.
    Also how long a front-door call has waited for its answer, while it does."""
    action, record, waited = await deps.records.begin(call_sid, name, kind, deps.lease)
    if action == "busy":  # another job holds the lease: try again once it has expired
        raise Retry(defer=deps.lease)
    return action, None if action in ("done", "gone") else record, waited


async def start_stream(ctx: dict[str, Any], call_sid: str, name: str) -> str:
    """Create the stream at Twilio, unless it was stopped or the call ended first."""
    deps: Deps = ctx["deps"]
    action, record, waited = await _begin(deps, call_sid, name, "start")
    if record is None:
        return action
    if action == "poll" and waited is not None:
        return await answers.poll(deps, record, waited)
    if action == "stop":
        # A stop was asked after an attempt whose outcome is unknown: stop by name.
        stop = deps.twilio.stop(record["account_sid"], call_sid, name)
        answer = await request(deps, "stop", stop)
        return await _conclude(deps, record, "stop", answer, STOP_UNSURE)
    first = record["attempts"] == 1 or answers.waiting(record["error"])
    if first and (elapsed := seconds_since(record["answered_at"])) is not None:
        deps.metrics.answered_to_create_sent.observe(elapsed)
    create = deps.twilio.create(
        record["account_sid"],
        call_sid,
        name=name,
        url=record["url"],
        track=record["track"],
        parameters=record["parameters"],
        status_callback=deps.settings.stream_status_url,
    )
    answer = await request(deps, "create", create)
    if waited is not None and answer.kind in answers.REFUSALS:
        return await answers.refused(deps, record, answer)
    return await _conclude(deps, record, "create", answer, CREATE)


async def stop_stream(ctx: dict[str, Any], call_sid: str, name: str) -> str:
    """Stop a live stream by its SID when known, else by its name."""
    deps: Deps = ctx["deps"]
    action, record, _ = await _begin(deps, call_sid, name, "stop")
    if record is None:
        return action
    stop = deps.twilio.stop(record["account_sid"], call_sid, record["sid"] or name)
    answer = await request(deps, "stop", stop)
    return await _conclude(deps, record, "stop", answer, STOP)
