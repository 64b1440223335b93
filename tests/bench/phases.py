"""The benchmark's phases, each measuring one thing on the processes `bench.Bench` runs."""

import asyncio
import math
import statistics
import time
from typing import Any

import httpx

from tests.bench import load
from tests.bench.metrics import at_least, at_most, info
from tests.bench.rig import NO_CALLBACKS, QUEUE, Bench, cpu_used, progress, rss_mb
from tests.helpers import ACCOUNT_SID, AUTH_TOKEN, STREAM_URL, call_sid

SATURATED_P99_MS = 1000.0  # a step whose p99 passes this, or that loses calls, is saturated
WARM_UP_CALLS = 20
INBOUND_RATE = 50.0
NUMBER = "+15557770001"


def _connections(rate: float) -> int:
    """Enough connections for one request every 1/rate s answered in a few ms."""
    return min(64, max(8, math.ceil(rate / 25)))


def ingest(b: Bench) -> None:
    """The same webhooks, closed loop, to the bare baseline then to the web process."""
    options = b.options
    sids = [call_sid(n) for n in range(math.ceil(options.duration * 20_000))]
    runs: dict[str, load.Closed] = {}
    cpu_ms: dict[str, float] = {}
    targets = (("baseline", "baseline", b.baseline_port), ("webhook", "web", b.web_port))
    for name, process, port in targets:
        progress(f"ingest: {name}, {options.connections} connections, {options.duration:g}s")
        with cpu_used({name: b.processes.pid(process)}) as used:
            runs[name] = b.generator.apply(
                load.closed_loop, (port, b.web, sids, options.connections, options.duration)
            )
        cpu_ms[name] = used[name] / max(1, runs[name].requests) * 1000
    b.flush()  # the webhooks' records and jobs: no worker will see them
    for name, run in runs.items():
        label = "bare Starlette" if name == "baseline" else "answered webhooks"
        b.add(f"ingest_{name}_rps", info(f"ingest, {label}: requests/s", run.rate, "req/s"))
        b.add(f"ingest_{name}_p50_ms", info(f"ingest, {label}: p50", run.p50_ms, "ms"))
        b.add(f"ingest_{name}_p99_ms", info(f"ingest, {label}: p99", run.p99_ms, "ms"))
        b.add(f"ingest_{name}_errors", at_most(f"ingest, {label}: non-2xx", run.errors, "", 0))
        b.details[f"ingest_{name}"] = {**vars(run), "rate": run.rate}
    ratio = runs["webhook"].rate / runs["baseline"].rate
    b.add("ingest_ratio", at_least("ingest: webhook / bare", ratio, "", 0.4))
    b.add("ingest_baseline_cpu_ms", info("ingest: bare CPU per request", cpu_ms["baseline"], "ms"))
    web_ms = cpu_ms["webhook"]
    b.add("ingest_webhook_cpu_ms", at_most("ingest: web CPU per webhook", web_ms, "ms", 0.5))


def _step(b: Bench, path: str, rate: float, calls: int) -> dict[str, Any]:
    """One rate for one path: webhook sent → create received, and the CPU it took."""
    b.emulator_reset(NO_CALLBACKS)
    sids = b.emulator_calls(calls)
    port = b.web_port if path == "ours" else b.baseline_port
    pids = (
        {
            "web": b.processes.pid("web"),
            "worker": b.processes.pid("worker"),
            "redis": b.processes.pid("redis"),
        }
        if path == "ours"
        else {"inline": b.processes.pid("baseline")}
    )
    commands = _redis_commands(b)
    with cpu_used(pids) as used:
        sent: load.Paced = b.generator.apply(
            load.paced, (port, b.web, sids, rate, _connections(rate))
        )
        b.wait_for_creates(calls, stall=5)
    commands = {name: count - commands.get(name, 0) for name, count in _redis_commands(b).items()}
    received = b.creates_received()
    waits = sorted((received[s] - at) * 1000 for s, at in sent.sent_at.items() if s in received)
    lost = calls - len(waits)
    p50 = load.percentile(waits, 50) if waits else math.inf
    p99 = load.percentile(waits, 99) if waits else math.inf
    created = max(1, len(waits))
    result = {
        "rate": rate,
        "sent_rate": sent.rate,
        "calls": calls,
        "lost": lost,
        "p50_ms": p50,
        "p99_ms": p99,
        "max_ms": max(waits, default=math.inf),
        "errors": sent.errors,
        "cpu_ms_per_webhook": used.get("web", used.get("inline", 0)) / calls * 1000,
        "worker_cpu_ms_per_start": used.get("worker", 0) / created * 1000,
        "redis_cpu_ms_per_call": used.get("redis", 0) / created * 1000,
        "redis_scripts_per_call": commands["scripts"] / created,
        "redis_commands_per_call": commands["all"] / created,
    }
    result["saturated"] = sent.rate < 0.9 * rate or p99 > SATURATED_P99_MS or lost > 0.01 * calls
    return result


