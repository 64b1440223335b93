"""`callstreams streams ...` against a real web process on loopback.

The web app runs under uvicorn in a thread of the test process; the command
runs as its own process, exactly as an operator would run it.
"""

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import uvicorn

from service.cli.dev import free_port
from service.config import Settings
from service.web.app import create_app
from tests.helpers import API_TOKEN, answered, call_sid, signed

CALL = call_sid(7)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Variables of the shell that would change what the command does here.
SCRUBBED = ("CALLSTREAMS_API_URL", "CALLSTREAMS_API_TOKEN", "HTTP_PROXY", "HTTPS_PROXY",
            "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")  # fmt: skip


@contextmanager
def serving(settings: Settings) -> Iterator[str]:
    """The web app on a free loopback port, until the block ends."""
    port = free_port()
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=port, log_config=None,
        loop="asyncio", http="h11", ws="none", lifespan="on",
    )  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="web", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert thread.is_alive(), "the web app did not start"
        assert time.monotonic() < deadline, "the web app did not start within 15s"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)


@pytest.fixture
def web(make_settings: Callable[..., Settings]) -> Iterator[str]:
    with serving(make_settings()) as url:
        yield url


def streams(
    api_url: str, *args: str, token: str | None = API_TOKEN
) -> subprocess.CompletedProcess[str]:
    """Run `callstreams streams ARGS` as its own process, URL and token from the env."""
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED}
    env["CALLSTREAMS_API_URL"] = api_url
    if token is not None:
        env["CALLSTREAMS_API_TOKEN"] = token
    return subprocess.run(
        [sys.executable, "-m", "service.cli", "streams", *args],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def one_line(text: str) -> str:
    """The single line a failing command prints on stderr: no traceback."""
    assert "Traceback" not in text
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    return lines[0]


def answer_call(web: str, sid: str) -> None:
    """Deliver Twilio's signed "answered" callback to the running service."""
    path = "/twilio/call-status"
    response = httpx.post(web + path, **signed(path, answered(sid)))
    assert response.status_code == 204, response.text


def test_list_of_an_unknown_call_has_no_streams(web: str) -> None:
    result = streams(web, "list", CALL)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"no streams on {CALL}"
    assert result.stderr == ""


def test_start_by_profile_then_a_second_start_conflicts(web: str) -> None:
    first = streams(web, "start", CALL, "--profile", "transcription")
    assert first.returncode == 0, first.stderr
    header, row = first.stdout.strip().splitlines()
    assert header.split() == ["NAME", "STATUS", "DESIRED", "SID", "ATTEMPTS", "ERROR"]
    assert row.split() == ["transcription", "pending", "started", "-", "0", "-"]

    again = streams(web, "start", CALL, "--profile", "transcription")
    assert again.returncode == 1
    assert again.stdout == ""
    message = one_line(again.stderr)
    assert message.startswith("callstreams streams start: 409 stream exists: ")
    assert "unique per call" in message


def test_stop_then_get_shows_desired_stopped(web: str) -> None:
    answer_call(web, CALL)
    listed = streams(web, "list", CALL)
    assert listed.returncode == 0, listed.stderr
    assert [line.split()[:3] for line in listed.stdout.strip().splitlines()[1:]] == [
        ["transcription", "pending", "started"]
    ]

    stopped = streams(web, "stop", CALL, "transcription")
    assert stopped.returncode == 0, stopped.stderr
    assert stopped.stdout.strip().splitlines()[1].split()[:3] == [
        "transcription", "skipped", "stopped",
    ]  # fmt: skip

    got = streams(web, "get", CALL, "transcription")
    assert got.returncode == 0, got.stderr
    fields = dict(line.split(None, 1) for line in got.stdout.strip().splitlines())
    assert (fields["name"], fields["desired"], fields["status"]) == (
        "transcription", "stopped", "skipped",
    )  # fmt: skip
    assert fields["call_sid"] == CALL

    as_json = streams(web, "get", CALL, "transcription", "--json")
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout)["desired"] == "stopped"


def test_stop_all_then_list_the_accounts_calls(web: str) -> None:
    answer_call(web, CALL)
    streams(web, "start", CALL, "--url", "wss://b.example.com/x", "--name", "extra")
    stopped = streams(web, "stop-all", CALL)
    assert stopped.returncode == 0, stopped.stderr
    rows = [line.split()[:3] for line in stopped.stdout.strip().splitlines()[1:]]
    assert sorted(rows) == [
        ["extra", "skipped", "stopped"],
        ["transcription", "skipped", "stopped"],
    ]

    calls = streams(web, "calls", "--limit", "1")
    assert calls.returncode == 0, calls.stderr
    lines = calls.stdout.strip().splitlines()
    assert lines[0] == CALL
    assert len(lines) == 4  # the call, the table's header, two streams


