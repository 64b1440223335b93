"""The emulator's own API, under `/_emulator`: make calls happen, read what was sent."""

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from service.emulator.faults import FaultError, parse_fault
from service.emulator.runtime import Emulator
from service.emulator.world import CALL_STATUSES, TERMINAL, Call, new_call


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


class Invalid(Exception):
    def __init__(self, status: int, message: str) -> None:
        self.response = _error(status, message)


def _emulator(request: Request) -> Emulator:
    emulator: Emulator = request.app.state.emulator
    return emulator


async def _json(request: Request) -> dict[str, Any]:
    body = await request.body()
    if not body:
        return {}
    try:
        data = json.loads(body)
    except ValueError:
        raise Invalid(400, "the body is not JSON") from None
    if not isinstance(data, dict):
        raise Invalid(400, "the body must be a JSON object")
    return data


def _string(data: dict[str, Any], key: str, default: str | None) -> str | None:
    value = data.get(key, default)
    if value is not None and not isinstance(value, str):
        raise Invalid(400, f"{key} must be a string")
    return value


def _call(request: Request) -> Call:
    call = _emulator(request).calls.get(request.path_params["sid"])
    if call is None:
        raise Invalid(404, "no such call")
    return call


async def create_call(request: Request) -> Response:
    emulator = _emulator(request)
    data = await _json(request)
    account_sid = _string(data, "account_sid", next(iter(emulator.config.accounts)))
    if account_sid not in emulator.config.accounts:
        raise Invalid(400, "account_sid is not an account of this emulator")
    status = _string(data, "status", "ringing")
    if status not in CALL_STATUSES:
        raise Invalid(400, f"status must be one of {', '.join(CALL_STATUSES)}")
    call = new_call(
        account_sid,
        from_=_string(data, "from", "+15550000001") or "",
        to=_string(data, "to", "+15550000002") or "",
        direction=_string(data, "direction", "inbound") or "inbound",
        status=status,
        status_callback=_string(data, "status_callback", None),
    )
    emulator.calls[call.sid] = call
    return JSONResponse(call.view(), status_code=201)


async def answer(request: Request) -> Response:
    call = _call(request)
    if call.status in TERMINAL:
        raise Invalid(409, f"the call has ended ({call.status})")
    call.status = "in-progress"
    deliveries = await _emulator(request).call_status(call, "in-progress")
    return JSONResponse({"call": call.view(), "deliveries": deliveries})


async def complete(request: Request) -> Response:
    call = _call(request)
    status = _string(await _json(request), "status", "completed")
    if status not in TERMINAL:
        raise Invalid(400, f"status must be one of {', '.join(sorted(TERMINAL))}")
    call.status = status
    deliveries = await _emulator(request).call_status(call, status)
    return JSONResponse({"call": call.view(), "deliveries": deliveries})


async def deliver(request: Request) -> Response:
    """Send a call status callback again (or out of turn) without changing the call."""
    call = _call(request)
    status = _string(await _json(request), "status", call.status)
    if status not in CALL_STATUSES:
        raise Invalid(400, f"status must be one of {', '.join(CALL_STATUSES)}")
    deliveries = await _emulator(request).call_status(call, status or call.status)
    return JSONResponse({"call": call.view(), "deliveries": deliveries})


async def stream_error(request: Request) -> Response:
    """End a stream the way a failing WebSocket server does: `stream-error`."""
    emulator = _emulator(request)
    sid = request.path_params["sid"]
    stream = next(
        (s for c in emulator.calls.values() for s in c.streams.values() if s.sid == sid), None
    )
    if stream is None:
        raise Invalid(404, "no such stream")
    message = _string(await _json(request), "message", "31920 Stream - WebSocket - Handshake Error")
    emulator.stop_stream(stream, "stream-error", message)
    return JSONResponse(stream.view())


async def get_call(request: Request) -> Response:
    return JSONResponse(_call(request).view())


async def list_streams(request: Request) -> Response:
    calls = _emulator(request).calls.values()
    return JSONResponse({"streams": [s.view() for c in calls for s in c.streams.values()]})


async def list_requests(request: Request) -> Response:
    return JSONResponse({"requests": _emulator(request).requests})


async def list_webhooks(request: Request) -> Response:
    return JSONResponse({"webhooks": _emulator(request).deliverer.log})


async def stats(request: Request) -> Response:
    return JSONResponse(_emulator(request).stats.view())


async def faults(request: Request) -> Response:
    """GET the rules in force; PUT `{"faults": [...]}` to replace them; DELETE to clear."""
    emulator = _emulator(request)
    if request.method == "PUT":
        raw = (await _json(request)).get("faults")
        if not isinstance(raw, list):
            raise Invalid(400, "faults must be a list")
        try:
            emulator.faults.rules = [parse_fault(item) for item in raw]
        except FaultError as error:
            raise Invalid(400, str(error)) from None
    elif request.method == "DELETE":
        emulator.faults.rules.clear()
    return JSONResponse({"faults": [f.view() for f in emulator.faults.rules]})


async def reset(request: Request) -> Response:
    _emulator(request).reset()
    return Response(status_code=204)


routes = [
    Route("/_emulator/calls", create_call, methods=["POST"]),
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
    Route("/_emulator/reset", reset, methods=["POST"]),
]
