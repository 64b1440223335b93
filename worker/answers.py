"""Front-door calls: each stream starts once the call is answered.

Twilio tells us nothing when an inbound call is answered (REFERENCE.md section G),
and whether it refuses a stream on a ringing call is undocumented. So a start is
tried at once (it succeeds where Twilio accepts it); once refused, the record's job
only polls the call's Call resource, one request every `ANSWER_POLL` seconds, and
creates the stream on the first poll that finds the call in progress. A call that
ends, that Twilio does not know (404), or that rings past `CALLSTREAMS_ANSWER_WAIT`
gets `skipped` records and no create; any other refusal of the fetch (credentials,
say) says nothing of the call, so it is asked again within that wait.
"""

from datetime import timedelta

import structlog

from service.queue import Run
from service.record import StreamRecord, TwilioError, note
from service.twilio_terms import ANSWERED, TERMINAL
from worker.deps import Deps, request
from worker.twilio import Answer, Kind

log = structlog.get_logger("callstreams.worker")

ANSWER_POLL = 0.5  # seconds between polls: a stream starts within about this of the answer
# How Twilio may refuse a stream on a call that is not answered yet.
REFUSALS: frozenset[Kind] = frozenset({"not-in-progress", "permanent"})
WAITING = "waiting for the call to be answered"


def waiting(error: TwilioError | None) -> bool:
    """True for the note a record carries while its call rings."""
    return error is not None and error["message"].startswith(WAITING)


async def refused(deps: Deps, run: Run, record: StreamRecord, answer: Answer) -> str:
    """The create was refused on a call whose answer is not seen: poll from now on."""
    reason = answer.error["message"] if answer.error else "refused"
    await deps.records.finish(
        record["call_sid"], record["name"], "retry", run, 0,
        error=note(f"{WAITING} (Twilio: {reason})"), _refused=1,
    )  # fmt: skip
    return "waiting"


async def poll(deps: Deps, run: Run, record: StreamRecord, waited_ms: int) -> str:
    """Ask Twilio's Call resource how the call is, and act on it."""
    call_sid, name = record["call_sid"], record["name"]
    answer = await request(deps, "fetch", deps.twilio.fetch_call(record["account_sid"], call_sid))
    status = answer.body.get("status") if answer.kind == "ok" else None
    if answer.kind == "transient":
        again = max(ANSWER_POLL, deps.policy.delay(1, answer.retry_after))
        await deps.records.finish(call_sid, name, "retry", run, again)
        return "waiting"
    if answer.kind == "not-found" or status in TERMINAL:
        ended = status if isinstance(status, str) else "completed"
        why = (
            f"Twilio's Call resource says it ended ({ended})"
            if answer.kind == "ok"
            else "Twilio does not know the call"
        )
        await deps.records.finish(call_sid, name, "skipped", run, error=note(f"{why}; not started"))
        await deps.records.call_ended(call_sid, record["account_sid"], ended, why)
        _count(deps, record, "skipped")
        return "skipped"
    if status == ANSWERED:
        await deps.records.answered(call_sid)
        await deps.records.finish(call_sid, name, "retry", run, 0)  # create at once
        log.info("answered", call_sid=call_sid, stream=name)
        return "answered"
    wait = deps.settings.answer_wait
    if timedelta(milliseconds=waited_ms) > wait:
        message = f"not answered within {wait.total_seconds():g}s; not started"
        await deps.records.finish(call_sid, name, "skipped", run, error=note(message))
        await deps.records.skip_unanswered(call_sid, message)
        _count(deps, record, "skipped")
        return "skipped"
    # Ringing, or an answer of no use (our credentials refused): ask again, up to the wait.
    again = ANSWER_POLL if answer.kind == "ok" else max(ANSWER_POLL, deps.policy.delay(1, None))
    await deps.records.finish(call_sid, name, "retry", run, again)
    return "waiting"


def _count(deps: Deps, record: StreamRecord, outcome: str) -> None:
    deps.metrics.stream_outcomes.labels(record["profile"] or "", "create", outcome, "").inc()
    log.info(outcome, call_sid=record["call_sid"], stream=record["name"], reason="front door")
