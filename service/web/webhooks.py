"""Twilio's webhooks: call status (answered → start streams) and stream status.

Each request is size-checked before it is read, signature-checked against the
public URL, validated, and then persisted in one Redis round trip. It answers
204 only once that write succeeded, so nothing is acknowledged that was lost.
"""

from collections.abc import Awaitable, Callable, Mapping
from urllib.parse import parse_qsl

import structlog
from starlette.requests import Request
from starlette.routing import Route
from starlette.types import Receive, Scope, Send
from structlog.contextvars import bind_contextvars

from service import sids, signature
from service.clock import now_iso
from service.record import StreamRecord, record_for
from service.restarts import restart_for
from service.twilio_terms import (
    ANSWERED,
    CALL_STATUS_PATH,
    RINGING,
    STREAM_EVENTS,
    STREAM_STATUS_PATH,
    TERMINAL,
)
from service.web.errors import ApiError
from service.web.state import AppState, app_state

log = structlog.get_logger("callstreams.webhooks")

FORM = "application/x-www-form-urlencoded"


async def read_form(request: Request, limit: int) -> list[tuple[str, str]]:
    """The form fields, in order; 415, 413 or 400 before anything is trusted."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != FORM:
        raise ApiError(415, "unsupported media type", f"expected {FORM}")
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise ApiError(413, "request body too large", f"at most {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise ApiError(413, "request body too large", f"at most {limit} bytes")
    try:
        return parse_qsl(body.decode("utf-8"), keep_blank_values=True, errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise ApiError(400, "malformed form body", "expected UTF-8 form encoding") from None


def signed_url(request: Request, public_base_url: str) -> str:
    """The URL Twilio requested: the public base plus the raw path and query."""
    raw_path = request.scope.get("raw_path") or request.scope["path"].encode()
    url = public_base_url + raw_path.decode("latin-1")
    query = request.scope.get("query_string", b"")
    return f"{url}?{query.decode('latin-1')}" if query else url


def check_signature(
    request: Request, public_base_url: str, token: str, form: list[tuple[str, str]]
) -> None:
    header = request.headers.get("x-twilio-signature", "")
    url = signed_url(request, public_base_url)
    if not signature.is_valid(url, form, header, token):
        raise ApiError(403, "invalid signature", "X-Twilio-Signature does not match")


def require(fields: Mapping[str, str], name: str, valid: bool | None = None) -> str:
    value = fields.get(name)
    if not value:
        raise ApiError(400, "missing field", name)
    if valid is False:
        raise ApiError(400, "invalid field", name)
    return value


async def _verified_fields(request: Request) -> tuple[AppState, dict[str, str]]:
    state = app_state(request)
    form = await read_form(request, state.settings.max_body)
    fields: dict[str, str] = {}
    for key, value in form:
        fields.setdefault(key, value)
    # The token that signed the request is the one of the account it is for.
    if not request.headers.get("x-twilio-signature"):
        raise ApiError(403, "missing signature", "X-Twilio-Signature header is required")
    account = state.catalog.accounts.get(require(fields, "AccountSid"))
    if account is None:
        raise ApiError(403, "unknown account", "AccountSid is not a configured account")
    check_signature(
        request, state.settings.public_base_url, account.auth_token.get_secret_value(), form
    )
    return state, fields


async def call_status(request: Request) -> None:
    state, fields = await _verified_fields(request)
    call_sid = fields.get("CallSid", "")
    require(fields, "CallSid", sids.is_call_sid(call_sid))
    status = require(fields, "CallStatus")
    bind_contextvars(call_sid=call_sid, call_status=status)
    if status == ANSWERED:
        answered_at = now_iso()
        records = [
            record_for(profile, fields, answered_at=answered_at)
            for profile in state.catalog.profiles
            if profile.matches(fields)
        ]
        claims = await state.records.claim(call_sid, records) if records else []
        for outcome, record in claims:
            state.metrics.claims.labels(record["profile"] or "", outcome).inc()
        # Logged once, with the request (service.web.access): which streams, what came of each.
        bind_contextvars(streams={record["name"]: outcome for outcome, record in claims})
    elif status in TERMINAL:
        await state.records.call_ended(call_sid, status)
    elif status not in RINGING:
        raise ApiError(400, "invalid field", "CallStatus")
    state.metrics.webhooks.labels("call-status", status).inc()


async def stream_status(request: Request) -> None:
    state, fields = await _verified_fields(request)
    call_sid = fields.get("CallSid", "")
    require(fields, "CallSid", sids.is_call_sid(call_sid))
    stream_sid = fields.get("StreamSid", "")
    require(fields, "StreamSid", sids.is_stream_sid(stream_sid))
    event = fields.get("StreamEvent", "")
    require(fields, "StreamEvent", event in STREAM_EVENTS)
    name = fields.get("StreamName") or stream_sid
    bind_contextvars(call_sid=call_sid, stream=name, stream_event=event)
    applied = await state.records.stream_event(
        call_sid, stream_sid, name, event, fields.get("StreamError", "")
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
    claimed = await state.records.restart(failed["call_sid"], record, after)
    if claimed is not None:
        state.metrics.claims.labels(record["profile"] or "", "restart").inc()
        log.info("restarting", call_sid=failed["call_sid"], stream=claimed["name"])


class Webhook:
    """A webhook endpoint as a plain ASGI app that answers 204 once `handle` stored
    what it had to: Twilio's most frequent requests skip Starlette's per-route
    response object and second exception wrapper. Errors still reach the app's
    exception handlers, which answer them in JSON."""

    def __init__(self, handle: Callable[[Request], Awaitable[None]]) -> None:
        self.handle = handle

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.handle(Request(scope, receive))
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})


routes = [
    Route(CALL_STATUS_PATH, Webhook(call_status), methods=["POST"]),
    Route(STREAM_STATUS_PATH, Webhook(stream_status), methods=["POST"]),
]
