"""Fixtures: a real redis-server per test session, settings, the app in process.

Tests start their own redis-server on a free port (so they can stop and
restart it); `CALLSTREAMS_TEST_REDIS_URL` points them at another server instead.
Helpers that tests import live in `tests/helpers.py`.
"""

import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from redis import Redis
from redis.asyncio import Redis as AsyncRedis

from service.config import Settings, load_settings
from service.web.app import create_app
from tests.helpers import (
    ACCOUNT_SID,
    API_TOKEN,
    AUTH_TOKEN,
    PUBLIC_BASE_URL,
    STREAM_URL,
    RedisServer,
    lifespan_client,
)

# Property tests judge behaviour, never speed: no per-example deadline on shared machines.
hypothesis_settings.register_profile(
    "callstreams", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
hypothesis_settings.load_profile("callstreams")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer | str]:
    override = os.environ.get("CALLSTREAMS_TEST_REDIS_URL")
    if override:
        yield override
        return
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer | str) -> str:
    """A flushed database on the session's Redis."""
    url = redis_server if isinstance(redis_server, str) else redis_server.url
    client = Redis.from_url(url)
    client.flushdb()
    client.close()
    return url


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of the test's own, which it may stop and start."""
    (tmp_path / "redis").mkdir()
    server = RedisServer(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The app in process. It sees an internal URL, as behind a load balancer;
    signatures are made for the public one."""
    async with lifespan_client(create_app(settings), "http://10.0.0.7:8000") as c:
        yield c


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[AsyncRedis]:
    client = AsyncRedis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def make_settings(redis_url: str) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "REDIS_URL": redis_url,
            "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "PUBLIC_BASE_URL": PUBLIC_BASE_URL,
            "CALLSTREAMS_API_TOKEN": API_TOKEN,
            "STREAM_URL": STREAM_URL,
            "STREAM_NAME": "transcription",
            "TWILIO_API_BASE_URL": "http://twilio.test",
            "CALLSTREAMS_LOG_FORMAT": "console",
            "CALLSTREAMS_WORKER_METRICS_PORT": "0",
        }
        values.update(overrides)
        return load_settings(**values)

    return make
