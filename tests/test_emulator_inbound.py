"""Calls that come in to a number of the emulator: the Voice URL, one `<Redirect>`, the
number's status callback, answering and hanging up; in process and on real ports.

Every request the emulator sends is checked with twilio-python's `RequestValidator`,
not with the emulator's own signing code.
"""

import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import anyio
import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from twilio.request_validator import RequestValidator

from service.cli.dev import free_port
from service.emulator import EmulatorConfig, create_emulator_app
from service.emulator.numbers import Number, NumberError, parse_number_flag
from service.emulator.voice import Redirect, parse_redirect
from tests.helpers import ACCOUNT_SID, AUTH_TOKEN, lifespan_client
from tests.processes import until, wait_http
from tests.test_emulator import assert_call_resource

pytestmark = pytest.mark.anyio
OWNER = "http://owner.test"
NUMBER = "+15551230001"
BASIC = (ACCOUNT_SID, AUTH_TOKEN)
INCOMING_FIELDS = {
    "AccountSid", "ApiVersion", "CallSid", "CallStatus", "Called", "Caller", "Direction",
    "From", "To",
}  # fmt: skip
SAY = "<Response><Say>Hello</Say></Response>"


def twiml_redirect(url: str, method: str | None = None) -> str:
    attribute = f' method="{method}"' if method else ""
    return f"<Response><Redirect{attribute}>{url}</Redirect></Response>"


class Owner:
    """The servers a number's URLs point at: answers as told per path, checks signatures."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.received: list[dict[str, Any]] = []
        self.answers: dict[str, list[tuple[int, str]]] = {}  # path -> (status, TwiML), in turn
        self.app = Starlette(routes=[Route("/{path:path}", self.handle, methods=["GET", "POST"])])

    def answer(self, path: str, *answers: tuple[int, str]) -> None:
        self.answers[path] = list(answers)

    async def handle(self, request: Request) -> Response:
        query = request.url.query
        url = f"{self.base}{request.url.path}" + (f"?{query}" if query else "")
        form = dict(parse_qsl((await request.body()).decode(), keep_blank_values=True))
        signed = form if request.method == "POST" else {}
        valid = RequestValidator(AUTH_TOKEN).validate(
            url, signed, request.headers.get("x-twilio-signature", "")
        )
        self.received.append(
            {
                "method": request.method,
                "path": request.url.path,
                "query": dict(parse_qsl(query, keep_blank_values=True)),
                "form": form,
                "valid": valid,
            }
        )
        queue = self.answers.get(request.url.path, [])
        status, body = queue.pop(0) if len(queue) > 1 else (queue[0] if queue else (204, ""))
        return Response(body, status_code=status, media_type="text/xml" if body else None)

    def requests_to(self, path: str) -> list[dict[str, Any]]:
        return [r for r in self.received if r["path"] == path]


class Network(httpx.AsyncBaseTransport):
    """The owner's servers in process; `down.test` refuses connections."""

    def __init__(self, owner: Owner) -> None:
        self.owner = httpx.ASGITransport(app=owner.app)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.host == "down.test":
            raise httpx.ConnectError("connection refused", request=request)
        return await self.owner.handle_async_request(request)


@pytest.fixture
def owner() -> Owner:
    return Owner(OWNER)


@pytest.fixture
async def twilio(owner: Owner) -> AsyncIterator[httpx.AsyncClient]:
    config = EmulatorConfig(accounts={ACCOUNT_SID: AUTH_TOKEN}, webhook_transport=Network(owner))
    async with lifespan_client(create_emulator_app(config), "http://twilio.test") as client:
        yield client


async def configure(
    twilio: httpx.AsyncClient, number: str = NUMBER, **fields: Any
) -> dict[str, Any]:
    body = {"voice_url": f"{OWNER}/voice", "status_callback": f"{OWNER}/status", **fields}
    response = await twilio.put(f"/_emulator/numbers/{number}", json=body)
    assert response.status_code in (200, 201), response.text
    view: dict[str, Any] = response.json()
    return view


