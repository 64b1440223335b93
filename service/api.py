"""The operator API: list, read, start and stop a call's streams by name."""

import hmac
import json
from typing import Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from service import sids
from service.errors import ApiError, error_response
from service.openapi import OPENAPI
from service.profiles import Profile
from service.records import new_record
from service.state import AppState
from service.validation import problems

MAX_CALLS = 500


def _state(request: Request) -> AppState:
    """The app state, once the bearer token checks out (constant-time)."""
    state: AppState = request.app.state.callstreams
    expected = state.settings.api_token
    if expected is None:
        raise ApiError(503, "operator API disabled", "set CALLSTREAMS_API_TOKEN to enable it")
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise ApiError(
            401, "unauthorized", "Authorization: Bearer <token> required",
            {"WWW-Authenticate": "Bearer"},
        )  # fmt: skip
    if not hmac.compare_digest(token.strip().encode(), expected.get_secret_value().encode()):
        raise ApiError(403, "forbidden", "the bearer token is not valid")
    return state


def _call_sid(request: Request) -> str:
    call_sid: str = request.path_params["call_sid"]
    if not sids.is_call_sid(call_sid):
        raise ApiError(400, "invalid field", "CallSid must be CA followed by 32 hex digits")
    return call_sid


async def list_streams(request: Request) -> Response:
    state = _state(request)
    return JSONResponse({"streams": await state.records.list(_call_sid(request))})


async def get_stream(request: Request) -> Response:
    state = _state(request)
    record = await state.records.get(_call_sid(request), request.path_params["name"])
    if record is None:
        raise ApiError(404, "not found", "no stream with this name on this call")
    return JSONResponse(record)


async def _json_body(request: Request, limit: int) -> dict[str, Any]:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json":
        raise ApiError(415, "unsupported media type", "expected application/json")
    body = await request.body()
    if len(body) > limit:
        raise ApiError(413, "request body too large", f"at most {limit} bytes")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "malformed JSON", None) from None
    if not isinstance(data, dict):
        raise ApiError(400, "malformed JSON", "expected an object")
    return data


def _account(state: AppState, body: dict[str, Any]) -> str:
    """The account the call belongs to: given, or the only one configured."""
    accounts = state.catalog.accounts
    wanted = body.pop("account_sid", None)
    if wanted is None and len(accounts) == 1:
        return next(iter(accounts))
    if wanted not in accounts:
        raise ApiError(400, "invalid field", "account_sid: not a configured account")
    return str(wanted)


def _profile(state: AppState, body: dict[str, Any]) -> Profile:
    """A configured profile by name (its `match` ignored), or an inline one."""
    if "profile" in body:
        profile = state.catalog.profile(str(body["profile"]))
        if profile is None or set(body) - {"profile", "name"}:
            raise ApiError(
                400, "invalid field", "profile: unknown profile, or extra fields beside it"
            )
        return profile.model_copy(update={"name": body["name"]}) if "name" in body else profile
    try:
        return Profile.model_validate({**body, "match": {}})
    except ValidationError as error:
        detail = [{"field": where, "message": message} for where, message in problems(error)]
        raise ApiError(400, "invalid field", detail) from None


async def start_stream(request: Request) -> Response:
    state = _state(request)
    call_sid = _call_sid(request)
    body = await _json_body(request, state.settings.max_body)
    account_sid = _account(state, body)
    profile = _profile(state, body)
    if not sids.is_stream_name(profile.name):
        raise ApiError(400, "invalid field", "name: not a valid stream name")
    record = new_record(
        call_sid=call_sid,
        account_sid=account_sid,
        name=profile.name,
        url=profile.url,
        track=profile.track,
        parameters=profile.render({"CallSid": call_sid, "AccountSid": account_sid}),
        profile=profile.name if profile in state.catalog.profiles else None,
        answered_at=None,
    )
    [(outcome, stored)] = await state.records.claim(call_sid, [record])
    state.metrics.claims.labels(stored["profile"] or "", outcome).inc()
    if outcome == "exists":
        return error_response(
            409, "stream exists", "a stream with this name exists on this call; names are "
            "unique per call at Twilio, so start it under another name", record=stored,
        )  # fmt: skip
    if outcome == "ended":
        return error_response(409, "call ended", "the call has ended", record=stored)
    return JSONResponse(stored, 202)


async def stop_stream(request: Request) -> Response:
    state = _state(request)
    record = await state.records.request_stop(_call_sid(request), request.path_params["name"])
    if record is None:
        raise ApiError(404, "not found", "no stream with this name on this call")
    return JSONResponse(record, 202)


async def stop_all(request: Request) -> Response:
    """Stop every stream of the call that is not already stopped or being stopped."""
    state = _state(request)
    call_sid = _call_sid(request)
    records = await state.records.list(call_sid)
    if not records:
        raise ApiError(404, "not found", "no streams on this call")
    stopped = []
    for record in records:
        if record["desired"] == "started":
            record = await state.records.request_stop(call_sid, record["name"]) or record
        stopped.append(record)
    return JSONResponse({"streams": stopped}, 202)


async def list_calls(request: Request) -> Response:
    """An account's most recent calls with their streams, newest first."""
    state = _state(request)
    query: dict[str, Any] = dict(request.query_params)
    account_sid = _account(state, query)
    raw_limit = str(query.get("limit", "50"))
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_CALLS:
        raise ApiError(400, "invalid field", f"limit: a whole number from 1 to {MAX_CALLS}")
    calls = [
        {"call_sid": sid, "account_sid": account_sid, "ended": ended, "streams": records}
        for sid, ended, records in await state.records.calls(account_sid, int(raw_limit))
    ]
    return JSONResponse({"calls": calls})


async def openapi(request: Request) -> Response:
    return JSONResponse(OPENAPI)


routes = [
    Route("/v1/calls", list_calls, methods=["GET"]),
    Route("/v1/calls/{call_sid}/stop", stop_all, methods=["POST"]),
    Route("/v1/calls/{call_sid}/streams", list_streams, methods=["GET"]),
    Route("/v1/calls/{call_sid}/streams", start_stream, methods=["POST"]),
    Route("/v1/calls/{call_sid}/streams/{name}", get_stream, methods=["GET"]),
    Route("/v1/calls/{call_sid}/streams/{name}/stop", stop_stream, methods=["POST"]),
    Route("/openapi.json", openapi, methods=["GET"]),
]
