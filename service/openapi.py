"""The operator API's OpenAPI document, served at /openapi.json."""

from typing import Any

_ref = "#/components/schemas/"


def _json(schema: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": _ref + schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    meaning = {
        400: "invalid field or body",
        401: "no bearer token",
        403: "wrong bearer token",
        404: "no such stream or call",
        409: "a stream with this name exists, or the call ended",
        413: "body too large",
        415: "not application/json",
        503: "operator API disabled, or Redis unreachable",
    }
    return {str(c): {"description": meaning[c], "content": _json("Error")} for c in codes}


_CALL = {
    "name": "CallSid",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^CA[0-9a-fA-F]{32}$"},
}
_NAME = {
    "name": "name",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.~-]{0,63}$"},
}
_ACCOUNT = {
    "type": "string",
    "pattern": "^AC[0-9a-fA-F]{32}$",
    "description": "the call's account; required when several accounts are configured",
}
_TS = {"type": "string", "format": "date-time", "nullable": True}
_STR = {"type": "string", "nullable": True}

OPENAPI: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "callstreams operator API", "version": "1"},
    "security": [{"bearer": []}],
    "paths": {
        "/v1/calls": {
            "get": {
                "summary": "An account's most recent calls with their streams, newest first",
                "parameters": [
                    {
                        "name": "account_sid",
                        "in": "query",
                        "description": "required when several accounts are configured",
                        "schema": {"type": "string", "pattern": "^AC[0-9a-fA-F]{32}$"},
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50},
                    },
                ],
                "responses": {
                    "200": {"description": "calls", "content": _json("CallList")},
                    **_errors(400, 401, 403, 503),
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
                    **_errors(400, 401, 403, 409, 413, 415, 503),
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
        "schemas": {
            "Error": {
                "type": "object",
                "required": ["error"],
                "properties": {
                    "error": {"type": "string"},
                    "detail": {},
                    "record": {"$ref": _ref + "Stream"},
                },
            },
            "TwilioError": {
                "type": "object",
                "nullable": True,
                "properties": {
                    "code": {"type": "integer", "nullable": True},
                    "message": {"type": "string"},
                    "more_info": _STR,
                },
            },
            "Stream": {
                "type": "object",
                "properties": {
                    "call_sid": {"type": "string"},
                    "account_sid": {"type": "string"},
                    "name": {"type": "string"},
                    "sid": _STR,
                    "status": {
                        "type": "string",
                        "enum": ["pending", "in-progress", "stopped", "failed", "skipped"],
                    },
                    "desired": {"type": "string", "enum": ["started", "stopped"]},
                    "track": {
                        "type": "string",
                        "enum": ["inbound_track", "outbound_track", "both_tracks"],
                    },
                    "url": {"type": "string"},
                    "profile": _STR,
                    "parameters": {"type": "object", "additionalProperties": {"type": "string"}},
                    "date_updated": _STR,
                    "uri": _STR,
                    "error": {"$ref": _ref + "TwilioError"},
                    "attempts": {"type": "integer"},
                    "created_at": {"type": "string", "format": "date-time"},
                    "updated_at": {"type": "string", "format": "date-time"},
                    "answered_at": _TS,
                    "started_at": _TS,
                    "restart_of": {
                        "type": "string",
                        "nullable": True,
                        "description": "for a restarted stream, the name of the chain's first",
                    },
                    "restart": {
                        "type": "integer",
                        "description": "0 for a first start, n for the n-th restart",
                    },
                },
            },
            "CallList": {
                "type": "object",
                "properties": {
                    "calls": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "call_sid": {"type": "string"},
                                "account_sid": {"type": "string"},
                                "ended": {
                                    "type": "string",
                                    "nullable": True,
                                    "description": "the terminal CallStatus, once the call ended",
                                },
                                "streams": {"type": "array", "items": {"$ref": _ref + "Stream"}},
                            },
                        },
                    }
                },
            },
            "StreamList": {
                "type": "object",
                "properties": {"streams": {"type": "array", "items": {"$ref": _ref + "Stream"}}},
            },
            "StartRequest": {
                "oneOf": [
                    {
                        "type": "object",
                        "required": ["profile"],
                        "additionalProperties": False,
                        "properties": {
                            "profile": {"type": "string"},
                            "name": {"type": "string"},
                            "account_sid": _ACCOUNT,
                        },
                    },
                    {
                        "type": "object",
                        "required": ["name", "url"],
                        "additionalProperties": False,
                        "properties": {
                            "name": {"type": "string"},
                            "account_sid": _ACCOUNT,
                            "url": {"type": "string", "pattern": "^wss://[^?#]+$"},
                            "track": {
                                "type": "string",
                                "enum": ["inbound_track", "outbound_track", "both_tracks"],
                            },
                            "parameters": {
                                "type": "object",
                                "additionalProperties": {"type": "string"},
                            },
                        },
                    },
                ]
            },
        },
    },
}
