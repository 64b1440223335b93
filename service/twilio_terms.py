"""Twilio's vocabulary that the web process, the worker and the tools share, and the
paths on which Twilio calls us (REFERENCE.md sections A, C, D)."""

from typing import Literal, get_args

Track = Literal["inbound_track", "outbound_track", "both_tracks"]
TRACKS: tuple[Track, ...] = get_args(Track)
DEFAULT_TRACK: Track = "inbound_track"  # what Twilio uses when Track is not given
# Twilio allows four unidirectional stream tracks per call; `both_tracks` counts two.
TRACK_WEIGHT: dict[str, int] = {"inbound_track": 1, "outbound_track": 1, "both_tracks": 2}
MAX_TRACKS = 4
MAX_PARAMETERS = 99  # ParameterN.Name / ParameterN.Value, N = 1…99

ANSWERED = "in-progress"  # the CallStatus of an answered call
RINGING = frozenset({"queued", "initiated", "ringing"})
TERMINAL = frozenset({"completed", "busy", "failed", "no-answer", "canceled"})
STREAM_EVENTS = frozenset({"stream-started", "stream-stopped", "stream-error"})

# Fields Twilio sends with a call status callback or an incoming-call webhook
# (REFERENCE.md section C); profile templates and `match` may name only these.
CALL_FIELDS = frozenset(
    {
        "AccountSid", "ApiVersion", "CallSid", "CallStatus", "Called", "CalledCity",
        "CalledCountry", "CalledState", "CalledZip", "Caller", "CallerCity", "CallerCountry",
        "CallerName", "CallerState", "CallerZip", "Direction", "ForwardedFrom", "From",
        "FromCity", "FromCountry", "FromState", "FromZip", "ParentCallSid", "SequenceNumber",
        "StirStatus", "Timestamp", "To", "ToCity", "ToCountry", "ToState", "ToZip",
    }
)  # fmt: skip

# Where Twilio reaches us, below PUBLIC_BASE_URL.
CALL_STATUS_PATH = "/twilio/call-status"
STREAM_STATUS_PATH = "/twilio/stream-status"
VOICE_PATH = "/twilio/voice"  # a number's Voice URL: the front door
