"""The operator API: list, read, start and stop a call's streams by name.

Every input (path, query, body) is parsed by a typed model or pattern before it is
used, so a malformed request is a 400 that names what is wrong.
"""

from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from service import sids
from service.profiles import Profile
from service.record import RECORD, record_for
from service.store import WrongAccount
from service.validation import problems
from service.web.bodies import read_body
from service.web.errors import ApiError, error_response
from service.web.openapi import OPENAPI
from service.web.operators import Operator, authorized
from service.web.schemas import (
    START,
    CallList,
    CallsQuery,
    CallSummary,
    StartByProfile,
    StartInline,
    StreamList,
)
from service.web.state import AppState

_STREAM_LIST = TypeAdapter(StreamList)
_CALL_LIST = TypeAdapter(CallList)
_OPENAPI = TypeAdapter(dict[str, Any]).dump_json(OPENAPI)


def _json(body: bytes, status: int = 200) -> Response:
    return Response(body, status, media_type="application/json")


def _call_sid(request: Request) -> str:
    call_sid: str = request.path_params["call_sid"]
    if not sids.is_call_sid(call_sid):
        raise ApiError(400, "invalid field", "CallSid must be CA followed by 32 hex digits")
    return call_sid


def _name(request: Request) -> str:
    name: str = request.path_params["name"]
    if not sids.is_stream_name(name):
        raise ApiError(400, "invalid field", "name: not a valid stream name")
    return name


def _invalid(error: ValidationError, tagged: bool = False) -> ApiError:
    """400 naming each bad field; a tagged union's branch name is left out of the path."""
    detail = []
    for where, message in problems(error):
        if tagged:
            where = where.partition(".")[2]
        detail.append({"field": where or "body", "message": message})
    return ApiError(400, "invalid field", detail)


_NOT_FOUND = ApiError(404, "not found", "no stream with this name on this call")


async def list_streams(request: Request) -> Response:
    state, operator = authorized(request)
    records = operator.visible(await state.records.of_call(_call_sid(request)))
    return _json(_STREAM_LIST.dump_json({"streams": records}))


async def get_stream(request: Request) -> Response:
    state, operator = authorized(request)
    record = await state.records.get(_call_sid(request), _name(request))
    if record is None or not operator.reaches(record["account_sid"]):
        raise _NOT_FOUND
    return _json(RECORD.dump_json(record))


async def _start_body(
    request: Request, limit: int, stream_hosts: tuple[str, ...]
) -> StartByProfile | StartInline:
    body = await read_body(request, "application/json", limit)
    try:
        return START.validate_json(body, context={"stream_hosts": stream_hosts})
    except ValidationError as error:
        if any(e["type"] == "json_invalid" for e in error.errors()):
            raise ApiError(400, "malformed JSON", None) from None
        raise _invalid(error, tagged=True) from None


def _account(state: AppState, operator: Operator, wanted: str | None) -> str:
    """The account the call belongs to: given, the token's own, or the only one."""
    accounts = state.catalog.accounts
    if operator.account_sid is not None:
        if wanted not in (None, operator.account_sid):
            raise ApiError(404, "not found", "no such account for this token")
        return operator.account_sid
    if wanted is None:
        if len(accounts) == 1:
            return next(iter(accounts))
        raise ApiError(400, "missing field", "account_sid: required with several accounts")
    if wanted not in accounts:
        raise ApiError(404, "not found", "account_sid: no such account")
    return wanted


def _profile(state: AppState, body: StartByProfile | StartInline) -> tuple[Profile, bool]:
    """The profile to start, and whether it was given inline."""
    if isinstance(body, StartInline):
        # Checked as the body was parsed, with the deployment's stream hosts.
        inline = Profile.model_construct(
            name=body.name, url=body.url, track=body.track, parameters=body.parameters
        )
        return inline, True
    profile = state.catalog.profile(body.profile)
    if profile is None:
        raise ApiError(404, "not found", "profile: no such profile")
    return profile, False


async def start_stream(request: Request) -> Response:
    state, operator = authorized(request)
    call_sid = _call_sid(request)
    body = await _start_body(request, state.settings.max_body, state.settings.stream_hosts)
    account_sid = _account(state, operator, body.account_sid)
    profile, inline = _profile(state, body)
    record = record_for(
        profile, {"CallSid": call_sid, "AccountSid": account_sid}, answered_at=None,
        name=body.name, inline=inline,
    )  # fmt: skip
    try:
        [claimed] = await state.records.claim(call_sid, [record], "operator")
        outcome, stored = claimed.outcome, claimed.record
    except WrongAccount:
        if operator.account_sid is not None:
            raise ApiError(404, "not found", "no such call for this token") from None
        raise ApiError(400, "invalid field", "account_sid: the call is another account's") from None
    state.metrics.claims.labels(stored["profile"] or "", outcome).inc()
    if outcome == "exists":
        return error_response(
            409, "stream exists", "a stream with this name exists on this call; names are "
            "unique per call at Twilio, so start it under another name", record=stored,
        )  # fmt: skip
    if outcome == "ended":
        return error_response(409, "call ended", "the call has ended", record=stored)
    return _json(RECORD.dump_json(stored), 202)


async def stop_stream(request: Request) -> Response:
    state, operator = authorized(request)
    call_sid, name = _call_sid(request), _name(request)
    record = await state.records.request_stop(call_sid, name, operator.account_sid)
    if record is None:
        raise _NOT_FOUND
    return _json(RECORD.dump_json(record), 202)


async def stop_all(request: Request) -> Response:
    """Stop every stream of the call that is not already stopped or being stopped."""
    state, operator = authorized(request)
    call_sid = _call_sid(request)
    records = operator.visible(await state.records.of_call(call_sid))
    if not records:
        raise ApiError(404, "not found", "no streams on this call")
    stopped = []
    for record in records:
        if record["desired"] == "started":
            record = await state.records.request_stop(call_sid, record["name"]) or record
        stopped.append(record)
    return _json(_STREAM_LIST.dump_json({"streams": stopped}), 202)


def _query(request: Request, model: type[BaseModel]) -> Any:
    try:
        return model.model_validate(dict(request.query_params))
    except ValidationError as error:
        raise _invalid(error) from None


async def list_calls(request: Request) -> Response:
    """An account's most recent calls with their streams, newest first."""
    state, operator = authorized(request)
    query: CallsQuery = _query(request, CallsQuery)
    account_sid = _account(state, operator, query.account_sid)
    calls = [
        CallSummary(call_sid=sid, account_sid=account_sid, ended=ended, streams=records)
        for sid, ended, records in await state.records.calls(account_sid, query.limit)
    ]
    return _json(_CALL_LIST.dump_json({"calls": calls}))


async def streams(request: Request) -> Response:
    """One route for the call's streams, so that a 405 names both of its methods."""
    return await (list_streams if request.method == "GET" else start_stream)(request)


async def openapi(request: Request) -> Response:
    return _json(_OPENAPI)


routes = [
    Route("/v1/calls", list_calls, methods=["GET"]),
    Route("/v1/calls/{call_sid}/stop", stop_all, methods=["POST"]),
    Route("/v1/calls/{call_sid}/streams", streams, methods=["GET", "POST"]),
    Route("/v1/calls/{call_sid}/streams/{name}", get_stream, methods=["GET"]),
    Route("/v1/calls/{call_sid}/streams/{name}/stop", stop_stream, methods=["POST"]),
    Route("/openapi.json", openapi, methods=["GET"]),
]
