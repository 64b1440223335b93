"""Twilio's REST API as the worker uses it: create and stop a stream, fetch a call, and
what each answer means.

The client never retries by itself: a create is not idempotent, so whether and
when to try again is decided by the job from the record (see `worker/retry.py`).
"""

import asyncio
import base64
import itertools
import math
import ssl
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, Literal
from urllib.parse import urlencode

import httpx
import orjson

from service.accounts import Account
from service.record import TwilioError

Kind = Literal["ok", "transient", "exists", "not-in-progress", "not-found", "permanent"]

CALL_NOT_IN_PROGRESS = 21220
NOT_FOUND = 20404
TOO_MANY_REQUESTS = 20429
# Twilio's code for a reused stream name is not documented; the emulator answers
# 409 with 20409. Any 409 is taken to mean the name exists on the call.
DUPLICATE_NAME = 20409
# How long a request waits for its account's concurrency slot before the job is
# retried later instead: jobs must finish well within their timeout.
SLOT_WAIT = 1.0
CONNECTIONS_PER_POOL = 4


@dataclass(frozen=True)
class Answer:
    """Twilio's answer to one request, classified for the job that made it."""

    kind: Kind
    body: dict[str, Any]
    error: TwilioError | None = None
    retry_after: float | None = None
    # Whether the request may have reached Twilio (a timeout after sending, a reset):
    # the stream may exist although no answer says so.
    ambiguous: bool = False


def _retry_after(headers: httpx.Headers) -> float | None:
    value = headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


def classify(status: int, headers: httpx.Headers, content: bytes) -> Answer:
    """What a Twilio response (its status, headers and body) means for the record."""
    try:
        body = orjson.loads(content)
    except orjson.JSONDecodeError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    if 200 <= status < 300:
        return Answer("ok", body)
    code = body.get("code")
    error = TwilioError(
        code=code if isinstance(code, int) else status,
        message=str(body.get("message") or httpx.codes.get_reason_phrase(status) or "Twilio error"),
        more_info=body.get("more_info") if isinstance(body.get("more_info"), str) else None,
    )
    kind: Kind
    if status == 429 or code == TOO_MANY_REQUESTS or status >= 500:
        kind = "transient"
    elif status == 409 or code == DUPLICATE_NAME:
        kind = "exists"
    elif code == CALL_NOT_IN_PROGRESS:
        kind = "not-in-progress"
    elif status == 404 or code == NOT_FOUND:
        kind = "not-found"
    else:
        kind = "permanent"
    return Answer(kind, body, error, _retry_after(headers))


