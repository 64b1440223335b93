"""The worker against the Twilio emulator (in process) and a real Redis."""

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest

from service.config import Settings
from service.emulator import EmulatorConfig
from tests.helpers import (
    ACCOUNT_SID,
    AUTH_TOKEN,
)
from tests.stack import AUTH, Stack, running

pytestmark = pytest.mark.anyio
API_KEY, API_SECRET = "SK" + "5" * 32, "key-secret"


@pytest.fixture
async def stack(make_settings: Callable[..., Settings]) -> AsyncIterator[Stack]:
    config = EmulatorConfig(
        accounts={ACCOUNT_SID: AUTH_TOKEN}, api_keys={API_KEY: (ACCOUNT_SID, API_SECRET)}
    )
    async for stack in running(make_settings(CALLSTREAMS_RETRY_MAX_ATTEMPTS="3"), config):
        yield stack


async def test_answered_call_gets_its_stream(stack: Stack) -> None:
    sid = await stack.call()
    await stack.answer(sid)
    await stack.work()
    [record] = await stack.streams(sid)
    [stream] = await stack.emulator_streams(sid)
    assert record["status"] == "in-progress"
    assert record["sid"] == stream["sid"]
    assert record["sid"].startswith("MZ")
    assert record["attempts"] == 1
    assert record["uri"].endswith(f"/Streams/{record['sid']}.json")
    assert record["started_at"] is not None
    [create] = await stack.creates()
    assert create["form"] == {
        "Url": stack.settings.stream_url,
        "Name": "transcription",
        "Track": "inbound_track",
        "StatusCallback": "https://streams.example.com/twilio/stream-status",
        "StatusCallbackMethod": "POST",
    }
    assert create["auth_user"] == ACCOUNT_SID


async def test_stop_by_name_uses_the_sid(stack: Stack) -> None:
    sid = await stack.call()
    await stack.answer(sid)
    await stack.work()
    response = await stack.web.post(f"/v1/calls/{sid}/streams/transcription/stop", headers=AUTH)
    assert response.status_code == 202
    await stack.work()
    [record] = await stack.streams(sid)
    [stream] = await stack.emulator_streams(sid)
    assert (record["status"], stream["status"]) == ("stopped", "stopped")
    assert record["attempts"] == 2
    requests = (await stack.twilio.get("/_emulator/requests")).json()["requests"]
    assert requests[-1]["path"].endswith(f"/Streams/{record['sid']}.json")
    assert requests[-1]["form"] == {"Status": "stopped"}


async def test_stop_before_the_worker_ran_never_creates(stack: Stack) -> None:
    sid = await stack.call()
    await stack.answer(sid)
    await stack.web.post(f"/v1/calls/{sid}/streams/transcription/stop", headers=AUTH)
    await stack.work()
    [record] = await stack.streams(sid)
    assert record["status"] == "skipped"
    assert await stack.creates() == []


async def test_call_not_in_progress_is_skipped_with_twilios_error(stack: Stack) -> None:
    sid = await stack.call(status="ringing")
    await stack.answer(sid)
    await stack.work()
    [record] = await stack.streams(sid)
    assert record["status"] == "skipped"
    assert record["error"]["code"] == 21220
    assert record["attempts"] == 1


async def test_unknown_call_is_skipped(stack: Stack) -> None:
    sid = "CA" + "e" * 32
    await stack.answer(sid)
    await stack.work()
    [record] = await stack.streams(sid)
    assert (record["status"], record["error"]["code"]) == ("skipped", 20404)


