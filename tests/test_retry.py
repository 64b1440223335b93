"""The retry policy and Twilio's `Retry-After`: backoff, jitter, caps, and when to stop."""

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from worker.retry import RetryPolicy
from worker.twilio import Answer, classify

POLICY = RetryPolicy(max_attempts=5, max_age=timedelta(minutes=2), base=0.25, cap=4.0)


def test_backoff_doubles_up_to_the_cap_with_full_jitter() -> None:
    random.seed(7)
    for attempts, ceiling in [(1, 0.25), (2, 0.5), (3, 1.0), (4, 2.0), (5, 4.0), (9, 4.0)]:
        delays = [POLICY.delay(attempts) for _ in range(2000)]
        assert all(0 <= d <= ceiling for d in delays)
        # Full jitter: spread over the whole range, not bunched at its top.
        assert min(delays) < ceiling * 0.05
        assert max(delays) > ceiling * 0.95
        assert abs(sum(delays) / len(delays) - ceiling / 2) < ceiling * 0.05


def test_retry_after_wins_when_longer_and_is_capped() -> None:
    assert POLICY.delay(1, retry_after=3.0) == 3.0
    assert POLICY.delay(1, retry_after=60.0) == POLICY.cap
    assert 0 <= POLICY.delay(5, retry_after=0.01) <= POLICY.cap  # the backoff, if longer


def test_no_waits_when_the_base_is_zero() -> None:
    instant = RetryPolicy(base=0.0, cap=15.0)
    assert {instant.delay(n) for n in range(1, 10)} == {0.0}


def test_exhausted_by_attempts_or_by_age() -> None:
    fresh = datetime.now(UTC).isoformat()
    assert not POLICY.exhausted(4, fresh)
    assert POLICY.exhausted(5, fresh)
    old = (datetime.now(UTC) - timedelta(minutes=2, seconds=1)).isoformat()
    assert POLICY.exhausted(1, old)
    assert not POLICY.exhausted(1, None)  # no start time: only the attempts count


def _answer(status: int, **headers: str) -> Answer:
    body = {"code": 20429, "message": "Too Many Requests", "status": status}
    response = httpx.Response(status, json=body, headers=headers)
    return classify(status, response.headers, response.content)


@pytest.mark.parametrize(
    ("header", "expected"),
    [("2", 2.0), ("0.5", 0.5), ("-3", 0.0), ("soon", None), ("", None)],
)
def test_retry_after_in_seconds(header: str, expected: float | None) -> None:
    assert _answer(429, **{"Retry-After": header}).retry_after == expected


def test_retry_after_as_an_http_date() -> None:
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    retry_after = _answer(503, **{"Retry-After": later}).retry_after
    assert retry_after is not None
    assert 28 <= retry_after <= 30
    earlier = format_datetime(datetime.now(UTC) - timedelta(seconds=30), usegmt=True)
    assert _answer(503, **{"Retry-After": earlier}).retry_after == 0.0


def test_no_retry_after_header() -> None:
    answer = _answer(429)
    assert (answer.kind, answer.retry_after) == ("transient", None)
