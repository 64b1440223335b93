"""End to end with real processes: emulator, web (uvicorn) and worker (arq) on loopback."""

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from redis import Redis

from tests.helpers import ACCOUNT_SID, API_TOKEN, AUTH_TOKEN
from tests.processes import Services, running_stack, until, wait_log

pytestmark = pytest.mark.e2e
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


@pytest.fixture
def services(redis_url: str, tmp_path: Path) -> Iterator[Services]:
    with running_stack(redis_url, tmp_path) as running:
        yield running


@pytest.fixture
def twilio(services: Services) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=services.emulator, timeout=10) as client:
        yield client


@pytest.fixture
def api(services: Services) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=services.web, headers=AUTH, timeout=10) as client:
        yield client


def test_answered_call_streams_and_stops_by_name(
    services: Services, twilio: httpx.Client, api: httpx.Client, redis_url: str
) -> None:
    call = twilio.post(
        "/_emulator/calls",
        json={"account_sid": ACCOUNT_SID, "status_callback": f"{services.web}/twilio/call-status"},
    ).json()
    sid = call["sid"]
    answer = twilio.post(f"/_emulator/calls/{sid}/answer").json()
    assert [d["status"] for d in answer["deliveries"]] == [204]

    def started() -> dict[str, Any] | None:
        streams = api.get(f"/v1/calls/{sid}/streams").json()["streams"]
        # in-progress with its SID and the stream-started callback applied
        ok = streams and streams[0]["status"] == "in-progress" and streams[0]["started_at"]
        return streams[0] if ok else None

    record = until(started)
    [stream] = twilio.get(f"/_emulator/calls/{sid}").json()["streams"]
    assert record["sid"] == stream["sid"]

    stop = api.post(f"/v1/calls/{sid}/streams/transcription/stop")
    assert stop.status_code == 202
    until(lambda: api.get(f"/v1/calls/{sid}/streams/transcription").json()["status"] == "stopped")
    assert twilio.get(f"/_emulator/calls/{sid}").json()["streams"][0]["status"] == "stopped"
    hooks = twilio.get("/_emulator/webhooks").json()["webhooks"]
    events = [h["params"].get("StreamEvent") for h in hooks if "StreamEvent" in h["params"]]
    assert events == ["stream-started", "stream-stopped"]
    assert all(h["status"] == 204 for h in hooks)

    twilio.post(f"/_emulator/calls/{sid}/complete")
    ttl = cast(int, Redis.from_url(redis_url).ttl(f"callstreams:call:{sid}"))
    assert 0 < ttl <= 7 * 86400

    check = subprocess.run(
        [sys.executable, "-m", "service.cli", "worker", "--check"],
        env=services.env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
    logs = "".join(services.log(name) for name in ("web", "worker", "emulator"))
    for secret in (AUTH_TOKEN, API_TOKEN):
        assert secret not in logs
    for phone in ("+15550000001", "+15550000002"):  # the emulator's default From and To
        assert phone not in services.log("web") + services.log("worker")
    assert "call_sid" in services.log("worker")

    web_metrics = api.get("/metrics").text
    for name in (
        'callstreams_webhooks_total{kind="call-status",status="in-progress"} 1.0',
        'callstreams_stream_claims_total{outcome="claimed",profile="transcription"} 1.0',
        'callstreams_stream_events_total{event="stream-started",profile="transcription"} 1.0',
        "callstreams_answered_to_stream_started_seconds_count 1.0",
        "callstreams_redis_up",
    ):
        assert name in web_metrics, name
    port = services.env["CALLSTREAMS_WORKER_METRICS_PORT"]
    worker_metrics = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    for name in (
        'callstreams_twilio_requests_total{code="",operation="create",outcome="ok"} 1.0',
        'callstreams_twilio_requests_total{code="",operation="stop",outcome="ok"} 1.0',
        "callstreams_stream_outcomes_total"
        '{code="",operation="create",outcome="created",profile="transcription"} 1.0',
        "callstreams_answered_to_create_sent_seconds_count 1.0",
        "callstreams_twilio_request_seconds_bucket",
        "callstreams_queue_depth",
    ):
        assert name in worker_metrics, name
    assert "CA" not in web_metrics + worker_metrics  # no CallSid in any label


def test_duplicate_deliveries_create_one_stream(services: Services, twilio: httpx.Client) -> None:
    call = twilio.post(
        "/_emulator/calls",
        json={"account_sid": ACCOUNT_SID, "status_callback": f"{services.web}/twilio/call-status"},
    ).json()
    twilio.post(f"/_emulator/calls/{call['sid']}/answer")
    for _ in range(3):
        twilio.post(f"/_emulator/calls/{call['sid']}/deliver", json={"status": "in-progress"})
    until(lambda: twilio.get(f"/_emulator/calls/{call['sid']}").json()["streams"])
    time.sleep(0.5)
    assert len(twilio.get(f"/_emulator/calls/{call['sid']}").json()["streams"]) == 1


RESTARTING = """
[[streams]]
name = "{name}"
url = "wss://asr.example.com/twilio"
restart = {{ max = 1, backoff = "0s" }}
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "callstreams.toml"
    path.write_text(RESTARTING.format(name="asr"))
    return path


SECOND_SID, SECOND_TOKEN = "AC" + "b2" * 16, "second-token"


@pytest.fixture
def profiled(redis_url: str, tmp_path: Path, config: Path) -> Iterator[Services]:
    accounts = {SECOND_SID: SECOND_TOKEN}
    with running_stack(redis_url, tmp_path, accounts, CALLSTREAMS_CONFIG=str(config)) as running:
        yield running


def answer(twilio: httpx.Client, services: Services) -> str:
    hook = f"{services.web}/twilio/call-status"
    sid: str = twilio.post("/_emulator/calls", json={"status_callback": hook}).json()["sid"]
    twilio.post(f"/_emulator/calls/{sid}/answer")
    return sid


def records(api: httpx.Client, sid: str) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in api.get(f"/v1/calls/{sid}/streams").json()["streams"]}


def test_a_stream_error_restarts_the_stream_once(profiled: Services) -> None:
    with (
        httpx.Client(base_url=profiled.emulator, timeout=10) as twilio,
        httpx.Client(base_url=profiled.web, headers=AUTH, timeout=10) as api,
    ):
        sid = answer(twilio, profiled)
        first = until(
            lambda: records(api, sid).get("asr", {}).get("started_at") and records(api, sid)["asr"]
        )
        twilio.post(f"/_emulator/streams/{first['sid']}/error", json={"message": "31921 close"})
        restarted = until(
            lambda: (r := records(api, sid).get("asr-r1")) and r["status"] == "in-progress" and r
        )
        assert (restarted["restart_of"], restarted["restart"]) == ("asr", 1)
        assert records(api, sid)["asr"]["status"] == "failed"
        twilio.post(f"/_emulator/streams/{restarted['sid']}/error")
        until(lambda: records(api, sid)["asr-r1"]["status"] == "failed")
        time.sleep(0.3)
        names = [s["name"] for s in twilio.get(f"/_emulator/calls/{sid}").json()["streams"]]
        assert names == ["asr", "asr-r1"]  # the limit is one restart


def test_sighup_reloads_profiles_and_a_bad_file_keeps_them(
    profiled: Services, config: Path
) -> None:
    with (
        httpx.Client(base_url=profiled.emulator, timeout=10) as twilio,
        httpx.Client(base_url=profiled.web, headers=AUTH, timeout=10) as api,
    ):
        config.write_text(RESTARTING.format(name="agent"))
        profiled.processes["web"].send_signal(signal.SIGHUP)
        until(lambda: "configuration reloaded" in profiled.log("web"))
        assert list(records(api, answer(twilio, profiled))) == ["agent"]

        config.write_text("[[streams]]\nname = 'bad name'\n")
        profiled.processes["web"].send_signal(signal.SIGHUP)
        until(lambda: "keeping the running configuration" in profiled.log("web"))
        assert list(records(api, answer(twilio, profiled))) == ["agent"]


def test_sigterm_lets_the_worker_finish_its_create(
    services: Services, twilio: httpx.Client, api: httpx.Client
) -> None:
    slow = [{"kind": "latency", "seconds": 1.0, "operation": "create"}]
    twilio.put("/_emulator/faults", json={"faults": slow})
    sid = answer(twilio, services)
    until(lambda: twilio.get("/_emulator/stats").json()["in_flight"].get(ACCOUNT_SID))
    worker = services.processes["worker"]
    worker.terminate()
    assert worker.wait(20) == 0
    record = records(api, sid)["transcription"]
    assert (record["status"], record["attempts"]) == ("in-progress", 1)


def test_sighup_adds_an_account_to_web_and_worker(profiled: Services, config: Path) -> None:
    with (
        httpx.Client(base_url=profiled.emulator, timeout=10) as twilio,
        httpx.Client(base_url=profiled.web, headers=AUTH, timeout=10) as api,
    ):
        hook = f"{profiled.web}/twilio/call-status"
        call = {"account_sid": SECOND_SID, "status_callback": hook}
        unknown = twilio.post("/_emulator/calls", json=call).json()["sid"]
        refused = twilio.post(f"/_emulator/calls/{unknown}/answer").json()["deliveries"]
        assert refused[0]["status"] == 403  # not an account of this service yet

        accounts = f'[[accounts]]\nsid = "{SECOND_SID}"\nauth_token = "{SECOND_TOKEN}"\n'
        config.write_text(RESTARTING.format(name="asr") + accounts)
        for name in ("web", "worker"):
            profiled.processes[name].send_signal(signal.SIGHUP)
            wait_log(profiled, name, "configuration reloaded")

        sid = twilio.post("/_emulator/calls", json=call).json()["sid"]
        assert (
            twilio.post(f"/_emulator/calls/{sid}/answer").json()["deliveries"][0]["status"] == 204
        )
        until(lambda: records(api, sid).get("asr", {}).get("status") == "in-progress")
        [create] = [
            r for r in twilio.get("/_emulator/requests").json()["requests"] if sid in r["path"]
        ]
        assert create["auth_user"] == SECOND_SID


def test_simulate_call_outbound_and_inbound(redis_url: str, tmp_path: Path) -> None:
    """`callstreams simulate-call [--inbound]`, as `callstreams dev` prints it, against real
    processes: the inbound call goes through the front door and its redirect."""
    with running_stack(redis_url, tmp_path, VOICE_TWIML_URL="http://127.0.0.1:9/owner") as stack:
        base = [sys.executable, "-m", "service.cli", "simulate-call", "--emulator",
                stack.emulator, "--web", stack.web, "--token", API_TOKEN, "--account",
                ACCOUNT_SID]  # fmt: skip
        outbound = subprocess.run(base, capture_output=True, text=True, timeout=60, env=stack.env)
        assert outbound.returncode == 0, outbound.stdout + outbound.stderr
        inbound = subprocess.run(
            [*base, "--inbound"], capture_output=True, text=True, timeout=60, env=stack.env
        )
        assert inbound.returncode == 0, inbound.stdout + inbound.stderr
        assert "redirected (POST) to http://127.0.0.1:9/owner" in inbound.stdout
        assert "transcription: stopped" in inbound.stdout