def test_json_output_parses(web: str) -> None:
    started = streams(web, "start", CALL, "--profile", "transcription", "--json")
    assert started.returncode == 0, started.stderr
    record: dict[str, Any] = json.loads(started.stdout)
    assert (record["name"], record["status"], record["desired"]) == (
        "transcription", "pending", "started",
    )  # fmt: skip

    listed = streams(web, "list", CALL, "--json")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == {"streams": [record]}

    empty = streams(web, "list", call_sid(8), "--json")
    assert json.loads(empty.stdout) == {"streams": []}

    # A refusal still prints the API's JSON (the existing record of a conflict).
    conflict = streams(web, "start", CALL, "--profile", "transcription", "--json")
    assert conflict.returncode == 1
    assert json.loads(conflict.stdout)["record"]["name"] == "transcription"
    assert "409" in one_line(conflict.stderr)


def test_start_an_inline_profile(web: str) -> None:
    result = streams(
        web, "start", CALL, "--url", "wss://agent.example.com/ws", "--name", "agent",
        "--track", "both_tracks", "--param", "tenant=acme", "--param", "call={CallSid}",
        "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert (record["name"], record["url"], record["track"]) == (
        "agent", "wss://agent.example.com/ws", "both_tracks",
    )  # fmt: skip
    assert record["parameters"] == {"tenant": "acme", "call": CALL}
    assert record["profile"] is None


def test_start_a_profile_under_another_name(web: str) -> None:
    result = streams(web, "start", CALL, "--profile", "transcription", "--name", "second")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[1].split()[:2] == ["second", "pending"]


@pytest.mark.parametrize("where", ["env", "flag"])
def test_a_wrong_token_is_refused_without_printing_it(web: str, where: str) -> None:
    secret = "wrong-operator-token-5d1c"
    if where == "env":
        result = streams(web, "list", CALL, token=secret)
    else:
        result = streams(web, "list", CALL, "--token", secret, token=None)
    assert result.returncode == 1
    assert result.stdout == ""
    assert one_line(result.stderr) == (
        "callstreams streams list: 403 forbidden: the bearer token is not valid"
    )
    assert secret not in result.stdout + result.stderr
    assert API_TOKEN not in result.stdout + result.stderr


def test_the_api_messages_are_passed_on(web: str) -> None:
    unknown = streams(web, "get", CALL, "nope")
    assert unknown.returncode == 1
    assert one_line(unknown.stderr) == (
        "callstreams streams get: 404 not found: no stream with this name on this call"
    )
    stop_unknown = streams(web, "stop", CALL, "nope")
    assert stop_unknown.returncode == 1
    assert "404 not found" in one_line(stop_unknown.stderr)

    bad_url = streams(web, "start", CALL, "--url", "https://not-wss.example.com", "--name", "x")
    assert bad_url.returncode == 1
    message = one_line(bad_url.stderr)
    assert message.startswith("callstreams streams start: 400 invalid field: url: ")
    assert "wss://" in message

    bad_profile = streams(web, "start", CALL, "--profile", "nope")
    assert bad_profile.returncode == 1
    assert "404 not found: profile: no such profile" in one_line(bad_profile.stderr)


def test_the_operator_api_disabled(make_settings: Callable[..., Settings]) -> None:
    with serving(make_settings(CALLSTREAMS_API_TOKEN=None)) as url:
        result = streams(url, "list", CALL)
    assert result.returncode == 1
    assert "503 operator API disabled: set CALLSTREAMS_API_TOKEN" in one_line(result.stderr)


def test_an_unreachable_api_exits_3() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = streams(url, "list", CALL)
    assert result.returncode == 3
    assert result.stdout == ""
    message = one_line(result.stderr)
    assert message.startswith(f"callstreams streams list: cannot connect to {url}: ")
    assert API_TOKEN not in message


def test_the_api_url_flag_wins_over_the_env(web: str) -> None:
    unreachable = f"http://127.0.0.1:{free_port()}"
    result = streams(unreachable, "list", CALL, "--api-url", web + "/")
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("args", "token", "expected"),
    [
        (["list", "CA123"], API_TOKEN, "argument CALLSID: expected CA followed by 32 hex digits"),
        (["list"], API_TOKEN, "the following arguments are required: CALLSID"),
        (["start", CALL], API_TOKEN, "one of the arguments --profile --url is required"),
        (["start", CALL, "--profile", "p", "--url", "wss://a"], API_TOKEN, "not allowed with"),
        (["start", CALL, "--url", "wss://a.example.com"], API_TOKEN, "--url needs --name"),
        (["start", CALL, "--profile", "p", "--track", "both_tracks"], API_TOKEN, "go with --url"),
        (["start", CALL, "--url", "wss://a", "--name", "a", "--param", "x"], API_TOKEN,
         "expected KEY=VALUE"),
        (["start", CALL, "--profile", "p", "--account", "AC1"], API_TOKEN, "expected AC"),
        (["list", CALL, "--timeout", "0"], API_TOKEN, "expected seconds"),
        (["list", CALL], None, "no API token: set CALLSTREAMS_API_TOKEN or pass --token"),
        (["list", CALL, "--api-url", "ftp://example.com"], API_TOKEN, "must be an http(s)://"),
        ([], API_TOKEN, "required: COMMAND"),
    ],
)  # fmt: skip
def test_usage_errors_exit_2(args: list[str], token: str | None, expected: str) -> None:
    unreachable = f"http://127.0.0.1:{free_port()}"
    result = streams(unreachable, *args, token=token)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert expected in result.stderr
