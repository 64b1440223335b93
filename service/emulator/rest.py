"""Twilio's Streams REST API as the OpenAPI extract defines it: create and stop.

Where Twilio's behaviour is undocumented the emulator picks an answer and says
so: a reused name is 409 with code 20409, a fifth track is 400 with code 31940,
stopping a stream that already stopped answers 200 with the stopped resource.
`StatusCallbackMethod` is validated and kept, but stream callbacks are always
POSTed (callstreams creates every stream with POST).

A create on a ringing call is refused with 400 and code 21220, as on any call
not in progress, unless the emulator is told to accept it (`ringing_create`:
Twilio documents neither answer for a ringing call). An accepted stream exists
at once: its name is taken and its tracks count. Its `stream-started` is sent
when the call is answered, not before, since no audio flows to a WebSocket
until then; if the call ends while ringing, or the stream is stopped first, it
ends with a `stream-stopped` alone, never having started.
"""

from functools import partial
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from service.emulator.operations import Rejected, serve, twilio_error
from service.emulator.runtime import Emulator
from service.emulator.world import MAX_TRACKS, TRACK_WEIGHT, Call, Stream, new_sid

PREFIX = "/2010-04-01/Accounts/{account_sid}/Calls/{call_sid}/Streams"
MAX_PARAMETERS = 99


def _accepts(emulator: Emulator, call: Call) -> bool:
    """Whether a stream may be created on the call now."""
    accept = emulator.behaviour.ringing_create == "accept"
    return call.status == "in-progress" or (call.status == "ringing" and accept)


def _create(emulator: Emulator, call: Call, pairs: list[tuple[str, str]]) -> dict[str, Any]:
    form = dict(pairs)
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
    if not _accepts(emulator, call):
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
    emulator.start_stream(call, stream)
    return stream.resource()


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


def _stop(
    sid_or_name: str, emulator: Emulator, call: Call, pairs: list[tuple[str, str]]
) -> dict[str, Any]:
    if dict(pairs).get("Status") != "stopped":
        raise Rejected(twilio_error(400, 21201, "Status must be stopped"))
    stream = call.stream(sid_or_name)
    if stream is None:
        raise Rejected(twilio_error(404, 20404, f"Stream {sid_or_name} was not found"))
    emulator.stats.stops += 1
    emulator.stop_stream(stream)
    return stream.resource()


async def create(request: Request) -> Response:
    return await serve(request, "create", _create)


async def stop(request: Request) -> Response:
    return await serve(request, "stop", partial(_stop, request.path_params["sid"]))


routes = [
    Route(PREFIX + ".json", create, methods=["POST"]),
    Route(PREFIX + "/{sid}.json", stop, methods=["POST"]),
]
