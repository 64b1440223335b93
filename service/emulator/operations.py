"""One REST operation as Twilio serves it: Basic auth per account or API key, the
per-account concurrency cap (429, 20429), injected faults, the request log, and
Twilio's error JSON. The operations themselves (`rest.py`, `calls_api.py`) only
say what they do to a call."""

import asyncio
import base64
import binascii
import hmac
import time
from collections.abc import Callable
from typing import Any, Literal
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from service.emulator.faults import Fault
from service.emulator.runtime import Emulator, running
from service.emulator.world import Call

Operation = Literal["create", "stop", "fetch"]
# What an operation does to its call, given the request's form pairs: the resource to answer.
Perform = Callable[[Emulator, Call, list[tuple[str, str]]], dict[str, Any]]


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


async def serve(request: Request, operation: Operation, perform: Perform) -> Response:
    """Answer one REST request: logged, authenticated, capped, faulted, then performed."""
    emulator = running(request)
    account_sid = request.path_params["account_sid"]
    pairs = parse_qsl((await request.body()).decode("utf-8", "replace"), keep_blank_values=True)
    entry: dict[str, Any] = {
        "method": request.method, "path": request.url.path, "form": dict(pairs), "status": None,
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
        resource = perform(emulator, _call(emulator, request), pairs)
        late = await _fault(fault, "after")
        response = late if late is not None else JSONResponse(resource)
    except Rejected as rejected:
        response = rejected.response
    finally:
        if counted:
            stats.in_flight[account_sid] -= 1
    entry["status"] = None if isinstance(response, Reset) else response.status_code
    return response
