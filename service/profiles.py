"""Stream profiles: which streams to start on an answered call, and with what.

Every mistake is found when the configuration is loaded, all at once, so a bad
profile never fails at call time (see `catalog.py` for where they come from).
"""

import re
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from service import sids, stream_urls
from service.config import Duration
from service.twilio_terms import CALL_FIELDS, DEFAULT_TRACK, MAX_PARAMETERS, TRACK_WEIGHT, Track
from service.validation import problems

_TEMPLATE = re.compile(r"\{(\w*)\}")
# Parameters go to Twilio as ParameterN.Name / .Value and on to the WebSocket's start
# message; Twilio keeps a TwiML name and value under 500 characters together.
MAX_PARAMETER_NAME = 128
MAX_PARAMETER_VALUE = 370


class Restart(BaseModel):
    """Start the stream again, under a new name, after Twilio reports a stream error."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max: int = Field(ge=1, le=10)
    backoff: Duration = timedelta(seconds=2)


def _name(value: str) -> str:
    if not sids.is_stream_name(value):
        raise ValueError("must be 1-64 characters of letters, digits, '_', '.', '~', '-'")
    return value


def _url(value: str, info: ValidationInfo) -> str:
    """The stream URL policy, with the deployment's host list when one is given."""
    context = info.context if isinstance(info.context, Mapping) else {}
    return stream_urls.check(value, context.get("stream_hosts", ()))


def _parameters(value: dict[str, str]) -> dict[str, str]:
    if len(value) > MAX_PARAMETERS:
        raise ValueError(f"at most {MAX_PARAMETERS} parameters")
    for key, template in value.items():
        if not 1 <= len(key) <= MAX_PARAMETER_NAME:
            raise ValueError(f"a parameter name has 1 to {MAX_PARAMETER_NAME} characters")
        if len(template) > MAX_PARAMETER_VALUE:
            raise ValueError(f"{key}: a value has at most {MAX_PARAMETER_VALUE} characters")
        for field in _TEMPLATE.findall(template):
            if field not in CALL_FIELDS:
                raise ValueError(f"{key}: unknown call field {{{field}}}")
    return value


def _schema(**facts: Any) -> Any:
    """What a validator accepts, told to the OpenAPI document (the validator decides)."""
    return Field(json_schema_extra=facts)


# The rules of a stream's Name, Url and parameters, wherever one is given (a profile,
# an operator start), with what they accept described for the OpenAPI document.
StreamName = Annotated[str, AfterValidator(_name), _schema(pattern=f"^{sids.STREAM_NAME.pattern}$")]
StreamUrl = Annotated[
    str,
    AfterValidator(_url),
    _schema(pattern=stream_urls.PATTERN, maxLength=stream_urls.MAX_URL),
]
Parameters = Annotated[
    dict[str, str],
    AfterValidator(_parameters),
    _schema(
        maxProperties=MAX_PARAMETERS,
        propertyNames={"minLength": 1, "maxLength": MAX_PARAMETER_NAME},
        additionalProperties={
            "type": "string",
            "maxLength": MAX_PARAMETER_VALUE,
            # Text, and {Field} only for the fields Twilio sends.
            "pattern": r"^(?:[^{]|\{(?!\w*\})|\{(?:" + "|".join(sorted(CALL_FIELDS)) + r")\})*$",
        },
        description="custom parameters; a value may name call fields, e.g. {From}",
    ),
]


class Profile(BaseModel):
    """One stream to start: Twilio's Name, Url, Track and custom parameters."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: StreamName
    url: StreamUrl
    track: Track = DEFAULT_TRACK
    parameters: Parameters = Field(default_factory=dict)
    match: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    accounts: tuple[str, ...] = ()  # empty: every configured account
    restart: Restart | None = None

    @field_validator("match", mode="before")
    @classmethod
    def _match(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            return {k: (v,) if isinstance(v, str) else v for k, v in value.items()}
        return value

    def matches(self, fields: Mapping[str, str]) -> bool:
        """True when the call's account is allowed and every `match` key has one of its values."""
        if self.accounts and fields.get("AccountSid") not in self.accounts:
            return False
        return all(fields.get(key) in allowed for key, allowed in self.match.items())

    def render(self, fields: Mapping[str, str]) -> dict[str, str]:
        """Parameters with `{Field}` filled from the answered webhook (absent → empty)."""
        return {
            key: _TEMPLATE.sub(lambda m: fields.get(m[1], ""), template)
            for key, template in self.parameters.items()
        }


def errors(prefix: str, error: ValidationError) -> list[str]:
    return [f"{prefix}.{where}: {message}" for where, message in problems(error)]


def busiest_call(profiles: tuple[Profile, ...]) -> tuple[int, list[str]]:
    """The most tracks one call can get, and the profiles that would start them.

    A set of profiles can match one call when, for every field, the values its
    members allow have something in common; the search tries each profile in
    or out, pruning sets that can no longer match together.
    """
    best: tuple[int, list[str]] = (0, [])

    def search(i: int, allowed: dict[str, frozenset[str]], tracks: int, names: list[str]) -> None:
        nonlocal best
        if tracks > best[0]:
            best = (tracks, names)
        if (
            i == len(profiles)
            or tracks + sum(TRACK_WEIGHT[p.track] for p in profiles[i:]) <= best[0]
        ):
            return
        profile = profiles[i]
        narrowed = dict(allowed)
        constraints = {
            **profile.match,
            **({"AccountSid": profile.accounts} if profile.accounts else {}),
        }
        for key, values in constraints.items():
            narrowed[key] = allowed[key] & set(values) if key in allowed else frozenset(values)
        if all(narrowed.values()):
            search(i + 1, narrowed, tracks + TRACK_WEIGHT[profile.track], [*names, profile.name])
        search(i + 1, allowed, tracks, names)

    search(0, {}, 0, [])
    return best


def parse_profiles(
    streams: list[Any], problems: list[str], stream_hosts: Sequence[str] = ()
) -> tuple[Profile, ...]:
    """Profiles from `[[streams]]` tables; each problem is appended to `problems`."""
    profiles: list[Profile] = []
    for index, item in enumerate(streams):
        label = f"streams[{index}]"
        if isinstance(item, Mapping) and isinstance(item.get("name"), str):
            label = f"streams[{item['name']}]"
        try:
            profiles.append(Profile.model_validate(item, context={"stream_hosts": stream_hosts}))
        except ValidationError as error:
            problems.extend(errors(label, error))
    names = [p.name for p in profiles]
    problems.extend(
        f"streams[{n}].name: used twice" for n in sorted(set(names)) if names.count(n) > 1
    )
    return tuple(profiles)
