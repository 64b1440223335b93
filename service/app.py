"""The web process: `create_app(settings)` builds the Starlette app."""

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from service import api, health, redis_url, webhooks
from service.access import AccessLog
from service.catalog import Catalog, load_catalog
from service.config import ConfigError, Settings
from service.errors import HANDLERS
from service.metrics import WebMetrics
from service.records import Records
from service.state import REDIS_DEADLINE, AppState

log = structlog.get_logger("callstreams.web")


def redis_client(settings: Settings) -> Redis:
    """A client that fails fast: a webhook answers 503 rather than hang on Redis.
    Reads are bounded per operation by `Records`' deadline (REDIS_DEADLINE)."""
    return redis_url.connect(
        settings.redis_url,
        socket_connect_timeout=REDIS_DEADLINE,
        retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), 2),
    )


def reload(state: AppState) -> bool:
    """Swap in the configuration file's current profiles and accounts, or keep the old."""
    try:
        state.catalog = load_catalog(state.settings)
    except ConfigError as error:
        log.error("reload failed, keeping the running configuration", error=str(error))
        return False
    log.info("configuration reloaded", profiles=[p.name for p in state.catalog.profiles])
    return True


async def metrics(request: Request) -> Response:
    state: AppState = request.app.state.callstreams
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)


def create_app(settings: Settings, catalog: Catalog | None = None) -> Starlette:
    """The app for `settings`; the catalog is loaded now so a bad file fails at start."""
    catalog = load_catalog(settings) if catalog is None else catalog

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        redis = redis_client(settings)
        state = app.state.callstreams = AppState(
            settings=settings,
            catalog=catalog,
            redis=redis,
            records=Records(
                redis,
                queue=settings.queue_name,
                record_ttl=settings.record_ttl,
                deadline=REDIS_DEADLINE,
            ),
            metrics=WebMetrics(),
        )
        loop = asyncio.get_running_loop()
        # Outside the main thread (an in-process test) there is no signal: call reload().
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signal.SIGHUP, reload, state)
        try:
            yield
        finally:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(signal.SIGHUP)
            await redis.aclose()

    routes = [*webhooks.routes, *api.routes, *health.routes, Route("/metrics", metrics)]
    return Starlette(
        routes=routes, lifespan=lifespan, exception_handlers=HANDLERS,
        middleware=[Middleware(AccessLog)],
    )  # fmt: skip
