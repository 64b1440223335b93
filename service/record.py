"""The stream record: one per (call, name), the one definition behind Redis, the API and
its OpenAPI schema.

Records are plain dicts typed as a TypedDict, so the webhook path builds no objects;
`RECORD` is the pydantic adapter that decodes what Redis holds, encodes what the API
answers, and describes the record in `/openapi.json`.
"""

from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from typing import Annotated, Any, Literal, cast, get_args

from pydantic import BeforeValidator, Field, TypeAdapter
from typing_extensions import TypedDict

from service.clock import iso_to_ms, ms_to_iso, now_iso
from service.profiles import Profile
from service.twilio_terms import Track

Status = Literal["pending", "in-progress", "stopped", "failed", "skipped"]
Desired = Literal["started", "stopped"]
FINAL: frozenset[Status] = frozenset({"stopped", "failed", "skipped"})

Timestamp = Annotated[str, Field(json_schema_extra={"format": "date-time"})]


def _object(value: object) -> object:
    """Lua's cjson writes an empty table as `[]`: it stands for `{}` here."""
    return {} if value == [] else value


class TwilioError(TypedDict):
    """Twilio's error (`code` from its error dictionary), a transport error (`code` null),
    or why a start was skipped."""

    code: int | None
    message: str
    more_info: str | None


class StreamRecord(TypedDict):
    """A stream on a call: what was asked of Twilio, what Twilio answered, and when."""

    call_sid: Annotated[str, Field(pattern=r"^CA[0-9a-fA-F]{32}$")]
    account_sid: Annotated[str, Field(pattern=r"^AC[0-9a-fA-F]{32}$")]
    name: Annotated[str, Field(description="the Twilio stream Name, unique per call")]
    sid: Annotated[str | None, Field(description="the MZ… SID, null until known")]
    status: Status
    desired: Annotated[Desired, Field(description="what was asked last")]
    track: Track
    url: str
    profile: Annotated[str | None, Field(description="null for an inline start")]
    parameters: Annotated[dict[str, str], BeforeValidator(_object)]
    date_updated: Annotated[str | None, Field(description="as Twilio returned it")]
    uri: Annotated[str | None, Field(description="as Twilio returned it")]
    error: TwilioError | None
    attempts: Annotated[int, Field(description="how many times Twilio was called")]
    created_at: Timestamp
    updated_at: Timestamp
    answered_at: Timestamp | None
    started_at: Timestamp | None
    restart_of: Annotated[
        str | None, Field(description="for a restarted stream, the name of the chain's first")
    ]
    restart: Annotated[int, Field(description="0 for a first start, n for the n-th restart")]


RECORD: TypeAdapter[StreamRecord] = TypeAdapter(StreamRecord)


def note(message: str) -> TwilioError:
    """An error of this service's own, such as why a start was skipped."""
    return TwilioError(code=None, message=message, more_info=None)


def new_record(
    *,
    call_sid: str,
    account_sid: str,
    name: str,
    url: str,
    track: Track,
    parameters: dict[str, str],
    profile: str | None,
    answered_at: str | None,
    restart_of: str | None = None,
    restart: int = 0,
) -> StreamRecord:
    """A pending record, as a claim creates it."""
    stamp = now_iso()
    return StreamRecord(
        call_sid=call_sid, account_sid=account_sid, name=name, sid=None, status="pending",
        desired="started", track=track, url=url, profile=profile, parameters=parameters,
        date_updated=None, uri=None, error=None, attempts=0, created_at=stamp,
        updated_at=stamp, answered_at=answered_at, started_at=None, restart_of=restart_of,
        restart=restart,
    )  # fmt: skip


def record_for(
    profile: Profile,
    fields: Mapping[str, str],
    *,
    answered_at: str | None,
    name: str | None = None,
    inline: bool = False,
) -> StreamRecord:
    """The pending record that starts `profile` on the call that `fields` describe
    (a webhook's fields, or the call's SIDs for an operator start), under `name` if given."""
    return new_record(
        call_sid=fields["CallSid"],
        account_sid=fields["AccountSid"],
        name=name or profile.name,
        url=profile.url,
        track=profile.track,
        parameters=profile.render(fields),
        profile=None if inline else profile.name,
        answered_at=answered_at,
    )


