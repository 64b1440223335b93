"""Logs: one JSON event per line, phone numbers redacted unless allowed."""

import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from service import logs


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    structlog.reset_defaults()
    root.handlers[:] = handlers
    root.setLevel(level)


def events(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_phone_numbers_are_redacted_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure("json", "info")
    structlog.get_logger("callstreams.test").info(
        "answered", call_sid="CA1", From="+15551230000", To="+15557650000"
    )
    [event] = events(capsys.readouterr().err)
    assert (event["From"], event["To"], event["call_sid"]) == ("[redacted]", "[redacted]", "CA1")
    assert event["level"] == "info"
    assert "timestamp" in event


def test_phone_numbers_logged_when_allowed(capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure("json", "info", phone_numbers=True)
    structlog.get_logger("callstreams.test").info("answered", From="+15551230000")
    [event] = events(capsys.readouterr().err)
    assert event["From"] == "+15551230000"


def test_chatty_libraries_log_warnings_only(capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure("json", "info")
    logging.getLogger("httpx").info("HTTP Request: POST https://api.twilio.com/...")
    logging.getLogger("uvicorn.error").info("Started server process")
    [event] = events(capsys.readouterr().err)
    assert event["event"] == "Started server process"
    assert event["logger"] == "uvicorn.error"
