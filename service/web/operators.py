"""Who may use the operator API, and which calls each token reaches.

`CALLSTREAMS_API_TOKEN` reaches every account's calls; an `api_token` of an
`[[accounts]]` entry reaches that account's only, and another account's call is
unknown to it. Every configured token is compared, each in constant time, so the
answer's timing tells nothing about which one came close.
"""

import hmac
from dataclasses import dataclass

from starlette.requests import Request

from service.record import StreamRecord
from service.web.errors import ApiError
from service.web.state import AppState, app_state


@dataclass(frozen=True)
class Operator:
    """An authenticated operator: the account its token reaches, or None for every one."""

    account_sid: str | None

    def reaches(self, account_sid: str) -> bool:
        return self.account_sid is None or self.account_sid == account_sid

    def visible(self, records: list[StreamRecord]) -> list[StreamRecord]:
        """The records this operator may see: another account's call has none."""
        return [r for r in records if self.reaches(r["account_sid"])]


def authorized(request: Request) -> tuple[AppState, Operator]:
    """The app state and the operator, once the bearer token checks out."""
    state = app_state(request)
    tokens: list[tuple[str | None, bytes]] = [
        (sid, account.api_token.get_secret_value().encode())
        for sid, account in state.catalog.accounts.items()
        if account.api_token is not None
    ]
    if state.settings.api_token is not None:
        tokens.append((None, state.settings.api_token.get_secret_value().encode()))
    if not tokens:
        raise ApiError(
            503, "operator API disabled",
            "set CALLSTREAMS_API_TOKEN, or an api_token in [[accounts]], to enable it",
        )  # fmt: skip
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        raise ApiError(
            401, "unauthorized", "Authorization: Bearer <token> required",
            {"WWW-Authenticate": "Bearer"},
        )  # fmt: skip
    presented = given.strip().encode()
    matches = [sid for sid, token in tokens if hmac.compare_digest(presented, token)]
    if not matches:
        raise ApiError(403, "forbidden", "the bearer token is not valid")
    return state, Operator(matches[0])
