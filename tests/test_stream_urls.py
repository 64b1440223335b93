"""The stream URL policy, for profiles (checked at start, every problem at once) and
for operator starts, with and without CALLSTREAMS_STREAM_HOSTS."""

from collections.abc import Callable
from pathlib import Path

import pytest
from redis.asyncio import Redis

from service import stream_urls
from service.catalog import load_catalog
from service.config import ConfigError, Settings, load_settings
from service.web.app import create_app
from tests.helpers import ACCOUNT_SID, API_TOKEN, call_sid, catalog_from, lifespan_client

ALLOWED = [
    "wss://asr.example.com/twilio",
    "wss://asr.example.com:8443/a/b",
    "wss://ASR.Example.COM./x",
    "wss://8.8.8.8/audio",
    "wss://[2606:4700:4700::1111]/audio",
    "wss://xn--bcher-kva.example/stream",
]
REFUSED = {
    "ws://asr.example.com/a": "wss://",
    "https://asr.example.com/a": "wss://",
    "wss://asr.example.com/a?token=1": "query",
    "wss://asr.example.com/a#x": "query",
    "wss://user:secret@asr.example.com/a": "user or password",
    "wss://user@asr.example.com/a": "user or password",
    "wss:///path": "needs a host",
    "wss://": "needs a host",
    "wss://localhost/a": "localhost",
    "wss://LOCALHOST./a": "localhost",
    "wss://media.localhost/a": "localhost",
    "wss://127.0.0.1/a": "loopback",
    "wss://10.1.2.3/a": "private",
    "wss://172.16.0.1/a": "private",
    "wss://192.168.1.1/a": "private",
    "wss://169.254.169.254/latest/meta-data": "link-local",
    "wss://0.0.0.0/a": "unspecified",
    "wss://224.0.0.1/a": "multicast",
    "wss://100.64.0.1/a": "private",
    "wss://[::1]/a": "loopback",
    "wss://[fe80::1]/a": "link-local",
    "wss://[fd00::1]/a": "private",
    "wss://[::ffff:127.0.0.1]/a": "loopback",
    "wss://2130706433/a": "DNS name",
    "wss://0x7f000001/a": "DNS name",
    "wss://a_b.example.com/a": "DNS name",
    "wss://bücher.example/a": "ASCII",
    "wss://asr.example.com:99999/a": "port",
    "wss://asr.example.com/" + "a" * 2100: "at most 2048",
}


@pytest.mark.parametrize("url", ALLOWED)
def test_allowed(url: str) -> None:
    assert stream_urls.check(url) == url


@pytest.mark.parametrize(("url", "reason"), REFUSED.items())
def test_refused(url: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        stream_urls.check(url)


def test_stream_hosts_narrow_the_hosts() -> None:
    hosts = ("streams.example.com", "asr.example.net")
    assert stream_urls.check("wss://streams.example.com/a", hosts)
    assert stream_urls.check("wss://eu.asr.example.net/a", hosts)
    for url in ("wss://evilstreams.example.com/a", "wss://example.com/a", "wss://8.8.8.8/a"):
        with pytest.raises(ValueError, match="CALLSTREAMS_STREAM_HOSTS"):
            stream_urls.check(url, hosts)


BASE = {
    "PUBLIC_BASE_URL": "https://streams.example.com",
    "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
    "TWILIO_AUTH_TOKEN": "t",
}


def test_profiles_report_every_bad_url_at_start(tmp_path: Path) -> None:
    toml = (
        """
[[streams]]
name = "a"
url = "wss://user:pw@asr.example.com/a"
[[streams]]
name = "b"
url = "wss://169.254.169.254/b"
[[streams]]
name = "c"
url = "wss://other.example.org/c"
[streams.parameters]
"" = "empty name"
long = \""""
        + "x" * 400
        + '"\n'
    )
    with pytest.raises(ConfigError) as error:
        catalog_from(tmp_path, toml, **BASE, CALLSTREAMS_STREAM_HOSTS="example.com")
    message = str(error.value)
    assert "streams[a].url: must not carry a user or password" in message
    assert "streams[b].url: must not point at a loopback" in message
    assert "streams[c].url: host is not on CALLSTREAMS_STREAM_HOSTS" in message
    assert "streams[c].parameters" in message
    assert "pw" not in message


def test_a_bad_stream_url_variable_is_one_line() -> None:
    with pytest.raises(ConfigError, match="STREAM_URL: must not point at localhost"):
        load_catalog(load_settings(**BASE, STREAM_URL="wss://localhost/a"))
    with pytest.raises(ConfigError, match="CALLSTREAMS_STREAM_HOSTS: must be comma-separated"):
        load_settings(**BASE, CALLSTREAMS_STREAM_HOSTS="example.com, bad host")


@pytest.mark.anyio
async def test_operator_starts_follow_the_policy(
    make_settings: Callable[..., Settings], redis: Redis
) -> None:
    settings = make_settings(CALLSTREAMS_STREAM_HOSTS="example.com")
    auth = {"Authorization": f"Bearer {API_TOKEN}"}
    path = f"/v1/calls/{call_sid()}/streams"
    async with lifespan_client(create_app(settings), "http://internal") as client:
        for url in ("wss://10.0.0.1/a", "wss://u:p@a.example.com/a", "wss://a.example.org/a"):
            response = await client.post(path, json={"name": "x", "url": url}, headers=auth)
            assert response.status_code == 400, url
            [problem] = response.json()["detail"]
            assert problem["field"] == "url"
            assert "u:p" not in response.text
        ok = await client.post(
            path, json={"name": "x", "url": "wss://a.example.com/a"}, headers=auth
        )
        assert ok.status_code == 202
    assert await redis.zcard(settings.queue_name) == 1