async def test_name_already_taken_counts_as_started_and_stops_by_name(stack: Stack) -> None:
    sid = await stack.call()
    response = await stack.twilio.post(
        f"/2010-04-01/Accounts/{ACCOUNT_SID}/Calls/{sid}/Streams.json",
        data={"Url": "wss://x.example.com", "Name": "transcription"},
        auth=(ACCOUNT_SID, AUTH_TOKEN),
    )
    assert response.status_code == 200
    await stack.answer(sid)
    await stack.work()
    [record] = await stack.streams(sid)
    assert (record["status"], record["sid"], record["error"]) == ("in-progress", None, None)
    await stack.web.post(f"/v1/calls/{sid}/streams/transcription/stop", headers=AUTH)
    await stack.work()
    [record] = await stack.streams(sid)
    [stream] = await stack.emulator_streams(sid)
    assert (record["status"], stream["status"]) == ("stopped", "stopped")


class Flaky(httpx.AsyncBaseTransport):
    """Fails chosen requests the way networks and Twilio do, then passes the rest on."""

    def __init__(self, inner: httpx.AsyncBaseTransport, faults: list[str]) -> None:
        self.inner = inner
        self.faults = faults

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        fault = self.faults.pop(0) if self.faults else None
        if fault == "429":
            body = {"code": 20429, "message": "Too Many Requests", "status": 429}
            return httpx.Response(429, json=body, headers={"Retry-After": "0"})
        if fault == "connect":
            raise httpx.ConnectError("refused", request=request)
        response = await self.inner.handle_async_request(request)
        if fault == "timeout-after-send":
            raise httpx.ReadTimeout("timed out", request=request)
        return response


async def test_throttled_then_refused_connection_is_retried(stack: Stack) -> None:
    sid = await stack.call()
    await stack.answer(sid)
    await stack.work(Flaky(stack.transport, ["429", "connect"]))
    [record] = await stack.streams(sid)
    assert (record["status"], record["attempts"], record["error"]) == ("in-progress", 3, None)
    assert len(await stack.creates()) == 1


async def test_timeout_after_the_create_was_sent_makes_no_second_stream(stack: Stack) -> None:
    sid = await stack.call()
    await stack.answer(sid)
    await stack.work(Flaky(stack.transport, ["timeout-after-send"]))
    [record] = await stack.streams(sid)
    # Either the stream-started callback told the record first, or the retry's
    # create met the taken name: never a second stream.
    assert record["status"] == "in-progress"
    assert record["attempts"] in (1, 2)
    assert len(await stack.emulator_streams(sid)) == 1


async def test_gives_up_after_the_attempt_cap(stack: Stack) -> None:
    sid = await stack.call()
    await stack.answer(sid)
    await stack.work(Flaky(stack.transport, ["429", "429", "429", "429"]))
    [record] = await stack.streams(sid)
    assert (record["status"], record["attempts"]) == ("failed", 3)
    assert record["error"]["code"] == 20429
    assert await stack.creates() == []


async def test_api_key_auth(make_settings: Callable[..., Settings], stack: Stack) -> None:
    stack.settings = make_settings(TWILIO_API_KEY=API_KEY, TWILIO_API_SECRET=API_SECRET)
    sid = await stack.call()
    await stack.answer(sid)
    await stack.work()
    [create] = await stack.creates()
    assert create["auth_user"] == API_KEY
    assert (await stack.streams(sid))[0]["status"] == "in-progress"


async def test_two_workers_many_calls_one_stream_each(stack: Stack) -> None:
    sids = [await stack.call() for _ in range(30)]
    for sid in sids:
        await stack.answer(sid)
        await stack.answer(sid)
    await asyncio.gather(stack.work(), stack.work())
    creates = await stack.creates()
    assert sorted(c["path"] for c in creates) == sorted(
        f"/2010-04-01/Accounts/{ACCOUNT_SID}/Calls/{sid}/Streams.json" for sid in sids
    )
    for sid in sids:
        assert [s["status"] for s in await stack.streams(sid)] == ["in-progress"]


async def test_worker_metrics(stack: Stack) -> None:
    sid = await stack.call()
    await stack.answer(sid)
    await stack.work()
    from prometheus_client import generate_latest

    text = generate_latest(stack.metrics.registry).decode()
    assert 'callstreams_twilio_requests_total{code="",operation="create",outcome="ok"} 1.0' in text
    assert "callstreams_answered_to_create_sent_seconds_count 1.0" in text


