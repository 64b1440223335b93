"""What the web process's handlers share, opened by the lifespan and typed."""

from dataclasses import dataclass

from redis.asyncio import Redis

from service.catalog import Catalog
from service.config import Settings
from service.metrics import WebMetrics
from service.records import Records

# Seconds a request waits for Redis before it answers 503 (Twilio then retries).
REDIS_DEADLINE = 2.0


@dataclass
class AppState:
    settings: Settings
    catalog: Catalog  # replaced whole on reload
    redis: Redis
    records: Records
    metrics: WebMetrics
