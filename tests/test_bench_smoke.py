"""The benchmark still runs end to end: a quick run exits 0 and reports every number.

It checks that the numbers exist and that no call was lost, never how fast
anything was: timings belong to the machine, not to the test.
"""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

METRICS = {
    *(f"ingest_{run}_{figure}" for run in ("baseline", "webhook")
      for figure in ("rps", "p50_ms", "p99_ms", "errors", "cpu_ms")),
    "ingest_ratio", "worker_idle_cpu",
    *(f"{name}_50_{figure}" for name in ("create", "inline") for figure in ("p50_ms", "p99_ms")),
    "ratio_50_p50", "ratio_50_p99", "lost_50", "web_cpu_50_ms", "inline_cpu_50_ms",
    "worker_cpu_50_ms", "redis_cpu_50_ms", "redis_scripts_50", "redis_commands_50",
    "steps_ours_within_3x", "steps_ours_max", "steps_inline_max",
    *(f"backlog_{figure}" for figure in (
        "accepted", "accept_rps", "drain_rate", "lost", "repeated", "left", "rss_mb", "in_flight",
        "throttled", "worker_cpu_ms",
    )),
    "voice_p50_ms", "voice_p99_ms", "voice_errors", "inbound_p50_ms", "inbound_p99_ms",
    "inbound_lost", "web_rss_mb", "worker_rss_mb", "redis_record_bytes", "redis_index_bytes",
    "redis_unsettled_bytes",
}  # fmt: skip


def test_quick_run_reports_every_metric_and_loses_no_call(tmp_path: Path) -> None:
    results = tmp_path / "r.json"
    bench = subprocess.Popen(
        [sys.executable, "-m", "tests.bench.bench", "--quick", "--json", str(results)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        output, _ = bench.communicate(timeout=300)
    finally:
        if bench.poll() is None:  # SIGTERM first: the benchmark then stops what it started
            bench.terminate()
            try:
                bench.wait(30)
            except subprocess.TimeoutExpired:
                bench.kill()
                bench.wait()
    assert bench.returncode == 0, output.decode(errors="replace")

    report = json.loads(results.read_text())
    metrics = report["metrics"]
    assert set(metrics) == METRICS
    for key, metric in metrics.items():
        value = metric["value"]
        assert isinstance(value, int | float), key
        assert not isinstance(value, bool), key
        assert math.isfinite(value), key
    details = report["details"]
    (step,) = details["steps"]
    for path in ("ours", "inline"):
        assert step[path]["calls"] == 100, path
        assert step[path]["lost"] == 0, path
    assert details["backlog"]["calls"] == details["backlog"]["creates"] == 200
    for key in ("lost_50", "backlog_lost", "backlog_repeated", "backlog_left", "inbound_lost"):
        assert metrics[key]["value"] == 0, key
    assert metrics["backlog_accepted"]["value"] == 200
    # Claim, begin, finish: one script call each per answered call (a reconciler pass
    # may add one now and then).
    assert 3 <= metrics["redis_scripts_50"]["value"] < 3.5
