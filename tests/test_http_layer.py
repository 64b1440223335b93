"""The web process's HTTP layer, on a real socket with no proxy in front: header caps,
deadlines for slow clients, a bound on connections, bodies capped while read, and
clients that go away mid-request (SPEC, the paragraph before "Errors on every path")."""

import asyncio
import contextlib
import inspect
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from service.http_server import BODY_SECONDS, HEADER_SECONDS, IDLE_SECONDS, MAX_HEADER_BYTES
from tests.helpers import API_TOKEN, RedisServer, call_sid
from tests.processes import Services, running_stack

MAX_CONNECTIONS = 40


@pytest.fixture(scope="module")
def web(
    redis_server: RedisServer | str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Services]:
    url = redis_server if isinstance(redis_server, str) else redis_server.url
    logs = tmp_path_factory.mktemp("http-layer")
    with running_stack(url, logs, CALLSTREAMS_MAX_CONNECTIONS=str(MAX_CONNECTIONS)) as services:
        yield services


def _address(services: Services) -> tuple[str, int]:
    parts = urlsplit(services.web)
    return parts.hostname or "", parts.port or 80


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


async def _closed_after(reader: asyncio.StreamReader, within: float) -> tuple[float, bytes]:
    """Seconds until the server closes the connection, and what it sent before (a reset
    can take that away: the server closed with our bytes unread)."""
    started = time.monotonic()
    data = b""
    try:
        async with asyncio.timeout(within):
            while chunk := await reader.read(65536):
                data += chunk
    except ConnectionError:
        pass
    return time.monotonic() - started, data


def test_the_protocol_internals_keep_their_shape() -> None:
    """`service/http_server.py` overrides these of uvicorn's httptools protocol."""
    for name in ("connection_made", "connection_lost", "data_received", "on_headers_complete",
                 "on_message_complete"):  # fmt: skip
        assert callable(getattr(HttpToolsProtocol, name))
    parameters = inspect.signature(HttpToolsProtocol.__init__).parameters
    assert list(parameters) == ["self", "config", "server_state", "app_state", "_loop"]
    source = inspect.getsource(HttpToolsProtocol.__init__)
    for attribute in ("self.limit_concurrency", "self.connections", "self.loop"):
        assert attribute in source


