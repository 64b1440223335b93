"""The HTTP layer of every listener (the web process, the worker's metrics): uvicorn's
httptools protocol, made to protect itself without a proxy in front.

uvicorn closes idle keep-alive connections and bounds concurrent requests, but
with httptools it takes a header section of any size and waits for slow clients
forever. This protocol adds what SPEC's HTTP paragraph asks: a header section over
16 KiB is refused with 431 while it is read (so memory stays bounded), a client that
has not sent its headers within 10 s or its body within 30 s is disconnected, and a
connection beyond the process's bound is refused at once with 503. uvicorn is pinned
below its next minor release, and `tests/test_http_layer.py` fails if the protocol
internals used here change shape.
"""

import asyncio
import json
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

MAX_HEADER_BYTES = 16 * 1024
HEADER_SECONDS = 10.0
BODY_SECONDS = 30.0
IDLE_SECONDS = 5  # a keep-alive connection with no request for this long is closed
_REASONS = {431: b"Request Header Fields Too Large", 503: b"Service Unavailable"}


def _refusal(status: int, error: str) -> bytes:
    body = json.dumps({"error": error, "detail": None}).encode()
    return b"".join([
        b"HTTP/1.1 %d %s\r\n" % (status, _REASONS[status]),
        b"content-type: application/json\r\n",
        b"content-length: %d\r\n" % len(body),
        b"connection: close\r\n\r\n",
        body,
    ])  # fmt: skip


class GuardedHttpTools(HttpToolsProtocol):
    """One connection: a deadline for its headers and one for its body, a cap on its
    header section, and a refusal beyond the process's connection bound (uvicorn's
    `limit_concurrency`, which also answers 503 to requests beyond it)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._reading_headers = True
        self._header_bytes = 0
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        limit = self.limit_concurrency
        if limit is not None and len(self.connections) > limit:
            self._refuse(503, "too many connections")
            return
        self._arm(HEADER_SECONDS)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.transport.is_closing():  # refused or timed out: read nothing more
            return
        if self._reading_headers:
            if self._deadline is None:  # the first byte of a keep-alive connection's request
                self._arm(HEADER_SECONDS)
            self._header_bytes += len(data)
        super().data_received(data)
        if self._reading_headers and self._header_bytes > MAX_HEADER_BYTES:
            self._refuse(431, "request header fields too large")

    def on_headers_complete(self) -> None:
        self._reading_headers = False
        self._arm(BODY_SECONDS)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        self._reading_headers, self._header_bytes = True, 0
        super().on_message_complete()

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.close()

    def _refuse(self, status: int, error: str) -> None:
        self._disarm()
        if not self.transport.is_closing():
            self.transport.write(_refusal(status, error))
            self.transport.close()
