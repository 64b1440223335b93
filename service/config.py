"""Settings: read once from the environment, validated, passed in.

Nothing else in the project reads settings from `os.environ` (`callstreams dev`
only hands its environment on to the processes it starts). A bad value stops the
process with one line naming the variable and never echoing the value, because
the value may be a secret. Three sets: `Settings` for web and worker,
`ClientSettings` for the operator CLI, `DevSettings` for `callstreams dev`.
"""

import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import AfterValidator, BeforeValidator, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from service import redis_url, sids, stream_urls
from service.twilio_terms import DEFAULT_TRACK, STREAM_STATUS_PATH, Track
from service.validation import problems

_DURATION = re.compile(r"(\d+)\s*([smhd]?)")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


class ConfigError(Exception):
    """Configuration that cannot run; the message is one line, safe to print."""


def parse_duration(value: object) -> object:
    """`90`, `90s`, `15m`, `12h`, `7d` → timedelta; anything else is left to fail."""
    if isinstance(value, str):
        match = _DURATION.fullmatch(value.strip())
        if not match:
            raise ValueError("expected a duration such as 90s, 15m, 12h or 7d")
        return timedelta(seconds=int(match[1]) * _UNITS[match[2]])
    if isinstance(value, int | float):
        return timedelta(seconds=value)
    return value


def _pattern(check: "re.Pattern[str]", what: str) -> AfterValidator:
    def validate(value: str) -> str:
        if not check.fullmatch(value):
            raise ValueError(f"must be {what}")
        return value

    return AfterValidator(validate)


