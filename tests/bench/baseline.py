"""The two baselines the service is measured against, each one uvicorn process.

`bare`: a Starlette form endpoint with no work behind it: what the HTTP layer costs.
`inline`: the limit of the design, a webhook handler that checks the signature and
calls Twilio's create itself, with a warm pooled httpx client: no queue, no Redis,
no worker. Both serve the webhook's path, so that the load generator sends them
byte-identical requests.
"""

import argparse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import parse_qsl

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from service.signature import is_valid

PATH = "/twilio/call-status"


async def receive_form(request: Request) -> Response:
    parse_qsl((await request.body()).decode("utf-8"), keep_blank_values=True)
    return Response(status_code=204)


def inline_app(twilio: str, account: str, token: str, public: str, stream_url: str) -> Starlette:
    http: httpx.AsyncClient

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        nonlocal http
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
        async with httpx.AsyncClient(base_url=twilio, limits=limits, timeout=10) as http:
            yield

    async def call_status(request: Request) -> Response:
        form = parse_qsl((await request.body()).decode("utf-8"), keep_blank_values=True)
        signature = request.headers.get("x-twilio-signature", "")
        if not is_valid(public + PATH, form, signature, token):
            return Response(status_code=403)
        call_sid = dict(form)["CallSid"]
        await http.post(
            f"/2010-04-01/Accounts/{account}/Calls/{call_sid}/Streams.json",
            data={"Url": stream_url, "Name": "transcription", "Track": "inbound_track"},
            auth=(account, token),
        )
        return Response(status_code=204)

    return Starlette(routes=[Route(PATH, call_status, methods=["POST"])], lifespan=lifespan)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--inline",
        nargs=5,
        metavar=("TWILIO", "ACCOUNT", "TOKEN", "PUBLIC", "STREAM_URL"),
        help="serve the inline handler instead of the bare endpoint",
    )
    args = parser.parse_args()
    app = (
        inline_app(*args.inline)
        if args.inline
        else Starlette(routes=[Route(PATH, receive_form, methods=["POST"])])
    )
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        loop="uvloop",
        http="httptools",
        log_config=None,
        access_log=False,
    )


if __name__ == "__main__":
    main()
