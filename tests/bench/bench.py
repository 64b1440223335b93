"""How fast callstreams takes webhooks and starts streams, on this machine, over loopback.

`python -m tests.bench.bench` starts everything itself: a private redis-server
(no persistence), the Twilio emulator, one web process, the worker, and a bare
Starlette app as the baseline. It then measures, in one run:

1. ingest: requests/s and latency of the bare baseline and of signed
   answered-call webhooks on the web process (worker stopped, so only the web
   path is measured), with the same load generator and connections;
2. answered -> create: from sending a webhook to the emulator receiving the
   stream create, at a steady rate with the worker running; web and worker CPU
   meanwhile, and the idle worker's CPU before;
3. worker throughput: a queue of answered calls drained against an emulator
   that takes 0.1 s per request and throttles beyond the per-account cap;
4. Redis memory per call record.

It prints a table (metric, measured, target, met) and writes the same numbers
as JSON (`--json`, default `bench-results.json` in the current directory). It
asserts nothing: the numbers belong to the machine they were taken on.
Process logs go to a temporary directory, kept and named if the run fails.
"""

import argparse
import contextlib
import json
import math
import multiprocessing
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from multiprocessing.pool import Pool
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

import httpx
from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from service.cli.dev import free_port
from service.config import Settings
from service.queue import wake_channel
from tests.bench import load
from tests.helpers import ACCOUNT_SID, AUTH_TOKEN, STREAM_URL, call_sid
from tests.processes import wait_http

QUEUE = str(Settings.model_fields["queue_name"].default)
RECORD_KEYS = "callstreams:call:*"
# Requests pre-built per second of an ingest phase: above what one Python server
# process answers; a run that sends them all ends early, and its rate still holds.
PREBUILT_PER_SECOND = 20_000
PACED_RATE = 50.0  # answered calls per second in the answered -> create phase
PACED_CONNECTIONS = 8  # enough for one request every 20 ms that is answered in ~1 ms
WARM_UP_CALLS = 10
EMULATOR_LATENCY = 0.1  # seconds per Twilio request in the throughput phase
STALL = 10.0  # seconds without a new create after which waiting for the rest stops
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Options:
    """What one run does; written to the JSON beside the numbers it produced."""

    connections: int
    duration: float
    latency_seconds: float
    rate: float
    idle_seconds: float
    calls: int
    cap: int
    quick: bool


