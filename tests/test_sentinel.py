"""Redis through Sentinel: the web app and the worker find the master by its service name."""

import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from arq import create_pool
from redis import Redis

from service.cli.dev import free_port
from service.config import ConfigError, Settings, load_settings
from service.redis_url import close_sentinels
from service.web.app import create_app
from tests.helpers import (
    ACCOUNT_SID,
    RedisServer,
    answered,
    call_sid,
    lifespan_client,
    signed,
)
from worker.settings import redis_settings

pytestmark = pytest.mark.anyio


@pytest.fixture
def sentinel_url(own_redis: RedisServer, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    conf = tmp_path / "sentinel.conf"
    conf.write_text(
        f"port {port}\nbind 127.0.0.1\ndir {tmp_path}\n"
        f"sentinel monitor callstreams 127.0.0.1 {own_redis.port} 1\n"
    )
    binary = shutil.which("redis-server")
    assert binary
    process = subprocess.Popen([binary, str(conf), "--sentinel"], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with Redis(port=port) as client:
                    client.ping()
                break
            except Exception:
                assert time.monotonic() < deadline, "sentinel did not start"
            time.sleep(0.05)
        yield f"redis+sentinel://127.0.0.1:{port}/callstreams/3"
    finally:
        process.terminate()
        process.wait(10)


async def test_web_and_worker_reach_the_master_through_sentinel(
    sentinel_url: str, own_redis: RedisServer, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(REDIS_URL=sentinel_url)
    app = create_app(settings)
    async with lifespan_client(app, "http://internal") as client:
        assert (await client.get("/readyz")).status_code == 200
        path = "/twilio/call-status"
        response = await client.post(path, **signed(path, answered(call_sid(5))))
        assert response.status_code == 204
    with Redis(port=own_redis.port, db=3) as redis:
        assert redis.exists(f"callstreams:call:{call_sid(5)}")

    pool = await create_pool(redis_settings(settings))
    try:
        info = await pool.info("server")
        assert info["tcp_port"] == own_redis.port
    finally:
        await pool.aclose()
        await close_sentinels(pool)


@pytest.mark.parametrize(
    "url",
    [
        "redis+sentinel://host/callstreams",
        "redis+sentinel://h1:26379,h2/callstreams",
        "redis+sentinel://h1:26379",
        "redis+sentinel://h1:26379/callstreams/x",
        "http://h1:26379/callstreams",
    ],
)
def test_bad_redis_urls_are_named_without_the_password(url: str) -> None:
    secret_url = url.replace("://", "://:hunter2@") if "@" not in url else url
    with pytest.raises(ConfigError) as raised:
        load_settings(
            REDIS_URL=secret_url, TWILIO_ACCOUNT_SID=ACCOUNT_SID, TWILIO_AUTH_TOKEN="t",
            PUBLIC_BASE_URL="https://x.example.com", STREAM_URL="wss://a.example.com/x",
        )  # fmt: skip
    assert "REDIS_URL" in str(raised.value)
    assert "hunter2" not in str(raised.value)