def _http_base(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an absolute http(s) URL such as https://streams.example.com")
    if parts.query or parts.fragment:
        raise ValueError("must not carry a query or fragment")
    return value.rstrip("/")


def _twiml_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an absolute http(s) URL where Twilio fetches the call's TwiML")
    return value


def _hosts(value: object) -> object:
    """`a.example.com, b.example.com` → a tuple of host suffixes."""
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


def _suffixes(value: tuple[str, ...]) -> tuple[str, ...]:
    bad = [host for host in value if not stream_urls.dns_name(host)]
    if bad:
        raise ValueError("must be comma-separated DNS names such as streams.example.com")
    return value


def _redis_url(value: str) -> str:
    if urlsplit(value).scheme not in redis_url.SCHEMES:
        raise ValueError(
            "must be a redis://, rediss://, unix:// or redis+sentinel://host:port,.../service URL"
        )
    redis_url.parse_sentinel(value)
    return value


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
HttpBase = Annotated[str, AfterValidator(_http_base)]
TwimlUrl = Annotated[str, AfterValidator(_twiml_url)]


class Settings(BaseSettings):
    """Every setting of web, worker and dev, by its environment variable."""

    model_config = SettingsConfigDict(
        case_sensitive=True, extra="ignore", env_ignore_empty=True, frozen=True
    )

    host: str = Field("127.0.0.1", alias="HOST")
    port: int = Field(8000, alias="PORT", ge=0, le=65535)
    redis_url: Annotated[str, AfterValidator(_redis_url)] = Field(
        "redis://localhost:6379/0", alias="REDIS_URL"
    )
    account_sid: (
        Annotated[str, _pattern(sids.ACCOUNT_SID, "AC followed by 32 hex digits")] | None
    ) = Field(None, alias="TWILIO_ACCOUNT_SID")
    auth_token: SecretStr | None = Field(None, alias="TWILIO_AUTH_TOKEN", min_length=1)
    api_key: Annotated[str, _pattern(sids.API_KEY_SID, "SK followed by 32 hex digits")] | None = (
        Field(None, alias="TWILIO_API_KEY")
    )
    api_secret: SecretStr | None = Field(None, alias="TWILIO_API_SECRET")
    api_base_url: HttpBase = Field("https://api.twilio.com", alias="TWILIO_API_BASE_URL")
    public_base_url: HttpBase = Field(alias="PUBLIC_BASE_URL")
    api_token: SecretStr | None = Field(None, alias="CALLSTREAMS_API_TOKEN")
    config_file: Path | None = Field(None, alias="CALLSTREAMS_CONFIG")
    stream_url: str | None = Field(None, alias="STREAM_URL")
    stream_name: str = Field("default", alias="STREAM_NAME")
    stream_track: Track = Field(DEFAULT_TRACK, alias="STREAM_TRACK")
    stream_hosts: Annotated[
        tuple[str, ...], NoDecode, BeforeValidator(_hosts), AfterValidator(_suffixes)
    ] = Field((), alias="CALLSTREAMS_STREAM_HOSTS")
    record_ttl: Duration = Field(timedelta(days=7), alias="CALLSTREAMS_RECORD_TTL")
    voice_twiml_url: TwimlUrl | None = Field(None, alias="VOICE_TWIML_URL")
    answer_wait: Duration = Field(timedelta(minutes=2), alias="CALLSTREAMS_ANSWER_WAIT")
    # 0: never check calls against Twilio's Call resource.
    reconcile_after: Duration = Field(timedelta(minutes=30), alias="CALLSTREAMS_RECONCILE_AFTER")
    max_body: int = Field(64 * 1024, alias="CALLSTREAMS_MAX_BODY", ge=1024, le=16 * 1024 * 1024)
    # Connections one web process holds at once; beyond, a new one is refused with 503.
    max_connections: int = Field(1000, alias="CALLSTREAMS_MAX_CONNECTIONS", ge=1, le=100_000)
    queue_name: str = Field("callstreams:queue", alias="CALLSTREAMS_QUEUE", min_length=1)
    twilio_timeout: float = Field(5.0, alias="CALLSTREAMS_TWILIO_TIMEOUT", gt=0, le=60)
    retry_max_attempts: int = Field(8, alias="CALLSTREAMS_RETRY_MAX_ATTEMPTS", ge=1, le=100)
    retry_max_age: Duration = Field(timedelta(minutes=2), alias="CALLSTREAMS_RETRY_MAX_AGE")
    retry_base_delay: float = Field(0.25, alias="CALLSTREAMS_RETRY_BASE_DELAY", ge=0, le=60)
    retry_max_delay: float = Field(15.0, alias="CALLSTREAMS_RETRY_MAX_DELAY", ge=0, le=600)
    worker_concurrency: int = Field(100, alias="CALLSTREAMS_WORKER_CONCURRENCY", ge=1, le=10000)
    # Twilio's 20429 is a per-account limit on concurrent requests: each worker process
    # keeps at most this many requests in flight per account.
    account_concurrency: int = Field(50, alias="CALLSTREAMS_ACCOUNT_CONCURRENCY", ge=1, le=10000)
    worker_metrics_port: int = Field(9101, alias="CALLSTREAMS_WORKER_METRICS_PORT", ge=0, le=65535)
    # Every interface by default, so that Prometheus in Kubernetes can scrape the pod.
    worker_metrics_host: str = Field("0.0.0.0", alias="CALLSTREAMS_WORKER_METRICS_HOST")  # noqa: S104
    log_format: Literal["json", "console"] = Field("json", alias="CALLSTREAMS_LOG_FORMAT")
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", alias="CALLSTREAMS_LOG_LEVEL"
    )
    log_phone_numbers: bool = Field(False, alias="CALLSTREAMS_LOG_PHONE_NUMBERS")

    def model_post_init(self, context: object, /) -> None:
        if (self.account_sid is None) != (self.auth_token is None):
            raise ValueError("TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN must be set together")
        if (self.api_key is None) != (self.api_secret is None):
            raise ValueError("TWILIO_API_KEY and TWILIO_API_SECRET must be set together")

    @property
    def stream_status_url(self) -> str:
        return self.public_base_url + STREAM_STATUS_PATH


def describe(error: ValidationError) -> str:
    """One line naming each bad variable; values are never included."""
    return "; ".join(f"{where or 'configuration'}: {message}" for where, message in problems(error))


