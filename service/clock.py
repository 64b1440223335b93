"""The service's clock: record timestamps, milliseconds for scores and leases, and the
buckets of the latency histograms that measure the time between them."""

import time
from datetime import UTC, datetime

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


def now_iso() -> str:
    """ISO-8601 UTC with milliseconds and a `Z`, as every record timestamp."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def now_ms() -> int:
    return int(time.time() * 1000)


def seconds_since(stamp: str | None) -> float | None:
    """Seconds from a record timestamp until now; None for no timestamp."""
    if stamp is None:
        return None
    return (datetime.now(UTC) - datetime.fromisoformat(stamp)).total_seconds()


def ms_to_iso(ms: float) -> str:
    """Epoch milliseconds (as records are stored) as a record timestamp."""
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def iso_to_ms(stamp: str) -> int:
    return round(datetime.fromisoformat(stamp).timestamp() * 1000)
