"""The voice front door: a signed incoming call is claimed and redirected, and the
caller's call goes on whatever happens to Redis."""

import signal
import time
from collections.abc import Callable
from pathlib import Path
from xml.etree import ElementTree

import httpx
import pytest
from redis.asyncio import Redis

from service.cli.dev import free_port
from service.config import Settings
from service.web.app import create_app
from tests.helpers import ACCOUNT_SID, RedisServer, call_sid, lifespan_client, signed

pytestmark = pytest.mark.anyio
VOICE = "/twilio/voice"
AUTH = {"Authorization": "Bearer test-operator-token"}
FLOW = "https://webhooks.twilio.com/v1/Accounts/AC1/Flows/FW1?a=1&b=<2>"
NUMBERS = f"""
[[streams]]
name = "asr"
url = "wss://asr.example.com/twilio"
[streams.parameters]
caller = "{{From}}"
[[streams]]
name = "sales-only"
url = "wss://sales.example.com/twilio"
[streams.match]
To = "+15550002222"

[[numbers]]
to = ["+15550002222"]
twiml_url = "{FLOW}"

[[numbers]]
to = "+15550003333"
twiml_url = "https://ivr.example.com/answer"
method = "GET"
"""


def incoming(sid: str, to: str = "+15550002222") -> dict[str, str]:
    """An incoming-call webhook, as Twilio sends it to a number's Voice URL."""
    return {
        "AccountSid": ACCOUNT_SID, "ApiVersion": "2010-04-01", "CallSid": sid,
        "CallStatus": "ringing", "Called": to, "Caller": "+15550001111", "Direction": "inbound",
        "From": "+15550001111", "To": to,
    }  # fmt: skip


@pytest.fixture
def settings(make_settings: Callable[..., Settings], tmp_path: Path) -> Settings:
    config = tmp_path / "callstreams.toml"
    config.write_text(NUMBERS)
    return make_settings(CALLSTREAMS_CONFIG=str(config))


def redirect_of(response: httpx.Response) -> tuple[str, str]:
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/xml")
    root = ElementTree.fromstring(response.content)  # noqa: S314 - our own answer
    assert root.tag == "Response"
    [verb] = list(root)
    assert verb.tag == "Redirect"
    assert verb.text is not None
    return verb.attrib["method"], verb.text


async def test_an_incoming_call_is_claimed_and_redirected(
    client: httpx.AsyncClient, redis: Redis, settings: Settings
) -> None:
    response = await client.post(VOICE, **signed(VOICE, incoming(call_sid())))
    assert redirect_of(response) == ("POST", FLOW)
    assert b"&amp;b=&lt;2&gt;" in response.content  # the URL is XML-escaped
    listed = (await client.get(f"/v1/calls/{call_sid()}/streams", headers=AUTH)).json()
    records = {r["name"]: r for r in listed["streams"]}
    assert set(records) == {"asr", "sales-only"}  # match works on the incoming-call fields
    assert {r["status"] for r in records.values()} == {"pending"}
    assert {r["answered_at"] for r in records.values()} == {None}
    assert records["asr"]["parameters"] == {"caller": "+15550001111"}  # and templating
    assert await redis.zcard(settings.queue_name) == 2


async def test_a_repeated_delivery_claims_nothing_twice(
    client: httpx.AsyncClient, redis: Redis, settings: Settings
) -> None:
    for _ in range(3):
        response = await client.post(VOICE, **signed(VOICE, incoming(call_sid())))
        assert redirect_of(response)[1] == FLOW
    assert await redis.zcard(settings.queue_name) == 2
    text = (await client.get("/metrics")).text
    assert 'callstreams_voice_calls_total{outcome="claimed"} 3.0' in text
    assert 'callstreams_stream_claims_total{outcome="exists",profile="asr"} 2.0' in text


async def test_the_method_and_the_number_entry_are_the_configured_ones(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(VOICE, **signed(VOICE, incoming(call_sid(), "+15550003333")))
    assert redirect_of(response) == ("GET", "https://ivr.example.com/answer")
    listed = (await client.get(f"/v1/calls/{call_sid()}/streams", headers=AUTH)).json()
    assert [r["name"] for r in listed["streams"]] == ["asr"]


async def test_an_unknown_number_is_404_json_and_claims_nothing(
    client: httpx.AsyncClient, redis: Redis
) -> None:
    response = await client.post(VOICE, **signed(VOICE, incoming(call_sid(), "+15559999999")))
    assert response.status_code == 404
    assert response.json()["error"] == "unknown number"
    assert await redis.dbsize() == 0
    assert (
        'callstreams_voice_calls_total{outcome="unknown-number"} 1.0'
        in (await client.get("/metrics")).text
    )


async def test_bad_or_missing_signatures_are_refused(
    client: httpx.AsyncClient, redis: Redis
) -> None:
    wrong = signed(VOICE, incoming(call_sid()), token="another-token")
    assert (await client.post(VOICE, **wrong)).status_code == 403
    unsigned = signed(VOICE, incoming(call_sid()))
    del unsigned["headers"]["X-Twilio-Signature"]
    assert (await client.post(VOICE, **unsigned)).status_code == 403
    bad_sid = signed(VOICE, {**incoming(call_sid()), "CallSid": "CA1"})
    assert (await client.post(VOICE, **bad_sid)).status_code == 400
    assert await redis.dbsize() == 0


async def test_voice_twiml_url_serves_every_number(
    make_settings: Callable[..., Settings], redis: Redis
) -> None:
    settings = make_settings(VOICE_TWIML_URL="https://owner.example.com/twiml")
    async with lifespan_client(create_app(settings), "http://internal") as client:
        response = await client.post(VOICE, **signed(VOICE, incoming(call_sid(), "+15551")))
        assert redirect_of(response) == ("POST", "https://owner.example.com/twiml")
        assert await redis.zcard(settings.queue_name) == 1


async def test_redis_down_still_redirects_and_says_untracked(
    make_settings: Callable[..., Settings], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "callstreams.toml"
    config.write_text(NUMBERS)
    settings = make_settings(
        CALLSTREAMS_CONFIG=str(config), REDIS_URL=f"redis://127.0.0.1:{free_port()}/0"
    )
    async with lifespan_client(create_app(settings), "http://internal") as client:
        response = await client.post(VOICE, **signed(VOICE, incoming(call_sid())))
        assert redirect_of(response)[1] == FLOW
        text = (await client.get("/metrics")).text
        assert 'callstreams_voice_calls_total{outcome="untracked"} 1.0' in text
    assert "call not tracked" in capsys.readouterr().out


async def test_a_hung_redis_still_redirects_within_the_deadline(
    own_redis: RedisServer, make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    config = tmp_path / "callstreams.toml"
    config.write_text(NUMBERS)
    settings = make_settings(CALLSTREAMS_CONFIG=str(config), REDIS_URL=own_redis.url)
    async with lifespan_client(create_app(settings), "http://internal") as client:
        assert (await client.get("/readyz")).status_code == 200
        assert own_redis.process is not None
        own_redis.process.send_signal(signal.SIGSTOP)
        try:
            started = time.monotonic()
            response = await client.post(VOICE, **signed(VOICE, incoming(call_sid())))
            elapsed = time.monotonic() - started
            assert redirect_of(response)[1] == FLOW
            assert elapsed < 10  # the 2 s deadline; Twilio gives up on a Voice URL at 15 s
        finally:
            own_redis.process.send_signal(signal.SIGCONT)
