"""Twilio's Call resource, fetched: `GET /2010-04-01/Accounts/{AccountSid}/Calls/{Sid}.json`.

It answers the `api.v2010.account.call` schema of the OpenAPI extract, with the
same auth, concurrency cap, faults (`operation: fetch`) and request log as the
Streams operations; another account's call is 404 with code 20404, as an
unknown one.
"""

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from service.emulator.operations import serve
from service.emulator.runtime import Emulator
from service.emulator.world import Call


def _fetch(emulator: Emulator, call: Call, pairs: list[tuple[str, str]]) -> dict[str, Any]:
    emulator.stats.fetches += 1
    return call.resource()


async def fetch(request: Request) -> Response:
    return await serve(request, "fetch", _fetch)


routes = [Route("/2010-04-01/Accounts/{account_sid}/Calls/{call_sid}.json", fetch, methods=["GET"])]
