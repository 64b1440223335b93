"""How fast callstreams takes webhooks and starts streams, next to the limit of its design,
on this machine, over loopback.

`python -m tests.bench.bench` starts everything itself: a private redis-server (no
persistence), the Twilio emulator, one web process, one worker, and two baselines
(`baseline.py`): a bare Starlette endpoint, and the inline handler that checks the
signature and calls Twilio itself (no queue, no Redis). It then measures, in one run,
side by side:

1. ingest: requests/s and CPU per request of the bare endpoint and of signed
   answered webhooks on the web process (worker stopped), same load, same connections;
2. answered -> create at rising rates (50, 200, then doubling until it saturates):
   from sending a webhook to the emulator receiving the create, for callstreams (web,
   Redis, worker) and for the inline handler, with the emulator answering at once
   and sending no callbacks; CPU per webhook and per stream start;
3. backlog: answered calls accepted while no worker runs, then drained by one worker
   against an emulator that takes 0.1 s per request and throttles beyond the
   per-account cap: drain rate, its curve, the worker's RSS, lost or repeated creates;
4. inbound at 50 calls/s: voice webhook -> redirect latency, answer -> create;
5. memory: Redis bytes per call record and per call in the indexes; RSS.

It prints a table (metric, measured, target, met) and writes the same numbers as
JSON (`--json`, default `bench-results.json` in the current directory). It asserts
nothing: the numbers belong to the machine they were taken on. Process logs go to a
temporary directory, kept and named if the run fails.
"""

import argparse
import json
import multiprocessing
import shutil
import signal
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path

from tests.bench import phases
from tests.bench.metrics import table
from tests.bench.rig import Bench, Options, Processes, interrupted, machine, progress, quiet_child
from tests.processes import wait_http


def parse_options(argv: Sequence[str] | None) -> tuple[Options, Path]:
    parser = argparse.ArgumentParser(
        prog="python -m tests.bench.bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--connections", type=int, default=32, help="keep-alive connections")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per ingest run")
    parser.add_argument("--step-seconds", type=float, default=10.0, help="seconds per rate step")
    parser.add_argument("--max-rate", type=float, default=3200, help="highest rate step (calls/s)")
    parser.add_argument("--idle-seconds", type=float, default=10.0, help="idle worker CPU window")
    parser.add_argument("--backlog", type=int, default=50_000, help="calls in the backlog")
    parser.add_argument(
        "--cap",
        type=int,
        default=100,
        help="per-account concurrency: the worker's cap and the emulator's limit",
    )
    parser.add_argument("--inbound-calls", type=int, default=500, help="inbound calls at 50/s")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="every phase shortened (1 s ingest, one step at 50/s for 2 s, 200 backlog calls)",
    )
    parser.add_argument("--json", type=Path, default=Path("bench-results.json"))
    args = parser.parse_args(argv)
    rates: list[float] = [50, 200]
    while rates[-1] * 2 <= args.max_rate:
        rates.append(rates[-1] * 2)
    options = Options(
        connections=args.connections,
        duration=args.duration,
        step_seconds=args.step_seconds,
        rates=tuple(rates),
        idle_seconds=args.idle_seconds,
        backlog=args.backlog,
        cap=args.cap,
        latency=0.1,
        inbound_calls=args.inbound_calls,
        quick=args.quick,
    )
    if args.quick:
        options = replace(
            options,
            duration=1.0,
            step_seconds=2.0,
            rates=(50,),
            idle_seconds=1.0,
            backlog=200,
            inbound_calls=20,
        )
    return options, args.json


def run(bench: Bench) -> None:
    """Every phase, in order, on one set of processes."""
    progress("starting redis, emulator, web and the bare baseline")
    bench.start_redis()
    bench.start_emulator()
    bench.service("web", "web", "--port", str(bench.web_port))
    wait_http(f"{bench.web}/readyz")
    bench.start_baseline()
    phases.ingest(bench)
    phases.steps(bench)
    phases.backlog(bench)
    phases.inbound(bench)
    phases.footprint(bench)


def main(argv: Sequence[str] | None = None) -> int:
    options, json_path = parse_options(argv)
    signal.signal(signal.SIGTERM, interrupted)
    logs = Path(tempfile.mkdtemp(prefix="callstreams-bench-"))
    processes = Processes(logs)
    spawn = multiprocessing.get_context("spawn")
    try:
        with spawn.Pool(1, initializer=quiet_child) as generator:
            bench = Bench(options, processes, generator)
            try:
                run(bench)
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
    print(table(bench.metrics, about, asdict(options)))
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
