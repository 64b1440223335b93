"""Access logs with a request id: one structured event per request, ids in every line.

The id is the caller's `X-Request-Id`, else Twilio's `I-Twilio-Idempotency-Token`,
else a fresh one; it is bound to every log line of the request and echoed back.
A plain ASGI middleware, because this runs on every webhook.
"""

import random
import time

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = structlog.get_logger("callstreams.access")
_HEADERS = (b"x-request-id", b"i-twilio-idempotency-token")
_MAX_ID = 128
CLIENT_GONE = 499  # the status logged for a client that disconnected before its answer


def _request_id(scope: Scope) -> str:
    headers: dict[bytes, bytes] = dict(scope["headers"])
    for name in _HEADERS:
        value = headers.get(name, b"").decode("latin-1")
        if value and len(value) <= _MAX_ID and value.isascii() and value.isprintable():
            return value
    return f"{random.getrandbits(64):016x}"  # unique enough to follow a request, and cheap


class AccessLog:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        started = time.perf_counter()
        status = 500  # what the server answers if the app fails before responding

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode()),
                ]
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=request_id):
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                # A client that went away mid-request is no news: debug level.
                emit = log.debug if status == CLIENT_GONE else log.info
                emit(
                    "request", method=scope["method"], path=scope["path"], status=status,
                    ms=round((time.perf_counter() - started) * 1000, 2),
                )  # fmt: skip