def test_a_huge_header_is_refused_with_bounded_memory(web: Services) -> None:
    host, port = _address(web)
    pid = web.processes["web"].pid
    before = _rss_kib(pid)

    async def huge(size: int) -> bytes:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(b"POST /twilio/call-status HTTP/1.1\r\nHost: x\r\nX-Big: ")
            for _ in range(size // 65536):
                writer.write(b"a" * 65536)
                await writer.drain()
        except ConnectionError:
            pass  # refused while we were still sending
        _, answer = await _closed_after(reader, 30)
        writer.close()
        return answer

    async def all_at_once() -> list[bytes]:
        # One 8 MiB header, and 20 sockets sending 1 MiB unfinished headers at once.
        return await asyncio.gather(huge(8 << 20), *(huge(1 << 20) for _ in range(20)))

    async def over_the_cap_then_wait() -> bytes:
        # Sent whole before the server reads it, so the 431 is not lost to a reset.
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(b"POST /twilio/call-status HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000)
        await writer.drain()
        _, answer = await _closed_after(reader, 30)
        writer.close()
        return answer

    answers = asyncio.run(all_at_once())
    # Each is refused: with a 431, or reset when it was still sending as the server closed.
    assert all(a.startswith(b"HTTP/1.1 431 ") or a == b"" for a in answers)
    assert b"request header fields too large" in asyncio.run(over_the_cap_then_wait())
    assert _rss_kib(pid) - before < 40 * 1024  # was 80 → 391 MB before the cap
    assert httpx.get(f"{web.web}/healthz").status_code == 200
    assert MAX_HEADER_BYTES == 16 * 1024
    ok = httpx.get(f"{web.web}/healthz", headers={"X-Fine": "a" * 8000})
    assert ok.status_code == 200


def test_slow_and_idle_sockets_are_closed_while_healthz_answers(web: Services) -> None:
    host, port = _address(web)

    async def silent() -> float:
        reader, writer = await asyncio.open_connection(host, port)
        with contextlib.closing(writer):
            return (await _closed_after(reader, 60))[0]

    async def trickling_headers() -> float:
        """A header line a second, never the end of the headers (slowloris)."""
        reader, writer = await asyncio.open_connection(host, port)
        started = time.monotonic()
        closed = asyncio.create_task(reader.read())
        try:
            writer.write(b"GET /healthz HTTP/1.1\r\n")
            while not closed.done() and time.monotonic() - started < 60:
                writer.write(b"X-Slow: 1\r\n")
                await writer.drain()
                await asyncio.wait([closed], timeout=1)
        except ConnectionError:
            pass
        await closed
        writer.close()
        return time.monotonic() - started

    async def stalled_body() -> float:
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(
            b"POST /twilio/call-status HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\n"
            b"AccountSid="
        )
        with contextlib.closing(writer):
            return (await _closed_after(reader, 60))[0]

    async def idle_keep_alive() -> float:
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        await reader.readuntil(b'{"status":"ok"}')
        with contextlib.closing(writer):
            return (await _closed_after(reader, 60))[0]

    async def healthz_meanwhile() -> list[int]:
        statuses = []
        async with httpx.AsyncClient() as client:
            for _ in range(10):
                await asyncio.sleep(1)
                statuses.append((await client.get(f"{web.web}/healthz")).status_code)
        return statuses

    async def together() -> tuple[float, float, float, float, list[int]]:
        return await asyncio.gather(
            silent(), trickling_headers(), stalled_body(), idle_keep_alive(), healthz_meanwhile()
        )

    quiet, trickle, body, idle, statuses = asyncio.run(together())
    assert HEADER_SECONDS - 1 < quiet < HEADER_SECONDS + 10
    assert HEADER_SECONDS - 1 < trickle < HEADER_SECONDS + 10
    assert BODY_SECONDS - 1 < body < BODY_SECONDS + 10
    assert IDLE_SECONDS - 1 < idle < IDLE_SECONDS + 10
    assert statuses == [200] * 10


def test_connections_beyond_the_bound_are_refused_cleanly(web: Services) -> None:
    host, port = _address(web)
    held = [socket.create_connection((host, port)) for _ in range(MAX_CONNECTIONS)]
    try:
        time.sleep(0.5)
        with socket.create_connection((host, port)) as extra:
            extra.settimeout(5)
            answer = extra.recv(4096)
        assert answer.startswith(b"HTTP/1.1 503 ")
        assert b"too many connections" in answer
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.5)
    assert httpx.get(f"{web.web}/healthz").status_code == 200


def test_a_chunked_operator_body_is_refused_at_the_cap(web: Services) -> None:
    host, port = _address(web)
    path = f"/v1/calls/{call_sid()}/streams"
    sent = 0
    with socket.create_connection((host, port)) as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {API_TOKEN}\r\n"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
        )
        sock.settimeout(0.05)
        answer = b""
        chunk = b"%x\r\n%s\r\n" % (16384, b" " * 16384)
        try:
            while sent < 300 << 20 and not answer:
                sock.sendall(chunk)
                sent += 16384
                try:
                    answer = sock.recv(4096)
                except TimeoutError:
                    continue
        except (BrokenPipeError, ConnectionResetError):
            sock.settimeout(5)
            answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:80]
    assert sent < 4 << 20  # refused near the 64 KiB cap, not after buffering it all


def test_clients_that_leave_mid_body_are_not_errors(web: Services) -> None:
    host, port = _address(web)
    for path in ("/twilio/call-status", f"/v1/calls/{call_sid()}/streams"):
        for _ in range(50):
            with socket.create_connection((host, port)) as sock:
                sock.sendall(
                    f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {API_TOKEN}\r\n"
                    "Content-Type: application/json\r\nContent-Length: 5000\r\n\r\n{".encode()
                )
    time.sleep(1)
    assert httpx.get(f"{web.web}/healthz").status_code == 200
    log = web.log("web")
    assert "Traceback" not in log
    assert "unexpected error" not in log
    assert '"status": 500' not in log


def test_readyz_names_no_address(web: Services) -> None:
    ready = httpx.get(f"{web.web}/readyz").json()
    assert ready["status"] == "ready"
    assert "127.0.0.1" not in str(ready)