def _redis_commands(b: Bench) -> dict[str, int]:
    """Commands Redis ran so far: all of them (those inside scripts included), and the
    script calls (each one round trip from a client, or one command in a pipeline)."""
    with b.redis() as client:
        stats = client.info("commandstats")
    calls = {name: int(row["calls"]) for name, row in stats.items()}
    scripts = calls.get("cmdstat_evalsha", 0) + calls.get("cmdstat_eval", 0)
    return {"all": sum(calls.values()), "scripts": scripts}


def steps(b: Bench) -> None:
    """Answered → create at rising rates, callstreams and the inline handler in turn."""
    options = b.options
    progress("answered -> create: starting the worker")
    b.start_worker()
    progress(f"idle worker CPU over {options.idle_seconds:g}s")
    with cpu_used({"worker": b.processes.pid("worker")}) as idle:
        time.sleep(options.idle_seconds)
    idle_percent = idle["worker"] / options.idle_seconds * 100
    b.add("worker_idle_cpu", at_most("worker CPU, idle", idle_percent, "% core", 1))
    b.start_baseline(b.emulator, ACCOUNT_SID, AUTH_TOKEN, b.web, STREAM_URL)
    for path in ("ours", "inline"):  # new connections and first code paths, not measured
        _step(b, path, 50, WARM_UP_CALLS)
    ladder: list[dict[str, Any]] = []
    for rate in options.rates:
        calls = max(WARM_UP_CALLS, round(rate * options.step_seconds))
        row = {}
        for path in ("ours", "inline"):
            progress(f"answered -> create: {path}, {calls} calls at {rate:g}/s")
            row[path] = _step(b, path, rate, calls)
        ladder.append(row)
        if row["ours"]["saturated"] and row["inline"]["saturated"]:
            break
    b.processes.stop("baseline")
    b.details["steps"] = ladder
    for row in ladder:
        _report_step(b, row["ours"], row["inline"])
    within = [
        r["ours"]["rate"]
        for r in ladder
        if not r["ours"]["saturated"] and r["ours"]["p99_ms"] <= 3 * r["inline"]["p99_ms"]
    ]
    best = max(within, default=0)
    b.add("steps_ours_within_3x", info("highest rate, p99 within 3x inline", best, "calls/s"))
    for path in ("ours", "inline"):
        fine = max((r[path]["rate"] for r in ladder if not r[path]["saturated"]), default=0)
        b.add(f"steps_{path}_max", info(f"highest unsaturated rate, {path}", fine, "calls/s"))


def _report_step(b: Bench, ours: dict[str, Any], inline: dict[str, Any]) -> None:
    """One rate's rows; the 50/s and 200/s rows carry the targets."""
    at = f"at {ours['rate']:g}/s"
    tag = int(ours["rate"])
    targeted = ours["rate"] in (50, 200)
    b.add(f"create_{tag}_p50_ms", info(f"answered -> create {at}: p50", ours["p50_ms"], "ms"))
    b.add(f"create_{tag}_p99_ms", info(f"answered -> create {at}: p99", ours["p99_ms"], "ms"))
    b.add(f"inline_{tag}_p50_ms", info(f"inline limit {at}: p50", inline["p50_ms"], "ms"))
    b.add(f"inline_{tag}_p99_ms", info(f"inline limit {at}: p99", inline["p99_ms"], "ms"))
    p50_ratio = ours["p50_ms"] / inline["p50_ms"]
    p99_ratio = ours["p99_ms"] / inline["p99_ms"]
    p50_label, p99_label = f"{at}: p50 / inline p50", f"{at}: p99 / inline p99"
    b.add(
        f"ratio_{tag}_p50",
        at_most(p50_label, p50_ratio, "", 1.5) if targeted else info(p50_label, p50_ratio, ""),
    )
    b.add(
        f"ratio_{tag}_p99",
        at_most(p99_label, p99_ratio, "", 2) if targeted else info(p99_label, p99_ratio, ""),
    )
    b.add(f"lost_{tag}", at_most(f"{at}: calls without a create", ours["lost"], "", 0))
    web, inline_cpu = ours["cpu_ms_per_webhook"], inline["cpu_ms_per_webhook"]
    b.add(f"web_cpu_{tag}_ms", info(f"{at}: web CPU per webhook", web, "ms"))
    b.add(f"inline_cpu_{tag}_ms", info(f"{at}: inline CPU per webhook + create", inline_cpu, "ms"))
    start, label = ours["worker_cpu_ms_per_start"], f"{at}: worker CPU per stream start"
    b.add(
        f"worker_cpu_{tag}_ms",
        at_most(label, start, "ms", 1) if tag == 200 else info(label, start, "ms"),
    )
    redis_cpu = ours["redis_cpu_ms_per_call"]
    b.add(f"redis_cpu_{tag}_ms", info(f"{at}: Redis CPU per call", redis_cpu, "ms"))
    scripts, commands = ours["redis_scripts_per_call"], ours["redis_commands_per_call"]
    b.add(f"redis_scripts_{tag}", info(f"{at}: Redis script calls per call", scripts, ""))
    b.add(f"redis_commands_{tag}", info(f"{at}: Redis commands per call", commands, ""))


