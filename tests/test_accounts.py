"""Several Twilio accounts: each webhook is checked with its own account's token."""

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest

from service.catalog import load_catalog
from service.config import ConfigError, Settings, load_settings
from service.web.app import create_app
from tests.helpers import (
    ACCOUNT_SID,
    API_TOKEN,
    AUTH_TOKEN,
    answered,
    call_sid,
    lifespan_client,
    signed,
)

pytestmark = pytest.mark.anyio
SECOND_SID, SECOND_TOKEN = "AC" + "b2" * 16, "second-token"
CALL_STATUS = "/twilio/call-status"
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


@pytest.fixture
def two_accounts(tmp_path: Path, make_settings: Callable[..., Settings]) -> Settings:
    token_file = tmp_path / "second-token"
    token_file.write_text(SECOND_TOKEN + "\n")
    config = tmp_path / "callstreams.toml"
    config.write_text(
        f"""
[[accounts]]
sid = "{SECOND_SID}"
auth_token_file = "{token_file}"

[[streams]]
name = "everyone"
url = "wss://asr.example.com/all"

[[streams]]
name = "second-only"
url = "wss://asr.example.com/second"
accounts = ["{SECOND_SID}"]
"""
    )
    return make_settings(CALLSTREAMS_CONFIG=str(config))


@pytest.fixture
async def client(two_accounts: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with lifespan_client(create_app(two_accounts), "http://internal") as c:
        yield c


async def names(client: httpx.AsyncClient, sid: str) -> list[str]:
    streams = (await client.get(f"/v1/calls/{sid}/streams", headers=AUTH)).json()["streams"]
    return sorted(s["name"] for s in streams)


async def test_each_account_signs_with_its_own_token(client: httpx.AsyncClient) -> None:
    first = signed(CALL_STATUS, answered(call_sid(1)))
    assert (await client.post(CALL_STATUS, **first)).status_code == 204
    second_fields = {**answered(call_sid(2)), "AccountSid": SECOND_SID}
    second = signed(CALL_STATUS, second_fields, token=SECOND_TOKEN)
    assert (await client.post(CALL_STATUS, **second)).status_code == 204
    assert await names(client, call_sid(1)) == ["everyone"]
    assert await names(client, call_sid(2)) == ["everyone", "second-only"]
    crossed = signed(CALL_STATUS, second_fields, token=AUTH_TOKEN)
    assert (await client.post(CALL_STATUS, **crossed)).status_code == 403


async def test_unknown_account_is_refused_as_a_bad_signature(client: httpx.AsyncClient) -> None:
    """The answer never tells which accounts exist."""
    fields = {**answered(call_sid(3)), "AccountSid": "AC" + "c3" * 16}
    unknown = await client.post(CALL_STATUS, **signed(CALL_STATUS, fields))
    bad = await client.post(CALL_STATUS, **signed(CALL_STATUS, answered(call_sid(3)), token="x"))
    assert unknown.status_code == bad.status_code == 403
    assert unknown.json() == bad.json() == {
        "error": "invalid signature", "detail": "X-Twilio-Signature does not match",
    }  # fmt: skip


async def test_operator_start_needs_the_account_when_there_are_several(
    client: httpx.AsyncClient,
) -> None:
    path = f"/v1/calls/{call_sid(4)}/streams"
    missing = await client.post(path, json={"profile": "everyone"}, headers=AUTH)
    assert missing.status_code == 400
    ok = await client.post(
        path, json={"profile": "everyone", "account_sid": SECOND_SID}, headers=AUTH
    )
    assert ok.status_code == 202
    assert ok.json()["account_sid"] == SECOND_SID


def test_secrets_from_files_and_bad_accounts(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("from-a-file\n")
    settings = load_settings(
        TWILIO_ACCOUNT_SID=ACCOUNT_SID, TWILIO_AUTH_TOKEN_FILE=str(token),
        PUBLIC_BASE_URL="https://x.example.com", STREAM_URL="wss://x.example.com",
    )  # fmt: skip
    assert settings.auth_token is not None
    assert settings.auth_token.get_secret_value() == "from-a-file"
    with pytest.raises(ConfigError, match="TWILIO_AUTH_TOKEN_FILE: cannot read"):
        load_settings(TWILIO_AUTH_TOKEN_FILE=str(tmp_path / "missing"))
    config = tmp_path / "c.toml"
    config.write_text(
        '[[accounts]]\nsid = "AC1"\nauth_token = "x"\n'
        '[[streams]]\nname = "a"\nurl = "wss://x.example.com"\naccounts = ["AC' + "d" * 32 + '"]\n'
    )
    with pytest.raises(ConfigError) as error:
        load_catalog(
            load_settings(PUBLIC_BASE_URL="https://x.example.com", CALLSTREAMS_CONFIG=str(config))
        )
    assert "accounts[AC1].sid" in str(error.value)
    assert "is not a configured account" in str(error.value)
