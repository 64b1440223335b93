"""Who may touch what, with two accounts: a webhook signed by one tenant cannot touch
another tenant's call, and an account's operator token reaches its own calls only."""

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from service.config import Settings
from service.emulator import EmulatorConfig
from tests.helpers import ACCOUNT_SID, API_TOKEN, AUTH_TOKEN, answered, signed
from tests.stack import Stack, running

pytestmark = pytest.mark.anyio
B_SID, B_TOKEN = "AC" + "b2" * 16, "tenant-b-auth-token"
A_OPERATOR, B_OPERATOR = "tenant-a-operator-token", "tenant-b-operator-token"
CALL_STATUS, STREAM_STATUS, VOICE = "/twilio/call-status", "/twilio/stream-status", "/twilio/voice"
ADMIN = {"Authorization": f"Bearer {API_TOKEN}"}
TENANTS = {ACCOUNT_SID: AUTH_TOKEN, B_SID: B_TOKEN}


@pytest.fixture
async def stack(make_settings: Callable[..., Settings], tmp_path: Path) -> AsyncIterator[Stack]:
    config = tmp_path / "callstreams.toml"
    config.write_text(
        f"""
[[accounts]]
sid = "{ACCOUNT_SID}"
auth_token = "{AUTH_TOKEN}"
api_token = "{A_OPERATOR}"

[[accounts]]
sid = "{B_SID}"
auth_token = "{B_TOKEN}"
api_token = "{B_OPERATOR}"

[[streams]]
name = "asr"
url = "wss://asr.example.com/twilio"
restart = {{ max = 3, backoff = "0s" }}

[[numbers]]
to = "*"
twiml_url = "https://owner.example.com/twiml"
"""
    )
    settings = make_settings(
        CALLSTREAMS_CONFIG=str(config), TWILIO_ACCOUNT_SID=None, TWILIO_AUTH_TOKEN=None
    )
    async for stack in running(settings, EmulatorConfig(accounts=dict(TENANTS))):
        yield stack


async def _live_call(stack: Stack, account: str) -> tuple[str, str]:
    """A call of `account` whose stream runs at Twilio: its SID and the stream's."""
    sid = await stack.call(account_sid=account)
    await stack.answer(sid, token=TENANTS[account], AccountSid=account)
    await stack.work()
    [stream] = await stack.emulator_streams(sid)
    assert stream["status"] == "in-progress"
    return sid, str(stream["sid"])


async def _running_at_twilio(stack: Stack, sid: str) -> int:
    return sum(s["status"] == "in-progress" for s in await stack.emulator_streams(sid))


@pytest.mark.parametrize(("victim", "attacker"), [(B_SID, ACCOUNT_SID), (ACCOUNT_SID, B_SID)])
async def test_a_tenant_cannot_end_or_restart_another_tenants_call(
    stack: Stack, victim: str, attacker: str
) -> None:
    sid, stream_sid = await _live_call(stack, victim)
    token = TENANTS[attacker]  # the attacker's own, valid credentials
    forged = [
        (CALL_STATUS, {**answered(sid, "completed"), "AccountSid": attacker}),
        (CALL_STATUS, {**answered(sid), "AccountSid": attacker}),
        (VOICE, {**answered(sid, "ringing"), "AccountSid": attacker}),
        (STREAM_STATUS, {
            "AccountSid": attacker, "CallSid": sid, "StreamSid": stream_sid, "StreamName": "asr",
            "StreamEvent": "stream-error", "StreamError": "31921 close error",
        }),
        (STREAM_STATUS, {
            "AccountSid": attacker, "CallSid": sid, "StreamSid": stream_sid, "StreamName": "asr",
            "StreamEvent": "stream-stopped",
        }),
    ]  # fmt: skip
    for path, fields in forged:
        response = await stack.web.post(path, **signed(path, fields, token=token))
        assert response.status_code == 403, (path, fields)
        assert response.json()["error"] == "forbidden"
    await stack.work()
    [record] = await stack.streams(sid)
    assert (record["name"], record["status"], record["desired"]) == (
        "asr",
        "in-progress",
        "started",
    )
    assert await _running_at_twilio(stack, sid) == 1  # no second stream, and the first runs


