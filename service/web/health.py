"""Liveness that is trivial and readiness that says why it is not ready."""

import asyncio

import structlog
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from service.web.errors import error_response
from service.web.state import REDIS_DEADLINE, app_state

log = structlog.get_logger("callstreams.web")


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    state = app_state(request)
    try:
        async with asyncio.timeout(REDIS_DEADLINE):
            await state.redis.ping()
    except (RedisError, OSError) as error:
        # The reason, without addresses, to anyone; the details to the log only.
        state.metrics.redis_up.set(0)
        log.warning("not ready: redis unavailable", error=f"{type(error).__name__}: {error}")
        return error_response(503, "not ready", "redis unavailable")
    state.metrics.redis_up.set(1)
    return JSONResponse({"status": "ready", "profiles": [p.name for p in state.catalog.profiles]})


routes = [Route("/healthz", healthz), Route("/readyz", readyz)]
