"""Phone numbers: where Twilio asks what to do with a call that comes in, and whom
it tells that the call ended.

A number is configured as on Twilio's console: its Voice URL ("A call comes in",
`POST` or `GET`) and its "Call status changes" URL, which Twilio POSTs the
`completed` event alone to (REFERENCE.md section G). The emulator keeps a
number's `PN…` SID when the number is configured again.
"""

import re
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from service.emulator.world import new_sid

E164 = re.compile(r"^\+[1-9][0-9]{1,14}$")
FIELDS = {"account_sid", "voice_url", "voice_method", "status_callback"}
# On the command line the status callback starts at the comma before its scheme, so
# that a connection-override fragment may keep its own commas (`#rp=ct,rt`).
CALLBACK_START = re.compile(r",(?=https?://)")


class NumberError(ValueError):
    """A number's configuration that cannot be used; the message says which part."""


@dataclass(frozen=True)
class Number:
    number: str
    account_sid: str
    voice_url: str
    voice_method: Literal["GET", "POST"] = "POST"
    status_callback: str | None = None
    sid: str = field(default_factory=lambda: new_sid("PN"))

    def view(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "sid": self.sid,
            "account_sid": self.account_sid,
            "voice_url": self.voice_url,
            "voice_method": self.voice_method,
            "status_callback": self.status_callback,
            "status_callback_method": "POST",
        }


def _url(value: object, name: str) -> str:
    if not isinstance(value, str):
        raise NumberError(f"{name} must be a URL")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise NumberError(f"{name} must be an absolute http or https URL")
    return value


def parse_number(
    number: str, raw: dict[str, Any], accounts: Collection[str], sid: str | None = None
) -> Number:
    """A number from the control API's JSON; `sid` is kept when it is configured again."""
    if not E164.match(number):
        raise NumberError("the number must be in E.164 form, e.g. +15551234567")
    unknown = set(raw) - FIELDS
    if unknown:
        raise NumberError(f"unknown fields: {', '.join(sorted(unknown))}")
    account_sid = raw.get("account_sid", next(iter(accounts)))
    if account_sid not in accounts:
        raise NumberError("account_sid is not an account of this emulator")
    method = raw.get("voice_method", "POST")
    if method not in ("GET", "POST"):
        raise NumberError("voice_method must be GET or POST")
    callback = raw.get("status_callback")
    return Number(
        number=number,
        account_sid=account_sid,
        voice_url=_url(raw.get("voice_url"), "voice_url"),
        voice_method=method,
        status_callback=None if callback is None else _url(callback, "status_callback"),
        sid=sid or new_sid("PN"),
    )


def parse_number_flag(text: str, account_sid: str) -> Number:
    """A number from the command line: `NUMBER=VOICE_URL[,STATUS_CALLBACK]`."""
    number, sep, urls = text.partition("=")
    if not sep:
        raise NumberError(f"{text!r}: expected NUMBER=VOICE_URL[,STATUS_CALLBACK]")
    voice_url, *callback = CALLBACK_START.split(urls, maxsplit=1)
    raw: dict[str, Any] = {"voice_url": voice_url, "status_callback": next(iter(callback), None)}
    try:
        return parse_number(number, raw, [account_sid])
    except NumberError as error:
        raise NumberError(f"{text!r}: {error}") from None
