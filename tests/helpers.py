"""What tests share besides fixtures: fake credentials, SIDs, Twilio-signed requests,
a redis-server of their own, an in-process client for an app, and catalogs loaded
from a configuration file.

Requests are signed with twilio-python's `RequestValidator`, not with the service's
own code, so a signing bug in the service cannot hide behind the tests.
"""

import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlencode

import httpx
from redis import Redis
from twilio.request_validator import RequestValidator

from service.catalog import Catalog, load_catalog
from service.cli.dev import free_port
from service.config import load_settings

ACCOUNT_SID = "AC" + "a1" * 16
AUTH_TOKEN = "test-auth-token"
API_TOKEN = "test-operator-token"
PUBLIC_BASE_URL = "https://streams.example.com"
STREAM_URL = "wss://asr.example.com/twilio"


class RedisServer:
    """A redis-server process the tests own: they may stop and start it."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary, "redis-server must be on PATH"
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir",
             str(self.directory), "--save", "", "--appendonly", "yes"],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while True:
            try:
                Redis.from_url(self.url).ping()
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None


def call_sid(n: int = 1) -> str:
    return f"CA{n:032x}"


def stream_sid(n: int = 1) -> str:
    return f"MZ{n:032x}"


class MultiDict:
    """Form pairs with repeated names, in the shape twilio-python's validator reads."""

    def __init__(self, pairs: Sequence[tuple[str, str]]) -> None:
        self.pairs = list(pairs)

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys(name for name, _ in self.pairs))

    def __len__(self) -> int:
        return len(self.pairs)

    def getall(self, name: str) -> list[str]:
        return [value for key, value in self.pairs if key == name]


def twilio_signature(url: str, pairs: Sequence[tuple[str, str]], token: str) -> str:
    """What Twilio sends in X-Twilio-Signature, computed by twilio-python."""
    return cast(str, RequestValidator(token).compute_signature(url, MultiDict(pairs)))


def signed(
    path: str,
    fields: dict[str, str] | list[tuple[str, str]],
    *,
    token: str = AUTH_TOKEN,
    base: str = PUBLIC_BASE_URL,
) -> dict[str, Any]:
    """Keyword arguments for an httpx post that Twilio would have signed."""
    pairs = list(fields.items()) if isinstance(fields, dict) else fields
    return {
        "content": urlencode(pairs).encode(),
        "headers": {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": twilio_signature(base + path, pairs, token),
        },
    }


def answered(sid: str, status: str = "in-progress", **extra: str) -> dict[str, str]:
    """The fields of a call status callback, as Twilio sends them."""
    return {
        "AccountSid": ACCOUNT_SID,
        "CallSid": sid,
        "CallStatus": status,
        "From": "+15550001111",
        "To": "+15550002222",
        "Caller": "+15550001111",
        "Called": "+15550002222",
        "Direction": "inbound",
        "ApiVersion": "2010-04-01",
        "CallbackSource": "call-progress-events",
        "SequenceNumber": "1",
        **extra,
    }


@asynccontextmanager
async def lifespan_client(app: Any, base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """An in-process client for `app`, with its lifespan run around it."""
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url) as client,
    ):
        yield client


def catalog_from(tmp_path: Path, toml: str, **env: str) -> Catalog:
    """The catalog loaded from a `CALLSTREAMS_CONFIG` file holding `toml`, under `env`."""
    config = tmp_path / "callstreams.toml"
    config.write_text(toml)
    return load_catalog(load_settings(**env, CALLSTREAMS_CONFIG=str(config)))