async def test_per_account_concurrency_cap_is_never_exceeded(
    make_settings: Callable[..., Settings],
) -> None:
    config = EmulatorConfig(accounts={ACCOUNT_SID: AUTH_TOKEN}, latency=0.02)
    settings = make_settings(CALLSTREAMS_ACCOUNT_CONCURRENCY="3")
    async for stack in running(settings, config):
        sids = [await stack.call() for _ in range(24)]
        for sid in sids:
            await stack.answer(sid)
        await stack.work()
        stats = (await stack.twilio.get("/_emulator/stats")).json()
        assert stats["creates"] == 24
        assert stats["max_in_flight"][ACCOUNT_SID] == 3
        for sid in sids:
            assert [s["status"] for s in await stack.streams(sid)] == ["in-progress"]


SECOND_SID, SECOND_TOKEN = "AC" + "b2" * 16, "second-token"
PROFILES = f"""
[[accounts]]
sid = "{SECOND_SID}"
auth_token = "{SECOND_TOKEN}"

[[streams]]
name = "transcription"
url = "wss://asr.example.com/t"
[streams.parameters]
caller = "{{From}}"
tenant = "acme"
[streams.match]
Direction = "inbound"

[[streams]]
name = "agent"
url = "wss://agent.example.com/a"
track = "both_tracks"
accounts = ["{ACCOUNT_SID}"]
[streams.parameters]
call = "{{CallSid}}"
[streams.match]
To = ["+15550002222", "+15550003333"]
"""


@pytest.fixture
async def profiled(make_settings: Callable[..., Settings], tmp_path: Path) -> AsyncIterator[Stack]:
    config = tmp_path / "callstreams.toml"
    config.write_text(PROFILES)
    settings = make_settings(CALLSTREAMS_CONFIG=str(config))
    accounts = {ACCOUNT_SID: AUTH_TOKEN, SECOND_SID: SECOND_TOKEN}
    async for stack in running(settings, EmulatorConfig(accounts=accounts)):
        yield stack


async def test_two_profiles_match_one_call_with_templated_parameters(profiled: Stack) -> None:
    sid = await profiled.call()
    await profiled.answer(sid)
    await profiled.work()
    streams = {s["name"]: s for s in await profiled.emulator_streams(sid)}
    assert streams["transcription"]["parameters"] == {"caller": "+15550001111", "tenant": "acme"}
    assert streams["agent"]["parameters"] == {"call": sid}
    assert streams["agent"]["track"] == "both_tracks"
    records = await profiled.streams(sid)
    assert sorted((r["name"], r["status"]) for r in records) == [
        ("agent", "in-progress"), ("transcription", "in-progress"),
    ]  # fmt: skip
    assert {c["auth_user"] for c in await profiled.creates()} == {ACCOUNT_SID}


async def test_a_call_no_profile_matches_gets_no_stream(profiled: Stack) -> None:
    sid = await profiled.call()
    await profiled.answer(sid, Direction="outbound-api", To="+15559999999")
    await profiled.work()
    assert await profiled.streams(sid) == []
    assert await profiled.creates() == []


async def test_each_account_calls_twilio_with_its_own_credentials(profiled: Stack) -> None:
    first = await profiled.call()
    second = await profiled.call(account_sid=SECOND_SID)
    await profiled.answer(first)
    await profiled.answer(second, token=SECOND_TOKEN, AccountSid=SECOND_SID)
    await profiled.work()
    by_call = {c["path"].split("/")[5]: c for c in await profiled.creates()}
    assert by_call[second]["auth_user"] == SECOND_SID
    assert by_call[second]["path"].startswith(f"/2010-04-01/Accounts/{SECOND_SID}/")
    assert {r["name"] for r in await profiled.streams(second)} == {"transcription"}
    assert by_call[first]["auth_user"] == ACCOUNT_SID
    assert all(r["status"] == "in-progress" for r in await profiled.streams(second))
