"""The Twilio emulator keeps Twilio's contract: the OpenAPI extract, auth, rules, webhooks."""

import asyncio
import base64
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import anyio
import httpx
import jsonschema
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from service.cli.dev import free_port
from service.emulator import EmulatorConfig, create_emulator_app
from service.emulator.delivery import parse_overrides
from service.emulator.faults import FaultError, parse_drop_flag, parse_fault, parse_flag
from service.signature import is_valid
from tests.helpers import ACCOUNT_SID, AUTH_TOKEN, lifespan_client
from tests.processes import wait_http

pytestmark = pytest.mark.anyio
SPEC = json.loads((Path(__file__).parent / "data" / "streams-openapi.json").read_text())
OTHER_SID, OTHER_TOKEN = "AC" + "b2" * 16, "other-token"
API_KEY, API_SECRET = "SK" + "c3" * 16, "key-secret"
BASIC = (ACCOUNT_SID, AUTH_TOKEN)
HOOKS = "http://hooks.test"


def _nullable(schema: Any) -> Any:
    """OpenAPI 3.0's `nullable` in JSON Schema terms, with `$ref`s resolved."""
    if isinstance(schema, dict):
        if "$ref" in schema:
            name = schema["$ref"].rsplit("/", 1)[-1]
            return _nullable(SPEC["components"]["schemas"][name])
        converted = {k: _nullable(v) for k, v in schema.items() if k != "nullable"}
        if schema.get("nullable"):
            converted["type"] = [schema["type"], "null"]
        return converted
    return schema


STREAM_SCHEMA = _nullable(SPEC["components"]["schemas"]["api.v2010.account.call.stream"])
CALL_SCHEMA = _nullable(SPEC["components"]["schemas"]["api.v2010.account.call"])
FETCH_CALL = SPEC["paths"]["/2010-04-01/Accounts/{AccountSid}/Calls/{Sid}.json"]["get"]


def assert_stream_resource(body: dict[str, Any]) -> None:
    jsonschema.validate(body, STREAM_SCHEMA)
    assert set(body) == set(STREAM_SCHEMA["properties"])
    assert parsedate_to_datetime(body["date_updated"]).utcoffset() is not None


def assert_call_resource(body: dict[str, Any]) -> None:
    """The body is what the spec's FetchCall answers: every property, Twilio's formats."""
    jsonschema.validate(body, CALL_SCHEMA)
    assert set(body) == set(CALL_SCHEMA["properties"])
    for key in ("date_created", "date_updated", "start_time", "end_time"):
        if body[key] is not None:
            assert parsedate_to_datetime(body[key]).utcoffset() is not None, key  # RFC 2822
    example = FETCH_CALL["responses"]["200"]["content"]["application/json"]["examples"]["fetch"]
    assert set(body["subresource_uris"]) == set(example["value"]["subresource_uris"])
    assert body["subresource_uris"]["streams"] == body["uri"].replace(".json", "/Streams.json")


