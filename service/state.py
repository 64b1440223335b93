"""What the web process's handlers share, opened by the lifespan and typed."""

from dataclasses import dataclass

from redis.asyncio import Redis

from service.catalog import Catalog
from service.config import Settings
from service.metrics import WebMetrics
from service.records import Records


@dataclass
class AppState:
    settings: Settings
    catalog: Catalog  # replaced whole on reload
    redis: Redis
    records: Records
    metrics: WebMetrics
