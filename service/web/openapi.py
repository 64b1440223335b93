"""The operator API's OpenAPI document, served at /openapi.json.

The paths are written here; every schema they name is generated from the models
that parse requests and the record the API answers (`schemas.py`, `record.py`), so
the document cannot drift from what the code accepts and returns.
"""

from typing import Any

from pydantic import TypeAdapter
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode

from service.record import StreamRecord
from service.web.schemas import START, CallList, CallsQuery, Error, StreamList

_REF = "#/components/schemas/"
# Component names that clients generate code from, where the Python name differs.
_NAMES = {"StreamRecord": "Stream"}


class _Components(GenerateJsonSchema):
    def normalize_name(self, name: str) -> str:
        return super().normalize_name(_NAMES.get(name, name))


def _components() -> dict[str, Any]:
    inputs: list[tuple[str, JsonSchemaMode, TypeAdapter[Any]]] = [
        ("Stream", "serialization", TypeAdapter(StreamRecord)),
        ("StreamList", "serialization", TypeAdapter(StreamList)),
        ("CallList", "serialization", TypeAdapter(CallList)),
        ("Error", "serialization", TypeAdapter(Error)),
        ("StartRequest", "validation", START),
        ("CallsQuery", "validation", TypeAdapter(CallsQuery)),
    ]
    refs, definitions = TypeAdapter.json_schemas(
        inputs, ref_template=_REF + "{model}", schema_generator=_Components
    )
    schemas: dict[str, Any] = definitions["$defs"]
    # The start body is a union, which has no definition of its own: give it one.
    schemas["StartRequest"] = refs[("StartRequest", "validation")]
    return schemas


_SCHEMAS = _components()


def _json(schema: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": _REF + schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    meaning = {
        400: "invalid field or body",
        401: "no bearer token",
        403: "wrong bearer token",
        404: "no such stream, call, account or profile",
        409: "a stream with this name exists, or the call ended",
        413: "body too large",
        415: "not application/json",
        503: "operator API disabled, or Redis unreachable",
    }
    return {str(c): {"description": meaning[c], "content": _json("Error")} for c in codes}


def _query(name: str) -> dict[str, Any]:
    """A query parameter as `CallsQuery` defines it."""
    schema = dict(_SCHEMAS["CallsQuery"]["properties"][name])
    return {"name": name, "in": "query", "required": False, "schema": schema}


_CALL = {
    "name": "CallSid",
    "in": "path",
    "required": True,
    "schema": _SCHEMAS["Stream"]["properties"]["call_sid"],
}
_NAME = {
    "name": "name",
    "in": "path",
    "required": True,
    "schema": _SCHEMAS["StartInline"]["properties"]["name"],
}

OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "callstreams operator API", "version": "1"},
    "security": [{"bearer": []}],
    "paths": {
        "/v1/calls": {
            "get": {
                "summary": "An account's most recent calls with their streams, newest first",
                "parameters": [_query("account_sid"), _query("limit")],
                "responses": {
                    "200": {"description": "calls", "content": _json("CallList")},
                    **_errors(400, 401, 403, 404, 503),
                },
            },
        },
        "/v1/calls/{CallSid}/stop": {
            "parameters": [_CALL],
            "post": {
                "summary": "Stop every stream of the call; starts not yet made are cancelled",
                "responses": {
                    "202": {"description": "stops asked", "content": _json("StreamList")},
                    **_errors(400, 401, 403, 404, 503),
                },
            },
        },
        "/v1/calls/{CallSid}/streams": {
            "parameters": [_CALL],
            "get": {
                "summary": "The call's stream records",
                "responses": {
                    "200": {"description": "records", "content": _json("StreamList")},
                    **_errors(400, 401, 403, 503),
                },
            },
            "post": {
                "summary": "Start one stream on a live call, by profile or inline",
                "requestBody": {"required": True, "content": _json("StartRequest")},
                "responses": {
                    "202": {"description": "queued", "content": _json("Stream")},
                    **_errors(400, 401, 403, 404, 409, 413, 415, 503),
                },
            },
        },
        "/v1/calls/{CallSid}/streams/{name}": {
            "parameters": [_CALL, _NAME],
            "get": {
                "summary": "One stream record",
                "responses": {
                    "200": {"description": "record", "content": _json("Stream")},
                    **_errors(400, 401, 403, 404, 503),
                },
            },
        },
        "/v1/calls/{CallSid}/streams/{name}/stop": {
            "parameters": [_CALL, _NAME],
            "post": {
                "summary": "Stop a stream by name; a start not yet made is cancelled",
                "responses": {
                    "202": {"description": "stop asked", "content": _json("Stream")},
                    **_errors(400, 401, 403, 404, 503),
                },
            },
        },
    },
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": _SCHEMAS,
    },
}
