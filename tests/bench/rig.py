"""The benchmark's rig: the processes of one run, the URLs between them, and the
readings (CPU, RSS, the emulator's log) the phases take from them."""

import contextlib
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from multiprocessing.pool import Pool
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

import httpx
from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from service.cli.dev import free_port
from service.queue import wake_channel
from tests.bench import load
from tests.bench.metrics import Metric
from tests.helpers import ACCOUNT_SID, AUTH_TOKEN, STREAM_URL
from tests.processes import wait_http

QUEUE = "callstreams:queue"
CALL_KEYS = "callstreams:call:*"
PREBUILT_PER_SECOND = 20_000  # above what one Python server process answers
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# Callbacks off: the emulator's stream status callbacks would load the web process.
NO_CALLBACKS = [{"kind": "drop", "callback": c} for c in ("stream-started", "stream-stopped")]


@dataclass(frozen=True)
class Options:
    """What one run does; written to the JSON beside the numbers it produced."""

    connections: int
    duration: float
    step_seconds: float
    rates: tuple[float, ...]
    idle_seconds: float
    backlog: int
    cap: int
    latency: float
    inbound_calls: int
    quick: bool


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


@contextlib.contextmanager
def cpu_used(pids: dict[str, int]) -> Iterator[dict[str, float]]:
    """CPU seconds each process used while the block ran, filled in at its end."""
    used: dict[str, float] = {}
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    yield used
    for name, pid in pids.items():
        used[name] = cpu_seconds(pid) - before[name]


def until(check: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} within {within:g}s")
        time.sleep(0.05)


def machine() -> dict[str, Any]:
    cpu = next(
        (
            line.partition(":")[2].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown",
    )
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version()}


class Processes:
    """The servers of one run by name, each in its own session so that Ctrl-C reaches only
    the benchmark, which then stops them all (newest first)."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.running: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        with (self.logs / f"{name}.log").open("ab") as log:
            process = subprocess.Popen(
                argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.running[name] = process

    def pid(self, name: str) -> int:
        return self.running[name].pid

    def stop(self, name: str) -> None:
        process = self.running.pop(name, None)
        if process is None:
            return
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def stop_all(self) -> None:
        for name in reversed(list(self.running)):
            self.stop(name)


def interrupted(signum: int, frame: FrameType | None) -> NoReturn:
    raise KeyboardInterrupt


def quiet_child() -> None:
    """The load generator leaves Ctrl-C to the benchmark, which terminates it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@dataclass