async def arrive(twilio: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    response = await twilio.post("/_emulator/calls/inbound", json={"to": NUMBER, **fields})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def resource(twilio: httpx.AsyncClient, call: str) -> dict[str, Any]:
    response = await twilio.get(f"/2010-04-01/Accounts/{ACCOUNT_SID}/Calls/{call}.json", auth=BASIC)
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    assert_call_resource(body)
    return body


async def test_numbers_are_configured_and_listed(twilio: httpx.AsyncClient) -> None:
    created = await twilio.put(
        f"/_emulator/numbers/{NUMBER}",
        json={"voice_url": f"{OWNER}/voice", "status_callback": f"{OWNER}/status"},
    )
    assert created.status_code == 201
    view = created.json()
    assert view == {
        "number": NUMBER, "sid": view["sid"], "account_sid": ACCOUNT_SID,
        "voice_url": f"{OWNER}/voice", "voice_method": "POST",
        "status_callback": f"{OWNER}/status", "status_callback_method": "POST",
    }  # fmt: skip
    assert view["sid"].startswith("PN")
    assert len(view["sid"]) == 34
    again = await twilio.put(
        f"/_emulator/numbers/{NUMBER}", json={"voice_url": f"{OWNER}/v2", "voice_method": "GET"}
    )
    assert again.status_code == 200
    assert (again.json()["sid"], again.json()["voice_method"]) == (view["sid"], "GET")
    assert again.json()["status_callback"] is None
    listed = (await twilio.get("/_emulator/numbers")).json()["numbers"]
    assert listed == [again.json()]


@pytest.mark.parametrize(
    ("number", "body"),
    [
        ("5551230001", {"voice_url": f"{OWNER}/voice"}),  # not E.164
        (NUMBER, {}),
        (NUMBER, {"voice_url": "ftp://owner.test/voice"}),
        (NUMBER, {"voice_url": "/voice"}),
        (NUMBER, {"voice_url": f"{OWNER}/voice", "voice_method": "PUT"}),
        (NUMBER, {"voice_url": f"{OWNER}/voice", "status_callback": 5}),
        (NUMBER, {"voice_url": f"{OWNER}/voice", "account_sid": "AC" + "9" * 32}),
        (NUMBER, {"voice_url": f"{OWNER}/voice", "fallback_url": f"{OWNER}/f"}),
    ],
)
async def test_a_bad_number_is_refused(
    twilio: httpx.AsyncClient, number: str, body: dict[str, Any]
) -> None:
    response = await twilio.put(f"/_emulator/numbers/{number}", json=body)
    assert response.status_code == 400
    assert response.json()["error"]


def test_number_flags() -> None:
    plain = parse_number_flag(f"{NUMBER}={OWNER}/voice", ACCOUNT_SID)
    assert (plain.number, plain.voice_url, plain.status_callback) == (
        NUMBER,
        f"{OWNER}/voice",
        None,
    )
    assert (plain.account_sid, plain.voice_method) == (ACCOUNT_SID, "POST")
    both = parse_number_flag(f"{NUMBER}={OWNER}/voice#rp=ct,rt,{OWNER}/status#rc=3", ACCOUNT_SID)
    assert (both.voice_url, both.status_callback) == (
        f"{OWNER}/voice#rp=ct,rt", f"{OWNER}/status#rc=3",
    )  # fmt: skip
    for bad in (NUMBER, f"1555={OWNER}/voice", f"{NUMBER}=", f"{NUMBER}=ftp://x/v"):
        with pytest.raises(NumberError):
            parse_number_flag(bad, ACCOUNT_SID)


async def test_a_call_comes_in_asks_the_voice_url_and_follows_its_redirect(
    twilio: httpx.AsyncClient, owner: Owner
) -> None:
    number = await configure(twilio, voice_url=f"{OWNER}/voice#rc=2&rp=5xx")
    redirect = twiml_redirect(f"{OWNER}/next?tenant=acme&amp;leg=1", "POST")
    owner.answer("/voice", (503, ""), (200, redirect))
    owner.answer("/next", (200, SAY))
    arrived = await arrive(twilio, **{"from": "+15557654321"})
    call = arrived["call"]
    assert (call["status"], call["direction"], call["phone_number_sid"]) == (
        "ringing", "inbound", number["sid"],
    )  # fmt: skip
    assert (call["from"], call["to"], call["status_callback"]) == (
        "+15557654321", NUMBER, f"{OWNER}/status",
    )  # fmt: skip
    voice = arrived["voice"]
    assert voice["status"] == 200  # after the 503, retried as the fragment asks
    assert voice["content_type"].startswith("text/xml")
    assert voice["body"] == redirect
    assert voice["redirect"] == {"url": f"{OWNER}/next?tenant=acme&leg=1", "method": "POST"}
    assert voice["followed"] == {**voice["redirect"], "status": 200}

    first, retried, followed = owner.received
    assert [r["path"] for r in owner.received] == ["/voice", "/voice", "/next"]
    assert all(r["valid"] and r["method"] == "POST" for r in owner.received)
    fields = first["form"]
    assert set(fields) >= INCOMING_FIELDS
    assert (fields["CallStatus"], fields["Direction"], fields["CallSid"]) == (
        "ringing", "inbound", call["sid"],
    )  # fmt: skip
    assert (fields["From"], fields["Caller"], fields["To"], fields["Called"]) == (
        "+15557654321", "+15557654321", NUMBER, NUMBER,
    )  # fmt: skip
    assert (fields["AccountSid"], fields["ApiVersion"]) == (ACCOUNT_SID, "2010-04-01")
    assert retried["form"] == fields
    assert followed["form"] == fields  # the same call fields, signed for the new URL
    assert followed["query"] == {"tenant": "acme", "leg": "1"}

    assert owner.requests_to("/status") == []  # ringing is no news for the number
    ringing = await resource(twilio, call["sid"])
    assert (ringing["status"], ringing["direction"], ringing["phone_number_sid"]) == (
        "ringing", "inbound", number["sid"],
    )  # fmt: skip
    assert ringing["start_time"] is not None
    assert ringing["end_time"] is None


async def test_get_voice_url_and_get_redirect_carry_the_fields_in_the_query(
    twilio: httpx.AsyncClient, owner: Owner
) -> None:
    await configure(twilio, voice_url=f"{OWNER}/voice?tenant=acme", voice_method="GET")
    owner.answer("/voice", (200, twiml_redirect("next?step=2&amp;x=%20y", "GET")))
    voice = (await arrive(twilio))["voice"]
    assert voice["redirect"] == {"url": f"{OWNER}/next?step=2&x=%20y", "method": "GET"}
    assert voice["followed"]["status"] == 204
    asked, followed = owner.received
    assert all(r["valid"] and r["method"] == "GET" and r["form"] == {} for r in owner.received)
    assert asked["query"]["tenant"] == "acme"
    assert set(asked["query"]) >= INCOMING_FIELDS
    assert (asked["query"]["CallStatus"], asked["query"]["Direction"]) == ("ringing", "inbound")
    assert (followed["query"]["step"], followed["query"]["x"]) == ("2", " y")
    assert followed["query"]["CallSid"] == asked["query"]["CallSid"]


def answer(status: int, body: str, content_type: str = "text/xml") -> httpx.Response:
    return httpx.Response(status, headers={"content-type": content_type}, content=body.encode())


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (answer(200, twiml_redirect("https://x.test/a")), Redirect("https://x.test/a", "POST")),
        (
            answer(200, twiml_redirect("https://x.test/a", "GET")),
            Redirect("https://x.test/a", "GET"),
        ),
        (
            answer(200, twiml_redirect("https://x.test/a?b=1&amp;c=&lt;2&gt;")),
            Redirect("https://x.test/a?b=1&c=<2>", "POST"),
        ),
        (answer(200, twiml_redirect("/flows/1")), Redirect("https://base.test/flows/1", "POST")),
        (
            answer(
                200,
                '<?xml version="1.0" encoding="UTF-8"?>\n<Response>\n  <Redirect method="POST">\n'
                "    https://x.test/a\n  </Redirect>\n</Response>\n",
                "application/xml; charset=utf-8",
            ),
            Redirect("https://x.test/a", "POST"),
        ),
        (answer(500, twiml_redirect("https://x.test/a")), None),
        (answer(200, twiml_redirect("https://x.test/a"), "text/html"), None),
        (answer(200, "<Response><Redirect>https://x.test/a</Response>"), None),  # not XML
        (answer(200, "<Reply><Redirect>https://x.test/a</Redirect></Reply>"), None),
        (
            answer(200, "<Response><Say>Hi</Say><Redirect>https://x.test/a</Redirect></Response>"),
            None,
        ),
        (answer(200, "<Response><Redirect>a</Redirect><Redirect>b</Redirect></Response>"), None),
        (answer(200, "<Response><Redirect><Say/></Redirect></Response>"), None),
        (answer(200, "<Response><Redirect> </Redirect></Response>"), None),
        (answer(200, twiml_redirect("https://x.test/a", "PUT")), None),
        (answer(200, SAY), None),
        (None, None),
    ],
)
def test_redirect_parsing(response: httpx.Response | None, expected: Redirect | None) -> None:
    assert parse_redirect(response, "https://base.test/voice") == expected


