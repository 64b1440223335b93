"""The operator API: auth, reading, starting and stopping streams by name."""

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from service.config import Settings
from service.record import StreamRecord
from service.web import api
from service.web.app import create_app
from tests.helpers import API_TOKEN, STREAM_URL, answered, call_sid, lifespan_client, signed

pytestmark = pytest.mark.anyio
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
STREAMS = f"/v1/calls/{call_sid()}/streams"


async def test_disabled_without_a_token(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(CALLSTREAMS_API_TOKEN=None)
    async with lifespan_client(create_app(settings), "http://internal") as client:
        response = await client.get(STREAMS, headers=AUTH)
        assert response.status_code == 503
        assert "CALLSTREAMS_API_TOKEN" in response.json()["detail"]


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": "Basic abc"}, 401),
        ({"Authorization": "Bearer wrong"}, 403),
        ({"Authorization": f"Bearer {API_TOKEN}x"}, 403),
    ],
)
async def test_bearer_token_is_required(
    client: httpx.AsyncClient, headers: dict[str, str], status: int
) -> None:
    response = await client.get(STREAMS, headers=headers)
    assert response.status_code == status
    assert API_TOKEN not in response.text


async def test_start_by_profile_then_conflict(
    client: httpx.AsyncClient, redis: Redis, settings: Settings
) -> None:
    response = await client.post(STREAMS, json={"profile": "transcription"}, headers=AUTH)
    assert response.status_code == 202
    record = response.json()
    assert (record["name"], record["status"], record["url"]) == (
        "transcription", "pending", STREAM_URL,
    )  # fmt: skip
    assert await redis.zcard(settings.queue_name) == 1
    again = await client.post(STREAMS, json={"profile": "transcription"}, headers=AUTH)
    assert again.status_code == 409
    assert again.json()["record"]["name"] == "transcription"
    assert await redis.zcard(settings.queue_name) == 1


async def test_start_inline_and_read_back(client: httpx.AsyncClient) -> None:
    body = {
        "name": "agent",
        "url": "wss://agent.example.com/ws",
        "track": "both_tracks",
        "parameters": {"call": "{CallSid}", "tenant": "acme"},
    }
    response = await client.post(STREAMS, json=body, headers=AUTH)
    assert response.status_code == 202
    assert response.json()["parameters"] == {"call": call_sid(), "tenant": "acme"}
    one = await client.get(f"{STREAMS}/agent", headers=AUTH)
    assert one.status_code == 200
    assert one.json()["track"] == "both_tracks"
    listed = (await client.get(STREAMS, headers=AUTH)).json()
    assert [s["name"] for s in listed["streams"]] == ["agent"]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"profile": "nope"}, 404),
        ({"name": "x", "url": "https://not-wss.example.com"}, 400),
        ({"name": "x", "url": "wss://a.example.com/?q=1"}, 400),
        ({"name": "bad name", "url": "wss://a.example.com"}, 400),
        ({"name": "x", "url": "wss://a.example.com", "track": "all"}, 400),
        ({"name": "x", "url": "wss://a.example.com", "parameters": {"a": "{Nope}"}}, 400),
        ([1, 2], 400),
    ],
)
async def test_bad_start_bodies(
    client: httpx.AsyncClient, redis: Redis, body: Any, status: int
) -> None:
    response = await client.post(STREAMS, json=body, headers=AUTH)
    assert response.status_code == status
    assert "error" in response.json()
    assert await redis.dbsize() == 0


async def test_start_needs_json(client: httpx.AsyncClient) -> None:
    response = await client.post(STREAMS, content=b"profile=x", headers=AUTH)
    assert response.status_code == 415
    bad = await client.post(
        STREAMS, content=b"{", headers={**AUTH, "Content-Type": "application/json"}
    )
    assert bad.status_code == 400


async def test_bad_call_sid_and_unknown_names(client: httpx.AsyncClient) -> None:
    assert (await client.get("/v1/calls/CA123/streams", headers=AUTH)).status_code == 400
    assert (await client.get(f"{STREAMS}/nope", headers=AUTH)).status_code == 404
    assert (await client.post(f"{STREAMS}/nope/stop", headers=AUTH)).status_code == 404


async def test_stop_before_the_start_was_made_cancels_it(client: httpx.AsyncClient) -> None:
    path = "/twilio/call-status"
    await client.post(path, **signed(path, answered(call_sid())))
    response = await client.post(f"{STREAMS}/transcription/stop", headers=AUTH)
    assert response.status_code == 202
    assert (response.json()["status"], response.json()["desired"]) == ("skipped", "stopped")


async def test_unknown_paths_and_methods_answer_json(client: httpx.AsyncClient) -> None:
    missing = await client.get("/nope")
    assert missing.status_code == 404
    assert missing.json()["error"]
    wrong = await client.get("/twilio/call-status")
    assert wrong.status_code == 405
    assert wrong.json()["error"]


