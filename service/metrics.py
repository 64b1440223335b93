"""Prometheus metrics. Labels are low-cardinality: never a CallSid or stream SID.

Each process owns one registry, created with its app or worker, so tests can
build many of them and nothing registers at import time.
"""

from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from service.records import StreamRecord

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


def seconds_since(stamp: str | None) -> float | None:
    if stamp is None:
        return None
    return (datetime.now(UTC) - datetime.fromisoformat(stamp)).total_seconds()


class WebMetrics:
    """The web process's metrics: webhooks, claims, stream events, Redis."""

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.webhooks = Counter(
            "callstreams_webhooks", "Twilio webhooks accepted", ["kind", "status"], registry=r
        )
        self.claims = Counter(
            "callstreams_stream_claims",
            "Streams asked for by answered calls and operators",
            ["profile", "outcome"],
            registry=r,
        )
        self.stream_events = Counter(
            "callstreams_stream_events",
            "Stream status callbacks applied to a record",
            ["profile", "event"],
            registry=r,
        )
        self.answered_to_started = Histogram(
            "callstreams_answered_to_stream_started_seconds",
            "From the answered webhook to Twilio's stream-started callback",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.redis_up = Gauge(
            "callstreams_redis_up", "1 if Redis answered the last readiness check", registry=r
        )

    def observe_event(self, record: StreamRecord, event: str, first_start: bool) -> None:
        self.stream_events.labels(record["profile"] or "", event).inc()
        if first_start:
            elapsed = seconds_since(record["answered_at"])
            if elapsed is not None:
                self.answered_to_started.observe(elapsed)


class WorkerMetrics:
    """The worker's metrics: Twilio requests and their outcomes, latency, queue depth."""

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.answered_to_create_sent = Histogram(
            "callstreams_answered_to_create_sent_seconds",
            "From the answered webhook to the create request being sent to Twilio",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.twilio_requests = Counter(
            "callstreams_twilio_requests",
            "Requests to Twilio's Streams API by outcome and Twilio error code",
            ["operation", "outcome", "code"],
            registry=r,
        )
        self.twilio_seconds = Histogram(
            "callstreams_twilio_request_seconds",
            "Duration of requests to Twilio's Streams API",
            ["operation"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.stream_outcomes = Counter(
            "callstreams_stream_outcomes",
            "Results recorded by the worker for stream starts and stops, with Twilio's code",
            ["profile", "operation", "outcome", "code"],
            registry=r,
        )
        self.retries = Counter(
            "callstreams_retries",
            "Twilio requests to be tried again after a transient failure",
            ["operation"],
            registry=r,
        )
        self.queue_depth = Gauge("callstreams_queue_depth", "Jobs waiting in the queue", registry=r)
