"""What the worker counts and times: Twilio requests, stream outcomes, the queue.

Served on the worker's own port (`observe.py`); labelled by profile, operation,
outcome and Twilio's error code, never by a SID.
"""

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from service.clock import LATENCY_BUCKETS


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
        self.reconciled_calls = Counter(
            "callstreams_reconciled_calls",
            "Calls checked against Twilio's Call resource after a quiet period: ended, "
            "unknown (to Twilio), live, settled (nothing left to check), error",
            ["outcome"],
            registry=r,
        )
        self.queue_depth = Gauge("callstreams_queue_depth", "Jobs waiting in the queue", registry=r)