# How a record is stored in Redis: a row of its fields in this order, the identity
# left out (the call's key, the call's account, the name it is filed under) and
# trailing nulls dropped; enums by their number in the lists below (from 1, as Lua
# counts); `created_at` in epoch milliseconds and the other timestamps in
# milliseconds after it; `url` without its `wss://`; `profile` 1 when it is the
# name; `date_updated` in epoch seconds when that gives Twilio's text back; `uri`
# null when it is the one Twilio gives every stream. The last fields are the
# worker's own (lease, first stream-started seen, create refused). About a third of
# the memory of JSON objects. `service/lua/common.lua` receives these lists at load
# time and does the same: one definition.
STORED = (
    "sid", "status", "desired", "track", "url", "profile", "parameters", "date_updated",
    "uri", "error", "attempts", "created_at", "updated_at", "answered_at", "started_at",
    "restart_of", "restart", "_lease", "_s", "_refused",
)  # fmt: skip
ENUMS: dict[str, tuple[str, ...]] = {
    "status": get_args(Status),
    "desired": get_args(Desired),
    "track": get_args(Track),
}
LATER = ("updated_at", "answered_at", "started_at")  # stored as ms after created_at
_AT = {name: STORED.index(name) for name in STORED}
_PUBLIC = [(i, name) for i, name in enumerate(STORED) if not name.startswith("_")]
WSS = "wss://"


def stream_uri(account_sid: str, call_sid: str, sid: str) -> str:
    """The `uri` Twilio returns for a stream: stored only when it is another."""
    return f"/2010-04-01/Accounts/{account_sid}/Calls/{call_sid}/Streams/{sid}.json"


def compact_date(text: object) -> object:
    """Twilio's RFC 2822 `date_updated` as epoch seconds, when they give the text back."""
    if not isinstance(text, str):
        return text
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return text
    return int(moment.timestamp()) if _rfc2822(moment.timestamp()) == text else text


def _rfc2822(seconds: float) -> str:
    return format_datetime(datetime.fromtimestamp(seconds, UTC))


def to_row(record: StreamRecord) -> list[object]:
    """A new record as its stored row (see STORED)."""
    row: list[object] = [record.get(name) for name in STORED]
    for name, values in ENUMS.items():
        row[_AT[name]] = values.index(str(row[_AT[name]])) + 1
    created = iso_to_ms(record["created_at"])
    row[_AT["created_at"]] = created
    for name in LATER:
        stamp = row[_AT[name]]
        row[_AT[name]] = iso_to_ms(stamp) - created if isinstance(stamp, str) else stamp
    row[_AT["url"]] = record["url"].removeprefix(WSS)
    if record["profile"] == record["name"]:
        row[_AT["profile"]] = 1
    while row and row[-1] is None:
        row.pop()
    return row


def from_row(call_sid: str, account_sid: str, name: str, row: list[Any]) -> StreamRecord:
    """The record a stored row holds."""
    record: dict[str, Any] = {"call_sid": call_sid, "account_sid": account_sid, "name": name}
    for i, field in _PUBLIC:
        record[field] = row[i] if i < len(row) else None
    for field, values in ENUMS.items():
        record[field] = values[record[field] - 1]
    created = record["created_at"]
    record["created_at"] = ms_to_iso(created)
    for field in LATER:
        later = record[field]
        record[field] = None if later is None else ms_to_iso(created + later)
    record["url"] = WSS + record["url"]
    if record["profile"] == 1:
        record["profile"] = name
    if isinstance(record["date_updated"], int):
        record["date_updated"] = _rfc2822(record["date_updated"])
    if record["parameters"] == []:  # Lua's cjson writes an empty table as []
        record["parameters"] = {}
    if record["uri"] is None and record["sid"]:
        record["uri"] = stream_uri(account_sid, call_sid, record["sid"])
    record["attempts"] = record["attempts"] or 0
    record["restart"] = record["restart"] or 0
    return cast(StreamRecord, record)
