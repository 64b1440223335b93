"""One JSON error shape for every path: `{"error": ..., "detail": ...}`.

Input never causes a 500 or a traceback in a response; an unreachable Redis is
a 503 so that Twilio's retry delivers the webhook again.
"""

from typing import Any

import structlog
from pydantic import TypeAdapter
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import ExceptionHandler

from service.record import StreamRecord
from service.store import StoreUnavailable, WrongAccount, WrongStream
from service.web.access import CLIENT_GONE
from service.web.schemas import Error

_ERROR = TypeAdapter(Error)

log = structlog.get_logger("callstreams.web")


class ApiError(Exception):
    """An error answer: status, a short message, and an optional detail."""

    def __init__(
        self, status: int, error: str, detail: Any = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.detail = detail
        self.headers = headers


def error_response(
    status: int,
    error: str,
    detail: Any = None,
    headers: dict[str, str] | None = None,
    record: StreamRecord | None = None,
) -> Response:
    body = Error(error=error, detail=detail)
    if record is not None:
        body["record"] = record
    return Response(_ERROR.dump_json(body), status, headers, media_type="application/json")


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.error, exc.detail, exc.headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    headers = dict(exc.headers) if exc.headers else None
    return error_response(exc.status_code, str(exc.detail), None, headers)


async def _redis_down(request: Request, exc: Exception) -> Response:
    log.warning("redis unavailable", path=request.url.path, error=str(exc))
    return error_response(503, "redis unavailable", "try again shortly", {"Retry-After": "1"})


async def _not_yours(request: Request, exc: Exception) -> Response:
    """A webhook about a call of another account, or a stream it contradicts."""
    log.warning("refused: contradicts the call's record", path=request.url.path,
                refusal=type(exc).__name__)  # fmt: skip
    detail = (
        "this call belongs to another account"
        if isinstance(exc, WrongAccount)
        else "StreamSid is not the SID of the stream with this name"
    )
    return error_response(403, "forbidden", detail)


async def _client_gone(request: Request, exc: Exception) -> Response:
    """The client disconnected mid-request: nobody to answer, nothing to report."""
    log.debug("client disconnected", path=request.url.path)
    return Response(status_code=CLIENT_GONE)


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error", path=request.url.path)
    return error_response(500, "internal error", None)


HANDLERS: dict[Any, ExceptionHandler] = {
    ApiError: _api_error,
    HTTPException: _http_error,
    StoreUnavailable: _redis_down,
    WrongAccount: _not_yours,
    WrongStream: _not_yours,
    ClientDisconnect: _client_gone,
    Exception: _unexpected,
}