class Receiver:
    """Webhook endpoint standing in for the service: checks signatures, answers as told."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.answers: list[int] = []
        self.app = Starlette(routes=[Route("/{path:path}", self.handle, methods=["POST"])])

    async def handle(self, request: Request) -> Response:
        form = parse_qsl((await request.body()).decode(), keep_blank_values=True)
        token = AUTH_TOKEN if dict(form)["AccountSid"] == ACCOUNT_SID else OTHER_TOKEN
        signature = request.headers["x-twilio-signature"]
        url = f"{HOOKS}{request.url.path}"
        self.received.append(
            {
                "path": request.url.path,
                "form": dict(form),
                "valid": is_valid(url, form, signature, token),
            }
        )
        return Response(status_code=self.answers.pop(0) if self.answers else 204)


@pytest.fixture
def receiver() -> Receiver:
    return Receiver()


@pytest.fixture
async def twilio(receiver: Receiver) -> AsyncIterator[httpx.AsyncClient]:
    config = EmulatorConfig(
        accounts={ACCOUNT_SID: AUTH_TOKEN, OTHER_SID: OTHER_TOKEN},
        api_keys={API_KEY: (ACCOUNT_SID, API_SECRET)},
        webhook_transport=httpx.ASGITransport(app=receiver.app),
    )
    async with lifespan_client(create_emulator_app(config), "http://twilio.test") as client:
        yield client


async def webhooks_sent(twilio: httpx.AsyncClient, count: int) -> None:
    """Wait for `count` webhooks: stream events go out in the background."""
    for _ in range(200):
        if len((await twilio.get("/_emulator/webhooks")).json()["webhooks"]) >= count:
            return
        await anyio.sleep(0.01)
    raise AssertionError(f"fewer than {count} webhooks sent")


async def new_call(twilio: httpx.AsyncClient, status: str = "in-progress", **extra: str) -> str:
    response = await twilio.post("/_emulator/calls", json={"status": status, **extra})
    assert response.status_code == 201, response.text
    sid: str = response.json()["sid"]
    return sid


def streams_path(call: str, account: str = ACCOUNT_SID) -> str:
    return f"/2010-04-01/Accounts/{account}/Calls/{call}/Streams.json"


async def create(
    twilio: httpx.AsyncClient, call: str, auth: tuple[str, str] = BASIC, /, **form: str
) -> httpx.Response:
    return await twilio.post(
        streams_path(call), data={"Url": "wss://a.example.com/s", **form}, auth=auth
    )


async def test_create_answers_the_openapi_schema(twilio: httpx.AsyncClient) -> None:
    call = await new_call(twilio)
    response = await create(
        twilio,
        call,
        Name="asr",
        Track="both_tracks",
        **{"Parameter1.Name": "k", "Parameter1.Value": "v"},
    )
    assert response.status_code == 200
    body = response.json()
    assert_stream_resource(body)
    assert (body["name"], body["status"], body["call_sid"]) == ("asr", "in-progress", call)
    assert (
        body["uri"] == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Calls/{call}/Streams/{body['sid']}.json"
    )
    [stream] = (await twilio.get(f"/_emulator/calls/{call}")).json()["streams"]
    assert (stream["track"], stream["parameters"]) == ("both_tracks", {"k": "v"})


async def test_a_stream_without_name_has_null_name(twilio: httpx.AsyncClient) -> None:
    body = (await create(twilio, await new_call(twilio))).json()
    assert_stream_resource(body)
    assert body["name"] is None


async def test_stop_by_sid_and_by_name(twilio: httpx.AsyncClient) -> None:
    call = await new_call(twilio)
    first = (await create(twilio, call, Name="one")).json()
    await create(twilio, call, Name="two")
    base = streams_path(call).removesuffix(".json")
    by_sid = await twilio.post(
        f"{base}/{first['sid']}.json", data={"Status": "stopped"}, auth=BASIC
    )
    by_name = await twilio.post(f"{base}/two.json", data={"Status": "stopped"}, auth=BASIC)
    for response in (by_sid, by_name):
        assert response.status_code == 200
        assert_stream_resource(response.json())
        assert response.json()["status"] == "stopped"
    again = await twilio.post(f"{base}/two.json", data={"Status": "stopped"}, auth=BASIC)
    assert (again.status_code, again.json()["status"]) == (200, "stopped")
    unknown = await twilio.post(f"{base}/three.json", data={"Status": "stopped"}, auth=BASIC)
    assert (unknown.status_code, unknown.json()["code"]) == (404, 20404)
    bad = await twilio.post(f"{base}/one.json", data={"Status": "started"}, auth=BASIC)
    assert bad.status_code == 400


@pytest.mark.parametrize(
    ("auth", "expected"),
    [
        (BASIC, 200),
        ((API_KEY, API_SECRET), 200),
        ((ACCOUNT_SID, "wrong"), 401),
        ((API_KEY, "wrong"), 401),
        ((OTHER_SID, OTHER_TOKEN), 401),  # another account's credentials
        (("", ""), 401),
    ],
)
async def test_basic_auth_per_account_and_api_key(
    twilio: httpx.AsyncClient, auth: tuple[str, str], expected: int
) -> None:
    response = await create(twilio, await new_call(twilio), auth)
    assert response.status_code == expected
    if expected == 401:
        assert response.json()["code"] == 20003
    logged = (await twilio.get("/_emulator/requests")).json()["requests"][-1]
    assert logged["auth_user"] == (auth[0] if expected == 200 else None)


async def test_missing_credentials_are_refused(twilio: httpx.AsyncClient) -> None:
    call = await new_call(twilio)
    response = await twilio.post(streams_path(call), data={"Url": "wss://a.example.com"})
    assert (response.status_code, response.json()["code"]) == (401, 20003)
    assert response.json()["more_info"] == "https://www.twilio.com/docs/errors/20003"


async def test_twilios_rules(twilio: httpx.AsyncClient) -> None:
    ringing = await new_call(twilio, status="ringing")
    response = await create(twilio, ringing)
    assert (response.status_code, response.json()["code"]) == (400, 21220)
    unknown = await create(twilio, "CA" + "0" * 32)
    assert (unknown.status_code, unknown.json()["code"]) == (404, 20404)

    call = await new_call(twilio)
    assert (await create(twilio, call, Name="a", Track="both_tracks")).status_code == 200
    assert (await create(twilio, call, Name="b")).status_code == 200
    duplicate = await create(twilio, call, Name="a")
    assert (duplicate.status_code, duplicate.json()["code"]) == (409, 20409)
    assert (await create(twilio, call, Name="c")).status_code == 200
    fifth = await create(twilio, call, Name="d")
    assert fifth.status_code == 400  # 2 + 1 + 1 tracks in use: a fifth is refused

    for form in (
        {"Url": ""},
        {"Url": "https://not-wss.example.com"},
        {"Url": "wss://a.example.com/s?query=1"},
        {"Track": "sideways"},
        {"StatusCallbackMethod": "PUT"},
        {"Parameter100.Name": "x"},
    ):
        response = await create(twilio, await new_call(twilio), **form)
        assert response.status_code == 400, form
        assert set(response.json()) == {"code", "message", "more_info", "status"}


async def test_a_stopped_name_stays_taken(twilio: httpx.AsyncClient) -> None:
    call = await new_call(twilio)
    await create(twilio, call, Name="a")
    base = streams_path(call).removesuffix(".json")
    await twilio.post(f"{base}/a.json", data={"Status": "stopped"}, auth=BASIC)
    assert (await create(twilio, call, Name="a")).status_code == 409


async def test_call_status_webhooks_are_signed_with_the_accounts_token(
    twilio: httpx.AsyncClient, receiver: Receiver
) -> None:
    for account in (ACCOUNT_SID, OTHER_SID):
        call = await new_call(
            twilio, status="ringing", account_sid=account, status_callback=f"{HOOKS}/call-status"
        )
        answer = (await twilio.post(f"/_emulator/calls/{call}/answer")).json()
        assert answer["deliveries"] == [{"status": 204, "attempt": 1}]
        assert answer["call"]["status"] == "in-progress"
    first, second = receiver.received
    assert first["valid"]
    assert second["valid"]
    assert first["form"]["CallStatus"] == "in-progress"
    assert set(first["form"]) >= {
        "CallSid", "AccountSid", "From", "To", "Caller", "Called", "CallStatus", "Direction",
        "ApiVersion", "CallbackSource", "SequenceNumber", "Timestamp",
    }  # fmt: skip


async def test_stream_webhooks_follow_the_stream(
    twilio: httpx.AsyncClient, receiver: Receiver
) -> None:
    call = await new_call(twilio, status_callback=f"{HOOKS}/call-status")
    sid = (await create(twilio, call, Name="a", StatusCallback=f"{HOOKS}/stream-status")).json()[
        "sid"
    ]
    await twilio.post(f"/_emulator/calls/{call}/complete")
    await webhooks_sent(twilio, 3)
    events = [r["form"] for r in receiver.received if r["path"] == "/stream-status"]
    call_events = [
        r["form"]["CallStatus"] for r in receiver.received if r["path"] == "/call-status"
    ]
    assert call_events == ["completed"]
    assert [e["StreamEvent"] for e in events] == ["stream-started", "stream-stopped"]
    assert all(e["StreamSid"] == sid and e["StreamName"] == "a" for e in events)
    assert all(r["valid"] for r in receiver.received)


async def test_retries_follow_the_url_fragment(
    twilio: httpx.AsyncClient, receiver: Receiver
) -> None:
    call = await new_call(twilio, status="ringing", status_callback=f"{HOOKS}/cs#rc=3&rp=5xx")
    receiver.answers = [503, 500]
    deliveries = (await twilio.post(f"/_emulator/calls/{call}/answer")).json()["deliveries"]
    assert deliveries == [
        {"status": 503, "attempt": 1}, {"status": 500, "attempt": 2}, {"status": 204, "attempt": 3},
    ]  # fmt: skip
    assert all(r["valid"] for r in receiver.received)  # the fragment is not signed

    default = await new_call(twilio, status="ringing", status_callback=f"{HOOKS}/cs")
    receiver.answers = [503]
    deliveries = (await twilio.post(f"/_emulator/calls/{default}/answer")).json()["deliveries"]
    assert deliveries == [{"status": 503, "attempt": 1}]  # Twilio retries connect failures only


def test_overrides_parsing() -> None:
    assert parse_overrides("https://x/y").retries == 1
    parsed = parse_overrides("https://x/y?a=1#rc=9&rp=all&ct=50&rt=2000")
    assert (parsed.url, parsed.retries, parsed.connect_timeout, parsed.read_timeout) == (
        "https://x/y?a=1", 5, 0.1, 2.0,
    )  # fmt: skip
    assert parsed.policy == {"4xx", "5xx", "ct", "rt"}


async def test_faults_from_the_control_api(twilio: httpx.AsyncClient) -> None:
    call = await new_call(twilio)
    rules = [{"kind": "429", "count": 2, "operation": "create", "retry_after": 1}]
    response = await twilio.put("/_emulator/faults", json={"faults": rules})
    assert response.status_code == 200
    for _ in range(2):
        throttled = await create(twilio, call)
        assert (throttled.status_code, throttled.json()["code"]) == (429, 20429)
        assert throttled.headers["retry-after"] == "1"
    assert (await create(twilio, call)).status_code == 200
    assert (await twilio.get("/_emulator/faults")).json() == {"faults": []}
    await twilio.put("/_emulator/faults", json={"faults": [{"kind": "503"}]})
    assert (await create(twilio, call)).status_code == 503
    await twilio.delete("/_emulator/faults")
    assert (await create(twilio, call)).status_code == 200
    bad = await twilio.put("/_emulator/faults", json={"faults": [{"kind": "meteor"}]})
    assert bad.status_code == 400
    assert "kind" in bad.json()["error"]


def test_fault_descriptions() -> None:
    assert parse_flag("429:0.5:create").ratio == 0.5
    assert parse_flag("timeout").seconds == 30.0
    assert parse_flag("latency:1:any:0.1").seconds == 0.1
    for bad in ("nope", "429:2", "429:x", "429:1:delete", "a:1:any:1:extra"):
        with pytest.raises(FaultError):
            parse_flag(bad)
    with pytest.raises(FaultError):
        parse_fault({"kind": "429", "count": 0})


async def test_concurrency_cap_answers_20429(receiver: Receiver) -> None:
    config = EmulatorConfig(accounts={ACCOUNT_SID: AUTH_TOKEN}, latency=0.05, max_concurrency=2)
    async with lifespan_client(create_emulator_app(config), "http://twilio.test") as twilio:
        call = await new_call(twilio)
        answers = await asyncio.gather(*(create(twilio, call) for _ in range(3)))
        assert sorted(a.status_code for a in answers) == [200, 200, 429]
        stats = (await twilio.get("/_emulator/stats")).json()
        assert (stats["throttled"], stats["max_in_flight"][ACCOUNT_SID]) == (1, 2)


async def test_control_api_rejects_bad_input(twilio: httpx.AsyncClient) -> None:
    assert (await twilio.post("/_emulator/calls", content=b"{")).status_code == 400
    assert (await twilio.post("/_emulator/calls", json={"status": "flying"})).status_code == 400
    assert (await twilio.post("/_emulator/calls", json={"account_sid": "AC1"})).status_code == 400
    assert (await twilio.get("/_emulator/calls/CA123")).status_code == 404
    call = await new_call(twilio)
    await twilio.post(f"/_emulator/calls/{call}/complete")
    assert (await twilio.post(f"/_emulator/calls/{call}/answer")).status_code == 409


@pytest.fixture
def emulator_process(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    with (tmp_path / "emulator.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "emulator", "--port", str(port),
             "--account", f"{ACCOUNT_SID}:{AUTH_TOKEN}", "--fault", "reset-after:1:create"],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/_emulator/streams")
        yield url
    finally:
        process.terminate()
        process.wait(10)


def test_a_reset_after_create_leaves_the_stream_behind(emulator_process: str) -> None:
    """The ambiguous outcome the worker must survive: no answer, yet the stream exists."""
    with httpx.Client(base_url=emulator_process, timeout=5) as twilio:
        call = twilio.post("/_emulator/calls", json={"status": "in-progress"}).json()["sid"]
        with pytest.raises(httpx.RemoteProtocolError):
            twilio.post(
                streams_path(call), data={"Url": "wss://a.example.com", "Name": "a"}, auth=BASIC
            )
        assert [s["name"] for s in twilio.get(f"/_emulator/calls/{call}").json()["streams"]] == [
            "a"
        ]
        auth = base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
        assert auth not in twilio.get("/_emulator/requests").text


def call_path(call: str, account: str = ACCOUNT_SID) -> str:
    return f"/2010-04-01/Accounts/{account}/Calls/{call}.json"


async def fetch(
    twilio: httpx.AsyncClient, call: str, auth: tuple[str, str] = BASIC, account: str = ACCOUNT_SID
) -> httpx.Response:
    return await twilio.get(call_path(call, account), auth=auth)


def test_the_extract_holds_twilios_fetch_call_operation() -> None:
    assert FETCH_CALL["operationId"] == "FetchCall"
    schema = FETCH_CALL["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/api.v2010.account.call"}
    example = FETCH_CALL["responses"]["200"]["content"]["application/json"]["examples"]["fetch"]
    jsonschema.validate(example["value"], CALL_SCHEMA)  # the converted schema takes Twilio's own


async def test_the_call_resource_through_a_calls_life(twilio: httpx.AsyncClient) -> None:
    call = await new_call(
        twilio, status="ringing", **{"from": "+15551234567", "to": "+442071838750"}
    )
    ringing = await fetch(twilio, call)
    assert ringing.status_code == 200
    body = ringing.json()
    assert_call_resource(body)
    assert (body["sid"], body["account_sid"], body["status"]) == (call, ACCOUNT_SID, "ringing")
    assert (body["from"], body["from_formatted"]) == ("+15551234567", "(555) 123-4567")
    assert (body["to"], body["to_formatted"]) == ("+442071838750", "+442071838750")
    assert body["uri"] == call_path(call)
    assert body["start_time"] is not None
    assert (body["end_time"], body["duration"], body["parent_call_sid"]) == (None, None, None)
    assert body["phone_number_sid"] is None  # not a call to a number of the emulator

    await twilio.post(f"/_emulator/calls/{call}/answer")
    answered = (await fetch(twilio, call)).json()
    assert_call_resource(answered)
    assert (answered["status"], answered["end_time"], answered["duration"]) == (
        "in-progress", None, None,
    )  # fmt: skip

    await twilio.post(f"/_emulator/calls/{call}/complete")
    completed = (await fetch(twilio, call)).json()
    assert_call_resource(completed)
    assert completed["status"] == "completed"
    assert completed["end_time"] is not None
    assert completed["duration"] is not None
    assert completed["duration"].isdigit()
    assert completed["date_created"] == body["date_created"]


@pytest.mark.parametrize(
    ("status", "shown", "started"),
    [
        ("queued", "queued", False),
        ("initiated", "queued", False),
        ("in-progress", "in-progress", True),
    ],
)
async def test_the_call_resource_before_the_call_rings(
    twilio: httpx.AsyncClient, status: str, shown: str, started: bool
) -> None:
    body = (await fetch(twilio, await new_call(twilio, status=status))).json()
    assert_call_resource(body)
    assert body["status"] == shown  # the resource's enum has no `initiated`
    assert (body["start_time"] is not None) == started


async def test_an_unanswered_call_has_no_end_time_nor_duration(twilio: httpx.AsyncClient) -> None:
    call = await new_call(twilio, status="ringing")
    await twilio.post(f"/_emulator/calls/{call}/complete", json={"status": "no-answer"})
    body = (await fetch(twilio, call)).json()
    assert_call_resource(body)
    assert (body["status"], body["end_time"], body["duration"]) == ("no-answer", None, None)


async def test_fetching_a_call_is_authenticated_and_scoped_to_its_account(
    twilio: httpx.AsyncClient,
) -> None:
    call = await new_call(twilio)
    assert (await fetch(twilio, call, (API_KEY, API_SECRET))).status_code == 200
    denied = await fetch(twilio, call, (ACCOUNT_SID, "wrong"))
    assert (denied.status_code, denied.json()["code"]) == (401, 20003)
    unknown = await fetch(twilio, "CA" + "0" * 32)
    assert (unknown.status_code, unknown.json()["code"]) == (404, 20404)
    assert set(unknown.json()) == {"code", "message", "more_info", "status"}
    others = await new_call(twilio, account_sid=OTHER_SID)
    hidden = await fetch(twilio, others)  # our account's path, another account's call
    assert (hidden.status_code, hidden.json()["code"]) == (404, 20404)
    assert (await fetch(twilio, others, (OTHER_SID, OTHER_TOKEN), OTHER_SID)).status_code == 200
    assert (await fetch(twilio, others, BASIC, OTHER_SID)).status_code == 401


async def test_fetch_faults_stats_and_request_log(twilio: httpx.AsyncClient) -> None:
    call = await new_call(twilio)
    await twilio.put("/_emulator/faults", json={"faults": [{"kind": "503", "operation": "fetch"}]})
    assert (await fetch(twilio, call)).status_code == 503
    assert (await create(twilio, call)).status_code == 200  # a fetch fault spares creates
    await twilio.put("/_emulator/faults", json={"faults": [{"kind": "500", "operation": "create"}]})
    assert (await fetch(twilio, call)).status_code == 200  # and a create fault spares fetches
    rules = [{"kind": "429", "count": 1, "retry_after": 2}]  # operation `any`
    await twilio.put("/_emulator/faults", json={"faults": rules})
    throttled = await fetch(twilio, call)
    assert (throttled.status_code, throttled.json()["code"]) == (429, 20429)
    assert throttled.headers["retry-after"] == "2"
    assert (await fetch(twilio, call)).status_code == 200
    stats = (await twilio.get("/_emulator/stats")).json()
    assert (stats["fetches"], stats["creates"]) == (2, 1)
    fetches = [
        r for r in (await twilio.get("/_emulator/requests")).json()["requests"]
        if r["operation"] == "fetch"
    ]  # fmt: skip
    assert [(r["method"], r["status"], r["fault"]) for r in fetches] == [
        ("GET", 503, "503"), ("GET", 200, None), ("GET", 429, "429"), ("GET", 200, None),
    ]  # fmt: skip
    assert all(r["path"] == call_path(call) and r["auth_user"] == ACCOUNT_SID for r in fetches)


async def test_fetches_count_toward_the_concurrency_cap() -> None:
    config = EmulatorConfig(accounts={ACCOUNT_SID: AUTH_TOKEN}, latency=0.05, max_concurrency=2)
    async with lifespan_client(create_emulator_app(config), "http://twilio.test") as twilio:
        call = await new_call(twilio)
        answers = await asyncio.gather(
            fetch(twilio, call), fetch(twilio, call), create(twilio, call)
        )
        assert sorted(a.status_code for a in answers) == [200, 200, 429]
        stats = (await twilio.get("/_emulator/stats")).json()
        assert (stats["throttled"], stats["max_in_flight"][ACCOUNT_SID]) == (1, 2)


def stream_events(receiver: Receiver) -> list[tuple[str, str]]:
    return [
        (r["form"]["StreamName"], r["form"]["StreamEvent"])
        for r in receiver.received if r["path"] == "/stream-status"
    ]  # fmt: skip


async def test_a_stream_accepted_on_a_ringing_call_starts_when_it_is_answered(
    twilio: httpx.AsyncClient, receiver: Receiver
) -> None:
    assert (await twilio.get("/_emulator/config")).json() == {
        "ringing_create": "refuse", "answer_after": None,
    }  # fmt: skip
    accepted = await twilio.put("/_emulator/config", json={"ringing_create": "accept"})
    assert accepted.json() == {"ringing_create": "accept", "answer_after": None}
    call = await new_call(twilio, status="ringing")
    hook = f"{HOOKS}/stream-status"
    first = await create(twilio, call, Name="a", Track="both_tracks", StatusCallback=hook)
    assert first.status_code == 200
    assert_stream_resource(first.json())
    assert first.json()["status"] == "in-progress"
    assert (await create(twilio, call, Name="a")).status_code == 409  # the name is taken at once
    assert (await create(twilio, call, Name="b", StatusCallback=hook)).status_code == 200
    assert (await create(twilio, call, Name="c", StatusCallback=hook)).status_code == 200
    fifth = await create(twilio, call, Name="d")
    assert (fifth.status_code, fifth.json()["code"]) == (400, 31940)  # its tracks count at once
    queued = await new_call(twilio, status="queued")
    refused = await create(twilio, queued)
    assert (refused.status_code, refused.json()["code"]) == (400, 21220)  # ringing only

    await anyio.sleep(0.05)
    assert stream_events(receiver) == []
    assert not any(
        s["started"] for s in (await twilio.get(f"/_emulator/calls/{call}")).json()["streams"]
    )
    await twilio.post(f"/_emulator/calls/{call}/answer")
    await webhooks_sent(twilio, 3)  # one stream-started per stream; the call has no callback
    assert sorted(stream_events(receiver)) == [
        ("a", "stream-started"), ("b", "stream-started"), ("c", "stream-started"),
    ]  # fmt: skip
    assert all(r["valid"] for r in receiver.received)


async def test_a_stream_on_a_ringing_call_that_never_answers_only_stops(
    twilio: httpx.AsyncClient, receiver: Receiver
) -> None:
    await twilio.put("/_emulator/config", json={"ringing_create": "accept"})
    call = await new_call(twilio, status="ringing")
    hook = f"{HOOKS}/stream-status"
    await create(twilio, call, Name="hung-up", StatusCallback=hook)
    await create(twilio, call, Name="stopped", StatusCallback=hook)
    base = streams_path(call).removesuffix(".json")
    stop = await twilio.post(f"{base}/stopped.json", data={"Status": "stopped"}, auth=BASIC)
    assert (stop.status_code, stop.json()["status"]) == (200, "stopped")
    await twilio.post(f"/_emulator/calls/{call}/complete", json={"status": "canceled"})
    await webhooks_sent(twilio, 2)
    await anyio.sleep(0.05)
    assert sorted(stream_events(receiver)) == [
        ("hung-up", "stream-stopped"), ("stopped", "stream-stopped"),
    ]  # fmt: skip
    streams = (await twilio.get(f"/_emulator/calls/{call}")).json()["streams"]
    assert [(s["status"], s["started"]) for s in streams] == [("stopped", False)] * 2


async def test_a_stream_stopped_while_ringing_does_not_start_on_answer(
    twilio: httpx.AsyncClient, receiver: Receiver
) -> None:
    await twilio.put("/_emulator/config", json={"ringing_create": "accept"})
    call = await new_call(twilio, status="ringing")
    await create(twilio, call, Name="a", StatusCallback=f"{HOOKS}/stream-status")
    base = streams_path(call).removesuffix(".json")
    await twilio.post(f"{base}/a.json", data={"Status": "stopped"}, auth=BASIC)
    await twilio.post(f"/_emulator/calls/{call}/answer")
    await webhooks_sent(twilio, 1)
    await anyio.sleep(0.05)
    assert stream_events(receiver) == [("a", "stream-stopped")]


async def test_config_rejects_bad_input_and_reset_restores_it(twilio: httpx.AsyncClient) -> None:
    for bad in (
        {"ringing_create": "maybe"}, {"answer_after": -1}, {"answer_after": "1"},
        {"answer_after": True}, {"answer_at": 1},
    ):  # fmt: skip
        response = await twilio.put("/_emulator/config", json=bad)
        assert response.status_code == 400, bad
        assert "error" in response.json()
    both = {"ringing_create": "accept", "answer_after": 2.5}
    assert (await twilio.put("/_emulator/config", json=both)).json() == both
    kept = await twilio.put("/_emulator/config", json={"answer_after": None})
    assert kept.json() == {"ringing_create": "accept", "answer_after": None}
    await twilio.post("/_emulator/reset")
    assert (await twilio.get("/_emulator/config")).json() == {
        "ringing_create": "refuse", "answer_after": None,
    }  # fmt: skip


async def test_a_dropped_callback_is_never_sent_but_logged(
    twilio: httpx.AsyncClient, receiver: Receiver
) -> None:
    rules = [{"kind": "drop", "callback": "completed", "count": 1}]
    listed = (await twilio.put("/_emulator/faults", json={"faults": rules})).json()["faults"]
    assert listed == [
        {"kind": "drop", "ratio": 1.0, "count": 1, "operation": "any", "seconds": 0.0,
         "retry_after": None, "callback": "completed"},
    ]  # fmt: skip
    hook = f"{HOOKS}/call-status#rc=3&rp=all"  # no retry either
    lost = await new_call(twilio, status_callback=hook)
    done = await twilio.post(f"/_emulator/calls/{lost}/complete")
    assert done.json()["deliveries"] == []
    assert receiver.received == []
    [entry] = (await twilio.get("/_emulator/webhooks")).json()["webhooks"]
    assert entry["dropped"] is True
    assert (entry["url"], entry["status"], entry["attempt"]) == (f"{HOOKS}/call-status", None, 0)
    assert (entry["params"]["CallSid"], entry["params"]["CallStatus"]) == (lost, "completed")
    assert (await twilio.get("/_emulator/faults")).json() == {"faults": []}  # count ran out

    kept = await new_call(twilio, status_callback=hook)
    delivered = await twilio.post(f"/_emulator/calls/{kept}/complete")
    assert delivered.json()["deliveries"] == [{"status": 204, "attempt": 1}]
    assert [r["form"]["CallSid"] for r in receiver.received] == [kept]
    logged = (await twilio.get("/_emulator/webhooks")).json()["webhooks"]
    assert [e["dropped"] for e in logged] == [True, False]


async def test_a_dropped_stream_event_spares_the_others(
    twilio: httpx.AsyncClient, receiver: Receiver
) -> None:
    rules = [
        {"kind": "drop", "callback": "stream-started"},
        {"kind": "drop", "callback": "busy", "ratio": 0},
    ]
    await twilio.put("/_emulator/faults", json={"faults": rules})
    call = await new_call(twilio)
    await create(twilio, call, Name="a", StatusCallback=f"{HOOKS}/stream-status")
    await create(twilio, call, Name="b", StatusCallback=f"{HOOKS}/stream-status")
    await twilio.post(f"/_emulator/calls/{call}/complete")
    await webhooks_sent(twilio, 4)
    await anyio.sleep(0.05)
    assert sorted(stream_events(receiver)) == [("a", "stream-stopped"), ("b", "stream-stopped")]
    logged = (await twilio.get("/_emulator/webhooks")).json()["webhooks"]
    dropped = [e["params"]["StreamEvent"] for e in logged if e["dropped"]]
    assert dropped == ["stream-started", "stream-started"]
    ringing = await new_call(twilio, status="ringing", status_callback=f"{HOOKS}/call-status")
    busy = await twilio.post(f"/_emulator/calls/{ringing}/complete", json={"status": "busy"})
    assert busy.json()["deliveries"] == [{"status": 204, "attempt": 1}]  # ratio 0 never drops


def test_drop_fault_descriptions() -> None:
    assert (parse_drop_flag("completed").callback, parse_drop_flag("completed").count) == (
        "completed", None,
    )  # fmt: skip
    flagged = parse_drop_flag("stream-started:0.5:2")
    assert (flagged.kind, flagged.ratio, flagged.count) == ("drop", 0.5, 2)
    for bad in (
        "",
        "nope",
        "completed:2",
        "completed:x",
        "completed:1:0",
        "completed:1:x",
        "a:1:2:3",
    ):
        with pytest.raises(FaultError):
            parse_drop_flag(bad)
    with pytest.raises(FaultError, match="--drop"):
        parse_flag("drop:1")
    for raw in (
        {"kind": "drop"},
        {"kind": "drop", "callback": "answered"},  # an event name, not a status
        {"kind": "drop", "callback": "completed", "operation": "create"},
        {"kind": "drop", "callback": "completed", "count": True},
        {"kind": "429", "callback": "completed"},
    ):
        with pytest.raises(FaultError):
            parse_fault(raw)
    assert parse_flag("503:1:fetch").operation == "fetch"


async def test_drop_faults_from_the_control_api_are_checked(twilio: httpx.AsyncClient) -> None:
    bad = await twilio.put(
        "/_emulator/faults", json={"faults": [{"kind": "drop", "callback": "x"}]}
    )
    assert bad.status_code == 400
    assert "callback" in bad.json()["error"]


async def test_calls_in_a_batch(twilio: httpx.AsyncClient) -> None:
    response = await twilio.post(
        "/_emulator/calls/batch", json={"count": 3, "status": "in-progress"}
    )
    assert response.status_code == 201
    sids = response.json()["sids"]
    assert len(set(sids)) == 3
    for sid in sids:
        assert (await twilio.get(f"/_emulator/calls/{sid}")).json()["status"] == "in-progress"
    for bad in ({"count": 0}, {"count": "3"}, {"count": True}, {}, {"count": 100_001}):
        assert (await twilio.post("/_emulator/calls/batch", json=bad)).status_code == 400
