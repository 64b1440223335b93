"""Real processes on loopback for end-to-end tests: emulator, web, worker."""

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from service.cli.dev import free_port, http_ok
from tests.helpers import ACCOUNT_SID, API_TOKEN, AUTH_TOKEN, STREAM_URL


async def until_async(
    check: Callable[[], Awaitable[Any]], within: float = 15.0, what: str = "condition"
) -> Any:
    """`until` for a coroutine check, without blocking the loop the check needs."""
    deadline = time.monotonic() + within
    while not (result := await check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {within}s")
        await asyncio.sleep(0.02)
    return result


def until(check: Callable[[], Any], within: float = 15.0, what: str = "condition") -> Any:
    """Poll `check` until it returns something true, and return that."""
    deadline = time.monotonic() + within
    while not (result := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {within}s")
        time.sleep(0.02)
    return result


def wait_http(url: str, within: float = 30.0) -> None:
    until(lambda: http_ok(url), within, f"{url} answering 200")


def wait_log(services: "Services", name: str, text: str, within: float = 30.0) -> None:
    until(lambda: text in services.log(name), within, f"{name} logging {text!r}")


@dataclass
class Services:
    """URLs of a running stack and the means to kill and restart its worker."""

    web: str
    emulator: str
    env: dict[str, str]
    logs: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def spawn(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        with (self.logs / f"{name}.log").open("ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "service.cli", *args],
                env=self.env, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        self.processes[name] = process
        return process

    def stop(self, name: str, kill: bool = False) -> None:
        process = self.processes.pop(name)
        if kill:
            process.kill()
        else:
            process.terminate()
        process.wait(20)

    def stop_all(self) -> None:
        for name in list(self.processes):
            self.stop(name)

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")


@contextmanager
def running_stack(
    redis_url: str, logs: Path, accounts: dict[str, str] | None = None, **env: str
) -> Iterator[Services]:
    """Emulator, web and worker as separate processes, stopped on exit; the emulator
    knows the test account and `accounts` (SID → token)."""
    web_port, emulator_port = free_port(), free_port()
    services = Services(
        web=f"http://127.0.0.1:{web_port}",
        emulator=f"http://127.0.0.1:{emulator_port}",
        env={
            **os.environ,
            "REDIS_URL": redis_url,
            "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "TWILIO_API_BASE_URL": f"http://127.0.0.1:{emulator_port}",
            "PUBLIC_BASE_URL": f"http://127.0.0.1:{web_port}",
            "CALLSTREAMS_API_TOKEN": API_TOKEN,
            "STREAM_URL": STREAM_URL,
            "STREAM_NAME": "transcription",
            "CALLSTREAMS_LOG_FORMAT": "json",
            "CALLSTREAMS_WORKER_METRICS_PORT": str(free_port()),
            **env,
        },
        logs=logs,
    )
    with ExitStack() as stack:
        stack.callback(services.stop_all)
        known = {ACCOUNT_SID: AUTH_TOKEN, **(accounts or {})}
        flags = [f for sid, token in known.items() for f in ("--account", f"{sid}:{token}")]
        services.spawn("emulator", "emulator", "--port", str(emulator_port), *flags)
        services.spawn("web", "web", "--port", str(web_port))
        services.spawn("worker", "worker")
        wait_http(f"{services.emulator}/_emulator/streams")
        wait_http(f"{services.web}/readyz")
        wait_log(services, "worker", "worker ready")
        yield services