def parse_options(argv: Sequence[str] | None) -> tuple[Options, Path]:
    parser = argparse.ArgumentParser(
        prog="python -m tests.bench.bench", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    parser.add_argument("--connections", type=int, default=32, help="keep-alive connections")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per ingest run")
    parser.add_argument(
        "--latency-seconds", type=float, default=20.0,
        help="seconds of webhooks at 50/s in the answered -> create phase",
    )  # fmt: skip
    parser.add_argument("--idle-seconds", type=float, default=10.0, help="idle worker CPU window")
    parser.add_argument("--calls", type=int, default=2000, help="calls in the throughput phase")
    parser.add_argument(
        "--cap", type=int, default=100,
        help="per-account concurrency: the worker's cap and the emulator's limit",
    )  # fmt: skip
    parser.add_argument(
        "--quick", action="store_true",
        help="every phase shortened (1 s ingest, 20 calls, 1 s idle, 2 s at 50/s)",
    )  # fmt: skip
    parser.add_argument("--json", type=Path, default=Path("bench-results.json"))
    args = parser.parse_args(argv)
    options = Options(
        connections=args.connections, duration=args.duration, rate=PACED_RATE,
        latency_seconds=args.latency_seconds, idle_seconds=args.idle_seconds,
        calls=args.calls, cap=args.cap, quick=args.quick,
    )  # fmt: skip
    if args.quick:
        options = replace(options, duration=1.0, latency_seconds=2.0, idle_seconds=1.0, calls=20)
    return options, args.json


@dataclass(frozen=True)
class Metric:
    """One row of the table; `target` and `met` are None for a number given for context."""

    label: str
    value: float
    unit: str
    target: str | None = None
    met: bool | None = None


def info(label: str, value: float, unit: str) -> Metric:
    return Metric(label, value, unit)


def at_least(label: str, value: float, unit: str, bound: float) -> Metric:
    return Metric(label, value, unit, f">= {bound:g} {unit}".strip(), value >= bound)


def at_most(label: str, value: float, unit: str, bound: float) -> Metric:
    return Metric(label, value, unit, f"<= {bound:g} {unit}".strip(), value <= bound)


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
def cpu_percent(pids: dict[str, int]) -> Iterator[dict[str, float]]:
    """Percent of one core each process used while the block ran, filled in at its end."""
    used: dict[str, float] = {}
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    start = time.monotonic()
    yield used
    elapsed = time.monotonic() - start
    for name, pid in pids.items():
        used[name] = (cpu_seconds(pid) - before[name]) / elapsed * 100


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
        process = self.running.pop(name)
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def stop_all(self) -> None:
        for name in reversed(list(self.running)):
            self.stop(name)


def _interrupted(signum: int, frame: FrameType | None) -> NoReturn:
    raise KeyboardInterrupt


def _quiet_child() -> None:
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

    def redis(self) -> Redis:
        return Redis(port=self.redis_port)

    def env(self) -> dict[str, str]:
        """The web and worker environment; the signed URL is the web's own, so the
        emulator's stream status callbacks reach it as Twilio's would."""
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
            "CALLSTREAMS_LOG_FORMAT": "json",
            "CALLSTREAMS_WORKER_METRICS_PORT": str(free_port()),
            "CALLSTREAMS_ACCOUNT_CONCURRENCY": str(cap),
            # More job slots than the cap, so that the cap is what bounds Twilio requests.
            "CALLSTREAMS_WORKER_CONCURRENCY": str(2 * cap),
        }

    def service(self, name: str, *args: str) -> None:
        self.processes.start(name, [sys.executable, "-m", "service.cli", *args], self.env())

    def start_redis(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server must be on PATH")
        argv = [
            binary, "--port", str(self.redis_port), "--bind", "127.0.0.1",
            "--dir", str(self.processes.logs), "--save", "", "--appendonly", "no",
        ]  # fmt: skip
        self.processes.start("redis", argv, dict(os.environ))

    def redis_answers(self) -> bool:
        try:
            with self.redis() as client:
                return bool(client.ping())
        except RedisConnectionError:
            return False

    def start_emulator(self, *flags: str) -> None:
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

    def flush(self) -> None:
        with self.redis() as client:
            client.flushall()

    def emulator_calls(self, count: int) -> list[str]:
        """Calls in progress at the emulator, for the worker's creates to succeed."""
        with httpx.Client(base_url=self.emulator, timeout=10) as client:
            return [
                client.post("/_emulator/calls", json={"status": "in-progress"}).json()["sid"]
                for _ in range(count)
            ]

    def emulator_get(self, path: str) -> Any:
        return httpx.get(f"{self.emulator}{path}", timeout=30).json()

    def wait_for_creates(self, count: int) -> int:
        """Emulator creates once `count` arrived or none came for STALL seconds."""
        last, last_change = -1, time.monotonic()
        while True:
            creates: int = self.emulator_get("/_emulator/stats")["creates"]
            if creates >= count:
                return creates
            if creates != last:
                last, last_change = creates, time.monotonic()
            elif time.monotonic() - last_change > STALL:
                return creates
            time.sleep(0.1)

    def add(self, key: str, metric: Metric) -> None:
        self.metrics[key] = metric

    def run(self) -> None:
        progress("starting redis, emulator, web and baseline")
        self.start_redis()
        self.start_emulator()
        self.service("web", "web", "--port", str(self.web_port))
        baseline = [sys.executable, "-m", "tests.bench.baseline", "--port", str(self.baseline_port)]
        self.processes.start("baseline", baseline, dict(os.environ))
        until(self.redis_answers, 10, "redis-server did not answer")
        wait_http(f"{self.web}/readyz")
        until(self.baseline_answers, 30, "the baseline did not answer")
        self.ingest()
        self.answered_to_create()
        self.throughput()
        self.footprint()

    def baseline_answers(self) -> bool:
        try:
            return httpx.post(f"http://127.0.0.1:{self.baseline_port}{load.PATH}").is_success
        except httpx.HTTPError:
            return False

    def ingest(self) -> None:
        """Phase 1: the same webhooks, closed loop, to the bare baseline then to the web."""
        options = self.options
        sids = [call_sid(n) for n in range(math.ceil(options.duration * PREBUILT_PER_SECOND))]
        runs: dict[str, load.Closed] = {}
        for name, port in (("baseline", self.baseline_port), ("webhook", self.web_port)):
            progress(f"ingest: {name}, {options.connections} connections, {options.duration:g}s")
            runs[name] = self.generator.apply(
                load.closed_loop,
                (port, self.web, sids, options.connections, options.duration),
            )
            if runs[name].exhausted:
                progress(
                    f"ingest: {name} used every pre-built request in {runs[name].seconds:.1f}s"
                )
        self.processes.stop("baseline")
        self.flush()  # the webhooks' records and jobs: no worker will ever see them
        for name, run in runs.items():
            self.add(f"ingest_{name}_rps", info(f"ingest {name}: requests/s", run.rate, "req/s"))
            self.add(f"ingest_{name}_p50_ms", info(f"ingest {name}: p50", run.p50_ms, "ms"))
            self.add(f"ingest_{name}_p99_ms", info(f"ingest {name}: p99", run.p99_ms, "ms"))
            self.add(
                f"ingest_{name}_errors",
                at_most(f"ingest {name}: non-2xx answers", run.errors, "", 0),
            )
            self.details[f"ingest_{name}"] = {**asdict(run), "rate": run.rate}
        ratio = runs["webhook"].rate / runs["baseline"].rate
        self.add("ingest_ratio", at_least("ingest: webhook / baseline", ratio, "", 0.4))

    def answered_to_create(self) -> None:
        """Phase 2: idle worker CPU, then webhook sent -> create received at a steady rate."""
        options = self.options
        progress("answered -> create: starting the worker")
        self.start_worker()
        sids = self.emulator_calls(round(options.rate * options.latency_seconds))
        progress(f"idle worker CPU over {options.idle_seconds:g}s")
        with cpu_percent({"worker": self.processes.pid("worker")}) as idle:
            time.sleep(options.idle_seconds)
        self.add("worker_idle_cpu", at_most("worker CPU, idle", idle["worker"], "% core", 1))
        # The first calls after a start open connections and run code for the first
        # time; they are reported on their own, not in the steady-state percentiles.
        warm = self.emulator_calls(WARM_UP_CALLS)
        warm_up: load.Paced = self.generator.apply(
            load.paced, (self.web_port, self.web, warm, options.rate, PACED_CONNECTIONS)
        )
        self.wait_for_creates(WARM_UP_CALLS)
        progress(f"answered -> create: {len(sids)} calls at {options.rate:g}/s")
        pids = {name: self.processes.pid(name) for name in ("web", "worker")}
        with cpu_percent(pids) as busy:
            sent: load.Paced = self.generator.apply(
                load.paced, (self.web_port, self.web, sids, options.rate, PACED_CONNECTIONS)
            )
            self.wait_for_creates(WARM_UP_CALLS + len(sids))
        received: dict[str, float] = {}
        for entry in self.emulator_get("/_emulator/requests")["requests"]:
            if entry["operation"] == "create":
                sid = entry["path"].partition("/Calls/")[2].partition("/")[0]
                received[sid] = min(entry["received_at"], received.get(sid, math.inf))
        in_order = sorted(sent.sent_at.items(), key=lambda item: item[1])
        waits = [(received[s] - at) * 1000 for s, at in in_order if s in received]
        if not waits:
            raise RuntimeError("no webhook of the answered -> create phase led to a create")
        first = [(received[s] - at) * 1000 for s, at in warm_up.sent_at.items() if s in received]
        self.add(
            "create_first_ms",
            info("answered -> create: slowest of the first calls", max(first, default=0), "ms"),
        )
        self.add(
            "create_p50_ms", at_most("answered -> create: p50", load.percentile(waits, 50), "ms", 3)
        )
        self.add(
            "create_p99_ms",
            at_most("answered -> create: p99", load.percentile(waits, 99), "ms", 10),
        )
        self.add("create_max_ms", info("answered -> create: max", max(waits), "ms"))
        lost = len(sids) - len(waits)
        self.add("create_lost", at_most("answered -> create: calls without a create", lost, "", 0))
        self.add("web_cpu", info(f"web CPU at {options.rate:g} calls/s", busy["web"], "% core"))
        self.add(
            "worker_cpu", info(f"worker CPU at {options.rate:g} calls/s", busy["worker"], "% core")
        )
        self.details["answered_to_create"] = {
            "calls_sent": len(sids), "creates_matched": len(waits), "webhook_errors": sent.errors,
            "waits_ms_in_send_order": [round(w, 3) for w in waits],
        }  # fmt: skip

    def throughput(self) -> None:
        """Phase 3: a queue of answered calls, drained against a slow, throttling emulator."""
        options = self.options
        progress(f"throughput: emulator at {EMULATOR_LATENCY:g}s, cap {options.cap}")
        self.processes.stop("worker")
        self.processes.stop("emulator")
        self.flush()
        self.start_emulator(
            "--latency", str(EMULATOR_LATENCY), "--max-concurrency", str(options.cap)
        )
        sids = self.emulator_calls(options.calls)
        progress(f"throughput: enqueueing {len(sids)} answered calls via the web")
        enqueued: load.Closed = self.generator.apply(
            load.closed_loop, (self.web_port, self.web, sids, options.connections, math.inf)
        )
        progress("throughput: starting the worker")
        self.start_worker()
        pids = {name: self.processes.pid(name) for name in ("worker", "emulator")}
        with cpu_percent(pids) as draining:
            creates = self.wait_for_creates(len(sids))
        arrivals = sorted(
            entry["received_at"]
            for entry in self.emulator_get("/_emulator/requests")["requests"]
            if entry["operation"] == "create" and entry["status"] == 200
        )
        span = arrivals[-1] - arrivals[0] if arrivals else 0.0
        rate = (len(arrivals) - 1) / span if span > 0 else 0.0
        stats = self.emulator_get("/_emulator/stats")
        in_flight = stats["max_in_flight"].get(ACCOUNT_SID, 0)
        cap = options.cap
        self.add("worker_creates_per_s", at_least("worker: creates/s", rate, "/s", 400))
        self.add(
            "emulator_max_in_flight",
            at_most("worker: max Twilio requests in flight", in_flight, "", cap),
        )
        self.add(
            "emulator_throttled",
            at_most("worker: throttled (429) requests", stats["throttled"], "", 0),
        )
        lost = len(sids) - creates
        self.add("throughput_lost", at_most("worker: calls without a create", lost, "", 0))
        for name, used in draining.items():
            self.add(f"{name}_drain_cpu", info(f"{name} CPU while draining", used, "% core"))
        self.details["throughput"] = {
            "calls_sent": len(sids), "creates": creates, "enqueue": asdict(enqueued),
            "enqueue_rate": enqueued.rate, "first_to_last_create_s": span,
        }  # fmt: skip

    def footprint(self) -> None:
        """Phase 4: resident memory of web and worker, and Redis bytes per call record."""
        for name in ("web", "worker"):
            self.add(f"{name}_rss_mb", info(f"{name} RSS", rss_mb(self.processes.pid(name)), "MiB"))
        with self.redis() as client:
            keys = list(client.scan_iter(match=RECORD_KEYS, count=1000))
            sizes = [client.memory_usage(key, samples=0) or 0 for key in keys]
        if not sizes:
            raise RuntimeError(f"no {RECORD_KEYS} key in Redis")
        self.add(
            "redis_record_bytes",
            at_most(
                "redis: MEMORY USAGE per call record, median", statistics.median(sizes), "B", 1024
            ),
        )
        self.details["redis_records_measured"] = len(sizes)


def progress(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def _shown(value: float) -> str:
    """Counts and large numbers whole, the rest to two decimals."""
    return f"{value:.0f}" if value == int(value) or abs(value) >= 100 else f"{value:.2f}"


def table(metrics: dict[str, Metric], about: dict[str, Any], options: Options) -> str:
    rows = [("metric", "measured", "target", "met")]
    for metric in metrics.values():
        measured = f"{_shown(metric.value)} {metric.unit}".strip()
        met = "-" if metric.met is None else ("yes" if metric.met else "no")
        rows.append((metric.label, measured, metric.target or "-", met))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = [" | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    head = (
        f"machine: {about['cpu']}, {about['cores']} cores, Python {about['python']}\n"
        f"settings: {options.connections} connections, {options.duration:g}s ingest, "
        f"{options.rate:g} calls/s for {options.latency_seconds:g}s, "
        f"{options.idle_seconds:g}s idle, {options.calls} calls at cap {options.cap}"
        f"{' (quick)' if options.quick else ''}\n"
    )
    return head + "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    options, json_path = parse_options(argv)
    signal.signal(signal.SIGTERM, _interrupted)
    logs = Path(tempfile.mkdtemp(prefix="callstreams-bench-"))
    processes = Processes(logs)
    spawn = multiprocessing.get_context("spawn")
    try:
        with spawn.Pool(1, initializer=_quiet_child) as generator:
            bench = Bench(options, processes, generator)
            try:
                bench.run()
            finally:
                processes.stop_all()
    except KeyboardInterrupt:
        progress(f"interrupted; process logs kept in {logs}")
        return 130
    except BaseException:
        progress(f"failed; process logs kept in {logs}")
        raise
    shutil.rmtree(logs)
    about = machine()
    print(table(bench.metrics, about, options))
    result = {
        "machine": about,
        "options": asdict(options),
        "metrics": {
            key: {"value": m.value, "unit": m.unit, "target": m.target, "met": m.met}
            for key, m in bench.metrics.items()
        },
        "details": bench.details,
    }
    json_path.write_text(json.dumps(result, indent=2) + "\n")
    progress(f"results written to {json_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
