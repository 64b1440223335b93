"""The running emulator: its world, its webhooks, and the tasks that send them."""

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

import httpx

from service.emulator.delivery import Deliverer
from service.emulator.faults import Fault, Faults
from service.emulator.world import TERMINAL, Call, Stats, Stream, iso_now, rfc2822_now


@dataclass
class EmulatorConfig:
    """Who may call the emulator, and how it behaves."""

    accounts: dict[str, str]  # Account SID -> auth token
    api_keys: dict[str, tuple[str, str]] = field(default_factory=dict)  # SK -> (AC, secret)
    stream_started_delay: float = 0.0  # seconds between a create and its stream-started
    latency: float = 0.0  # seconds every REST answer takes
    max_concurrency: int | None = None  # per account; beyond it Twilio answers 429/20429
    faults: list[Fault] = field(default_factory=list)
    seed: int | None = None
    webhook_transport: httpx.AsyncBaseTransport | None = None


class Emulator:
    """Calls, streams, request and webhook logs; webhooks sent in order per stream."""

    def __init__(self, config: EmulatorConfig, http: httpx.AsyncClient) -> None:
        self.config = config
        self.deliverer = Deliverer(http, config.accounts)
        self.calls: dict[str, Call] = {}
        self.requests: list[dict[str, Any]] = []
        self.stats = Stats()
        self.faults = Faults(config.faults, config.seed)
        self._tasks: set[asyncio.Task[None]] = set()
        self._chains: dict[str, asyncio.Task[None]] = {}  # stream SID -> its last webhook

    def reset(self) -> None:
        self.calls.clear()
        self.requests.clear()
        self.deliverer.log.clear()
        self.stats = Stats()
        self.faults.rules.clear()

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def stream_event(self, stream: Stream, event: str, error: str | None = None) -> None:
        """Send a stream status callback after the stream's previous one, as Twilio orders them."""
        if not stream.status_callback:
            return
        params = {
            "AccountSid": stream.account_sid,
            "CallSid": stream.call_sid,
            "StreamSid": stream.sid,
            "StreamName": stream.name or stream.sid,
            "StreamEvent": event,
            "Timestamp": iso_now(),
        }
        if error is not None:
            params["StreamError"] = error
        previous = self._chains.get(stream.sid)
        delay = self.config.stream_started_delay if event == "stream-started" else 0.0
        url = stream.status_callback

        async def send() -> None:
            if previous is not None:
                await asyncio.gather(previous, return_exceptions=True)
            if delay:
                await asyncio.sleep(delay)
            await self.deliverer.deliver(stream.account_sid, url, params)

        task = self._chains[stream.sid] = self._spawn(send())

        def forget(done: asyncio.Task[None]) -> None:
            if self._chains.get(stream.sid) is done:
                del self._chains[stream.sid]

        task.add_done_callback(forget)

    def stop_stream(
        self, stream: Stream, event: str = "stream-stopped", error: str | None = None
    ) -> None:
        if stream.status == "stopped":
            return
        stream.status = "stopped"
        stream.date_updated = rfc2822_now()
        self.stream_event(stream, event, error)

    async def call_status(self, call: Call, status: str) -> list[dict[str, Any]]:
        """Deliver a call status callback now; a terminal status ends the call's streams first."""
        if status in TERMINAL:
            for stream in call.streams.values():
                self.stop_stream(stream)
        if not call.status_callback:
            return []
        params = call.webhook_params(status)
        attempts = await self.deliverer.deliver(call.account_sid, call.status_callback, params)
        return [{"status": a["status"], "attempt": a["attempt"]} for a in attempts]
