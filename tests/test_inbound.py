"""Inbound calls through the voice front door, against the emulator in process: the
call is redirected at once, and its streams start once Twilio's Call resource says it
was answered, whether Twilio refuses or accepts a stream on a ringing call."""

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from service.config import Settings
from service.emulator import EmulatorConfig
from tests.helpers import ACCOUNT_SID, AUTH_TOKEN, signed
from tests.processes import until_async
from tests.stack import RefusedFetches, Stack, running

pytestmark = pytest.mark.anyio
NUMBER = "+15557770001"
FLOW = "https://webhooks.twilio.com/v1/Accounts/AC1/Flows/FW1?from=door&x=<1>"
VOICE = "/twilio/voice"


@pytest.fixture
async def stack(make_settings: Callable[..., Settings], tmp_path: Path) -> AsyncIterator[Stack]:
    config = tmp_path / "callstreams.toml"
    config.write_text(
        f"""
[[streams]]
name = "asr"
url = "wss://asr.example.com/twilio"
[streams.parameters]
caller = "{{From}}"

[[numbers]]
to = "{NUMBER}"
twiml_url = "{FLOW}"
"""
    )
    settings = make_settings(
        CALLSTREAMS_CONFIG=str(config), CALLSTREAMS_ANSWER_WAIT="3s",
        CALLSTREAMS_RECONCILE_AFTER="0",
    )  # fmt: skip
    emulator = EmulatorConfig(accounts={ACCOUNT_SID: AUTH_TOKEN})
    async for stack in running(settings, emulator):
        await stack.twilio.put(
            f"/_emulator/numbers/{NUMBER}",
            json={"voice_url": f"https://streams.example.com{VOICE}",
                  "status_callback": "https://streams.example.com/twilio/call-status"},
        )  # fmt: skip
        yield stack


async def arrive(stack: Stack) -> dict[str, Any]:
    response = await stack.twilio.post("/_emulator/calls/inbound", json={"to": NUMBER})
    assert response.status_code == 201, response.text
    arrival: dict[str, Any] = response.json()
    return arrival


async def settled(stack: Stack, sid: str, within: float = 10) -> dict[str, Any]:
    async def done() -> dict[str, Any] | None:
        records = await stack.streams(sid)
        return records[0] if records and records[0]["status"] != "pending" else None

    record: dict[str, Any] = await until_async(done, within, "the record to settle")
    return record


async def test_an_answered_inbound_call_gets_its_stream_after_the_answer(stack: Stack) -> None:
    async with stack.worker():
        arrival = await arrive(stack)
        sid = arrival["call"]["sid"]
        # Twilio was told to go on to the owner's TwiML, the URL XML-escaped on the way.
        assert arrival["voice"]["status"] == 200
        assert arrival["voice"]["redirect"] == {"url": FLOW, "method": "POST"}
        assert "&amp;x=&lt;1&gt;" in arrival["voice"]["body"]
        # A repeated incoming-call webhook claims nothing twice.
        fields = {"AccountSid": ACCOUNT_SID, "CallSid": sid, "CallStatus": "ringing",
                  "Direction": "inbound", "From": "+15550000001", "To": NUMBER}  # fmt: skip
        again = await stack.web.post(VOICE, **signed(VOICE, fields))
        assert again.status_code == 200
        await asyncio.sleep(1.5)  # ringing: starts are refused, then the call is polled
        [waiting] = await stack.streams(sid)
        assert (waiting["status"], waiting["answered_at"]) == ("pending", None)
        assert await stack.emulator_streams(sid) == []
        await stack.twilio.post(f"/_emulator/calls/{sid}/answer")
        record = await settled(stack, sid)
    assert record["status"] == "in-progress"
    assert record["answered_at"] is not None
    assert record["parameters"] == {"caller": "+15550000001"}
    [stream] = await stack.emulator_streams(sid)
    assert stream["sid"] == record["sid"]
    requests = (await stack.twilio.get("/_emulator/requests")).json()["requests"]
    creates = [r["status"] for r in requests if r["operation"] == "create"]
    assert creates[-1] == 200
    assert set(creates[:-1]) <= {400}  # every create while it rang was refused, then none
    fetches = [r for r in requests if r["operation"] == "fetch"]
    assert 1 <= len(fetches) <= 8  # a few requests a second while it rang, no more
    assert requests.index(fetches[0]) > requests.index(
        next(r for r in requests if r["operation"] == "create")
    )


async def test_a_caller_who_hangs_up_while_ringing_gets_no_stream(stack: Stack) -> None:
    async with stack.worker():
        sid = (await arrive(stack))["call"]["sid"]
        await asyncio.sleep(1)
        await stack.twilio.post(f"/_emulator/calls/{sid}/complete", json={"status": "canceled"})
        record = await settled(stack, sid)
    assert record["status"] == "skipped"
    assert "canceled" in record["error"]["message"]
    assert await stack.emulator_streams(sid) == []


async def test_a_call_never_answered_is_skipped_after_the_answer_wait(stack: Stack) -> None:
    async with stack.worker():
        sid = (await arrive(stack))["call"]["sid"]
        record = await settled(stack, sid, within=15)
    assert record["status"] == "skipped"
    assert "not answered within 3s" in record["error"]["message"]
    assert await stack.emulator_streams(sid) == []
    requests = (await stack.twilio.get("/_emulator/requests")).json()["requests"]
    assert sum(r["operation"] == "create" for r in requests) == 1  # refused once, then polled


async def test_a_refused_fetch_is_asked_again_not_taken_for_an_unknown_call(
    stack: Stack,
) -> None:
    refusing = RefusedFetches(stack.transport)
    async with stack.worker(transport=refusing):
        sid = (await arrive(stack))["call"]["sid"]
        record = await settled(stack, sid, within=15)
    assert record["status"] == "skipped"
    assert "not answered within 3s" in record["error"]["message"]  # not "does not know"
    assert refusing.refused >= 2


async def test_where_twilio_accepts_a_ringing_create_the_stream_waits_for_the_answer(
    stack: Stack,
) -> None:
    await stack.twilio.put("/_emulator/config", json={"ringing_create": "accept"})
    async with stack.worker():
        sid = (await arrive(stack))["call"]["sid"]
        record = await settled(stack, sid)
        assert record["status"] == "in-progress"
        [stream] = await stack.emulator_streams(sid)
        assert stream["started"] is False
        await stack.twilio.post(f"/_emulator/calls/{sid}/answer")

        async def started() -> bool:
            [stream] = await stack.emulator_streams(sid)
            return bool(stream["started"])

        await until_async(started, 10, "stream-started at the answer")
    requests = (await stack.twilio.get("/_emulator/requests")).json()["requests"]
    assert [r["operation"] for r in requests] == ["create"]  # nothing polled


async def test_an_answered_callback_for_a_front_door_call_also_counts(stack: Stack) -> None:
    """Where the owner's TwiML sends `answered` to us too, the wait ends at once."""
    async with stack.worker():
        sid = (await arrive(stack))["call"]["sid"]
        await asyncio.sleep(1)
        await stack.twilio.post(f"/_emulator/calls/{sid}/answer")
        await stack.answer(sid, To=NUMBER)
        record = await settled(stack, sid)
    assert record["status"] == "in-progress"
    assert record["answered_at"] is not None
