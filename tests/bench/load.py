"""The benchmark's load generator: raw HTTP/1.1 over keep-alive connections, on uvloop.

It runs in a process of its own (the benchmark calls these functions through a
process pool) so that it never shares an event loop with a server it measures.
Requests are built before the clock starts; each connection has one request in
flight at a time, so the latency of one is the time from its write to the last
byte of its answer.
"""

import asyncio
import math
import statistics
import time
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import uvloop

from tests.helpers import answered, signed

PATH = "/twilio/call-status"
VOICE = "/twilio/voice"
T = TypeVar("T")


def build_requests(
    port: int, public_base_url: str, call_sids: Sequence[str], path: str = PATH
) -> list[bytes]:
    """One signed webhook per CallSid, as the bytes sent on the wire: the answered
    callback, or for VOICE the incoming-call webhook of a ringing inbound call."""
    requests = []
    for sid in call_sids:
        fields = answered(sid) if path == PATH else answered(sid, "ringing", To="+15557770001")
        post = signed(path, fields, base=public_base_url)
        head = (
            f"POST {path} HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{port}\r\n"
            f"Content-Type: {post['headers']['Content-Type']}\r\n"
            f"X-Twilio-Signature: {post['headers']['X-Twilio-Signature']}\r\n"
            f"Content-Length: {len(post['content'])}\r\n\r\n"
        )
        requests.append(head.encode() + post["content"])
    return requests


class Connection:
    """One keep-alive connection to a server on loopback."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int) -> "Connection":
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def exchange(self, request: bytes) -> int:
        """Send `request`, read the whole answer, return its status."""
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
            elif name.strip().lower() == b"transfer-encoding":
                raise RuntimeError("chunked answers are not expected from these servers")
        if length:
            await self.reader.readexactly(length)
        return int(head[9:12])

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    return uvloop.run(coroutine)


def percentile(values: Sequence[float], q: int) -> float:
    """The q-th percentile of at least one value."""
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


@dataclass(frozen=True)
class Closed:
    """What a closed-loop run measured."""

    requests: int
    errors: int  # answers that were not 2xx
    seconds: float
    p50_ms: float
    p99_ms: float
    exhausted: bool  # every pre-built request was sent before the duration ended

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


def closed_loop(
    port: int, public_base_url: str, call_sids: Sequence[str], connections: int, duration: float
) -> Closed:
    """Each connection sends its next webhook as soon as the last one was answered.

    Runs for `duration` seconds (`math.inf`: until every CallSid was sent);
    each CallSid is sent once.
    """
    return _run(_closed_loop(port, public_base_url, call_sids, connections, duration))


async def _closed_loop(
    port: int, public_base_url: str, call_sids: Sequence[str], connections: int, duration: float
) -> Closed:
    requests = build_requests(port, public_base_url, call_sids)
    pool = [await Connection.open(port) for _ in range(connections)]
    latencies: list[float] = []
    errors = 0
    position = 0

    async def drive(connection: Connection) -> None:
        nonlocal errors, position
        while position < len(requests):
            sent = time.perf_counter()
            if sent >= deadline:
                return
            request = requests[position]
            position += 1
            status = await connection.exchange(request)
            latencies.append(time.perf_counter() - sent)
            errors += not 200 <= status < 300

    start = time.perf_counter()
    deadline = start + duration
    await asyncio.gather(*(drive(c) for c in pool))
    seconds = time.perf_counter() - start
    for connection in pool:
        await connection.close()
    return Closed(
        requests=len(latencies),
        errors=errors,
        seconds=seconds,
        p50_ms=percentile(latencies, 50) * 1000,
        p99_ms=percentile(latencies, 99) * 1000,
        exhausted=position == len(requests) and not math.isinf(duration),
    )


@dataclass(frozen=True)
class Paced:
    """When each webhook of a paced run was sent, by CallSid, as `time.time()`; how
    long each took to be answered; how fast they could be sent."""

    sent_at: dict[str, float]
    answered_ms: list[float]
    errors: int  # answers that were not 2xx
    rate: float  # webhooks sent per second, from the first to the last


def paced(
    port: int,
    public_base_url: str,
    call_sids: Sequence[str],
    rate: float,
    connections: int,
    path: str = PATH,
) -> Paced:
    """One webhook per CallSid at a steady `rate` per second, whatever the answers take."""
    return _run(_paced(port, public_base_url, call_sids, rate, connections, path))


async def _paced(
    port: int,
    public_base_url: str,
    call_sids: Sequence[str],
    rate: float,
    connections: int,
    path: str,
) -> Paced:
    requests = build_requests(port, public_base_url, call_sids, path)
    idle: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(connections):
        idle.put_nowait(await Connection.open(port))
    sent_at: dict[str, float] = {}
    answered_ms: list[float] = []
    errors = 0

    async def send(sid: str, request: bytes) -> None:
        nonlocal errors
        connection = await idle.get()
        sent_at[sid] = time.time()
        started = time.perf_counter()
        status = await connection.exchange(request)
        answered_ms.append((time.perf_counter() - started) * 1000)
        idle.put_nowait(connection)
        errors += not 200 <= status < 300

    tasks = []
    start = time.perf_counter()
    for index, (sid, request) in enumerate(zip(call_sids, requests, strict=True)):
        delay = start + index / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(send(sid, request)))
    await asyncio.gather(*tasks)
    while not idle.empty():
        await idle.get_nowait().close()
    times = sorted(sent_at.values())
    span = times[-1] - times[0] if len(times) > 1 else 0.0
    achieved = (len(times) - 1) / span if span > 0 else rate
    return Paced(sent_at=sent_at, answered_ms=answered_ms, errors=errors, rate=achieved)
