"""The stream record: one per (call, name), the one definition behind Redis, the API and
its OpenAPI schema.

Records are plain dicts typed as a TypedDict, so the webhook path builds no objects;
`RECORD` is the pydantic adapter that decodes what Redis holds, encodes what the API
answers, and describes the record in `/openapi.json`.
"""

from collections.abc import Mapping
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, TypeAdapter
from typing_extensions import TypedDict

from service.clock import now_iso
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
