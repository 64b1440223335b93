"""Twilio's status callbacks: call status (answered → start streams, ended → stop
them) and stream status.

Each is read and trusted by `twilio_requests.py`, validated, and then persisted in
one Redis round trip. It answers 204 only once that write succeeded, so nothing is
acknowledged that was lost.
"""

from collections.abc import Mapping

import structlog
from starlette.requests import Request
from starlette.routing import Route
from structlog.contextvars import bind_contextvars

from service import sids
from service.clock import now_iso
from service.record import StreamRecord, record_for
from service.restarts import restart_for
from service.store import ClaimMode
from service.twilio_terms import (
    ANSWERED,
    CALL_STATUS_PATH,
    RINGING,
    STREAM_EVENTS,
    STREAM_STATUS_PATH,
    TERMINAL,
)
from service.web.errors import ApiError
from service.web.state import AppState
from service.web.twilio_requests import Webhook, require, verified_fields

log = structlog.get_logger("callstreams.webhooks")


async def claim_matching(
    state: AppState, fields: Mapping[str, str], mode: ClaimMode, answered_at: str | None
) -> None:
    """Claim a record for each profile that matches the call, in one Redis round trip."""
    records = [
        record_for(profile, fields, answered_at=answered_at)
        for profile in state.catalog.profiles
        if profile.matches(fields)
    ]
    claims = await state.records.claim(fields["CallSid"], records, mode) if records else []
    profiles = {record["name"]: record["profile"] or "" for record in records}
    for claimed in claims:
        state.metrics.claims.labels(profiles[claimed.name], claimed.outcome).inc()
    # Logged once, with the request (service.web.access): which streams, what came of each.
    bind_contextvars(streams={claimed.name: claimed.outcome for claimed in claims})


async def call_status(request: Request) -> None:
    state, fields = await verified_fields(request)
    call_sid = fields["CallSid"]
    status = require(fields, "CallStatus")
    bind_contextvars(call_status=status)
    if status == ANSWERED:
        await claim_matching(state, fields, "answered", now_iso())
    elif status in TERMINAL:
        await state.records.call_ended(call_sid, fields["AccountSid"], status)
    elif status not in RINGING:
        raise ApiError(400, "invalid field", "CallStatus")
    state.metrics.webhooks.labels("call-status", status).inc()


async def stream_status(request: Request) -> None:
    state, fields = await verified_fields(request)
    call_sid = fields["CallSid"]
    stream_sid = fields.get("StreamSid", "")
    require(fields, "StreamSid", sids.is_stream_sid(stream_sid))
    event = fields.get("StreamEvent", "")
    require(fields, "StreamEvent", event in STREAM_EVENTS)
    name = fields.get("StreamName") or stream_sid
    bind_contextvars(stream=name, stream_event=event)
    applied = await state.records.stream_event(
        call_sid, fields["AccountSid"], stream_sid, name, event, fields.get("StreamError", "")
    )
    if applied is None:
        bind_contextvars(outcome="unknown stream")
    else:
        record, first_start = applied
        state.metrics.observe_event(record, event, first_start)
        bind_contextvars(stream=record["name"], profile=record["profile"])
        if event == "stream-error":
            await restart(state, record)
    state.metrics.webhooks.labels("stream-status", event).inc()


async def restart(state: AppState, failed: StreamRecord) -> None:
    """Start a failed stream again if its profile's restart policy says so."""
    record, after, exhausted = restart_for(failed, state.catalog.profile(failed["profile"] or ""))
    if exhausted:
        log.warning("restart limit reached", call_sid=failed["call_sid"],
                    stream=failed["restart_of"] or failed["name"])  # fmt: skip
    if record is None:
        return
    claims = await state.records.claim(failed["call_sid"], [record], "restart", after)
    if any(claimed.outcome == "claimed" for claimed in claims):
        state.metrics.claims.labels(record["profile"] or "", "restart").inc()
        log.info("restarting", call_sid=failed["call_sid"], stream=record["name"])


routes = [
    Route(CALL_STATUS_PATH, Webhook(call_status), methods=["POST"]),
    Route(STREAM_STATUS_PATH, Webhook(stream_status), methods=["POST"]),
]
