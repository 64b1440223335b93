"""Twilio's webhooks against a real Redis: claims, ordering, and bad input."""

import asyncio
import signal
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from service.cli.dev import free_port
from service.config import Settings
from service.web.app import create_app
from tests.helpers import (
    ACCOUNT_SID,
    PUBLIC_BASE_URL,
    RedisServer,
    answered,
    call_sid,
    lifespan_client,
    signed,
    stream_sid,
)

pytestmark = pytest.mark.anyio
CALL_STATUS = "/twilio/call-status"
STREAM_STATUS = "/twilio/stream-status"


async def records(client: httpx.AsyncClient, sid: str) -> list[dict[str, Any]]:
    response = await client.get(
        f"/v1/calls/{sid}/streams", headers={"Authorization": "Bearer test-operator-token"}
    )
    streams: list[dict[str, Any]] = response.json()["streams"]
    return streams


async def test_answered_call_claims_its_stream_and_enqueues_one_job(
    client: httpx.AsyncClient, redis: Redis, settings: Settings
) -> None:
    response = await client.post(CALL_STATUS, **signed(CALL_STATUS, answered(call_sid())))
    assert response.status_code == 204
    [record] = await records(client, call_sid())
    assert record["status"] == "pending"
    assert record["desired"] == "started"
    assert record["name"] == "transcription"
    assert record["account_sid"] == ACCOUNT_SID
    assert record["answered_at"] is not None
    assert await redis.zcard(settings.queue_name) == 1


async def test_repeated_and_concurrent_deliveries_enqueue_once(
    client: httpx.AsyncClient, redis: Redis, settings: Settings
) -> None:
    request = signed(CALL_STATUS, answered(call_sid()))
    responses = await asyncio.gather(*(client.post(CALL_STATUS, **request) for _ in range(20)))
    assert {r.status_code for r in responses} == {204}
    assert len(await records(client, call_sid())) == 1
    assert await redis.zcard(settings.queue_name) == 1


async def test_terminal_status_skips_a_start_not_yet_made(client: httpx.AsyncClient) -> None:
    await client.post(CALL_STATUS, **signed(CALL_STATUS, answered(call_sid())))
    response = await client.post(
        CALL_STATUS, **signed(CALL_STATUS, answered(call_sid(), "completed"))
    )
    assert response.status_code == 204
    [record] = await records(client, call_sid())
    assert (record["status"], record["desired"]) == ("skipped", "stopped")
    assert "call ended" in record["error"]["message"]


async def test_answered_after_completed_starts_nothing(
    client: httpx.AsyncClient, redis: Redis, settings: Settings
) -> None:
    await client.post(CALL_STATUS, **signed(CALL_STATUS, answered(call_sid(), "completed")))
    await client.post(CALL_STATUS, **signed(CALL_STATUS, answered(call_sid())))
    [record] = await records(client, call_sid())
    assert record["status"] == "skipped"
    assert await redis.zcard(settings.queue_name) == 0


async def test_other_statuses_are_acknowledged_and_ignored(client: httpx.AsyncClient) -> None:
    for status in ("queued", "initiated", "ringing"):
        response = await client.post(
            CALL_STATUS, **signed(CALL_STATUS, answered(call_sid(), status))
        )
        assert response.status_code == 204
    assert await records(client, call_sid()) == []


def stream_event(event: str, name: str = "transcription", **extra: str) -> dict[str, str]:
    return {
        "AccountSid": ACCOUNT_SID,
        "CallSid": call_sid(),
        "StreamSid": stream_sid(),
        "StreamName": name,
        "StreamEvent": event,
        "Timestamp": "2026-11-24T10:00:00Z",
        **extra,
    }


async def test_stream_events_never_move_a_record_backwards(client: httpx.AsyncClient) -> None:
    await client.post(CALL_STATUS, **signed(CALL_STATUS, answered(call_sid())))
    for event in ("stream-stopped", "stream-started", "stream-started"):
        response = await client.post(STREAM_STATUS, **signed(STREAM_STATUS, stream_event(event)))
        assert response.status_code == 204
    [record] = await records(client, call_sid())
    assert record["status"] == "stopped"
    assert record["sid"] == stream_sid()
    # The answered → started latency counts the first stream-started only.
    metrics = (await client.get("/metrics")).text
    assert "callstreams_answered_to_stream_started_seconds_count 1.0" in metrics


async def test_stream_started_then_error(client: httpx.AsyncClient) -> None:
    await client.post(CALL_STATUS, **signed(CALL_STATUS, answered(call_sid())))
    await client.post(STREAM_STATUS, **signed(STREAM_STATUS, stream_event("stream-started")))
    [record] = await records(client, call_sid())
    assert record["status"] == "in-progress"
    assert record["started_at"] is not None
    error = stream_event("stream-error", StreamError="31921 Stream - WebSocket - Close Error")
    await client.post(STREAM_STATUS, **signed(STREAM_STATUS, error))
    [record] = await records(client, call_sid())
    assert record["status"] == "failed"
    assert record["error"]["message"].startswith("31921")


async def test_stream_event_found_by_sid_when_named_by_sid(client: httpx.AsyncClient) -> None:
    await client.post(CALL_STATUS, **signed(CALL_STATUS, answered(call_sid())))
    await client.post(STREAM_STATUS, **signed(STREAM_STATUS, stream_event("stream-started")))
    by_sid = stream_event("stream-stopped", name=stream_sid())
    await client.post(STREAM_STATUS, **signed(STREAM_STATUS, by_sid))
    [record] = await records(client, call_sid())
    assert record["status"] == "stopped"