# Secrets that may also come from a file named by `<VARIABLE>_FILE`, as Kubernetes mounts them.
SECRET_FILES = ("TWILIO_AUTH_TOKEN", "TWILIO_API_SECRET", "CALLSTREAMS_API_TOKEN")


def read_secret_file(path: str) -> str:
    """A secret mounted as a file (Kubernetes, Docker secrets), without its trailing newline.

    Raises ValueError naming the path, never the content."""
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except OSError as error:
        raise ValueError(f"cannot read {path}: {error.strerror}") from None


def _secret_files(overrides: dict[str, object]) -> dict[str, object]:
    found: dict[str, object] = {}
    for name in SECRET_FILES:
        path = overrides.get(f"{name}_FILE", os.environ.get(f"{name}_FILE"))
        if path is None or overrides.get(name) is not None or os.environ.get(name):
            continue
        try:
            found[name] = read_secret_file(str(path))
        except ValueError as error:
            raise ConfigError(f"{name}_FILE: {error}") from None
    return found


S = TypeVar("S", bound=BaseSettings)


def _load(cls: type[S], overrides: dict[str, object]) -> S:
    """`cls` from the environment (and `overrides`), or ConfigError with one line."""
    try:
        return cls(**{**overrides, **_secret_files(overrides)})  # type: ignore[arg-type]
    except ValidationError as error:
        raise ConfigError(describe(error)) from None
    except ValueError as error:
        raise ConfigError(str(error)) from None


def load_settings(**overrides: object) -> Settings:
    """The web process's and the worker's settings."""
    return _load(Settings, overrides)


DEFAULT_API_URL = "http://127.0.0.1:8000"


def _api_url(value: str) -> str:
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query:
        raise ValueError("must be an http(s):// URL")
    return value.strip().rstrip("/")


class ClientSettings(BaseSettings):
    """What the operator CLI needs: where the web process is, and a token for it."""

    model_config = SettingsConfigDict(
        case_sensitive=True, extra="ignore", env_ignore_empty=True, frozen=True
    )

    api_url: Annotated[str, AfterValidator(_api_url)] = Field(
        DEFAULT_API_URL, alias="CALLSTREAMS_API_URL"
    )
    api_token: SecretStr | None = Field(None, alias="CALLSTREAMS_API_TOKEN")


def load_client_settings(**overrides: object) -> ClientSettings:
    return _load(ClientSettings, {k: v for k, v in overrides.items() if v is not None})


# `callstreams dev`'s local Twilio account (the emulator's) and operator token: not secrets.
DEV_ACCOUNT_SID = "AC" + "0" * 31 + "1"
DEV_AUTH_TOKEN = "dev-auth-token"  # noqa: S105
DEV_API_TOKEN = "dev-operator-token"  # noqa: S105
DEV_STREAM_URL = "wss://streams.example.com/audio"


class DevSettings(BaseSettings):
    """What `callstreams dev` takes from the environment, with a newcomer's defaults."""

    model_config = SettingsConfigDict(
        case_sensitive=True, extra="ignore", env_ignore_empty=True, frozen=True
    )

    redis_url: str = Field("redis://localhost:6379/0", alias="REDIS_URL")
    account_sid: Annotated[str, _pattern(sids.ACCOUNT_SID, "AC followed by 32 hex digits")] = Field(
        DEV_ACCOUNT_SID, alias="TWILIO_ACCOUNT_SID"
    )
    auth_token: SecretStr = Field(SecretStr(DEV_AUTH_TOKEN), alias="TWILIO_AUTH_TOKEN")
    api_token: SecretStr = Field(SecretStr(DEV_API_TOKEN), alias="CALLSTREAMS_API_TOKEN")
    config_file: Path | None = Field(None, alias="CALLSTREAMS_CONFIG")
    stream_url: str | None = Field(None, alias="STREAM_URL")
    voice_twiml_url: str | None = Field(None, alias="VOICE_TWIML_URL")
    log_format: Literal["json", "console"] = Field("console", alias="CALLSTREAMS_LOG_FORMAT")


def load_dev_settings() -> DevSettings:
    return _load(DevSettings, {})
