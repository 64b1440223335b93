"""`callstreams dev`: the whole path on one machine.

It runs Redis (the configured one if it answers, else a private one), the
emulator, web and worker as child processes, and stops them all on Ctrl-C.
"""

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any
from urllib.parse import urlsplit

import httpx

from service.cli.simulate import simulate_call
from service.config import DEV_STREAM_URL, load_dev_settings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def redis_answers(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "localhost", parts.port or 6379), 1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith((b"+PONG", b"-NOAUTH"))
    except OSError:
        return False


@contextmanager
def private_redis() -> Iterator[str]:
    """A throwaway redis-server in a temporary directory."""
    server = shutil.which("redis-server")
    if server is None:
        raise SystemExit(
            "callstreams dev: no Redis answers at REDIS_URL and redis-server is not installed"
        )
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="callstreams-redis-") as directory:
        process = subprocess.Popen(
            [server, "--port", str(port), "--bind", "127.0.0.1", "--dir", directory,
             "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            url = f"redis://127.0.0.1:{port}/0"
            wait_until(lambda: redis_answers(url), "private redis-server")
            yield url
        finally:
            process.terminate()
            process.wait(10)


def wait_until(ready: Any, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise SystemExit(f"callstreams dev: {what} did not start within {timeout:.0f}s")
        time.sleep(0.1)


def http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def spawn(stack: ExitStack, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    process = subprocess.Popen([sys.executable, "-m", "service.cli", *args], env=env)

    def stop() -> None:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()

    stack.callback(stop)
    return process


def run_dev(*, port: int, emulator_port: int, simulate: bool) -> int:
    port = port if port_free(port) else free_port()
    emulator_port = emulator_port if port_free(emulator_port) else free_port()
    web_url, emulator_url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{emulator_port}"
    dev = load_dev_settings()
    account = dev.account_sid
    token = dev.auth_token.get_secret_value()
    api_token = dev.api_token.get_secret_value()
    # The children inherit this environment, with dev's choices on top.
    env = {
        **os.environ,
        "CALLSTREAMS_LOG_FORMAT": dev.log_format,
        "TWILIO_ACCOUNT_SID": account,
        "TWILIO_AUTH_TOKEN": token,
        "CALLSTREAMS_API_TOKEN": api_token,
        "TWILIO_API_BASE_URL": emulator_url,
        "PUBLIC_BASE_URL": web_url,
    }
    if dev.config_file is None and dev.voice_twiml_url is None:
        # The front door sends inbound calls on to the emulator's stand-in owner TwiML.
        env["VOICE_TWIML_URL"] = f"{emulator_url}/_emulator/twiml"
    if dev.config_file is None and dev.stream_url is None:
        env["STREAM_URL"] = DEV_STREAM_URL
    with ExitStack() as stack:
        redis_url = dev.redis_url
        if not redis_answers(redis_url):
            redis_url = stack.enter_context(private_redis())
            print(f"started a private redis-server at {redis_url}")
        env["REDIS_URL"] = redis_url
        emulator = spawn(
            stack, ["emulator", "--port", str(emulator_port), "--account", f"{account}:{token}"],
            env,
        )  # fmt: skip
        wait_until(lambda: http_ok(f"{emulator_url}/_emulator/streams"), "the emulator")
        web = spawn(stack, ["web", "--port", str(port)], env)
        worker = spawn(stack, ["worker"], env)
        wait_until(lambda: http_ok(f"{web_url}/readyz"), "the web process")
        command = (
            f"callstreams simulate-call --emulator {emulator_url} --web {web_url} "
            f"--token {api_token} --account {account}"
        )
        print(
            f"\ncallstreams is running\n  web:      {web_url}  (operator token: {api_token})\n"
            f"  emulator: {emulator_url}\n  redis:    {redis_url}\n\n"
            f"Simulate an answered call in another terminal:\n  uv run {command}\n"
            f"and one that comes in through the voice front door:\n  uv run {command} --inbound\n\n"
            "Ctrl-C stops everything.\n",
            flush=True,
        )
        if simulate:
            for inbound in (False, True):
                asyncio.run(simulate_call(emulator_url, web_url, api_token, account, inbound))
        try:
            while all(p.poll() is None for p in (emulator, web, worker)):
                time.sleep(0.5)
        except KeyboardInterrupt:
            print("\nstopping…")
            return 0
        print("callstreams dev: a process exited; stopping the others", file=sys.stderr)
        return 1
