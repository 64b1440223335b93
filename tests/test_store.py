"""How records are stored: compact rows within the memory budget, and calls stored in
the earlier form (a hash of JSON records) read and rewritten on their next change."""

import json
from collections.abc import Awaitable
from typing import Any, cast

import httpx
import pytest
from redis.asyncio import Redis

from service.config import Settings
from service.record import from_row, new_record, to_row
from service.store import Records
from tests.helpers import ACCOUNT_SID, API_TOKEN, answered, call_sid, signed, stream_sid

pytestmark = pytest.mark.anyio
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
# A record as the previous version stored it: JSON of every field in a hash field.
LEGACY: dict[str, Any] = {
    "call_sid": call_sid(5), "account_sid": ACCOUNT_SID, "name": "transcription",
    "sid": stream_sid(5), "status": "in-progress", "desired": "started",
    "track": "inbound_track", "url": "wss://asr.example.com/twilio", "profile": "transcription",
    "parameters": [], "date_updated": "Thu, 30 Jul 2015 20:00:00 +0000",
    "uri": f"/2010-04-01/Accounts/{ACCOUNT_SID}/Calls/{call_sid(5)}/Streams/{stream_sid(5)}.json",
    "error": None, "attempts": 1, "created_at": "2026-11-30T10:00:00.000Z",
    "updated_at": "2026-11-30T10:00:01.000Z", "answered_at": "2026-11-30T10:00:00.000Z",
    "started_at": "2026-11-30T10:00:01.000Z", "restart_of": None, "restart": 0, "_s": 1,
}  # fmt: skip


def test_a_row_gives_the_record_back() -> None:
    record = new_record(
        call_sid=call_sid(), account_sid=ACCOUNT_SID, name="asr", url="wss://a.example.com/x",
        track="both_tracks", parameters={"k": "v"}, profile="other",
        answered_at="2026-12-01T10:00:00.123Z", restart_of="asr", restart=2,
    )  # fmt: skip
    row = json.loads(json.dumps(to_row(record)))
    assert from_row(call_sid(), ACCOUNT_SID, "asr", row) == record


async def test_a_one_stream_call_takes_at_most_400_bytes(
    client: httpx.AsyncClient, redis: Redis, settings: Settings
) -> None:
    path = "/twilio/call-status"
    await client.post(path, **signed(path, answered(call_sid())))
    records = Records(redis, queue=settings.queue_name, record_ttl=settings.record_ttl)
    key = records.key(call_sid())
    assert await redis.type(key) == b"string"
    assert await redis.memory_usage(key, samples=0) <= 400
    [record] = (await client.get(f"/v1/calls/{call_sid()}/streams", headers=AUTH)).json()["streams"]
    assert (record["call_sid"], record["account_sid"]) == (call_sid(), ACCOUNT_SID)


async def test_a_call_stored_as_a_hash_is_read_and_rewritten(
    client: httpx.AsyncClient, redis: Redis, settings: Settings
) -> None:
    key = Records.key(call_sid(5))
    await cast(Awaitable[int], redis.hset(key, mapping={"transcription": json.dumps(LEGACY)}))
    await redis.expire(key, 3600)
    one = (await client.get(f"/v1/calls/{call_sid(5)}/streams/transcription", headers=AUTH)).json()
    assert one == {k: v for k, v in LEGACY.items() if k != "_s"} | {"parameters": {}}
    stopped = {
        "AccountSid": ACCOUNT_SID, "CallSid": call_sid(5), "StreamSid": stream_sid(5),
        "StreamName": "transcription", "StreamEvent": "stream-stopped",
    }  # fmt: skip
    path = "/twilio/stream-status"
    assert (await client.post(path, **signed(path, stopped))).status_code == 204
    assert await redis.type(key) == b"string"  # rewritten in the compact form
    assert 0 < await redis.ttl(key) <= 3600  # and its time to live kept
    [after] = (await client.get(f"/v1/calls/{call_sid(5)}/streams", headers=AUTH)).json()["streams"]
    assert after["status"] == "stopped"
    assert (after["created_at"], after["started_at"]) == (
        LEGACY["created_at"], LEGACY["started_at"],
    )  # fmt: skip
    # A call of another account cannot take the old call over either.
    other = {**stopped, "AccountSid": "AC" + "b" * 32}
    forged = await client.post(path, **signed(path, other))
    assert forged.status_code == 403