async def test_a_failing_voice_url_is_recorded_and_the_call_rings_on(
    twilio: httpx.AsyncClient, owner: Owner
) -> None:
    await configure(twilio, voice_url="http://down.test/voice")
    down = await arrive(twilio)
    assert down["voice"] == {
        "status": None, "content_type": None, "body": None, "redirect": None, "followed": None,
    }  # fmt: skip
    assert down["call"]["status"] == "ringing"
    logged = (await twilio.get("/_emulator/webhooks")).json()["webhooks"]
    assert [(e["error"], e["attempt"]) for e in logged] == [
        ("ConnectError", 1),
        ("ConnectError", 2),
    ]

    await configure(twilio)
    owner.answer("/voice", (500, twiml_redirect(f"{OWNER}/next")))
    failed = (await arrive(twilio))["voice"]
    assert (failed["status"], failed["redirect"], failed["followed"]) == (500, None, None)

    owner.answer("/voice", (200, twiml_redirect("http://down.test/next")))
    unreachable = (await arrive(twilio))["voice"]
    assert unreachable["followed"] == {
        "url": "http://down.test/next", "method": "POST", "status": None,
    }  # fmt: skip


async def test_answered_by_the_control_api_the_number_hears_only_completed(
    twilio: httpx.AsyncClient, owner: Owner
) -> None:
    await configure(twilio)
    sid = (await arrive(twilio))["call"]["sid"]
    answered = (await twilio.post(f"/_emulator/calls/{sid}/answer")).json()
    assert answered["deliveries"] == []
    assert answered["call"]["status"] == "in-progress"
    assert (await resource(twilio, sid))["status"] == "in-progress"
    completed = (await twilio.post(f"/_emulator/calls/{sid}/complete")).json()
    assert completed["deliveries"] == [{"status": 204, "attempt": 1}]
    [hook] = owner.requests_to("/status")
    assert hook["valid"]
    assert (hook["form"]["CallStatus"], hook["form"]["CallSid"], hook["form"]["Direction"]) == (
        "completed", sid, "inbound",
    )  # fmt: skip
    assert hook["form"]["SequenceNumber"] == "0"
    body = await resource(twilio, sid)
    assert body["status"] == "completed"
    assert body["end_time"] is not None
    assert body["duration"] is not None


