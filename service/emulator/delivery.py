"""Signed webhooks as Twilio sends them, with its connection-override fragments.

A callback URL may end in `#rc=3&rp=all&ct=1000&rt=5000`: retry count, retry
policy (`4xx`, `5xx`, `ct` connect failure, `rt` read timeout, `all`), connect
and read timeouts in milliseconds. The fragment is neither sent nor signed.
Twilio's defaults are one retry, on connect failures only.

A POST carries the fields in its form body, signed after the URL; a GET carries
them in the query string (after the URL's own query, with `&`), and the
signature covers that full URL alone (REFERENCE.md section B).
"""

import asyncio
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx

from service.emulator.signing import twilio_signature

MAX_RETRIES = 5
# Webhooks in flight at once. httpx's pool looks at every waiting request for each
# one it sends, so thousands queued there would cost more than sending them.
CONCURRENT_DELIVERIES = 16


@dataclass(frozen=True)
class Overrides:
    url: str  # without the fragment
    retries: int = 1
    policy: frozenset[str] = frozenset({"ct"})
    connect_timeout: float = 5.0
    read_timeout: float = 15.0


def _millis(value: str, low: int, high: int, default: float) -> float:
    try:
        return min(max(int(value), low), high) / 1000
    except ValueError:
        return default


def parse_overrides(url: str) -> Overrides:
    parts = urlsplit(url)
    options = dict(parse_qsl(parts.fragment))
    bare = urlunsplit(parts._replace(fragment=""))
    policy = {p.strip() for p in options.get("rp", "ct").split(",") if p.strip()}
    if "all" in policy:
        policy = {"4xx", "5xx", "ct", "rt"}
    try:
        retries = min(max(int(options.get("rc", "1")), 0), MAX_RETRIES)
    except ValueError:
        retries = 1
    return Overrides(
        url=bare,
        retries=retries,
        policy=frozenset(policy),
        connect_timeout=_millis(options.get("ct", ""), 100, 10_000, 5.0),
        read_timeout=_millis(options.get("rt", ""), 100, 15_000, 15.0),
    )


def _retryable(overrides: Overrides, status: int | None, error: Exception | None) -> bool:
    if isinstance(error, httpx.ConnectError | httpx.ConnectTimeout):
        return "ct" in overrides.policy
    if error is not None:
        return "rt" in overrides.policy
    if status is not None and 400 <= status < 500:
        return "4xx" in overrides.policy
    if status is not None and status >= 500:
        return "5xx" in overrides.policy
    return False


class Deliverer:
    """Sends signed webhooks and remembers every attempt, and every callback dropped."""

    def __init__(self, http: httpx.AsyncClient, tokens: dict[str, str]) -> None:
        self.http = http
        self.tokens = tokens
        self.log: list[dict[str, Any]] = []
        self._slots = asyncio.Semaphore(CONCURRENT_DELIVERIES)

    async def deliver(
        self, account_sid: str, url: str, params: dict[str, str], method: str = "POST"
    ) -> list[dict[str, Any]]:
        """Every attempt's outcome: `status` (None when no answer) and `attempt` from 1."""
        attempts, _ = await self.exchange(account_sid, url, params, method)
        return attempts

    async def exchange(
        self, account_sid: str, url: str, params: dict[str, str], method: str = "POST"
    ) -> tuple[list[dict[str, Any]], httpx.Response | None]:
        """Every attempt, as `deliver`, and the last attempt's answer (None when none came),
        for a webhook whose answer is read: TwiML."""
        overrides = parse_overrides(url)
        token = self.tokens[account_sid]
        if method == "GET":
            target = overrides.url + ("&" if "?" in overrides.url else "?") + urlencode(params)
            signature, body = twilio_signature(target, {}, token), None
        else:
            target = overrides.url
            signature, body = twilio_signature(target, params, token), params
        headers = {
            "X-Twilio-Signature": signature,
            "I-Twilio-Idempotency-Token": secrets.token_hex(16),
            "User-Agent": "TwilioProxy/1.1",
        }
        timeout = httpx.Timeout(overrides.read_timeout, connect=overrides.connect_timeout)
        attempts: list[dict[str, Any]] = []
        for attempt in range(1, overrides.retries + 2):
            response: httpx.Response | None = None
            failure: Exception | None = None
            try:
                async with self._slots:
                    response = await self.http.request(
                        method, target, data=body, headers=headers, timeout=timeout
                    )
            except httpx.TransportError as error:
                failure = error
            status = response.status_code if response is not None else None
            failed = type(failure).__name__ if failure else None
            attempts.append(self._record(overrides.url, method, params, status, attempt, failed))
            if not _retryable(overrides, status, failure):
                break
        return attempts, response

    def drop(self, url: str, params: dict[str, str], method: str = "POST") -> None:
        """A callback a fault loses: logged, never sent."""
        self._record(parse_overrides(url).url, method, params, None, 0, None, dropped=True)

    def _record(
        self, url: str, method: str, params: dict[str, str], status: int | None, attempt: int,
        error: str | None, *, dropped: bool = False,
    ) -> dict[str, Any]:  # fmt: skip
        entry = {
            "url": url, "method": method, "params": params, "status": status, "error": error,
            "attempt": attempt, "dropped": dropped,
        }  # fmt: skip
        self.log.append(entry)
        return entry