async def test_a_stream_callback_with_another_streams_sid_changes_nothing(stack: Stack) -> None:
    sid, stream_sid = await _live_call(stack, ACCOUNT_SID)
    other = "MZ" + "9" * 32
    fields = {
        "AccountSid": ACCOUNT_SID, "CallSid": sid, "StreamSid": other, "StreamName": "asr",
        "StreamEvent": "stream-error", "StreamError": "forged",
    }  # fmt: skip
    response = await stack.web.post(STREAM_STATUS, **signed(STREAM_STATUS, fields))
    assert response.status_code == 403
    [record] = await stack.streams(sid)
    assert (record["status"], record["sid"]) == ("in-progress", stream_sid)
    await stack.work()
    assert await _running_at_twilio(stack, sid) == 1


async def test_the_rightful_tenant_still_ends_its_call(stack: Stack) -> None:
    sid, _ = await _live_call(stack, B_SID)
    ended = {**answered(sid, "completed"), "AccountSid": B_SID}
    response = await stack.web.post(CALL_STATUS, **signed(CALL_STATUS, ended, token=B_TOKEN))
    assert response.status_code == 204
    [record] = await stack.streams(sid)
    assert record["status"] == "stopped"


async def test_an_account_token_reaches_its_own_calls_only(stack: Stack) -> None:
    a_call, _ = await _live_call(stack, ACCOUNT_SID)
    b_call, _ = await _live_call(stack, B_SID)
    a, b = ({"Authorization": f"Bearer {t}"} for t in (A_OPERATOR, B_OPERATOR))
    web = stack.web

    async def status(method: str, path: str, headers: dict[str, str], **kw: object) -> int:
        return (await web.request(method, path, headers=headers, **kw)).status_code  # type: ignore[arg-type]

    assert (await web.get(f"/v1/calls/{a_call}/streams", headers=a)).json()["streams"]
    # Another account's call is unknown to the token: as if it did not exist.
    assert (await web.get(f"/v1/calls/{b_call}/streams", headers=a)).json() == {"streams": []}
    assert await status("GET", f"/v1/calls/{b_call}/streams/asr", a) == 404
    assert await status("POST", f"/v1/calls/{b_call}/streams/asr/stop", a) == 404
    assert await status("POST", f"/v1/calls/{b_call}/stop", a) == 404
    body = {"name": "extra", "url": "wss://x.example.com/a"}
    assert await status("POST", f"/v1/calls/{b_call}/streams", a, json=body) == 404
    assert await status("POST", f"/v1/calls/{b_call}/streams", a,
                        json={**body, "account_sid": B_SID}) == 404  # fmt: skip
    assert await status("GET", "/v1/calls", a, params={"account_sid": B_SID}) == 404
    listed = (await web.get("/v1/calls", headers=a)).json()["calls"]
    assert [c["call_sid"] for c in listed] == [a_call]
    # Nothing of B's call changed, and B's own token and the all-accounts token reach it.
    assert await status("GET", f"/v1/calls/{b_call}/streams/asr", b) == 200
    assert await status("GET", f"/v1/calls/{b_call}/streams/asr", ADMIN) == 200
    assert await status("POST", f"/v1/calls/{b_call}/streams/asr/stop", b) == 202
    assert await status("GET", f"/v1/calls/{a_call}/streams/asr", b) == 404
    # The all-accounts token may not start a stream on B's call in A's name.
    wrong = await web.post(
        f"/v1/calls/{b_call}/streams", json={**body, "account_sid": ACCOUNT_SID}, headers=ADMIN
    )
    assert wrong.status_code == 400


async def test_an_account_token_is_checked_like_the_main_one(stack: Stack) -> None:
    sid, _ = await _live_call(stack, ACCOUNT_SID)
    for token in (A_OPERATOR + "x", A_OPERATOR[:-1], B_OPERATOR.upper()):
        response = await stack.web.get(
            f"/v1/calls/{sid}/streams", headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code == 403
        assert token not in response.text