async def test_answered_after_answer_after_seconds(twilio: httpx.AsyncClient, owner: Owner) -> None:
    await configure(twilio)
    sid = (await arrive(twilio, answer_after=0.2))["call"]["sid"]
    assert (await resource(twilio, sid))["status"] == "ringing"
    for _ in range(300):
        if (await resource(twilio, sid))["status"] == "in-progress":
            break
        await anyio.sleep(0.01)
    assert (await resource(twilio, sid))["status"] == "in-progress"
    assert owner.requests_to("/status") == []

    await twilio.put("/_emulator/config", json={"answer_after": 0})
    by_default = (await arrive(twilio))["call"]["sid"]
    held = (await arrive(twilio, answer_after=None))["call"]["sid"]  # null: until told
    await anyio.sleep(0.1)
    assert (await resource(twilio, by_default))["status"] == "in-progress"
    assert (await resource(twilio, held))["status"] == "ringing"


@pytest.mark.parametrize("status", ["canceled", "no-answer", "busy", "failed", "completed"])
async def test_hang_up_while_ringing(twilio: httpx.AsyncClient, owner: Owner, status: str) -> None:
    await configure(twilio)
    sid = (await arrive(twilio, answer_after=0.2))["call"]["sid"]
    ended = await twilio.post(f"/_emulator/calls/{sid}/complete", json={"status": status})
    assert ended.json()["deliveries"] == [{"status": 204, "attempt": 1}]
    await anyio.sleep(0.3)  # past answer_after: an ended call is not answered
    body = await resource(twilio, sid)
    assert body["status"] == status
    assert (body["duration"] is None) == (status != "completed")
    assert (body["end_time"] is None) == (status != "completed")
    [hook] = owner.requests_to("/status")
    assert (hook["form"]["CallStatus"], hook["valid"]) == (status, True)