def transport_error(error: httpx.TransportError) -> Answer:
    """A request that got no answer; transient, and ambiguous if it may have been sent."""
    sent = not isinstance(error, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
    message = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    return Answer(
        "transient", {}, TwilioError(code=None, message=message, more_info=None), ambiguous=sent
    )


class TwilioClient:
    """Create and stop streams and fetch calls, for any configured account, over
    keep-alive connection pools used in turn, with at most `concurrency` requests in
    flight per account.

    Requests go straight to httpx's transports: `AsyncClient` would add cookies,
    redirects, auth flows and event hooks to each request, which Twilio's REST API
    needs none of and which cost about as much CPU as the request itself."""

    def __init__(
        self,
        transports: Sequence[httpx.AsyncBaseTransport],
        base_url: str,
        timeout: float,
        accounts: Mapping[str, Account],
        concurrency: int,
    ) -> None:
        self._transports = itertools.cycle(transports)
        self._base_url = base_url.rstrip("/")
        self._timeout = httpx.Timeout(timeout, connect=min(timeout, 5.0)).as_dict()
        self._concurrency = concurrency
        self._slots: dict[str, asyncio.Semaphore] = {}
        self._authorization: dict[str, str] = {}
        self.use_accounts(accounts)

    def use_accounts(self, accounts: Mapping[str, Account]) -> None:
        """Call Twilio for these accounts from now on (a reloaded configuration);
        requests in flight keep their slots."""
        for sid in accounts:
            self._slots.setdefault(sid, asyncio.Semaphore(self._concurrency))
        self._authorization = {
            sid: "Basic " + base64.b64encode(":".join(account.rest_auth).encode()).decode()
            for sid, account in accounts.items()
        }
        self.accounts = accounts

    async def _send(
        self, account_sid: str, tail: str, form: list[tuple[str, str]] | None = None
    ) -> Answer:
        """POST `form` to the call's `tail`, or GET it without one."""
        authorization = self._authorization.get(account_sid)
        if authorization is None:
            message = f"account {account_sid} is not configured"
            return Answer("permanent", {}, TwilioError(code=None, message=message, more_info=None))
        headers = [*_HEADERS, ("Authorization", authorization)]
        if form is not None:
            headers.append(("Content-Type", "application/x-www-form-urlencoded"))
        request = httpx.Request(
            "GET" if form is None else "POST",
            f"{self._base_url}/2010-04-01/Accounts/{account_sid}/Calls/{tail}",
            headers=headers,
            content=None if form is None else urlencode(form).encode(),
            extensions={"timeout": self._timeout},
        )
        slots = self._slots[account_sid]
        try:
            async with asyncio.timeout(SLOT_WAIT):
                await slots.acquire()
        except TimeoutError:
            message = "the per-account concurrency cap is reached; not sent"
            return Answer("transient", {}, TwilioError(code=None, message=message, more_info=None))
        try:
            response = await next(self._transports).handle_async_request(request)
            stream = response.stream
            assert isinstance(stream, httpx.AsyncByteStream)
            try:  # the raw body: Twilio's JSON needs none of Response's decoding
                content = b"".join([chunk async for chunk in stream])
            finally:
                await stream.aclose()
        except httpx.TransportError as error:
            return transport_error(error)
        finally:
            slots.release()
        return classify(response.status_code, response.headers, content)

    async def create(
        self,
        account_sid: str,
        call_sid: str,
        *,
        name: str,
        url: str,
        track: str,
        parameters: dict[str, str],
        status_callback: str,
    ) -> Answer:
        form = [
            ("Url", url),
            ("Name", name),
            ("Track", track),
            ("StatusCallback", status_callback),
            ("StatusCallbackMethod", "POST"),
        ]
        for index, (key, value) in enumerate(parameters.items(), start=1):
            form += [(f"Parameter{index}.Name", key), (f"Parameter{index}.Value", value)]
        return await self._send(account_sid, f"{call_sid}/Streams.json", form)

    async def stop(self, account_sid: str, call_sid: str, sid_or_name: str) -> Answer:
        tail = f"{call_sid}/Streams/{sid_or_name}.json"
        return await self._send(account_sid, tail, [("Status", "stopped")])

    async def fetch_call(self, account_sid: str, call_sid: str) -> Answer:
        """The Call resource: its `status` says whether the call rings, runs or ended."""
        return await self._send(account_sid, f"{call_sid}.json")


_HEADERS = [("User-Agent", "callstreams"), ("Accept", "application/json")]


def http_transports(
    concurrency: int, transport: httpx.AsyncBaseTransport | None = None
) -> list[httpx.AsyncBaseTransport]:
    """The connection pools a worker uses for Twilio, keep-alive, verifying TLS.

    httpcore checks every pooled connection on each request, so one pool of a
    hundred connections costs more CPU than the requests themselves; requests are
    spread over pools of about CONNECTIONS_PER_POOL connections instead, sharing
    one TLS context (each costs tens of milliseconds to load). A given `transport`
    (the tests' seam) is used alone."""
    if transport is not None:
        return [transport]
    pools = max(1, math.ceil(concurrency / CONNECTIONS_PER_POOL))
    context = ssl.create_default_context()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    return [
        httpx.AsyncHTTPTransport(verify=context, limits=limits, retries=0) for _ in range(pools)
    ]
