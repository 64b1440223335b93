"""Twilio's Call resource as the source of truth: a call whose `completed` callback was
lost is closed by the reconciler within a period, a live one is left alone, and with
two workers each call is fetched once per period."""

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from prometheus_client import generate_latest
from redis.asyncio import Redis

from service.config import Settings
from service.emulator import EmulatorConfig
from service.store import UNSETTLED_KEY
from tests.helpers import ACCOUNT_SID, AUTH_TOKEN
from tests.processes import until_async
from tests.stack import AUTH, RefusedFetches, Stack, running

pytestmark = pytest.mark.anyio
PERIOD = 2.0


@pytest.fixture
async def stack(make_settings: Callable[..., Settings]) -> AsyncIterator[Stack]:
    settings = make_settings(CALLSTREAMS_RECONCILE_AFTER=f"{PERIOD:g}s")
    async for stack in running(settings, EmulatorConfig(accounts={ACCOUNT_SID: AUTH_TOKEN})):
        yield stack


async def live_call(stack: Stack) -> str:
    """An answered call whose status callbacks come to us."""
    response = await stack.twilio.post(
        "/_emulator/calls",
        json={
            "status": "ringing",
            "status_callback": "https://streams.example.com/twilio/call-status",
        },
    )
    sid: str = response.json()["sid"]
    await stack.twilio.post(f"/_emulator/calls/{sid}/answer")
    return sid


def metrics_text(stack: Stack) -> str:
    return generate_latest(stack.metrics.registry).decode()


async def fetches(stack: Stack, sid: str) -> list[dict[str, Any]]:
    requests = (await stack.twilio.get("/_emulator/requests")).json()["requests"]
    return [r for r in requests if r["operation"] == "fetch" and sid in r["path"]]


async def test_a_lost_completed_is_made_good_within_a_period(stack: Stack, redis: Redis) -> None:
    async with stack.worker():
        sid = await live_call(stack)

        async def started() -> bool:
            return [r["status"] for r in await stack.streams(sid)] == ["in-progress"]

        await until_async(started, 10, "the stream to start")
        # The call ends at Twilio, and neither its completed callback nor its stream's
        # stream-stopped ever comes.
        drops = [{"kind": "drop", "callback": c} for c in ("completed", "stream-stopped")]
        await stack.twilio.put("/_emulator/faults", json={"faults": drops})
        await stack.twilio.post(f"/_emulator/calls/{sid}/complete")
        webhooks = (await stack.twilio.get("/_emulator/webhooks")).json()["webhooks"]
        assert any(w.get("dropped") for w in webhooks)

        async def stopped() -> list[dict[str, Any]] | None:
            records = await stack.streams(sid)
            return records if records[0]["status"] == "stopped" else None

        [record] = await until_async(stopped, 3 * PERIOD + 5, "the reconciler")
    assert "Call resource" in record["error"]["message"]
    assert len(await fetches(stack, sid)) == 1
    assert await redis.zscore(UNSETTLED_KEY, sid) is None
    calls = (await stack.web.get("/v1/calls", headers=AUTH)).json()["calls"]
    assert calls[0]["ended"] == "completed"
    assert 'callstreams_reconciled_calls_total{outcome="ended"} 1.0' in metrics_text(stack)


async def test_two_workers_fetch_a_live_call_once_per_period(stack: Stack) -> None:
    async with stack.worker(), stack.worker():
        sid = await live_call(stack)
        await asyncio.sleep(4 * PERIOD + 1)
        taken = await fetches(stack, sid)
        [record] = await stack.streams(sid)
    assert record["status"] == "in-progress"  # live: left alone
    assert 2 <= len(taken) <= 4
    times = [r["received_at"] for r in taken]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert all(gap > PERIOD * 0.9 for gap in gaps), gaps


async def test_calls_with_only_final_records_leave_the_index_unfetched(
    stack: Stack, redis: Redis
) -> None:
    async with stack.worker():
        sid = await live_call(stack)

        async def started() -> bool:
            return [r["status"] for r in await stack.streams(sid)] == ["in-progress"]

        await until_async(started, 10, "the stream to start")
        response = await stack.web.post(
            f"/v1/calls/{sid}/streams/transcription/stop",
            headers=AUTH,
        )
        assert response.status_code == 202

        async def gone() -> bool:
            return await redis.zscore(UNSETTLED_KEY, sid) is None

        await until_async(gone, 3 * PERIOD + 5, "the call to leave the index")
    assert await fetches(stack, sid) == []


async def test_a_refused_fetch_ends_nothing(stack: Stack) -> None:
    """Only a 404 says Twilio does not know a call: a 401 closes no records."""
    refusing = RefusedFetches(stack.transport)
    async with stack.worker(transport=refusing):
        sid = await live_call(stack)

        async def started() -> bool:
            return [r["status"] for r in await stack.streams(sid)] == ["in-progress"]

        await until_async(started, 10, "the stream to start")

        async def checked_twice() -> bool:
            return refusing.refused >= 2

        await until_async(checked_twice, 4 * PERIOD + 5, "two checks")
        [record] = await stack.streams(sid)
    assert record["status"] == "in-progress"
    calls = (await stack.web.get("/v1/calls", headers=AUTH)).json()["calls"]
    assert calls[0]["ended"] is None
    assert 'callstreams_reconciled_calls_total{outcome="error"}' in metrics_text(stack)
    assert 'outcome="unknown"' not in metrics_text(stack)
