"""The voice front door's numbers: which called numbers it serves, and where each call
goes next (REFERENCE.md section G, SPEC "Inbound calls: the voice front door").

`[[numbers]]` tables in the configuration file, or `VOICE_TWIML_URL` for every number
of every account. A called number is served by the entry that names it, else by a
`"*"` entry; each number is named once, so a call never has two next hops.
"""

from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from service.config import Settings, TwimlUrl

EVERY = "*"


def _numbers(value: tuple[str, ...]) -> tuple[str, ...]:
    if not value:
        raise ValueError('needs at least one number, or "*"')
    if any(not number.strip() or number != number.strip() for number in value):
        raise ValueError("numbers must not be empty or padded with spaces")
    return value


class Number(BaseModel):
    """Called numbers served by the front door, and the TwiML their calls go on to."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    to: Annotated[tuple[str, ...], AfterValidator(_numbers)]
    twiml_url: TwimlUrl
    method: Literal["POST", "GET"] = "POST"
    accounts: tuple[str, ...] = Field(default=())  # empty: every configured account

    @field_validator("to", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value

    def serves(self, to: str, account_sid: str) -> bool:
        return (not self.accounts or account_sid in self.accounts) and (
            to in self.to or EVERY in self.to
        )


def env_number(settings: Settings) -> tuple[Number, ...]:
    """`VOICE_TWIML_URL` as a single entry for every number (validated by Settings)."""
    if settings.voice_twiml_url is None:
        return ()
    return (Number(to=(EVERY,), twiml_url=settings.voice_twiml_url),)


def conflicts(labelled: Sequence[tuple[str, Number]]) -> list[str]:
    """Numbers that two entries serve for a common account: one call, two next hops."""
    problems = []
    for i, (label, first) in enumerate(labelled):
        for other, second in labelled[i + 1 :]:
            shared = sorted(set(first.to) & set(second.to))
            accounts_meet = (
                not first.accounts
                or not second.accounts
                or set(first.accounts) & set(second.accounts)
            )
            if shared and accounts_meet:
                problems.append(f"{other}.to: {', '.join(shared)} also served by {label}")
    return problems


def next_hop(numbers: Sequence[Number], fields: Mapping[str, str]) -> Number | None:
    """The entry that serves the call: the one naming its `To`, else a `"*"` entry."""
    to, account_sid = fields.get("To", ""), fields.get("AccountSid", "")
    serving = [n for n in numbers if n.serves(to, account_sid)]
    return next((n for n in serving if to in n.to), serving[0] if serving else None)
