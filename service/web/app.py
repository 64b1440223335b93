"""The web process: `create_app(settings)` builds the Starlette app."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from service import redis_url
from service.catalog import Catalog, load_catalog
from service.config import Settings
from service.reload import reload_on_sighup
from service.store import Records
from service.web import api, health, voice, webhooks
from service.web.access import AccessLog
from service.web.errors import HANDLERS
from service.web.metrics import WebMetrics
from service.web.state import REDIS_DEADLINE, AppState, app_state


def redis_client(settings: Settings) -> Redis:
    """A client that fails fast: a webhook answers 503 rather than hang on Redis.
    Each operation is bounded by `Records`' deadline (REDIS_DEADLINE), retries included."""
    return redis_url.connect(
        settings.redis_url,
        socket_connect_timeout=REDIS_DEADLINE,
        retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), 2),
    )


async def metrics(request: Request) -> Response:
    registry = app_state(request).metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


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
        try:
            with reload_on_sighup(settings, state.use):
                yield
        finally:
            await redis.aclose()

    routes = [
        *webhooks.routes,
        *voice.routes,
        *api.routes,
        *health.routes,
        Route("/metrics", metrics),
    ]
    app = Starlette(
        routes=routes, lifespan=lifespan, exception_handlers=HANDLERS,
        middleware=[Middleware(AccessLog)],
    )  # fmt: skip
    # `/twilio/voice/` is not `/twilio/voice`: a 404, never a redirect built from `Host`.
    app.router.redirect_slashes = False
    return app
