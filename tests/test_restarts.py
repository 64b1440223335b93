"""Restart-on-error policies: a stream that fails starts again, up to its limit."""

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from service.config import Settings
from service.web.app import create_app
from tests.helpers import ACCOUNT_SID, API_TOKEN, answered, call_sid, lifespan_client, signed

pytestmark = pytest.mark.anyio
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
CALL_STATUS, STREAM_STATUS = "/twilio/call-status", "/twilio/stream-status"
RESTARTING = """
[[streams]]
name = "asr"
url = "wss://asr.example.com/twilio"
restart = { max = 2, backoff = "0s" }
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "callstreams.toml"
    path.write_text(RESTARTING)
    return path


@pytest.fixture
def app(make_settings: Callable[..., Settings], config: Path) -> Starlette:
    return create_app(make_settings(CALLSTREAMS_CONFIG=str(config)))


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with lifespan_client(app, "http://internal") as c:
        yield c


async def streams(client: httpx.AsyncClient, n: int = 1) -> dict[str, dict[str, Any]]:
    response = await client.get(f"/v1/calls/{call_sid(n)}/streams", headers=AUTH)
    return {s["name"]: s for s in response.json()["streams"]}


async def event(client: httpx.AsyncClient, name: str, kind: str, n: int = 1) -> None:
    fields = {
        "AccountSid": ACCOUNT_SID, "CallSid": call_sid(n),
        "StreamSid": f"MZ{hash(name) & 0xFFFF:032x}", "StreamName": name,
        "StreamEvent": kind, "StreamError": "31921 close error",
    }  # fmt: skip
    response = await client.post(STREAM_STATUS, **signed(STREAM_STATUS, fields))
    assert response.status_code == 204


async def test_stream_error_restarts_up_to_the_limit(client: httpx.AsyncClient) -> None:
    await client.post(CALL_STATUS, **signed(CALL_STATUS, answered(call_sid())))
    await event(client, "asr", "stream-started")
    await event(client, "asr", "stream-error")
    await event(client, "asr", "stream-error")  # a repeated delivery restarts nothing more
    records = await streams(client)
    assert sorted(records) == ["asr", "asr-r1"]
    assert (records["asr-r1"]["restart_of"], records["asr-r1"]["restart"]) == ("asr", 1)
    assert records["asr-r1"]["status"] == "pending"
    await event(client, "asr-r1", "stream-started")
    await event(client, "asr-r1", "stream-error")
    await event(client, "asr-r2", "stream-started")
    await event(client, "asr-r2", "stream-error")
    records = await streams(client)
    assert sorted(records) == ["asr", "asr-r1", "asr-r2"]
    assert [records[n]["status"] for n in sorted(records)] == ["failed"] * 3


async def test_no_restart_after_hang_up_or_operator_stop(client: httpx.AsyncClient) -> None:
    await client.post(CALL_STATUS, **signed(CALL_STATUS, answered(call_sid(1))))
    await client.post(CALL_STATUS, **signed(CALL_STATUS, answered(call_sid(1), "completed")))
    await event(client, "asr", "stream-error", n=1)
    assert sorted(await streams(client, 1)) == ["asr"]

    await client.post(CALL_STATUS, **signed(CALL_STATUS, answered(call_sid(2))))
    await event(client, "asr", "stream-started", n=2)
    await client.post(f"/v1/calls/{call_sid(2)}/streams/asr/stop", headers=AUTH)
    await event(client, "asr", "stream-error", n=2)
    assert sorted(await streams(client, 2)) == ["asr"]
