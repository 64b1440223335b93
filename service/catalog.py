"""What this deployment serves: its stream profiles, its Twilio accounts, and the
numbers of its voice front door.

Loaded from `CALLSTREAMS_CONFIG` (TOML: `[[streams]]`, `[[accounts]]`, `[[numbers]]`)
and the environment, validated as a whole, and swapped as a whole on reload, so a
request never sees half of an old configuration and half of a new one.
"""

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from service.accounts import Account, env_account
from service.config import ConfigError, Settings
from service.numbers import Number, conflicts, env_number
from service.profiles import Profile, busiest_call, errors, parse_profiles
from service.twilio_terms import MAX_TRACKS
from service.validation import problems


@dataclass(frozen=True)
class Catalog:
    profiles: tuple[Profile, ...]
    accounts: Mapping[str, Account]
    numbers: tuple[Number, ...] = ()

    def profile(self, name: str) -> Profile | None:
        return next((p for p in self.profiles if p.name == name), None)


def _read(settings: Settings) -> tuple[str, dict[str, Any]]:
    if settings.config_file is None:
        return "", {}
    source = f"CALLSTREAMS_CONFIG ({settings.config_file})"
    try:
        return source, tomllib.loads(settings.config_file.read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigError(f"{source}: cannot read: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{source}: not valid TOML: {error}") from None


def _env_profile(settings: Settings) -> tuple[Profile, ...]:
    if settings.stream_url is None:
        raise ConfigError("STREAM_URL: required but not set (or [[streams]] in CALLSTREAMS_CONFIG)")
    try:
        fields = {"name": settings.stream_name, "url": settings.stream_url,
                  "track": settings.stream_track}  # fmt: skip
        context = {"stream_hosts": settings.stream_hosts}
        return (Profile.model_validate(fields, context=context),)
    except ValidationError as error:
        names = {"name": "STREAM_NAME", "url": "STREAM_URL"}
        raise ConfigError(
            "; ".join(f"{names.get(where, where)}: {message}" for where, message in problems(error))
        ) from None


def _accounts(tables: Any, settings: Settings, problems: list[str]) -> dict[str, Account]:
    accounts: dict[str, Account] = {}
    if first := env_account(settings):
        accounts[first.sid] = first
    if not isinstance(tables, list):
        problems.append("accounts: must be [[accounts]] tables")
        return accounts
    for index, table in enumerate(tables):
        label = f"accounts[{index}]"
        if isinstance(table, Mapping) and isinstance(table.get("sid"), str):
            label = f"accounts[{table['sid']}]"
        try:
            account = Account.model_validate(table)
        except ValidationError as error:
            problems.extend(errors(label, error))
            continue
        if account.sid in accounts:
            problems.append(f"{label}: configured twice")
        accounts[account.sid] = account
    return accounts


def _numbers(tables: Any, settings: Settings, problems: list[str]) -> tuple[Number, ...]:
    labelled = [("VOICE_TWIML_URL", number) for number in env_number(settings)]
    if not isinstance(tables, list):
        problems.append("numbers: must be [[numbers]] tables")
        tables = []
    for index, table in enumerate(tables):
        try:
            labelled.append((f"numbers[{index}]", Number.model_validate(table)))
        except ValidationError as error:
            problems.extend(errors(f"numbers[{index}]", error))
    problems.extend(conflicts(labelled))
    return tuple(number for _, number in labelled)


def load_catalog(settings: Settings) -> Catalog:
    """Profiles and accounts, or ConfigError listing every problem in one line."""
    source, data = _read(settings)
    problems: list[str] = []
    unknown = set(data) - {"streams", "accounts", "numbers"}
    problems.extend(f"{key}: unknown table" for key in sorted(unknown))
    accounts = _accounts(data.get("accounts", []), settings, problems)
    numbers = _numbers(data.get("numbers", []), settings, problems)
    if "streams" in data:
        streams = data["streams"]
        if isinstance(streams, list) and streams:
            profiles = parse_profiles(streams, problems, settings.stream_hosts)
        else:
            problems.append("streams: needs at least one [[streams]] table")
            profiles = ()
    else:
        profiles = _env_profile(settings)
    if not accounts:
        problems.append("TWILIO_ACCOUNT_SID: required but not set (or [[accounts]] in the file)")
    for profile in profiles:
        problems.extend(
            f"streams[{profile.name}].accounts: {sid} is not a configured account"
            for sid in profile.accounts
            if sid not in accounts
        )
    tokens = [a.api_token.get_secret_value() for a in accounts.values() if a.api_token]
    if settings.api_token is not None:
        tokens.append(settings.api_token.get_secret_value())
    if len(set(tokens)) < len(tokens):
        problems.append("accounts: each api_token must differ from the others and from "
                        "CALLSTREAMS_API_TOKEN")  # fmt: skip
    problems.extend(
        f"numbers: {sid} is not a configured account"
        for number in numbers
        for sid in number.accounts
        if sid not in accounts
    )
    tracks, together = busiest_call(profiles)
    if tracks > MAX_TRACKS:
        problems.append(
            f"streams: {', '.join(together)} can all match one call and need {tracks} tracks; "
            f"Twilio allows {MAX_TRACKS} per call (both_tracks counts 2)"
        )
    if problems:
        raise ConfigError((f"{source}: " if source else "") + "; ".join(problems))
    return Catalog(profiles=profiles, accounts=accounts, numbers=numbers)
