"""`callstreams simulate-call`: one call through the emulator, web and worker.

A call is answered at the emulator, its streams are followed to `in-progress`
through the operator API and stopped by name, and the call completes.
"""

import asyncio
import sys
import time
from typing import Any

import httpx

from service.twilio_terms import CALL_STATUS_PATH


async def _until(
    client: httpx.AsyncClient, url: str, done: Any, within: float = 15.0
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + within
    while True:
        streams: list[dict[str, Any]] = (await client.get(url)).json()["streams"]
        if streams and all(done(s) for s in streams):
            return streams
        if time.monotonic() > deadline:
            raise TimeoutError(f"streams did not settle: {streams}")
        await asyncio.sleep(0.05)


def _show(title: str, streams: list[dict[str, Any]]) -> None:
    print(title)
    for s in streams:
        print(f"  {s['name']}: {s['status']} sid={s['sid']} attempts={s['attempts']}")


async def simulate_call(emulator: str, web: str, token: str, account: str) -> int:
    """Answer a call at the emulator, watch its streams start, stop them by name."""
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        httpx.AsyncClient(base_url=emulator, timeout=10) as twilio,
        httpx.AsyncClient(base_url=web, headers=headers, timeout=10) as api,
    ):
        call = (
            await twilio.post(
                "/_emulator/calls",
                json={"account_sid": account, "status_callback": web + CALL_STATUS_PATH},
            )
        ).json()
        sid = call["sid"]
        print(f"call {sid} created at the emulator; answering it")
        answered = (await twilio.post(f"/_emulator/calls/{sid}/answer")).json()
        print("answered webhook delivered:", [d["status"] for d in answered["deliveries"]])
        url = f"/v1/calls/{sid}/streams"
        try:
            streams = await _until(api, url, lambda s: s["status"] != "pending")
            _show("streams started:", streams)
            for stream in streams:
                response = await api.post(f"{url}/{stream['name']}/stop")
                print(f"stop {stream['name']}: HTTP {response.status_code}")
            streams = await _until(api, url, lambda s: s["status"] in ("stopped", "failed"))
            _show("streams after stop:", streams)
        except TimeoutError as error:
            print(f"simulate-call: {error}", file=sys.stderr)
            return 1
        await twilio.post(f"/_emulator/calls/{sid}/complete")
        print(f"call {sid} completed")
        return 0 if all(s["status"] == "stopped" for s in streams) else 1
