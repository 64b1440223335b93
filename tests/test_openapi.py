"""`/openapi.json` says exactly what the operator API answers: every answer of a session
over every route, errors included, validates against the schema documented for it."""

import re
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator

from service import stream_urls
from tests.helpers import API_TOKEN, answered, call_sid, signed

pytestmark = pytest.mark.anyio
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
SID = call_sid(7)


def _template(document: dict[str, Any], path: str) -> str:
    """The documented path that `path` is an instance of."""
    template: str
    for template in document["paths"]:
        pattern = re.sub(r"\{[^}]+\}", "[^/]+", template)
        if re.fullmatch(pattern, path):
            return template
    raise AssertionError(f"{path} is not documented")


def _check(document: dict[str, Any], response: httpx.Response) -> None:
    request = response.request
    operation = document["paths"][_template(document, request.url.path)][request.method.lower()]
    documented = operation["responses"].get(str(response.status_code))
    assert documented, f"{request.method} {request.url.path}: {response.status_code} undocumented"
    schema = documented["content"]["application/json"]["schema"]
    validator = Draft202012Validator({**document, **schema})
    errors = [e.message for e in validator.iter_errors(response.json())]
    assert not errors, (request.method, request.url.path, response.status_code, errors)


async def test_every_answer_matches_its_documented_schema(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    assert document["openapi"] == "3.1.0"
    path = "/twilio/call-status"
    await client.post(path, **signed(path, answered(SID)))
    streams = f"/v1/calls/{SID}/streams"
    inline = {"name": "extra", "url": "wss://b.example.com/x", "parameters": {"c": "{CallSid}"}}
    answers = [
        await client.get(streams, headers=AUTH),
        await client.get(f"{streams}/transcription", headers=AUTH),
        await client.post(streams, json=inline, headers=AUTH),
        await client.post(streams, json={"profile": "transcription"}, headers=AUTH),  # 409
        await client.post(streams, json={"profile": "transcription", "name": "two"}, headers=AUTH),
        await client.post(streams, json={"name": "x", "url": "http://no"}, headers=AUTH),
        await client.post(streams, content=b"{", headers={**AUTH, "Content-Type": "text/plain"}),
        await client.post(f"{streams}/extra/stop", headers=AUTH),
        await client.post(f"{streams}/nope/stop", headers=AUTH),
        await client.get(f"{streams}/nope", headers=AUTH),
        await client.get("/v1/calls/CA1/streams", headers=AUTH),
        await client.get(streams),
        await client.get(streams, headers={"Authorization": "Bearer wrong"}),
        await client.post(f"/v1/calls/{SID}/stop", headers=AUTH),
        await client.post(f"/v1/calls/{call_sid(8)}/stop", headers=AUTH),
        await client.get("/v1/calls", params={"limit": 5}, headers=AUTH),
        await client.get("/v1/calls", params={"limit": "0"}, headers=AUTH),
    ]
    statuses = [a.status_code for a in answers]
    assert statuses == [200, 200, 202, 409, 202, 400, 415, 202, 404, 404, 400, 401, 403,
                        202, 404, 200, 400]  # fmt: skip
    for answer in answers:
        _check(document, answer)


async def test_the_request_schemas_are_the_models(client: httpx.AsyncClient) -> None:
    schemas = (await client.get("/openapi.json")).json()["components"]["schemas"]
    inline = schemas["StartInline"]
    assert set(inline["required"]) == {"name", "url"}
    assert inline["additionalProperties"] is False
    assert inline["properties"]["url"]["pattern"] == stream_urls.PATTERN
    assert inline["properties"]["parameters"]["maxProperties"] == 99
    by_profile = schemas["StartByProfile"]
    assert by_profile["required"] == ["profile"]
    assert schemas["CallsQuery"]["properties"]["limit"] == {
        "default": 50, "maximum": 500, "minimum": 1, "title": "Limit", "type": "integer",
    }  # fmt: skip
