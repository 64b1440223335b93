"""What the web process counts and times, in a registry per app (so that tests can
build many and nothing registers at import time). Labels are low-cardinality:
never a CallSid or stream SID.
"""

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from service.clock import LATENCY_BUCKETS, seconds_since
from service.record import StreamRecord


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
        self.voice_calls = Counter(
            "callstreams_voice_calls",
            "Incoming calls at the voice front door: claimed, untracked (Redis unavailable), "
            "unknown-number",
            ["outcome"],
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
