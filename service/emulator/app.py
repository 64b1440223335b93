"""The emulator's Starlette app: Twilio's Streams API plus the control API."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response

from service.emulator import control, rest
from service.emulator.runtime import Emulator, EmulatorConfig


async def _invalid(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, control.Invalid)
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
        routes=[*rest.routes, *control.routes],
        lifespan=lifespan,
        exception_handlers={control.Invalid: _invalid},
    )
