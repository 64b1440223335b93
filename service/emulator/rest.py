"""Twilio's Streams REST API as the OpenAPI extract defines it: create and stop.

Where Twilio's behaviour is undocumented the emulator picks an answer and says
so: a reused name is 409 with code 20409, a fifth track is 400 with code 31940,
stopping a stream that already stopped answers 200 with the stopped resource.
`StatusCallbackMethod` is validated and kept, but stream callbacks are always
POSTed (callstreams creates every stream with POST).
"""

import asyncio
import base64
import binascii
import hmac
import time
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from service.emulator.faults import Fault
from service.emulator.runtime import Emulator
from service.emulator.world import MAX_TRACKS, TRACK_WEIGHT, Call, Stream, new_sid

PREFIX = "/2010-04-01/Accounts/{account_sid}/Calls/{call_sid}/Streams"
MAX_PARAMETERS = 99


def twilio_error(status: int, code: int, message: str, **headers: str) -> JSONResponse:
    body = {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    return JSONResponse(body, status_code=status, headers=headers or None)


class Reset(Response):
    """Headers, then the connection closes before the promised body: a broken connection."""

    def __init__(self) -> None:
        super().__init__(status_code=200)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-type", b"application/json"), (b"content-length", b"512")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})


class Rejected(Exception):
    def __init__(self, response: Response) -> None:
        self.response = response


def _emulator(request: Request) -> Emulator:
    emulator: Emulator = request.app.state.emulator
    return emulator


def _authenticate(emulator: Emulator, request: Request, account_sid: str) -> str:
    """The Basic-auth user, if it may act on `account_sid`."""
    denied = Rejected(twilio_error(401, 20003, "Authenticate", **{"WWW-Authenticate": "Basic"}))
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        raise denied
    try:
        user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise denied from None
    if user in emulator.config.api_keys:
        owner, secret = emulator.config.api_keys[user]
    else:
        owner, secret = user, emulator.config.accounts.get(user, "")
    if not secret or not hmac.compare_digest(password.encode(), secret.encode()):
        raise denied
    if owner != account_sid:
        raise denied
    return user


def _call(emulator: Emulator, request: Request) -> Call:
    account_sid, call_sid = request.path_params["account_sid"], request.path_params["call_sid"]
    call = emulator.calls.get(call_sid)
    if call is None or call.account_sid != account_sid:
        raise Rejected(
            twilio_error(404, 20404, f"The requested resource {request.url.path} was not found")
        )
    return call


def _create(
    emulator: Emulator, call: Call, form: dict[str, str], pairs: list[tuple[str, str]]
) -> Stream:
    url = form.get("Url", "")
    if not url:
        raise Rejected(twilio_error(400, 21201, "Missing required parameter Url in the post body"))
    parts = urlsplit(url)
    if parts.scheme and parts.scheme != "wss":
        raise Rejected(twilio_error(400, 31922, "Stream URL scheme not supported, use wss"))
    if parts.query:
        raise Rejected(twilio_error(400, 21201, "Stream Url must not have a query string"))
    track = form.get("Track", "inbound_track")
    if track not in TRACK_WEIGHT:
        raise Rejected(twilio_error(400, 21201, f"Track must be one of {', '.join(TRACK_WEIGHT)}"))
    method = form.get("StatusCallbackMethod", "POST")
    if method not in ("GET", "POST"):
        raise Rejected(twilio_error(400, 21201, "StatusCallbackMethod must be GET or POST"))
    parameters = _parameters(pairs)
    if call.status != "in-progress":
        raise Rejected(twilio_error(400, 21220, "Call is not in-progress. Cannot create stream."))
    name = form.get("Name") or None
    if name is not None and call.stream(name) is not None:
        raise Rejected(twilio_error(409, 20409, f"Stream with name {name} already exists on call"))
    if call.tracks_in_use() + TRACK_WEIGHT[track] > MAX_TRACKS:
        raise Rejected(twilio_error(400, 31940, "Maximum number of tracks per call exceeded"))
    stream = Stream(
        sid=new_sid("MZ"), account_sid=call.account_sid, call_sid=call.sid, name=name, url=url,
        track=track, parameters=parameters, status_callback=form.get("StatusCallback") or None,
        status_callback_method=method,
    )  # fmt: skip
    call.streams[stream.sid] = stream
    emulator.stats.creates += 1
    emulator.stream_event(stream, "stream-started")
    return stream


def _parameters(pairs: list[tuple[str, str]]) -> dict[str, str]:
    names: dict[int, str] = {}
    values: dict[int, str] = {}
    for key, value in pairs:
        if not key.startswith("Parameter"):
            continue
        index, _, part = key.removeprefix("Parameter").partition(".")
        if (
            not index.isdigit()
            or not 1 <= int(index) <= MAX_PARAMETERS
            or part not in ("Name", "Value")
        ):
            raise Rejected(twilio_error(400, 21201, f"Invalid parameter {key}"))
        (names if part == "Name" else values)[int(index)] = value
    return {names[i]: values.get(i, "") for i in sorted(names)}


def _stop(emulator: Emulator, call: Call, sid_or_name: str, form: dict[str, str]) -> Stream:
    if form.get("Status") != "stopped":
        raise Rejected(twilio_error(400, 21201, "Status must be stopped"))
    stream = call.stream(sid_or_name)
    if stream is None:
        raise Rejected(twilio_error(404, 20404, f"Stream {sid_or_name} was not found"))
    emulator.stats.stops += 1
    emulator.stop_stream(stream)
    return stream


async def _fault(fault: Fault | None, stage: Literal["before", "after"]) -> Response | None:
    """The fault's answer at this stage, after its latency; None to go on normally."""
    if fault is None:
        return None
    if stage == "before":
        if fault.kind != "timeout" and fault.seconds:
            await asyncio.sleep(fault.seconds)
        if fault.kind == "429":
            headers = {} if fault.retry_after is None else {"Retry-After": f"{fault.retry_after:g}"}
            return twilio_error(429, 20429, "Too Many Requests", **headers)
        if fault.kind in ("500", "503"):
            return twilio_error(int(fault.kind), 20000 + int(fault.kind), "Service unavailable")
        if fault.kind == "reset-before":
            return Reset()
        return None
    if fault.kind == "timeout":
        await asyncio.sleep(fault.seconds)
    return Reset() if fault.kind == "reset-after" else None


async def handle(request: Request) -> Response:
    emulator = _emulator(request)
    account_sid = request.path_params["account_sid"]
    operation: Literal["create", "stop"] = "stop" if "sid" in request.path_params else "create"
    pairs = parse_qsl((await request.body()).decode("utf-8", "replace"), keep_blank_values=True)
    form = dict(pairs)
    entry: dict[str, Any] = {
        "method": request.method, "path": request.url.path, "form": form, "status": None,
        "auth_user": None, "operation": operation, "received_at": time.time(),
        "fault": None,
    }  # fmt: skip
    emulator.requests.append(entry)
    stats = emulator.stats
    counted = False
    response: Response
    try:
        entry["auth_user"] = _authenticate(emulator, request, account_sid)
        in_flight = stats.in_flight.get(account_sid, 0) + 1
        limit = emulator.config.max_concurrency
        if limit is not None and in_flight > limit:
            stats.throttled += 1
            raise Rejected(twilio_error(429, 20429, "Too Many Requests"))
        stats.in_flight[account_sid] = in_flight
        stats.max_in_flight[account_sid] = max(stats.max_in_flight.get(account_sid, 0), in_flight)
        counted = True
        fault = emulator.faults.pick(operation)
        entry["fault"] = fault.kind if fault else None
        if emulator.config.latency:
            await asyncio.sleep(emulator.config.latency)
        early = await _fault(fault, "before")
        if early is not None:
            raise Rejected(early)
        call = _call(emulator, request)
        if operation == "create":
            stream = _create(emulator, call, form, pairs)
        else:
            stream = _stop(emulator, call, request.path_params["sid"], form)
        late = await _fault(fault, "after")
        response = late if late is not None else JSONResponse(stream.resource())
    except Rejected as rejected:
        response = rejected.response
    finally:
        if counted:
            stats.in_flight[account_sid] -= 1
    entry["status"] = None if isinstance(response, Reset) else response.status_code
    return response


routes = [
    Route(PREFIX + ".json", handle, methods=["POST"]),
    Route(PREFIX + "/{sid}.json", handle, methods=["POST"]),
]