async def test_a_stream_accepted_while_ringing_starts_when_answer_after_answers(
    twilio: httpx.AsyncClient, owner: Owner
) -> None:
    await twilio.put("/_emulator/config", json={"ringing_create": "accept"})
    await configure(twilio)
    sid = (await arrive(twilio, answer_after=0.3))["call"]["sid"]
    created = await twilio.post(
        f"/2010-04-01/Accounts/{ACCOUNT_SID}/Calls/{sid}/Streams.json",
        data={"Url": "wss://a.example.com/s", "Name": "asr", "StatusCallback": f"{OWNER}/stream"},
        auth=BASIC,
    )
    assert created.status_code == 200
    assert owner.requests_to("/stream") == []
    for _ in range(300):
        if owner.requests_to("/stream"):
            break
        await anyio.sleep(0.01)
    [started] = owner.requests_to("/stream")
    assert (started["form"]["StreamEvent"], started["valid"]) == ("stream-started", True)
    assert (await resource(twilio, sid))["status"] == "in-progress"


async def test_a_dropped_completed_leaves_the_number_unaware(
    twilio: httpx.AsyncClient, owner: Owner
) -> None:
    await twilio.put(
        "/_emulator/faults", json={"faults": [{"kind": "drop", "callback": "completed"}]}
    )
    await configure(twilio)
    sid = (await arrive(twilio))["call"]["sid"]
    await twilio.post(f"/_emulator/calls/{sid}/answer")
    assert (await twilio.post(f"/_emulator/calls/{sid}/complete")).json()["deliveries"] == []
    assert owner.requests_to("/status") == []
    [dropped] = [
        e for e in (await twilio.get("/_emulator/webhooks")).json()["webhooks"] if e["dropped"]
    ]
    assert (dropped["url"], dropped["params"]["CallStatus"]) == (f"{OWNER}/status", "completed")


async def test_the_owner_twiml_stand_in(twilio: httpx.AsyncClient) -> None:
    for method in ("GET", "POST"):
        response = await twilio.request(method, "/_emulator/twiml?CallSid=CA1")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/xml")
        assert "<Response><Say>Hello</Say></Response>" in response.text
        assert parse_redirect(response, "http://twilio.test/") is None  # TwiML that answers


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"to": "+15559999999"}, 404),
        ({}, 404),
        ({"to": NUMBER, "answer_after": -1}, 400),
        ({"to": NUMBER, "answer_after": "soon"}, 400),
        ({"to": NUMBER, "from": 5}, 400),
        ({"to": NUMBER, "direction": "outbound-api"}, 400),
    ],
)
async def test_a_bad_inbound_call_is_refused(
    twilio: httpx.AsyncClient, body: dict[str, Any], status: int
) -> None:
    await configure(twilio)
    response = await twilio.post("/_emulator/calls/inbound", json=body)
    assert response.status_code == status
    assert response.json()["error"]


async def test_reset_restores_the_numbers_it_started_with() -> None:
    start = Number(NUMBER, ACCOUNT_SID, f"{OWNER}/voice")
    config = EmulatorConfig(accounts={ACCOUNT_SID: AUTH_TOKEN}, numbers=[start])
    async with lifespan_client(create_emulator_app(config), "http://twilio.test") as twilio:
        await configure(twilio, "+15551230002")
        await configure(twilio, NUMBER, voice_url=f"{OWNER}/changed")
        await twilio.post("/_emulator/reset")
        assert (await twilio.get("/_emulator/numbers")).json()["numbers"] == [start.view()]


# On real ports: the emulator as `callstreams emulator`, the owner's servers under uvicorn.


@pytest.fixture
def owner_server() -> Iterator[Owner]:
    port = free_port()
    owner = Owner(f"http://127.0.0.1:{port}")
    config = uvicorn.Config(
        owner.app, host="127.0.0.1", port=port, log_config=None,
        loop="asyncio", http="h11", ws="none", lifespan="off",
    )  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="owner", daemon=True)
    thread.start()
    until(lambda: server.started or not thread.is_alive(), what="the owner's server started")
    assert server.started
    try:
        yield owner
    finally:
        server.should_exit = True
        thread.join(15)


