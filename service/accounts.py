"""Twilio accounts: whose webhooks we accept and whose credentials call Twilio.

One account comes from `TWILIO_ACCOUNT_SID`/`TWILIO_AUTH_TOKEN` (and optionally
`TWILIO_API_KEY`/`TWILIO_API_SECRET`); more from `[[accounts]]` tables in the
configuration file. Secrets may be given inline or as files, as Kubernetes
mounts them (`auth_token_file`, `api_secret_file`).
"""

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, SecretStr, model_validator

from service import sids
from service.config import Settings, read_secret_file


def _sid(value: str) -> str:
    if not sids.is_account_sid(value):
        raise ValueError("must be AC followed by 32 hex digits")
    return value


def _key(value: str | None) -> str | None:
    if value is not None and not sids.API_KEY_SID.fullmatch(value):
        raise ValueError("must be SK followed by 32 hex digits")
    return value


class Account(BaseModel):
    """One account's SID, the token that signs its webhooks, its REST credentials, and
    optionally an operator token that reaches this account's calls only."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sid: Annotated[str, AfterValidator(_sid)]
    auth_token: SecretStr
    api_key: Annotated[str | None, AfterValidator(_key)] = None
    api_secret: SecretStr | None = None
    api_token: SecretStr | None = None

    @model_validator(mode="before")
    @classmethod
    def _files(cls, data: Any) -> Any:
        """`auth_token_file`, `api_secret_file` and `api_token_file` stand for the secrets
        they hold."""
        if isinstance(data, Mapping):
            data = dict(data)
            for secret in ("auth_token", "api_secret", "api_token"):
                path = data.pop(f"{secret}_file", None)
                if path is not None:
                    if secret in data:
                        raise ValueError(f"{secret} and {secret}_file are exclusive")
                    data[secret] = read_secret_file(str(path))
        return data

    @model_validator(mode="after")
    def _pair(self) -> "Account":
        if (self.api_key is None) != (self.api_secret is None):
            raise ValueError("api_key and api_secret must be set together")
        if not self.auth_token.get_secret_value():
            raise ValueError("auth_token must not be empty")
        if self.api_token is not None and len(self.api_token.get_secret_value()) < 16:
            raise ValueError("api_token must be at least 16 characters")
        return self

    @property
    def rest_auth(self) -> tuple[str, str]:
        """Basic-auth pair for Twilio's REST API: the API key when set, else the auth token."""
        if self.api_key is not None and self.api_secret is not None:
            return self.api_key, self.api_secret.get_secret_value()
        return self.sid, self.auth_token.get_secret_value()


def env_account(settings: Settings) -> Account | None:
    """The account of the TWILIO_* variables, if they are set (validated by Settings)."""
    if settings.account_sid is None or settings.auth_token is None:
        return None
    return Account(
        sid=settings.account_sid,
        auth_token=settings.auth_token,
        api_key=settings.api_key,
        api_secret=settings.api_secret,
    )
