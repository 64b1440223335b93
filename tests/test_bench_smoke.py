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
    "ingest_baseline_rps", "ingest_baseline_p50_ms", "ingest_baseline_p99_ms",
    "ingest_baseline_errors", "ingest_webhook_rps", "ingest_webhook_p50_ms",
    "ingest_webhook_p99_ms", "ingest_webhook_errors", "ingest_ratio", "worker_idle_cpu",
    "create_first_ms", "create_p50_ms", "create_p99_ms", "create_max_ms", "create_lost", "web_cpu",
    "worker_cpu",
    "worker_creates_per_s", "emulator_max_in_flight", "emulator_throttled", "throughput_lost",
    "worker_drain_cpu", "emulator_drain_cpu",
    "web_rss_mb", "worker_rss_mb", "redis_record_bytes",
}  # fmt: skip


def test_quick_run_reports_every_metric_and_loses_no_call(tmp_path: Path) -> None:
    results = tmp_path / "r.json"
    bench = subprocess.Popen(
        [sys.executable, "-m", "tests.bench.bench", "--quick", "--json", str(results)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        output, _ = bench.communicate(timeout=120)
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
    assert details["throughput"]["creates"] == details["throughput"]["calls_sent"] == 20
    latency = details["answered_to_create"]
    assert latency["creates_matched"] == latency["calls_sent"] == 100
    assert metrics["throughput_lost"]["value"] == metrics["create_lost"]["value"] == 0