@pytest.fixture
def emulator_url(owner_server: Owner, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    hooks = owner_server.base
    with (tmp_path / "emulator.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "emulator", "--port", str(port),
             "--account", f"{ACCOUNT_SID}:{AUTH_TOKEN}",
             "--number", f"{NUMBER}={hooks}/voice,{hooks}/status",
             "--answer-after", "0.5", "--ringing-create", "accept", "--drop", "completed:1:1"],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/_emulator/numbers")
        yield url
    finally:
        process.terminate()
        process.wait(10)


def test_an_inbound_call_on_real_ports(emulator_url: str, owner_server: Owner) -> None:
    owner, hooks = owner_server, owner_server.base
    owner.answer("/voice", (200, twiml_redirect(f"{hooks}/next?x=1&amp;y=2", "GET")))
    owner.answer("/next", (200, SAY))
    with httpx.Client(base_url=emulator_url, timeout=10) as twilio:
        assert twilio.get("/_emulator/config").json() == {
            "ringing_create": "accept", "answer_after": 0.5,
        }  # fmt: skip
        [number] = twilio.get("/_emulator/numbers").json()["numbers"]
        assert (number["number"], number["voice_url"], number["status_callback"]) == (
            NUMBER, f"{hooks}/voice", f"{hooks}/status",
        )  # fmt: skip

        arrived = twilio.post("/_emulator/calls/inbound", json={"to": NUMBER}).json()
        sid = arrived["call"]["sid"]
        assert arrived["voice"]["redirect"] == {"url": f"{hooks}/next?x=1&y=2", "method": "GET"}
        assert arrived["voice"]["followed"]["status"] == 200
        asked, followed = owner.received
        assert (asked["method"], asked["path"], asked["valid"]) == ("POST", "/voice", True)
        assert (followed["method"], followed["path"], followed["valid"]) == ("GET", "/next", True)
        assert (followed["query"]["x"], followed["query"]["CallSid"]) == ("1", sid)

        streams = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Calls/{sid}/Streams.json"
        stream = {
            "Url": "wss://a.example.com/s",
            "Name": "asr",
            "StatusCallback": f"{hooks}/stream",
        }
        assert twilio.post(streams, data=stream, auth=BASIC).status_code == 200  # accepted
        call_url = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Calls/{sid}.json"
        assert twilio.get(call_url, auth=BASIC).json()["status"] == "ringing"
        until(lambda: twilio.get(call_url, auth=BASIC).json()["status"] == "in-progress", 5)
        assert_call_resource(twilio.get(call_url, auth=BASIC).json())
        [started] = until(lambda: owner.requests_to("/stream"), 5)
        assert (started["form"]["StreamEvent"], started["valid"]) == ("stream-started", True)

        twilio.post(f"/_emulator/calls/{sid}/complete")  # the --drop eats this completed
        second = twilio.post("/_emulator/calls/inbound", json={"to": NUMBER}).json()["call"]
        twilio.post(f"/_emulator/calls/{second['sid']}/complete", json={"status": "canceled"})
        [hook] = owner.requests_to("/status")
        assert (hook["form"]["CallSid"], hook["form"]["CallStatus"], hook["valid"]) == (
            second["sid"], "canceled", True,
        )  # fmt: skip
        dropped = [e for e in twilio.get("/_emulator/webhooks").json()["webhooks"] if e["dropped"]]
        assert [e["params"]["CallSid"] for e in dropped] == [sid]

        own = {"voice_url": f"{emulator_url}/_emulator/twiml"}
        assert twilio.put("/_emulator/numbers/+15551230002", json=own).status_code == 201
        voice = twilio.post("/_emulator/calls/inbound", json={"to": "+15551230002"}).json()["voice"]
        assert (voice["status"], voice["redirect"]) == (200, None)
        assert "<Say>Hello</Say>" in voice["body"]


@pytest.mark.parametrize(
    "flags",
    [
        ["--number", "15551230001=http://x.test/voice"],
        ["--number", f"{NUMBER}"],
        ["--drop", "answered"],
        ["--drop", "completed:2"],
        ["--answer-after", "-1"],
        ["--ringing-create", "sometimes"],
    ],
)
def test_bad_emulator_flags_stop_it_with_one_line(flags: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "service.cli", "emulator", "--port", str(free_port()), *flags],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert flags[0] in lines[-1]
    assert "Traceback" not in result.stderr
