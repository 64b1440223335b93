"""Shared fixtures: a real redis-server per test session, settings, signed requests.

Tests start their own redis-server on a free port (so they can stop and
restart it); `CALLSTREAMS_TEST_REDIS_URL` points them at another server instead.
"""

import os
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from redis import Redis
from redis.asyncio import Redis as AsyncRedis

from service.app import create_app
from service.config import Settings, load_settings
from service.dev import free_port
from service.signature import compute_signature

# Property tests judge behaviour, never speed: no per-example deadline on shared machines.
hypothesis_settings.register_profile(
    "callstreams", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
hypothesis_settings.load_profile("callstreams")

ACCOUNT_SID = "AC" + "a1" * 16
AUTH_TOKEN = "test-auth-token"
API_TOKEN = "test-operator-token"
PUBLIC_BASE_URL = "https://streams.example.com"
STREAM_URL = "wss://asr.example.com/twilio"


class RedisServer:
    """A redis-server process the tests own: they may stop and start it."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary, "redis-server must be on PATH"
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir",
             str(self.directory), "--save", "", "--appendonly", "yes"],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while True:
            try:
                Redis.from_url(self.url).ping()
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None


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
    async for c in lifespan_client(create_app(settings), "http://10.0.0.7:8000"):
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


def call_sid(n: int = 1) -> str:
    return f"CA{n:032x}"


def stream_sid(n: int = 1) -> str:
    return f"MZ{n:032x}"


def signed(
    path: str,
    fields: dict[str, str] | list[tuple[str, str]],
    *,
    token: str = AUTH_TOKEN,
    base: str = PUBLIC_BASE_URL,
) -> dict[str, Any]:
    """Keyword arguments for an httpx post that Twilio would have signed."""
    pairs = list(fields.items()) if isinstance(fields, dict) else fields
    return {
        "content": urlencode(pairs).encode(),
        "headers": {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": compute_signature(base + path, pairs, token),
        },
    }


def answered(sid: str, status: str = "in-progress", **extra: str) -> dict[str, str]:
    """The fields of a call status callback, as Twilio sends them."""
    return {
        "AccountSid": ACCOUNT_SID,
        "CallSid": sid,
        "CallStatus": status,
        "From": "+15550001111",
        "To": "+15550002222",
        "Caller": "+15550001111",
        "Called": "+15550002222",
        "Direction": "inbound",
        "ApiVersion": "2010-04-01",
        "CallbackSource": "call-progress-events",
        "SequenceNumber": "1",
        **extra,
    }


async def lifespan_client(app: Any, base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """An in-process client for `app`, with its lifespan run around it."""
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url) as client,
    ):
        yield client
