"""The emulator's world: calls and their streams, and the counters tests read back.

Twilio's rules live here so that the REST and control routes stay thin: names
are unique per call (stopped streams included), a call carries at most four
tracks at a time (`both_tracks` counts two).

The Call resource follows the OpenAPI's descriptions: `start_time` is empty
until the call is dialled (the emulator: until it rings), `end_time` and
`duration` are set only for a call that `completed` (the duration counted from
the answer, in whole seconds). Undocumented, the emulator's choices: a call
the control API made `initiated` shows `queued` in the resource (the resource's
enum has no `initiated`), `price` stays null, `queue_time` is `"0"`.
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
STREAM_EVENTS = ("stream-started", "stream-stopped", "stream-error")
SUBRESOURCES = {
    "notifications": "Notifications", "recordings": "Recordings", "payments": "Payments",
    "events": "Events", "siprec": "Siprec", "streams": "Streams",
    "transcriptions": "Transcriptions",
    "user_defined_message_subscriptions": "UserDefinedMessageSubscriptions",
    "user_defined_messages": "UserDefinedMessages",
}  # fmt: skip
# The geographic fields of an incoming-call request: the emulator knows no geography
# and sends them empty, as Twilio does for a number it cannot place.
PLACES = [f"{who}{what}" for who in ("Called", "Caller", "From", "To")
          for what in ("City", "Country", "State", "Zip")]  # fmt: skip


def new_sid(prefix: str) -> str:
    """A SID of Twilio's shape: two letters and 32 lowercase hex digits."""
    return prefix + uuid.uuid4().hex


def rfc2822(moment: datetime) -> str:
    return email.utils.format_datetime(moment, usegmt=False)


def rfc2822_now() -> str:
    return rfc2822(datetime.now(UTC))


def iso_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _now() -> datetime:
    return datetime.now(UTC)


def _formatted(number: str) -> str:
    """A number for display, as Twilio shows North American ones: `(305) 141-6799`."""
    if len(number) == 12 and number.startswith("+1") and number[1:].isdigit():
        return f"({number[2:5]}) {number[5:8]}-{number[8:]}"
    return number


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
    started: bool = False  # its stream-started was sent (a stream on a ringing call waits)
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
            "started": self.started,
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
    # The statuses its status callback hears: all for calls the control API makes, only
    # the final one for a call to a number (REFERENCE.md section G).
    callback_statuses: frozenset[str] = frozenset(CALL_STATUSES)
    phone_number_sid: str | None = None
    sequence: int = -1
    streams: dict[str, Stream] = field(default_factory=dict)  # by SID, in creation order
    sequences: dict[str, int] = field(default_factory=dict)  # CallStatus -> SequenceNumber
    created: datetime = field(default_factory=_now)
    updated: datetime = field(default_factory=_now)
    rang: datetime | None = None
    answered: datetime | None = None
    ended: datetime | None = None

    def __post_init__(self) -> None:
        self._stamp(self.created)

    def set_status(self, status: str) -> None:
        self.status = status
        self.updated = _now()
        self._stamp(self.updated)

    def _stamp(self, moment: datetime) -> None:
        if self.status not in ("queued", "initiated"):
            self.rang = self.rang or moment
        if self.status == "in-progress":
            self.answered = self.answered or moment
        if self.status in TERMINAL:
            self.ended = self.ended or moment

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

    @property
    def uri(self) -> str:
        return f"/2010-04-01/Accounts/{self.account_sid}/Calls/{self.sid}.json"

    def resource(self) -> dict[str, Any]:
        """The Call resource as Twilio's API returns it: every property of its schema."""
        end_time = duration = None
        if self.status == "completed" and self.ended is not None:
            end_time = rfc2822(self.ended)
            duration = str(int((self.ended - (self.answered or self.ended)).total_seconds()))
        base = self.uri.removesuffix(".json")
        return {
            "sid": self.sid,
            "date_created": rfc2822(self.created),
            "date_updated": rfc2822(self.updated),
            "parent_call_sid": None,
            "account_sid": self.account_sid,
            "to": self.to,
            "to_formatted": _formatted(self.to),
            "from": self.from_,
            "from_formatted": _formatted(self.from_),
            "phone_number_sid": self.phone_number_sid,
            "status": "queued" if self.status == "initiated" else self.status,
            "start_time": rfc2822(self.rang) if self.rang else None,
            "end_time": end_time,
            "duration": duration,
            "price": None,
            "price_unit": "USD",
            "direction": self.direction,
            "answered_by": None,
            "api_version": "2010-04-01",
            "forwarded_from": None,
            "group_sid": None,
            "caller_name": None,
            "queue_time": "0",
            "trunk_sid": None,
            "uri": self.uri,
            "subresource_uris": {k: f"{base}/{v}.json" for k, v in SUBRESOURCES.items()},
        }

    def view(self) -> dict[str, Any]:
        return {
            "sid": self.sid,
            "account_sid": self.account_sid,
            "from": self.from_,
            "to": self.to,
            "direction": self.direction,
            "status": self.status,
            "status_callback": self.status_callback,
            "phone_number_sid": self.phone_number_sid,
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

    def voice_params(self) -> dict[str, str]:
        """The fields of an incoming-call request to a Voice URL (and to where it redirects)."""
        return {
            "AccountSid": self.account_sid,
            "ApiVersion": "2010-04-01",
            "CallSid": self.sid,
            "CallStatus": self.status,
            "Called": self.to,
            "Caller": self.from_,
            "Direction": self.direction,
            "From": self.from_,
            "To": self.to,
            **dict.fromkeys(PLACES, ""),
        }


def new_call(
    account_sid: str,
    *,
    from_: str = "+15550000001",
    to: str = "+15550000002",
    direction: str = "inbound",
    status: str = "ringing",
    status_callback: str | None = None,
    callback_statuses: frozenset[str] = frozenset(CALL_STATUSES),
    phone_number_sid: str | None = None,
) -> Call:
    return Call(
        new_sid("CA"), account_sid, from_, to, direction, status, status_callback,
        callback_statuses, phone_number_sid,
    )  # fmt: skip


@dataclass
class Stats:
    """Counters a benchmark or a chaos test reads back."""

    creates: int = 0
    stops: int = 0
    fetches: int = 0
    throttled: int = 0
    in_flight: dict[str, int] = field(default_factory=dict)
    max_in_flight: dict[str, int] = field(default_factory=dict)

    def view(self) -> dict[str, Any]:
        return {
            "creates": self.creates,
            "stops": self.stops,
            "fetches": self.fetches,
            "throttled": self.throttled,
            "in_flight": dict(self.in_flight),
            "max_in_flight": dict(self.max_in_flight),
        }
