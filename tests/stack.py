"""The web app and the Twilio emulator in process, and workers run in burst mode: the
seam for tests of the worker's behaviour against Twilio without real sockets."""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from service.config import Settings
from service.emulator import EmulatorConfig, create_emulator_app
from service.web.app import create_app
from tests.helpers import ACCOUNT_SID, API_TOKEN, AUTH_TOKEN, answered, lifespan_client, signed
from worker.metrics import WorkerMetrics
from worker.settings import create_worker

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
CALL_STATUS = "/twilio/call-status"


class RefusedFetches(httpx.AsyncBaseTransport):
    """Twilio refusing our credentials for the Call resource only (creates go through)."""

    def __init__(self, twilio: httpx.AsyncBaseTransport) -> None:
        self.twilio = twilio
        self.refused = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET" and "/Calls/" in request.url.path:
            self.refused += 1
            body = {"code": 20003, "message": "Authenticate", "status": 401}
            return httpx.Response(401, json=body)
        return await self.twilio.handle_async_request(request)


class Stack:
    """The web app and the emulator in process; workers run in burst mode."""

    def __init__(
        self, settings: Settings, web: httpx.AsyncClient, twilio: httpx.AsyncClient
    ) -> None:
        self.settings = settings
        self.web = web
        self.twilio = twilio
        self.transport: httpx.AsyncBaseTransport = twilio._transport
        self.metrics = WorkerMetrics()

    async def call(self, status: str = "in-progress", account_sid: str = ACCOUNT_SID) -> str:
        response = await self.twilio.post(
            "/_emulator/calls", json={"account_sid": account_sid, "status": status}
        )
        assert response.status_code == 201, response.text
        sid: str = response.json()["sid"]
        return sid

    async def answer(self, sid: str, token: str = AUTH_TOKEN, **fields: str) -> None:
        form = {**answered(sid), **fields}
        response = await self.web.post(CALL_STATUS, **signed(CALL_STATUS, form, token=token))
        assert response.status_code == 204

    async def work(self, transport: httpx.AsyncBaseTransport | None = None) -> None:
        worker = create_worker(
            self.settings, metrics=self.metrics, transport=transport or self.transport,
            burst=True, poll_delay=0.01, handle_signals=False,
        )  # fmt: skip
        try:
            await worker.async_run()
        finally:
            await worker.close()

    @asynccontextmanager
    async def worker(
        self, transport: httpx.AsyncBaseTransport | None = None, **overrides: Any
    ) -> AsyncIterator[None]:
        """A worker running in the background while the block runs."""
        worker = create_worker(
            self.settings, metrics=self.metrics, transport=transport or self.transport,
            poll_delay=0.05, handle_signals=False, **overrides,
        )  # fmt: skip
        task = asyncio.create_task(worker.async_run())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await worker.close()

    async def streams(self, sid: str) -> list[dict[str, Any]]:
        response = await self.web.get(f"/v1/calls/{sid}/streams", headers=AUTH)
        result: list[dict[str, Any]] = response.json()["streams"]
        return result

    async def emulator_streams(self, sid: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = (await self.twilio.get(f"/_emulator/calls/{sid}")).json()[
            "streams"
        ]
        return result

    async def creates(self) -> list[dict[str, Any]]:
        requests = (await self.twilio.get("/_emulator/requests")).json()["requests"]
        return [r for r in requests if r["path"].endswith("/Streams.json")]


async def running(settings: Settings, config: EmulatorConfig) -> AsyncIterator[Stack]:
    """The web app and the emulator, which sends its stream status callbacks to the app."""
    app = create_app(settings)
    config.webhook_transport = httpx.ASGITransport(app=app)
    async with (
        lifespan_client(app, "http://internal") as web,
        lifespan_client(create_emulator_app(config), "http://twilio.test") as twilio,
    ):
        yield Stack(settings, web, twilio)
