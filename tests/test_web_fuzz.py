"""Property-based bad input: no 5xx, no traceback, nothing stored for a refusal."""

import json
import string
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, cast
from urllib.parse import quote, urlencode

import httpx
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from redis import Redis

from service.config import Settings
from service.web.app import create_app
from tests.helpers import ACCOUNT_SID, API_TOKEN, answered, call_sid, signed

FIELDS = ["AccountSid", "CallSid", "CallStatus", "StreamSid", "StreamEvent", "StreamName", "From"]
SIDS = st.one_of(
    st.just(call_sid()),
    st.just(ACCOUNT_SID),
    st.just("MZ" + "0" * 32),
    st.text(alphabet=string.hexdigits + "CAMZ", max_size=40),
    st.text(max_size=40),
)
VALUES = st.one_of(
    SIDS,
    st.sampled_from(["in-progress", "completed", "ringing", "stream-started", "stream-error", ""]),
    st.text(max_size=200),
)
FORMS = st.lists(st.tuples(st.one_of(st.sampled_from(FIELDS), st.text(max_size=20)), VALUES),
                 max_size=12)  # fmt: skip
CONTENT_TYPES = st.sampled_from(
    ["application/x-www-form-urlencoded", "application/x-www-form-urlencoded; charset=utf-8",
     "application/json", "text/plain", "multipart/form-data; boundary=x", ""]
)  # fmt: skip
REFUSED = {400, 403, 404, 405, 409, 413, 415}
SETTINGS = hypothesis_settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


class SyncClient:
    """Blocking calls into the app in process, for hypothesis's synchronous tests."""

    def __init__(self, portal: BlockingPortal, client: httpx.AsyncClient) -> None:
        self.portal = portal
        self.client = client

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.portal.call(lambda: self.client.post(url, **kwargs))

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.portal.call(lambda: self.client.get(url, **kwargs))


@contextmanager
def app_client(settings: Settings) -> Iterator[SyncClient]:
    app = create_app(settings)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://internal")
    with (
        start_blocking_portal() as portal,
        portal.wrap_async_context_manager(app.router.lifespan_context(app)),
        portal.wrap_async_context_manager(client),
    ):
        yield SyncClient(portal, client)


def keys(redis: Redis) -> int:
    return cast(int, redis.dbsize())


def check_refusal(response: Any, redis: Redis, before: int) -> None:
    assert response.status_code < 500, response.text
    assert "Traceback" not in response.text
    if response.status_code in REFUSED:
        assert set(response.json()) >= {"error", "detail"}
        assert keys(redis) == before


def test_webhooks_never_fail_on_input(
    make_settings: Callable[..., Settings], redis_url: str
) -> None:
    redis = Redis.from_url(redis_url)
    with app_client(make_settings()) as client:

        @SETTINGS
        @given(
            path=st.sampled_from(["/twilio/call-status", "/twilio/stream-status"]),
            form=FORMS,
            content_type=CONTENT_TYPES,
            sign=st.booleans(),
            raw=st.one_of(st.none(), st.binary(max_size=300)),
        )
        def check(
            path: str, form: list[tuple[str, str]], content_type: str, sign: bool,
            raw: bytes | None,
        ) -> None:  # fmt: skip
            request: dict[str, Any] = (
                signed(path, form) if sign else {"content": urlencode(form).encode()}
            )
            headers = dict(request.get("headers", {}))
            headers["Content-Type"] = content_type
            body = raw if raw is not None else request["content"]
            before = keys(redis)
            response = client.post(path, content=body, headers=headers)
            check_refusal(response, redis, before)
            assert response.status_code in REFUSED | {204}

        check()


def test_operator_api_never_fails_on_input(
    make_settings: Callable[..., Settings], redis_url: str
) -> None:
    redis = Redis.from_url(redis_url)
    auth = {"Authorization": f"Bearer {API_TOKEN}", "Content-Type": "application/json"}
    json_values = st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=30),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
        max_leaves=8,
    )
    bodies = st.one_of(
        st.fixed_dictionaries(
            {}, optional={"name": VALUES, "url": st.text(max_size=40) | st.just("wss://a.b/c"),
                          "track": VALUES, "parameters": json_values, "profile": VALUES}
        ),
        json_values,
    )  # fmt: skip
    with app_client(make_settings()) as client:

        @SETTINGS
        @given(sid=SIDS, name=st.text(max_size=70), body=bodies)
        def check(sid: str, name: str, body: Any) -> None:
            sid, name = quote(sid, safe=""), quote(name, safe="")
            before = keys(redis)
            started = client.post(f"/v1/calls/{sid}/streams", content=json.dumps(body),
                                  headers=auth)  # fmt: skip
            if started.status_code != 202:
                check_refusal(started, redis, before)
            for response in (
                client.get(f"/v1/calls/{sid}/streams/{name}", headers=auth),
                client.post(f"/v1/calls/{sid}/streams/{name}/stop", headers=auth),
            ):
                assert response.status_code < 500, response.text

        check()


def test_answered_webhook_stores_for_valid_input(
    make_settings: Callable[..., Settings], redis_url: str
) -> None:
    """The positive control: the same client and checks do accept a good request."""
    redis = Redis.from_url(redis_url)
    with app_client(make_settings()) as client:
        path = "/twilio/call-status"
        response = client.post(path, **signed(path, answered(call_sid())))
        assert response.status_code == 204
        assert keys(redis) > 0
