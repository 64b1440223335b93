"""`callstreams simulate-call [--inbound]`: one call through the emulator, web and worker.

A call is answered at the emulator (with `--inbound`, it first comes in to a number
whose Voice URL is the front door, and is redirected), its streams are followed to
`in-progress` through the operator API and stopped by name, and the call completes.
"""

import asyncio
import sys
import time
from typing import Any

import httpx

from service.twilio_terms import CALL_STATUS_PATH, VOICE_PATH


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


# A number of the emulator's that the front door serves (dev sets VOICE_TWIML_URL).
SIMULATED_NUMBER = "+15005550006"


async def _outbound(twilio: httpx.AsyncClient, web: str, account: str) -> str:
    """A call whose answered callback comes to us, answered at once."""
    call = (
        await twilio.post(
            "/_emulator/calls",
            json={"account_sid": account, "status_callback": web + CALL_STATUS_PATH},
        )
    ).json()
    sid: str = call["sid"]
    print(f"call {sid} created at the emulator; answering it")
    answered = (await twilio.post(f"/_emulator/calls/{sid}/answer")).json()
    print("answered webhook delivered:", [d["status"] for d in answered["deliveries"]])
    return sid


async def _inbound(twilio: httpx.AsyncClient, web: str, account: str) -> str | None:
    """A call that comes in to a number whose Voice URL is our front door."""
    number = {"account_sid": account, "voice_url": web + VOICE_PATH,
              "status_callback": web + CALL_STATUS_PATH}  # fmt: skip
    configured = await twilio.put(f"/_emulator/numbers/{SIMULATED_NUMBER}", json=number)
    if configured.status_code not in (200, 201):
        print(f"simulate-call: the emulator refused the number: {configured.text}", file=sys.stderr)
        return None
    arrival = (await twilio.post("/_emulator/calls/inbound", json={"to": SIMULATED_NUMBER})).json()
    sid: str = arrival["call"]["sid"]
    voice, redirect = arrival["voice"], arrival["voice"]["redirect"]
    print(f"incoming call {sid} to {SIMULATED_NUMBER}: the front door answered {voice['status']}")
    if redirect is None:
        print(f"simulate-call: no <Redirect> in the answer: {voice['body']!r}", file=sys.stderr)
        return None
    print(f"  redirected ({redirect['method']}) to {redirect['url']}; the call rings")
    await asyncio.sleep(1)
    await twilio.post(f"/_emulator/calls/{sid}/answer")
    print("answered: the worker sees it in Twilio's Call resource")
    return sid


async def simulate_call(
    emulator: str, web: str, token: str, account: str, inbound: bool = False
) -> int:
    """A call at the emulator, answered (through the front door when `inbound`): watch
    its streams start, stop them by name, end the call."""
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        httpx.AsyncClient(base_url=emulator, timeout=10) as twilio,
        httpx.AsyncClient(base_url=web, headers=headers, timeout=10) as api,
    ):
        sid = await (_inbound if inbound else _outbound)(twilio, web, account)
        if sid is None:
            return 1
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
