"""The worker's /metrics listener: where it listens, how many connections it holds,
and a port already taken as a one-line start-up error."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from service.cli.dev import free_port
from tests.helpers import ACCOUNT_SID, AUTH_TOKEN, STREAM_URL
from tests.processes import until
from worker.observe import MAX_CONNECTIONS


def _env(redis_url: str, port: int, host: str = "127.0.0.1") -> dict[str, str]:
    return {
        **os.environ, "REDIS_URL": redis_url, "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN, "PUBLIC_BASE_URL": "https://streams.example.com",
        "STREAM_URL": STREAM_URL, "CALLSTREAMS_WORKER_METRICS_PORT": str(port),
        "CALLSTREAMS_WORKER_METRICS_HOST": host,
    }  # fmt: skip


def _threads(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/task").iterdir()))


def test_a_port_in_use_is_one_line_naming_the_setting(redis_url: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "service.cli", "worker"], env=_env(redis_url, port),
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert "CALLSTREAMS_WORKER_METRICS_PORT" in line
    assert "Traceback" not in result.stderr + result.stdout


def test_metrics_listen_where_told_with_bounded_connections(redis_url: str, tmp_path: Path) -> None:
    port = free_port()
    with (tmp_path / "worker.log").open("wb") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "worker"], env=_env(redis_url, port),
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}/metrics"

        def scraped() -> bool:
            try:
                return "callstreams_queue_depth" in httpx.get(url, timeout=1).text
            except httpx.HTTPError:
                return False

        until(scraped, 30, "the worker's /metrics")
        threads = _threads(worker.pid)
        idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(MAX_CONNECTIONS)]
        try:
            time.sleep(0.5)
            with socket.create_connection(("127.0.0.1", port)) as extra:
                extra.settimeout(5)
                assert extra.recv(4096).startswith(b"HTTP/1.1 503 ")
            assert _threads(worker.pid) <= threads  # no thread per connection
        finally:
            for sock in idle:
                sock.close()
        until(scraped, 10, "/metrics after the idle sockets left")
    finally:
        worker.terminate()
        worker.wait(30)
