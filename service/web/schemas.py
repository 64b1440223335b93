"""The operator API's bodies: what it accepts, as typed models, and what it answers.

Requests are parsed by these models, so every malformed input is a 400 with a
precise message; the OpenAPI document's components are generated from the same
models (see `openapi.py`), so the document says exactly what is accepted.
"""

from typing import Annotated, Any, NotRequired

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
)
from typing_extensions import TypedDict

from service import sids
from service.profiles import Parameters, StreamName, StreamUrl
from service.record import StreamRecord
from service.twilio_terms import DEFAULT_TRACK, Track

MAX_CALLS = 500

AccountSid = Annotated[
    str,
    Field(
        pattern=f"^{sids.ACCOUNT_SID.pattern}$",
        description="the call's account; required when several accounts are configured",
    ),
]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StartByProfile(_Body):
    """Start a configured profile (its `match` ignored), optionally under another name."""

    profile: str
    name: StreamName | None = None
    account_sid: AccountSid | None = None


class StartInline(_Body):
    """Start a stream described in the request."""

    name: StreamName
    url: StreamUrl
    track: Track = DEFAULT_TRACK
    parameters: Parameters = Field(default_factory=dict)
    account_sid: AccountSid | None = None


def _start_kind(body: Any) -> str | None:
    """Which start a body asks for: a profile by name, or a stream given inline."""
    if not isinstance(body, dict):
        return None
    return "profile" if "profile" in body else "inline"


StartRequest = Annotated[
    Annotated[StartByProfile, Tag("profile")] | Annotated[StartInline, Tag("inline")],
    Discriminator(_start_kind, custom_error_type="invalid_start",
                  custom_error_message="expected a JSON object"),
]  # fmt: skip
START: TypeAdapter[StartByProfile | StartInline] = TypeAdapter(StartRequest)


def _digits(value: Any) -> Any:
    """A query value is text: a whole number is written in ASCII digits, nothing else."""
    if isinstance(value, str) and not (value.isascii() and value.isdigit()):
        raise ValueError(f"a whole number from 1 to {MAX_CALLS}")
    return value


class CallsQuery(_Body):
    """The query of `GET /v1/calls`."""

    account_sid: AccountSid | None = None
    limit: Annotated[int, Field(ge=1, le=MAX_CALLS), BeforeValidator(_digits)] = 50


class StreamList(TypedDict):
    streams: list[StreamRecord]


class CallSummary(TypedDict):
    call_sid: str
    account_sid: str
    ended: Annotated[str | None, Field(description="the terminal CallStatus, once it ended")]
    streams: list[StreamRecord]


class CallList(TypedDict):
    calls: list[CallSummary]


class Error(TypedDict):
    """Every error answer; `record` is the existing record of a `409`."""

    error: str
    detail: Any
    record: NotRequired[Annotated[StreamRecord, Field(description="on 409: the record in the way")]]