async def test_openapi_describes_the_operator_api(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    assert document["openapi"].startswith("3.")
    served = {
        route.path.replace("{call_sid}", "{CallSid}")
        for route in api.routes
        if route.path.startswith("/v1/")
    }
    assert set(document["paths"]) == served
    stream = document["components"]["schemas"]["Stream"]["properties"]
    assert set(stream) == set(StreamRecord.__annotations__)


async def test_stop_every_stream_of_a_call(client: httpx.AsyncClient) -> None:
    sid = call_sid(21)
    await client.post("/twilio/call-status", **signed("/twilio/call-status", answered(sid)))
    body = {"name": "extra", "url": "wss://b.example.com/x"}
    await client.post(f"/v1/calls/{sid}/streams", json=body, headers=AUTH)
    response = await client.post(f"/v1/calls/{sid}/stop", headers=AUTH)
    assert response.status_code == 202
    records = response.json()["streams"]
    assert sorted(r["name"] for r in records) == ["extra", "transcription"]
    assert {(r["desired"], r["status"]) for r in records} == {("stopped", "skipped")}
    again = await client.post(f"/v1/calls/{sid}/stop", headers=AUTH)
    assert again.json()["streams"] == records
    missing = await client.post(f"/v1/calls/{call_sid(22)}/stop", headers=AUTH)
    assert missing.status_code == 404


async def test_list_an_accounts_calls_newest_first(client: httpx.AsyncClient) -> None:
    first, second = call_sid(31), call_sid(32)
    for sid in (first, second):
        await client.post("/twilio/call-status", **signed("/twilio/call-status", answered(sid)))
    ended = answered(first, status="completed")
    await client.post("/twilio/call-status", **signed("/twilio/call-status", ended))
    response = await client.get("/v1/calls", params={"limit": 2}, headers=AUTH)
    assert response.status_code == 200
    calls = response.json()["calls"]
    assert [c["call_sid"] for c in calls] == [second, first]
    assert [c["ended"] for c in calls] == [None, "completed"]
    assert calls[1]["streams"][0]["status"] == "skipped"
    for bad in ({"limit": "0"}, {"limit": "x"}, {"account_sid": "AC0"}):
        assert (await client.get("/v1/calls", params=bad, headers=AUTH)).status_code == 400
    unknown = {"account_sid": "AC" + "0" * 32}  # well-formed: no such account
    assert (await client.get("/v1/calls", params=unknown, headers=AUTH)).status_code == 404


async def test_metrics_are_exposed(client: httpx.AsyncClient) -> None:
    path = "/twilio/call-status"
    await client.post(path, **signed(path, answered(call_sid())))
    text = (await client.get("/metrics")).text
    assert 'callstreams_webhooks_total{kind="call-status",status="in-progress"} 1.0' in text
    assert call_sid() not in text


@pytest.mark.parametrize(
    "body",
    [
        b'{"profile": 1}',
        b'{"profile": null}',
        b'{"profile": "transcription", "name": 5}',
        b'{"name": "x", "url": ["wss://a.example.com/x"]}',
        b'{"name": "x", "url": "wss://a.example.com/x", "parameters": {"a": 1}}',
        b'{"name": "x", "url": "wss://a.example.com/x", "parameters": []}',
        b'{"name": "x", "url": "wss://a.example.com/x", "track": null}',
        b'{"name": "x", "url": "wss://a.example.com/x", "account_sid": 7}',
        b'{"name": {"$gt": ""}, "url": "wss://a.example.com/x"}',
        b"null",
        b'"profile"',
        b"3",
        b"[" * 60_000,
        b'{"a":' * 10_000 + b"1" + b"}" * 10_000,
        b'{"name": "x", "url": "wss://a.example.com/\\ud800"}',
        b"\xff\xfe{}",
    ],
)
async def test_malformed_start_bodies_are_400(
    client: httpx.AsyncClient, redis: Redis, body: bytes
) -> None:
    response = await client.post(
        STREAMS, content=body, headers={**AUTH, "Content-Type": "application/json"}
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"] in ("invalid field", "malformed JSON")
    assert await redis.dbsize() == 0


@pytest.mark.parametrize("limit", ["²", "٣", "1e3", "-1", " 5", "5.0", "0x10", "", "501"])
async def test_bad_limits_are_400(client: httpx.AsyncClient, limit: str) -> None:
    response = await client.get("/v1/calls", params={"limit": limit}, headers=AUTH)
    assert response.status_code == 400
    assert response.json()["detail"][0]["field"] == "limit"


async def test_names_that_are_not_stream_names_are_400(client: httpx.AsyncClient) -> None:
    path = "/twilio/call-status"
    await client.post(path, **signed(path, answered(call_sid(), "completed")))
    for name in ("@ended", "@account", "a" * 65, "a b"):
        for method, tail in (("GET", ""), ("POST", "/stop")):
            response = await client.request(method, f"{STREAMS}/{name}{tail}", headers=AUTH)
            assert response.status_code == 400, (method, name)


async def test_a_trailing_slash_is_404_not_a_redirect(client: httpx.AsyncClient) -> None:
    for path in ("/twilio/call-status/", "/v1/calls/", "/healthz/"):
        response = await client.post(path, headers={"Host": "evil.example.com"})
        assert response.status_code in (404, 405)
        assert "location" not in response.headers
        assert response.json()["error"]


async def test_a_profile_started_under_another_name_keeps_its_profile(
    client: httpx.AsyncClient,
) -> None:
    body = {"profile": "transcription", "name": "second-pass"}
    response = await client.post(STREAMS, json=body, headers=AUTH)
    assert response.status_code == 202
    record = response.json()
    assert (record["name"], record["profile"]) == ("second-pass", "transcription")