class Bench:
    """One run: its processes, the URLs between them, and what it measured."""

    options: Options
    processes: Processes
    generator: Pool
    redis_port: int = field(default_factory=free_port)
    emulator_port: int = field(default_factory=free_port)
    web_port: int = field(default_factory=free_port)
    baseline_port: int = field(default_factory=free_port)
    metrics: dict[str, Metric] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def web(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def emulator(self) -> str:
        return f"http://127.0.0.1:{self.emulator_port}"

    @property
    def baseline(self) -> str:
        return f"http://127.0.0.1:{self.baseline_port}"

    def redis(self) -> Redis:
        return Redis(port=self.redis_port)

    def env(self) -> dict[str, str]:
        """The web and worker environment; the signed URL is the web's own, so the
        emulator's webhooks reach it as Twilio's would."""
        cap = self.options.cap
        return {
            **os.environ,
            "REDIS_URL": f"redis://127.0.0.1:{self.redis_port}/0",
            "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "TWILIO_API_BASE_URL": self.emulator,
            "PUBLIC_BASE_URL": self.web,
            "STREAM_URL": STREAM_URL,
            "STREAM_NAME": "transcription",
            "VOICE_TWIML_URL": f"{self.emulator}/_emulator/twiml",
            "CALLSTREAMS_LOG_FORMAT": "json",
            "CALLSTREAMS_WORKER_METRICS_PORT": str(free_port()),
            "CALLSTREAMS_ACCOUNT_CONCURRENCY": str(cap),
            # More job slots than the cap, so that the cap is what bounds Twilio requests.
            "CALLSTREAMS_WORKER_CONCURRENCY": str(2 * cap),
            "CALLSTREAMS_MAX_CONNECTIONS": "4000",
        }

    def service(self, name: str, *args: str) -> None:
        self.processes.start(name, [sys.executable, "-m", "service.cli", *args], self.env())

    def start_redis(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server must be on PATH")
        argv = [
            binary,
            "--port",
            str(self.redis_port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.processes.logs),
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        self.processes.start("redis", argv, dict(os.environ))
        until(self.redis_answers, 10, "redis-server did not answer")

    def redis_answers(self) -> bool:
        try:
            with self.redis() as client:
                return bool(client.ping())
        except RedisConnectionError:
            return False

    def start_emulator(self, *flags: str) -> None:
        self.processes.stop("emulator")
        account = f"{ACCOUNT_SID}:{AUTH_TOKEN}"
        self.service(
            "emulator", "emulator", "--port", str(self.emulator_port), "--account", account, *flags
        )
        wait_http(f"{self.emulator}/_emulator/stats")

    def start_worker(self) -> None:
        self.service("worker", "worker")
        channel = wake_channel(QUEUE)

        def subscribed() -> bool:
            with self.redis() as client:
                return any(count for _, count in client.pubsub_numsub(channel))

        until(subscribed, 30, "the worker did not subscribe to its wake-up channel")

    def start_baseline(self, *inline: str) -> None:
        self.processes.stop("baseline")
        argv = [sys.executable, "-m", "tests.bench.baseline", "--port", str(self.baseline_port)]
        self.processes.start(
            "baseline", [*argv, *(["--inline", *inline] if inline else [])], dict(os.environ)
        )

        def answers() -> bool:
            try:
                return httpx.post(f"{self.baseline}{load.PATH}").status_code in (204, 403)
            except httpx.HTTPError:
                return False

        until(answers, 30, "the baseline did not answer")

    def flush(self) -> None:
        with self.redis() as client:
            client.flushall()

    def emulator_reset(self, faults: list[dict[str, Any]]) -> None:
        """A fresh emulator world (calls, requests, webhooks) with these faults."""
        with httpx.Client(base_url=self.emulator, timeout=60) as client:
            client.post("/_emulator/reset")
            client.put("/_emulator/faults", json={"faults": faults})

    def emulator_calls(self, count: int) -> list[str]:
        """Calls in progress at the emulator, for creates to succeed."""
        with httpx.Client(base_url=self.emulator, timeout=120) as client:
            created = client.post(
                "/_emulator/calls/batch", json={"count": count, "status": "in-progress"}
            )
            sids: list[str] = created.json()["sids"]
            return sids

    def emulator_get(self, path: str) -> Any:
        return httpx.get(f"{self.emulator}{path}", timeout=120).json()

    def creates_received(self) -> dict[str, float]:
        """When the emulator received each call's first successful create, by CallSid."""
        received: dict[str, float] = {}
        for entry in self.emulator_get("/_emulator/requests")["requests"]:
            if entry["operation"] == "create" and entry["status"] == 200:
                sid = entry["path"].partition("/Calls/")[2].partition("/")[0]
                received[sid] = min(entry["received_at"], received.get(sid, float("inf")))
        return received

    def wait_for_creates(self, count: int, stall: float = 10.0) -> int:
        """Emulator creates once `count` arrived or none came for `stall` seconds."""
        last, last_change = -1, time.monotonic()
        while True:
            creates: int = self.emulator_get("/_emulator/stats")["creates"]
            if creates >= count:
                return creates
            if creates != last:
                last, last_change = creates, time.monotonic()
            elif time.monotonic() - last_change > stall:
                return creates
            time.sleep(0.1)

    def add(self, key: str, metric: Metric) -> None:
        self.metrics[key] = metric


def progress(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)