def backlog(b: Bench) -> None:
    """Answered calls accepted with no worker, then drained by one, Twilio at 0.1 s."""
    options = b.options
    cap, latency = options.cap, options.latency
    b.processes.stop("worker")
    quiet = ("--drop", "stream-started", "--drop", "stream-stopped")
    b.start_emulator("--latency", str(latency), "--max-concurrency", str(cap), *quiet)
    b.flush()
    sids = b.emulator_calls(options.backlog)
    progress(f"backlog: {len(sids)} answered calls accepted with no worker running")
    accepted: load.Closed = b.generator.apply(
        load.closed_loop, (b.web_port, b.web, sids, options.connections, math.inf)
    )
    with b.redis() as client:
        queued = client.zcard(QUEUE)
    progress("backlog: starting one worker")
    b.start_worker()
    pid = b.processes.pid("worker")
    curve: list[tuple[float, int, float]] = []  # (seconds, creates, worker RSS MiB)
    start, last_change, last = time.monotonic(), time.monotonic(), -1
    with cpu_used({"worker": pid}) as used:
        while True:
            creates = b.emulator_get("/_emulator/stats")["creates"]
            curve.append((round(time.monotonic() - start, 2), creates, round(rss_mb(pid), 1)))
            if creates >= len(sids):
                break
            if creates != last:
                last, last_change = creates, time.monotonic()
            elif time.monotonic() - last_change > 15:
                break
            time.sleep(0.5)
    time.sleep(1)  # the last jobs complete themselves
    requests = b.emulator_get("/_emulator/requests")["requests"]
    stats = b.emulator_get("/_emulator/stats")
    created: dict[str, int] = {}
    arrivals = []
    for entry in requests:
        if entry["operation"] == "create" and entry["status"] == 200:
            created[entry["path"]] = created.get(entry["path"], 0) + 1
            arrivals.append(entry["received_at"])
    arrivals.sort()
    span = arrivals[-1] - arrivals[0] if len(arrivals) > 1 else 0.0
    rate = (len(arrivals) - 1) / span if span > 0 else 0.0
    with b.redis() as client:
        left = client.zcard(QUEUE)
    bound = cap / latency
    lost = len(sids) - len(created)
    repeated = sum(n - 1 for n in created.values())
    rss = max(r for *_, r in curve)
    in_flight = stats["max_in_flight"].get(ACCOUNT_SID, 0)
    per_start = used["worker"] / max(1, len(arrivals)) * 1000
    drain_label = f"backlog: creates/s, Twilio at {latency:g}s, cap {cap}"
    b.add("backlog_accepted", at_least("backlog: accepted with no worker", queued, "", len(sids)))
    b.add("backlog_accept_rps", info("backlog: accepted per second", accepted.rate, "req/s"))
    b.add("backlog_drain_rate", at_least(drain_label, rate, "/s", 0.9 * bound))
    b.add("backlog_lost", at_most("backlog: calls without a create", lost, "", 0))
    b.add("backlog_repeated", at_most("backlog: creates made twice", repeated, "", 0))
    b.add("backlog_left", at_most("backlog: jobs left in the queue", left, "", 0))
    b.add("backlog_rss_mb", at_most("backlog: worker RSS, highest", rss, "MiB", 150))
    b.add("backlog_in_flight", at_most("backlog: Twilio requests in flight", in_flight, "", cap))
    throttled = stats["throttled"]
    b.add("backlog_throttled", at_most("backlog: throttled (429) requests", throttled, "", 0))
    b.add("backlog_worker_cpu_ms", info("backlog: worker CPU per stream start", per_start, "ms"))
    b.details["backlog"] = {
        "calls": len(sids),
        "accepted": vars(accepted),
        "creates": len(arrivals),
        "first_to_last_create_s": span,
        "curve": curve,
    }


