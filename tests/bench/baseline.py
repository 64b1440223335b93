"""The bare Starlette baseline: what one uvicorn process does with no work behind a form POST.

It serves the webhook's path so that the load generator sends it byte-identical
requests; the ratio of the web process to it is the cost of what the service
adds (signature check, validation, one Redis round trip, logging).
"""

import argparse
from urllib.parse import parse_qsl

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

PATH = "/twilio/call-status"


async def receive_form(request: Request) -> Response:
    parse_qsl((await request.body()).decode("utf-8"), keep_blank_values=True)
    return Response(status_code=204)


app = Starlette(routes=[Route(PATH, receive_form, methods=["POST"])])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    port = parser.parse_args().port
    uvicorn.run(
        app, host="127.0.0.1", port=port, loop="uvloop", http="httptools", log_config=None,
        access_log=False,
    )  # fmt: skip


if __name__ == "__main__":
    main()
