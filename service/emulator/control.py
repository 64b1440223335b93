"""The emulator's own API, under `/_emulator`: make calls happen, read what was sent,
change how it behaves.

`calls/{sid}/deliver` sends the status callback it is asked for, even one that a
call to a number would not send (Twilio sends such a call's callback only the
final status): it is there to send callbacks out of turn.
"""

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from service.emulator.bodies import Invalid, read_json, seconds, string
from service.emulator.faults import FaultError, parse_fault
from service.emulator.runtime import Emulator, running
from service.emulator.world import CALL_STATUSES, TERMINAL, Call, new_call

RINGING_CREATE = ("refuse", "accept")
HANDSHAKE_ERROR = "31920 Stream - WebSocket - Handshake Error"


def _call(request: Request) -> Call:
    call = running(request).calls.get(request.path_params["sid"])
    if call is None:
        raise Invalid(404, "no such call")
    return call


def _new_call(emulator: Emulator, data: dict[str, Any]) -> Call:
    account_sid = string(data, "account_sid", next(iter(emulator.config.accounts)))
    if account_sid not in emulator.config.accounts:
        raise Invalid(400, "account_sid is not an account of this emulator")
    status = string(data, "status", "ringing")
    if status not in CALL_STATUSES:
        raise Invalid(400, f"status must be one of {', '.join(CALL_STATUSES)}")
    call = new_call(
        account_sid,
        from_=string(data, "from", "+15550000001") or "",
        to=string(data, "to", "+15550000002") or "",
        direction=string(data, "direction", "inbound") or "inbound",
        status=status,
        status_callback=string(data, "status_callback", None),
    )
    emulator.calls[call.sid] = call
    return call


async def create_call(request: Request) -> Response:
    call = _new_call(running(request), await read_json(request))
    return JSONResponse(call.view(), status_code=201)


MAX_BATCH = 100_000


async def create_calls(request: Request) -> Response:
    """Many calls alike at once (`count`), for benchmarks: their SIDs."""
    data = await read_json(request)
    count = data.pop("count", None)
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= MAX_BATCH:
        raise Invalid(400, f"count must be a whole number from 1 to {MAX_BATCH}")
    emulator = running(request)
    sids = [_new_call(emulator, data).sid for _ in range(count)]
    return JSONResponse({"sids": sids}, status_code=201)


async def answer(request: Request) -> Response:
    call = _call(request)
    if call.status in TERMINAL:
        raise Invalid(409, f"the call has ended ({call.status})")
    deliveries = await running(request).answer(call)
    return JSONResponse({"call": call.view(), "deliveries": deliveries})


async def complete(request: Request) -> Response:
    """End the call, answered or still ringing, with the final status asked."""
    call = _call(request)
    status = string(await read_json(request), "status", "completed")
    if status not in TERMINAL:
        raise Invalid(400, f"status must be one of {', '.join(sorted(TERMINAL))}")
    deliveries = await running(request).end(call, status)
    return JSONResponse({"call": call.view(), "deliveries": deliveries})


async def deliver(request: Request) -> Response:
    """Send a call status callback again (or out of turn) without changing the call."""
    call = _call(request)
    status = string(await read_json(request), "status", call.status)
    if status not in CALL_STATUSES:
        raise Invalid(400, f"status must be one of {', '.join(CALL_STATUSES)}")
    deliveries = await running(request).call_status(call, status or call.status, always=True)
    return JSONResponse({"call": call.view(), "deliveries": deliveries})


async def stream_error(request: Request) -> Response:
    """End a stream the way a failing WebSocket server does: `stream-error`."""
    emulator = running(request)
    sid = request.path_params["sid"]
    stream = next(
        (s for c in emulator.calls.values() for s in c.streams.values() if s.sid == sid), None
    )
    if stream is None:
        raise Invalid(404, "no such stream")
    message = string(await read_json(request), "message", HANDSHAKE_ERROR)
    emulator.stop_stream(stream, "stream-error", message)
    return JSONResponse(stream.view())


async def get_call(request: Request) -> Response:
    return JSONResponse(_call(request).view())


async def list_streams(request: Request) -> Response:
    calls = running(request).calls.values()
    return JSONResponse({"streams": [s.view() for c in calls for s in c.streams.values()]})


async def list_requests(request: Request) -> Response:
    return JSONResponse({"requests": running(request).requests})


async def list_webhooks(request: Request) -> Response:
    return JSONResponse({"webhooks": running(request).deliverer.log})


async def stats(request: Request) -> Response:
    return JSONResponse(running(request).stats.view())


async def faults(request: Request) -> Response:
    """GET the rules in force; PUT `{"faults": [...]}` to replace them; DELETE to clear."""
    emulator = running(request)
    if request.method == "PUT":
        raw = (await read_json(request)).get("faults")
        if not isinstance(raw, list):
            raise Invalid(400, "faults must be a list")
        try:
            emulator.faults.rules = [parse_fault(item) for item in raw]
        except FaultError as error:
            raise Invalid(400, str(error)) from None
    elif request.method == "DELETE":
        emulator.faults.rules.clear()
    return JSONResponse({"faults": [f.view() for f in emulator.faults.rules]})


async def config(request: Request) -> Response:
    """GET the behaviour in force; PUT changes the fields given and keeps the others."""
    behaviour = running(request).behaviour
    if request.method == "PUT":
        data = await read_json(request, {"ringing_create", "answer_after"})
        ringing_create = data.get("ringing_create", behaviour.ringing_create)
        if ringing_create not in RINGING_CREATE:
            raise Invalid(400, f"ringing_create must be one of {', '.join(RINGING_CREATE)}")
        behaviour.answer_after = seconds(data, "answer_after", behaviour.answer_after)
        behaviour.ringing_create = ringing_create
    return JSONResponse(behaviour.view())


async def reset(request: Request) -> Response:
    running(request).reset()
    return Response(status_code=204)


routes = [
    Route("/_emulator/calls", create_call, methods=["POST"]),
    Route("/_emulator/calls/batch", create_calls, methods=["POST"]),
    Route("/_emulator/calls/{sid}", get_call, methods=["GET"]),
    Route("/_emulator/calls/{sid}/answer", answer, methods=["POST"]),
    Route("/_emulator/calls/{sid}/complete", complete, methods=["POST"]),
    Route("/_emulator/calls/{sid}/deliver", deliver, methods=["POST"]),
    Route("/_emulator/streams", list_streams, methods=["GET"]),
    Route("/_emulator/streams/{sid}/error", stream_error, methods=["POST"]),
    Route("/_emulator/requests", list_requests, methods=["GET"]),
    Route("/_emulator/webhooks", list_webhooks, methods=["GET"]),
    Route("/_emulator/stats", stats, methods=["GET"]),
    Route("/_emulator/faults", faults, methods=["GET", "PUT", "DELETE"]),
    Route("/_emulator/config", config, methods=["GET", "PUT"]),
    Route("/_emulator/reset", reset, methods=["POST"]),
]
