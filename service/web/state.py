"""What the web process's handlers share, opened by the lifespan and typed."""

from dataclasses import dataclass

from redis.asyncio import Redis
from starlette.requests import Request

from service.catalog import Catalog
from service.config import Settings
from service.store import Records
from service.web.metrics import WebMetrics

# Seconds a request waits for Redis before it answers 503 (Twilio then retries).
REDIS_DEADLINE = 2.0


@dataclass
class AppState:
    settings: Settings
    catalog: Catalog  # replaced whole on reload
    redis: Redis
    records: Records
    metrics: WebMetrics

    def use(self, catalog: Catalog) -> None:
        """Serve `catalog` from the next request on (a reload)."""
        self.catalog = catalog


def app_state(request: Request) -> AppState:
    """The state the lifespan opened for this request's app."""
    state: AppState = request.app.state.callstreams
    return state
