"""arq wiring: the worker's settings, built from our Settings, owning its clients."""

import asyncio
import contextlib
import signal
import socket
from collections.abc import Callable
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

from service import jobs as job_names
from service import redis_url
from service.catalog import load_catalog
from service.config import ConfigError, Settings
from service.metrics import WorkerMetrics
from service.records import Records
from service.retry import RetryPolicy
from service.twilio import SLOT_WAIT, TwilioClient, http_clients
from worker.jobs import PERSIST_WITHIN, Deps, start_stream, stop_stream
from worker.observe import observed
from worker.wakeup import WakingWorker

log = structlog.get_logger("callstreams.worker")
HEALTH_INTERVAL_S = 5


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
    redis.retry = Retry(ExponentialBackoff(cap=1.0, base=0.05), 5)
    redis.retry_on_error = [RedisConnectionError, RedisTimeoutError]
    for option, value in redis_url.tls_options(settings.redis_url).items():
        setattr(redis, option, value)
    return redis


def _reload_accounts(settings: Settings, twilio: TwilioClient) -> None:
    """SIGHUP: take the configuration file's accounts, or keep the running ones."""
    try:
        catalog = load_catalog(settings)
    except ConfigError as error:
        log.error("reload failed, keeping the running configuration", error=str(error))
        return
    twilio.use_accounts(catalog.accounts)
    log.info("configuration reloaded", accounts=len(catalog.accounts))


def _on_sighup(handler: Callable[[], None]) -> None:
    # Outside the main thread (an in-process test) there is no signal to handle.
    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, handler)


def health_key(settings: Settings) -> str:
    """Per host, so that `callstreams worker --check` in a pod checks that pod's worker."""
    return f"{settings.queue_name}:health-check:{socket.gethostname()}"


def worker_settings(
    settings: Settings,
    *,
    metrics: WorkerMetrics | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> dict[str, Any]:
    """Keyword arguments for `arq.worker.Worker`; `transport` is the tests' seam to Twilio."""
    # One Twilio request, then up to PERSIST_WITHIN seconds to store its answer.
    job_timeout = SLOT_WAIT + settings.twilio_timeout + PERSIST_WITHIN + 2
    catalog = load_catalog(settings)
    metrics = metrics or WorkerMetrics()

    async def on_startup(ctx: dict[str, Any]) -> None:
        # httpx runs on anyio, whose asyncio backend loads on first use: ~60 ms of
        # imports that would otherwise delay the first stream after a start.
        await anyio.lowlevel.checkpoint()
        stack = ctx["resources"] = AsyncExitStack()
        clients = http_clients(
            settings.api_base_url, settings.twilio_timeout, settings.worker_concurrency, transport
        )
        for client in clients:
            await stack.enter_async_context(client)
        await stack.enter_async_context(
            observed(ctx["redis"], settings.queue_name, metrics, settings.worker_metrics_port)
        )
        twilio = TwilioClient(clients, catalog.accounts, settings.account_concurrency)
        _on_sighup(lambda: _reload_accounts(settings, twilio))
        ctx["deps"] = Deps(
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
        log.info(
            "worker ready", queue=settings.queue_name, concurrency=settings.worker_concurrency,
            accounts=len(catalog.accounts),
        )  # fmt: skip

    async def on_shutdown(ctx: dict[str, Any]) -> None:
        if "resources" in ctx:
            await ctx["resources"].aclose()

    return {
        "functions": [
            func(start_stream, name=job_names.START),
            func(stop_stream, name=job_names.STOP),
        ],
        "queue_name": settings.queue_name,
        "redis_settings": redis_settings(settings),
        "on_startup": on_startup,
        "on_shutdown": on_shutdown,
        "job_serializer": job_names.dumps,
        "job_deserializer": job_names.loads,
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
    kwargs = worker_settings(settings, metrics=metrics, transport=transport)
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