BAD_INPUT = [
    pytest.param({"content": b"CallSid=x"}, 415, id="no content type"),
    pytest.param(
        {"content": b"a", "headers": {"Content-Type": "application/json"}}, 415, id="json"
    ),
    pytest.param(
        {"content": b"", "headers": {"Content-Type": "application/x-www-form-urlencoded"}},
        403,
        id="empty and unsigned",
    ),
    pytest.param(
        {
            "content": b"CallSid=" + b"A" * 70_000,
            "headers": {"Content-Type": "application/x-www-form-urlencoded"},
        },
        413,
        id="huge body",
    ),
]


@pytest.mark.parametrize(("request_kwargs", "status"), BAD_INPUT)
async def test_bad_requests_get_a_precise_error_and_store_nothing(
    client: httpx.AsyncClient, redis: Redis, request_kwargs: dict[str, Any], status: int
) -> None:
    response = await client.post(CALL_STATUS, **request_kwargs)
    assert response.status_code == status
    assert set(response.json()) == {"error", "detail"}
    assert await redis.dbsize() == 0


SIGNED_BAD_FIELDS = [
    pytest.param(answered("CA123"), 400, id="bad CallSid"),
    pytest.param(answered(call_sid(), "answered-ish"), 400, id="unknown status"),
    pytest.param({}, 400, id="empty body"),
    pytest.param({**answered(call_sid()), "AccountSid": "AC" + "b" * 32}, 403, id="other account"),
]


@pytest.mark.parametrize(("fields", "status"), SIGNED_BAD_FIELDS)
async def test_signed_bad_fields_are_refused(
    client: httpx.AsyncClient, redis: Redis, fields: dict[str, str], status: int
) -> None:
    response = await client.post(CALL_STATUS, **signed(CALL_STATUS, fields))
    assert response.status_code == status
    assert "error" in response.json()
    assert await redis.dbsize() == 0


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda kw: kw["headers"].pop("X-Twilio-Signature"), id="unsigned"),
        pytest.param(
            lambda kw: kw.update(content=kw["content"].replace(b"inbound", b"outbound")),
            id="changed field",
        ),
        pytest.param(
            lambda kw: kw["headers"].update({"X-Twilio-Signature": "bm9wZQ=="}), id="wrong"
        ),
    ],
)
async def test_signature_is_required(
    client: httpx.AsyncClient, redis: Redis, tamper: Callable[[dict[str, Any]], Any]
) -> None:
    request = signed(CALL_STATUS, answered(call_sid()))
    tamper(request)
    response = await client.post(CALL_STATUS, **request)
    assert response.status_code == 403
    assert await redis.dbsize() == 0


async def test_signature_with_default_port_and_other_token(client: httpx.AsyncClient) -> None:
    with_port = signed(CALL_STATUS, answered(call_sid()), base=PUBLIC_BASE_URL + ":443")
    assert (await client.post(CALL_STATUS, **with_port)).status_code == 204
    other = signed(CALL_STATUS, answered(call_sid(2)), token="another-token")
    assert (await client.post(CALL_STATUS, **other)).status_code == 403


async def test_bad_stream_events_are_refused(client: httpx.AsyncClient, redis: Redis) -> None:
    for fields in (
        stream_event("stream-paused"),
        {**stream_event("stream-started"), "StreamSid": "MZ1"},
    ):
        response = await client.post(STREAM_STATUS, **signed(STREAM_STATUS, fields))
        assert response.status_code == 400
    assert await redis.dbsize() == 0


async def test_redis_unreachable_answers_503(make_settings: Callable[..., Settings]) -> None:
    port = free_port()
    settings = make_settings(REDIS_URL=f"redis://127.0.0.1:{port}/0")
    async with lifespan_client(create_app(settings), "http://internal") as client:
        response = await client.post(CALL_STATUS, **signed(CALL_STATUS, answered(call_sid())))
        assert response.status_code == 503
        assert response.json()["error"] == "redis unavailable"
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert "redis" in ready.json()["detail"]
        assert "127.0.0.1" not in ready.text  # the reason, never the address
        assert str(port) not in ready.text
        assert (await client.get("/healthz")).status_code == 200


async def test_every_request_gets_a_request_id_in_its_logs(
    client: httpx.AsyncClient, capsys: pytest.CaptureFixture[str]
) -> None:
    headers = {"X-Request-Id": "req-123"}
    response = await client.post("/twilio/call-status", content=b"", headers=headers)
    assert response.headers["x-request-id"] == "req-123"
    generated = await client.get("/healthz")
    assert len(generated.headers["x-request-id"]) == 16
    assert "req-123" in capsys.readouterr().out


async def test_a_hung_redis_answers_503_within_the_deadline(
    own_redis: RedisServer, make_settings: Callable[..., Settings]
) -> None:
    """A Redis that accepts connections but never answers: no hang, nothing acknowledged."""
    settings = make_settings(REDIS_URL=own_redis.url)
    async with lifespan_client(create_app(settings), "http://10.0.0.7:8000") as client:
        assert (await client.get("/readyz")).status_code == 200
        assert own_redis.process is not None
        own_redis.process.send_signal(signal.SIGSTOP)
        try:
            response = await client.post(CALL_STATUS, **signed(CALL_STATUS, answered(call_sid())))
            assert response.status_code == 503
            assert response.json()["error"] == "redis unavailable"
            assert (await client.get("/readyz")).status_code == 503
        finally:
            own_redis.process.send_signal(signal.SIGCONT)
        response = await client.post(CALL_STATUS, **signed(CALL_STATUS, answered(call_sid())))
        assert response.status_code == 204
