"""The emulator's world: accounts, calls, streams, and what it was asked.

Twilio's rules live here so that the REST and control routes stay thin: names
are unique per call (stopped streams included), a call carries at most four
tracks at a time (`both_tracks` counts two), and streams start only on a call
that is in progress.
"""

import email.utils
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

TRACK_WEIGHT = {"inbound_track": 1, "outbound_track": 1, "both_tracks": 2}
MAX_TRACKS = 4
CALL_STATUSES = (
    "queued", "initiated", "ringing", "in-progress", "completed", "busy", "failed", "no-answer",
    "canceled",
)  # fmt: skip
TERMINAL = frozenset({"completed", "busy", "failed", "no-answer", "canceled"})


def new_sid(prefix: str) -> str:
    """A SID of Twilio's shape: two letters and 32 lowercase hex digits."""
    return prefix + uuid.uuid4().hex


def rfc2822_now() -> str:
    return email.utils.format_datetime(datetime.now(UTC), usegmt=False)


def iso_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Stream:
    sid: str
    account_sid: str
    call_sid: str
    name: str | None
    url: str
    track: str
    parameters: dict[str, str]
    status_callback: str | None
    status_callback_method: str
    status: str = "in-progress"
    created_at: str = field(default_factory=iso_now)
    date_updated: str = field(default_factory=rfc2822_now)

    @property
    def uri(self) -> str:
        return (
            f"/2010-04-01/Accounts/{self.account_sid}/Calls/{self.call_sid}/Streams/{self.sid}.json"
        )

    def resource(self) -> dict[str, Any]:
        """The Stream resource exactly as Twilio's API returns it."""
        return {
            "account_sid": self.account_sid,
            "call_sid": self.call_sid,
            "sid": self.sid,
            "name": self.name,
            "status": self.status,
            "date_updated": self.date_updated,
            "uri": self.uri,
        }

    def view(self) -> dict[str, Any]:
        """Everything the emulator knows, for the control API."""
        return {
            **self.resource(),
            "url": self.url,
            "track": self.track,
            "parameters": self.parameters,
            "status_callback": self.status_callback,
            "created_at": self.created_at,
        }


@dataclass
class Call:
    sid: str
    account_sid: str
    from_: str
    to: str
    direction: str
    status: str
    status_callback: str | None
    sequence: int = -1
    streams: dict[str, Stream] = field(default_factory=dict)  # by SID, in creation order
    sequences: dict[str, int] = field(default_factory=dict)  # CallStatus -> SequenceNumber

    def stream(self, sid_or_name: str) -> Stream | None:
        if sid_or_name in self.streams:
            return self.streams[sid_or_name]
        return next((s for s in self.streams.values() if s.name == sid_or_name), None)

    def tracks_in_use(self) -> int:
        live = (s for s in self.streams.values() if s.status == "in-progress")
        return sum(TRACK_WEIGHT[s.track] for s in live)

    def sequence_for(self, status: str) -> int:
        """The event's SequenceNumber: a repeated delivery of one event keeps its number."""
        if status not in self.sequences:
            self.sequence += 1
            self.sequences[status] = self.sequence
        return self.sequences[status]

    def view(self) -> dict[str, Any]:
        return {
            "sid": self.sid,
            "account_sid": self.account_sid,
            "from": self.from_,
            "to": self.to,
            "direction": self.direction,
            "status": self.status,
            "status_callback": self.status_callback,
            "streams": [s.view() for s in self.streams.values()],
        }

    def webhook_params(self, status: str) -> dict[str, str]:
        """The fields of a call status callback, as Twilio sends them."""
        return {
            "AccountSid": self.account_sid,
            "ApiVersion": "2010-04-01",
            "CallSid": self.sid,
            "CallStatus": status,
            "CallbackSource": "call-progress-events",
            "Called": self.to,
            "Caller": self.from_,
            "Direction": self.direction,
            "From": self.from_,
            "SequenceNumber": str(self.sequence_for(status)),
            "Timestamp": rfc2822_now(),
            "To": self.to,
        }


def new_call(
    account_sid: str,
    *,
    from_: str = "+15550000001",
    to: str = "+15550000002",
    direction: str = "inbound",
    status: str = "ringing",
    status_callback: str | None = None,
) -> Call:
    return Call(new_sid("CA"), account_sid, from_, to, direction, status, status_callback)


@dataclass
class Stats:
    """Counters a benchmark or a chaos test reads back."""

    creates: int = 0
    stops: int = 0
    throttled: int = 0
    in_flight: dict[str, int] = field(default_factory=dict)
    max_in_flight: dict[str, int] = field(default_factory=dict)

    def view(self) -> dict[str, Any]:
        return {
            "creates": self.creates,
            "stops": self.stops,
            "throttled": self.throttled,
            "in_flight": dict(self.in_flight),
            "max_in_flight": dict(self.max_in_flight),
        }
