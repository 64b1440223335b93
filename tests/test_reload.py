"""Hot reload of the configuration file: profiles swap whole, under load, and a bad
file keeps the running ones."""

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from service.config import Settings
from service.reload import reload
from service.web.app import create_app
from tests.helpers import API_TOKEN, answered, call_sid, lifespan_client, signed

pytestmark = pytest.mark.anyio
CALL_STATUS = "/twilio/call-status"
PROFILE = '[[streams]]\nname = "{name}"\nurl = "wss://asr.example.com/twilio"\n'


async def test_reload_swaps_profiles_under_load(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    config = anyio.Path(tmp_path / "callstreams.toml")
    await config.write_text(PROFILE.format(name="asr"))
    app = create_app(make_settings(CALLSTREAMS_CONFIG=str(config)))
    async with contextlib.AsyncExitStack() as stack:
        client = await stack.enter_async_context(lifespan_client(app, "http://internal"))
        state = app.state.callstreams

        async def deliver(n: int) -> int:
            request = signed(CALL_STATUS, answered(call_sid(n)))
            return (await client.post(CALL_STATUS, **request)).status_code

        async def streams(n: int) -> list[str]:
            auth = {"Authorization": f"Bearer {API_TOKEN}"}
            listed = (await client.get(f"/v1/calls/{call_sid(n)}/streams", headers=auth)).json()
            return sorted(s["name"] for s in listed["streams"])

        async def swap() -> None:
            await asyncio.sleep(0.01)
            await config.write_text(PROFILE.format(name="agent"))
            assert reload(state.settings, state.use)

        deliveries = asyncio.gather(*(deliver(n) for n in range(1, 201)))
        statuses, _ = await asyncio.gather(deliveries, swap())
        assert set(statuses) == {204}
        assert await streams(1) == ["asr"]
        await deliver(500)
        assert await streams(500) == ["agent"]

        await config.write_text("[[streams]]\nname = 'bad name'\nurl = 'https://x'\n")
        assert not reload(state.settings, state.use)
        assert [p.name for p in state.catalog.profiles] == ["agent"]
        ready = (await client.get("/readyz")).json()
        assert ready["profiles"] == ["agent"]


async def test_reload_swaps_the_operator_tokens_of_accounts(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    config = anyio.Path(tmp_path / "callstreams.toml")
    account = f'[[accounts]]\nsid = "AC{"c" * 32}"\nauth_token = "t"\napi_token = "{{}}"\n'
    await config.write_text(PROFILE.format(name="asr") + account.format("first-token-0123456"))
    app = create_app(make_settings(CALLSTREAMS_CONFIG=str(config)))
    async with lifespan_client(app, "http://internal") as client:
        state = app.state.callstreams

        async def status(token: str) -> int:
            path = f"/v1/calls/{call_sid()}/streams"
            headers = {"Authorization": f"Bearer {token}"}
            return (await client.get(path, headers=headers)).status_code

        assert await status("first-token-0123456") == 200
        await config.write_text(PROFILE.format(name="asr") + account.format("second-token-01234"))
        assert reload(state.settings, state.use)
        assert await status("first-token-0123456") == 403
        assert await status("second-token-01234") == 200
