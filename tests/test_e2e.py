"""End to end with real processes: emulator, web (uvicorn) and worker (arq) on loopback."""

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from redis import Redis

from tests.conftest import ACCOUNT_SID, API_TOKEN
from tests.processes import Services, running_stack

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


def until(check: Callable[[], Any], within: float = 15.0) -> Any:
    deadline = time.monotonic() + within
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


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
    assert "super" not in services.log("web")


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
