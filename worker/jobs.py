"""The worker's jobs: converge one stream record to its desired state.

Each job takes itself and the record's lease in one step (`Records.begin`), makes
at most one Twilio request, and records the answer as it completes itself, done or
due again (`Records.finish`): two Redis round trips a job, run by the worker's own
runner (`worker/wakeup.py`) rather than arq's. A transient Twilio failure makes the
job due again after the policy's delay, never a sleep in the job; a Redis blip is
ridden out by the worker's Redis client (see `worker/settings.py`).
"""

from typing import Any, Literal

import structlog

from service.clock import seconds_since
from service.queue import Run
from service.record import StreamRecord
from service.store import Outcome
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
    deps: Deps,
    run: Run,
    record: StreamRecord,
    operation: Literal["create", "stop"],
    answer: Answer,
    meaning: dict[Kind, Outcome],
) -> str:
    """Persist what `answer` means: a transient failure still in budget is tried again."""
    call_sid, name = record["call_sid"], record["name"]
    outcome: Outcome = meaning.get(answer.kind, "failed")
    if answer.kind == "transient":
        if not deps.policy.exhausted(record["attempts"], record["created_at"]):
            delay = deps.policy.delay(record["attempts"], answer.retry_after)
            await deps.records.finish(call_sid, name, "retry", run, delay, error=answer.error)
            log.info("retrying", call_sid=call_sid, stream=name, delay=round(delay, 3))
            deps.metrics.retries.labels(operation).inc()
            return "retry"
        outcome = "failed"
    error = None if outcome in ("created", "stopped") else answer.error
    resource = deps.records.twilio_patch(call_sid, record["account_sid"], answer.body)
    await deps.records.finish(call_sid, name, outcome, run, error=error, **resource)
    code = str(error["code"]) if error and error["code"] is not None else ""
    deps.metrics.stream_outcomes.labels(record["profile"] or "", operation, outcome, code).inc()
    log.info(outcome, call_sid=call_sid, stream=name, attempts=record["attempts"], error=error)
    return outcome


def _job(ctx: dict[str, Any]) -> tuple[Deps, Run]:
    """What an arq job's `ctx` holds for ours: the worker's clients, and this run."""
    deps: Deps = ctx["deps"]
    return deps, Run(ctx["job_id"], deps.settings.queue_name, ctx["lock_ms"])


async def start_stream(ctx: dict[str, Any], call_sid: str, name: str) -> str:
    """Create the stream at Twilio, unless it was stopped or the call ended first."""
    deps, run = _job(ctx)
    action, record, waited = await deps.records.begin(call_sid, name, "start", deps.lease, run)
    if record is None or action not in ("create", "poll", "stop"):
        return action  # done, gone, busy: nothing for Twilio; elsewhere: not ours to run
    if action == "poll" and waited is not None:
        return await answers.poll(deps, run, record, waited)
    if action == "stop":
        # A stop was asked after an attempt whose outcome is unknown: stop by name.
        stop = deps.twilio.stop(record["account_sid"], call_sid, name)
        answer = await request(deps, "stop", stop)
        return await _conclude(deps, run, record, "stop", answer, STOP_UNSURE)
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
        return await answers.refused(deps, run, record, answer)
    return await _conclude(deps, run, record, "create", answer, CREATE)


async def stop_stream(ctx: dict[str, Any], call_sid: str, name: str) -> str:
    """Stop a live stream by its SID when known, else by its name."""
    deps, run = _job(ctx)
    action, record, _ = await deps.records.begin(call_sid, name, "stop", deps.lease, run)
    if record is None or action != "stop":
        return action
    stop = deps.twilio.stop(record["account_sid"], call_sid, record["sid"] or name)
    answer = await request(deps, "stop", stop)
    return await _conclude(deps, run, record, "stop", answer, STOP)
