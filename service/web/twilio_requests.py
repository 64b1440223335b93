"""How a request from Twilio is read and trusted, before any handler uses it.

Each request is size-checked before it is read, and signature-checked against the
public URL (never the URL the app sees behind a load balancer) with the token of
the account it names. Handlers are plain ASGI endpoints: Twilio's most frequent
requests skip Starlette's per-route response object and second exception wrapper.
"""

import secrets
from collections.abc import Awaitable, Callable, Mapping
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.types import Receive, Scope, Send
from structlog.contextvars import bind_contextvars

from service import sids, signature
from service.web.bodies import read_body
from service.web.errors import ApiError
from service.web.state import AppState, app_state

FORM = "application/x-www-form-urlencoded"
_NOBODY = secrets.token_urlsafe(32)  # a token no request is signed with


async def read_form(request: Request, limit: int) -> list[tuple[str, str]]:
    """The form fields, in order; 415, 413 or 400 before anything is trusted."""
    body = await read_body(request, FORM, limit)
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


async def verified_fields(request: Request) -> tuple[AppState, dict[str, str]]:
    state = app_state(request)
    form = await read_form(request, state.settings.max_body)
    fields: dict[str, str] = {}
    for key, value in form:
        fields.setdefault(key, value)
    # The token that signed the request is the one of the account it is for.
    if not request.headers.get("x-twilio-signature"):
        raise ApiError(403, "missing signature", "X-Twilio-Signature header is required")
    # An unknown account fails exactly as a bad signature does, after the same work:
    # the answer never tells which accounts are configured.
    account = state.catalog.accounts.get(require(fields, "AccountSid"))
    token = account.auth_token.get_secret_value() if account else _NOBODY
    check_signature(request, state.settings.public_base_url, token, form)
    # Every webhook Twilio sends us is about one call.
    require(fields, "CallSid", sids.is_call_sid(fields.get("CallSid", "")))
    bind_contextvars(call_sid=fields["CallSid"])
    return state, fields


class Webhook:
    """A webhook endpoint as a plain ASGI app: `handle` answers TwiML, or None for a
    204 once it stored what it had to. Errors still reach the app's exception
    handlers, which answer them in JSON."""

    def __init__(self, handle: Callable[[Request], Awaitable[bytes | None]]) -> None:
        self.handle = handle

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        twiml = await self.handle(Request(scope, receive))
        if twiml is None:
            await send({"type": "http.response.start", "status": 204, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        headers = [
            (b"content-type", b"text/xml; charset=utf-8"),
            (b"content-length", str(len(twiml)).encode()),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": twiml})