async def _answers(b: Bench, count: int) -> dict[str, float]:
    """Inbound calls at 50/s through the front door, each answered 0.3 s after it came
    in: when each answer was sent, by CallSid."""
    answered: dict[str, float] = {}
    async with httpx.AsyncClient(base_url=b.emulator, timeout=30) as twilio:

        async def one() -> None:
            arrival = await twilio.post("/_emulator/calls/inbound", json={"to": NUMBER})
            sid = arrival.json()["call"]["sid"]
            await asyncio.sleep(0.3)
            answered[sid] = time.time()
            await twilio.post(f"/_emulator/calls/{sid}/answer")

        tasks = []
        begin = time.perf_counter()
        for index in range(count):
            delay = begin + index / INBOUND_RATE - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one()))
        await asyncio.gather(*tasks)
    return answered


def inbound(b: Bench) -> None:
    """The voice front door at 50 calls/s: the redirect's latency, and answer → create."""
    options = b.options
    b.processes.stop("worker")
    b.start_emulator("--drop", "stream-started", "--drop", "stream-stopped")
    b.flush()
    progress(f"inbound: {options.inbound_calls} incoming-call webhooks at {INBOUND_RATE:g}/s")
    sids = [call_sid(10**9 + n) for n in range(options.inbound_calls)]
    voice: load.Paced = b.generator.apply(
        load.paced, (b.web_port, b.web, sids, INBOUND_RATE, 8, load.VOICE)
    )
    b.flush()  # those calls are not at the emulator: nothing to start
    b.start_worker()
    number_url = f"{b.emulator}/_emulator/numbers/{NUMBER}"
    httpx.put(number_url, json={"voice_url": f"{b.web}/twilio/voice"}, timeout=10)
    progress(f"inbound: {options.inbound_calls} calls through the front door, answered at 0.3s")
    answered = asyncio.run(_answers(b, options.inbound_calls))
    b.wait_for_creates(len(answered), stall=5)
    received = b.creates_received()
    waits = sorted((received[s] - at) * 1000 for s, at in answered.items() if s in received)
    redirect_p50 = load.percentile(voice.answered_ms, 50)
    redirect_p99 = load.percentile(voice.answered_ms, 99)
    p50 = load.percentile(waits, 50) if waits else math.inf
    p99 = load.percentile(waits, 99) if waits else math.inf
    lost = len(answered) - len(waits)
    b.add("voice_p50_ms", info("inbound: voice webhook -> redirect, p50", redirect_p50, "ms"))
    b.add("voice_p99_ms", info("inbound: voice webhook -> redirect, p99", redirect_p99, "ms"))
    b.add("voice_errors", at_most("inbound: voice webhooks not answered 200", voice.errors, "", 0))
    b.add("inbound_p50_ms", info("inbound: answer -> create, p50", p50, "ms"))
    b.add("inbound_p99_ms", at_most("inbound: answer -> create, p99", p99, "ms", 1000))
    b.add("inbound_lost", at_most("inbound: answered calls without a create", lost, "", 0))


def footprint(b: Bench) -> None:
    """Resident memory of web and worker, Redis bytes per call record and in the indexes."""
    for name in ("web", "worker"):
        b.add(f"{name}_rss_mb", info(f"{name} RSS", rss_mb(b.processes.pid(name)), "MiB"))
    with b.redis() as client:
        keys = list(client.scan_iter(match="callstreams:call:*", count=1000))
        sizes = [client.memory_usage(key, samples=0) or 0 for key in keys]
        indexes = list(client.scan_iter(match="callstreams:account:*", count=100))
        indexed = sum(client.zcard(key) for key in indexes) or 1
        index_bytes = sum(client.memory_usage(key, samples=0) or 0 for key in indexes)
        unsettled = client.zcard("callstreams:calls:unsettled") or 1
        unsettled_bytes = client.memory_usage("callstreams:calls:unsettled", samples=0) or 0
    if not sizes:
        raise RuntimeError("no call record in Redis")
    record = statistics.median(sizes)
    b.add("redis_record_bytes", at_most("redis: one-stream call record", record, "B", 400))
    b.add("redis_index_bytes", info("redis: account index, per call", index_bytes / indexed, "B"))
    per_live = unsettled_bytes / unsettled
    b.add("redis_unsettled_bytes", info("redis: unsettled index, per live call", per_live, "B"))
    b.details["redis_records_measured"] = len(sizes)
