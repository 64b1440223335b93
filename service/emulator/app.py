"""The emulator's Starlette app: Twilio's Streams and Call APIs plus the control API."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response

from service.emulator import calls_api, control, inbound, rest
from service.emulator.bodies import Invalid
from service.emulator.runtime import Emulator, EmulatorConfig


async def _invalid(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Invalid)
    return exc.response


def create_emulator_app(config: EmulatorConfig) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with httpx.AsyncClient(transport=config.webhook_transport) as http:
            emulator = Emulator(config, http)
            app.state.emulator = emulator
            try:
                yield
            finally:
                await emulator.close()

    return Starlette(
        routes=[*rest.routes, *calls_api.routes, *inbound.routes, *control.routes],
        lifespan=lifespan,
        exception_handlers={Invalid: _invalid},
    )
