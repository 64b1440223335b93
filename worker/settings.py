"""arq wiring: the worker's settings, built from our Settings, owning its clients."""

import socket
from contextlib import AsyncExitStack
from datetime import timedelta
from typing import Any

import anyio.lowlevel
import httpx
import structlog
from arq.connections import RedisSettings
from arq.worker import func
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from service import queue, redis_url
from service.catalog import Catalog, load_catalog
from service.config import Settings
from service.reload import reload_on_sighup
from service.store import Records
from worker.deps import Deps
from worker.jobs import start_stream, stop_stream
from worker.metrics import WorkerMetrics
from worker.observe import metrics_socket, observed
from worker.reconciler import reconciling
from worker.retry import RetryPolicy
from worker.twilio import SLOT_WAIT, TwilioClient, http_transports
from worker.wakeup import WakingWorker

log = structlog.get_logger("callstreams.worker")
HEALTH_INTERVAL_S = 5
# The worker's Redis client rides out a blip by itself: a command that finds Redis
# unreachable is tried again with backoff for PERSIST_WITHIN seconds in all. That is
# the one retry of the worker's Redis commands; it matters most when storing
# Twilio's answer, which cannot be asked again.
REDIS_BACKOFF = ExponentialBackoff(cap=1.0, base=0.05)
REDIS_RETRIES = 10
PERSIST_WITHIN = sum(REDIS_BACKOFF.compute(n) for n in range(1, REDIS_RETRIES + 1))


def redis_settings(settings: Settings) -> RedisSettings:
    """arq's connection settings: ride out short Redis outages; TLS verifies the hostname."""
    target = redis_url.parse_sentinel(settings.redis_url)
    if target is None:
        redis = RedisSettings.from_dsn(settings.redis_url)
    else:
        redis = RedisSettings(
            host=target.sentinels, sentinel=True, sentinel_master=target.service,
            database=target.db, username=target.username, password=target.password,
            ssl=target.tls,
        )  # fmt: skip
    redis.conn_retries = 60  # wait up to a minute for Redis at start
    redis.retry = Retry(REDIS_BACKOFF, REDIS_RETRIES)
    redis.retry_on_error = [RedisConnectionError, RedisTimeoutError]
    for option, value in redis_url.tls_options(settings.redis_url).items():
        setattr(redis, option, value)
    return redis


def health_key(settings: Settings) -> str:
    """Per host, so that `callstreams worker --check` in a pod checks that pod's worker."""
    return f"{settings.queue_name}:health-check:{socket.gethostname()}"


def worker_settings(
    settings: Settings,
    *,
    metrics: WorkerMetrics | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    listening: socket.socket | None = None,
) -> dict[str, Any]:
    """Keyword arguments for `arq.worker.Worker`; `transport` is the tests' seam to Twilio,
    `listening` the socket for /metrics (none: no endpoint)."""
    # One Twilio request, then up to PERSIST_WITHIN seconds to store its answer.
    job_timeout = SLOT_WAIT + settings.twilio_timeout + PERSIST_WITHIN + 2
    catalog = load_catalog(settings)
    metrics = metrics or WorkerMetrics()

    async def on_startup(ctx: dict[str, Any]) -> None:
        # httpx runs on anyio, whose asyncio backend loads on first use: ~60 ms of
        # imports that would otherwise delay the first stream after a start.
        await anyio.lowlevel.checkpoint()
        stack = ctx["resources"] = AsyncExitStack()
        transports = http_transports(settings.worker_concurrency, transport)
        for pool in transports:
            await stack.enter_async_context(pool)
        await stack.enter_async_context(
            observed(ctx["redis"], settings.queue_name, metrics, listening)
        )
        twilio = TwilioClient(
            transports, settings.api_base_url, settings.twilio_timeout, catalog.accounts,
            settings.account_concurrency,
        )  # fmt: skip

        def use(reloaded: Catalog) -> None:  # workers need only the accounts
            twilio.use_accounts(reloaded.accounts)

        stack.enter_context(reload_on_sighup(settings, use))
        ctx["deps"] = deps = Deps(
            settings=settings,
            records=Records(
                ctx["redis"], queue=settings.queue_name, record_ttl=settings.record_ttl
            ),
            twilio=twilio,
            policy=RetryPolicy(
                max_attempts=settings.retry_max_attempts,
                max_age=settings.retry_max_age,
                base=settings.retry_base_delay,
                cap=settings.retry_max_delay,
            ),
            metrics=metrics,
            lease=timedelta(seconds=job_timeout + 1),
        )
        await stack.enter_async_context(reconciling(deps, settings.reconcile_after))
        log.info(
            "worker ready", queue=settings.queue_name, concurrency=settings.worker_concurrency,
            accounts=len(catalog.accounts),
        )  # fmt: skip

    async def on_shutdown(ctx: dict[str, Any]) -> None:
        if "resources" in ctx:
            await ctx["resources"].aclose()

    return {
        "functions": [
            func(start_stream, name=queue.START),
            func(stop_stream, name=queue.STOP),
        ],
        "queue_name": settings.queue_name,
        "redis_settings": redis_settings(settings),
        "on_startup": on_startup,
        "on_shutdown": on_shutdown,
        "job_serializer": queue.dumps,
        "job_deserializer": queue.loads,
        "keep_result": 0,
        # Attempts are capped by the retry policy from the record, not by arq.
        "max_tries": 10_000,
        "job_timeout": job_timeout,
        # On SIGTERM, stop taking jobs and let running ones finish (each is one request).
        "job_completion_wait": int(job_timeout) + 1,
        "max_jobs": settings.worker_concurrency,
        # Running jobs stay in the queue; read past them to the ones waiting.
        "queue_read_limit": 2 * settings.worker_concurrency,
        "health_check_interval": HEALTH_INTERVAL_S,
        "health_check_key": health_key(settings),
    }


def create_worker(
    settings: Settings,
    *,
    metrics: WorkerMetrics | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    **overrides: Any,
) -> WakingWorker:
    """The worker, its metrics socket bound first: a port in use fails the start in one line."""
    listening = metrics_socket(settings)
    kwargs = worker_settings(settings, metrics=metrics, transport=transport, listening=listening)
    return WakingWorker(**{**kwargs, **overrides})


async def check(settings: Settings) -> tuple[bool, str]:
    """Whether a worker wrote its heartbeat lately: the worker's readiness probe."""
    from redis.exceptions import RedisError

    redis = redis_url.connect(settings.redis_url, socket_timeout=2, socket_connect_timeout=2)
    try:
        beat = await redis.get(health_key(settings))
    except (RedisError, OSError) as error:
        return False, f"not ready: redis: {type(error).__name__}: {error}"
    finally:
        await redis.aclose()
    if beat is None:
        return False, f"not ready: no worker heartbeat in the last {HEALTH_INTERVAL_S + 1}s"
    return True, f"ok: {beat.decode()}"
