"""The running emulator: its world, its webhooks, and the tasks that send them.

Undocumented, the emulator's choices: a call to a number that is answered
`answer_after` seconds after it came in is counted from the moment its Voice
URL exchange ended (Twilio answers only once it has TwiML to run); a call
whose Voice URL failed still rings and is answered as configured, as if the
number's fallback TwiML had taken it.
"""

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
from starlette.requests import Request

from service.emulator.delivery import Deliverer
from service.emulator.faults import Fault, Faults
from service.emulator.numbers import Number
from service.emulator.world import TERMINAL, Call, Stats, Stream, iso_now, rfc2822_now

RingingCreate = Literal["refuse", "accept"]


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
    numbers: list[Number] = field(default_factory=list)
    ringing_create: RingingCreate = "refuse"  # a stream create on a ringing call
    answer_after: float | None = None  # seconds a call to a number rings; None: until told


@dataclass
class Behaviour:
    """What a test may change while the emulator runs (`PUT /_emulator/config`)."""

    ringing_create: RingingCreate
    answer_after: float | None

    def view(self) -> dict[str, Any]:
        return {"ringing_create": self.ringing_create, "answer_after": self.answer_after}


class Emulator:
    """Calls, streams, numbers, request and webhook logs; webhooks sent in order per stream."""

    def __init__(self, config: EmulatorConfig, http: httpx.AsyncClient) -> None:
        self.config = config
        self.deliverer = Deliverer(http, config.accounts)
        self.calls: dict[str, Call] = {}
        self.requests: list[dict[str, Any]] = []
        self.stats = Stats()
        self.faults = Faults(config.faults, config.seed)
        self.numbers = {n.number: n for n in config.numbers}
        self.behaviour = Behaviour(config.ringing_create, config.answer_after)
        self._tasks: set[asyncio.Task[None]] = set()
        self._chains: dict[str, asyncio.Task[None]] = {}  # stream SID -> its last webhook

    def reset(self) -> None:
        """Forget calls, logs, counters and faults; numbers and behaviour as at start."""
        self.calls.clear()
        self.requests.clear()
        self.deliverer.log.clear()
        self.stats = Stats()
        self.faults.rules.clear()
        self.numbers = {n.number: n for n in self.config.numbers}
        self.behaviour = Behaviour(self.config.ringing_create, self.config.answer_after)

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
        dropped = self.faults.drop(event)

        async def send() -> None:
            if previous is not None:
                await asyncio.gather(previous, return_exceptions=True)
            if delay:
                await asyncio.sleep(delay)
            if dropped:
                self.deliverer.drop(url, params)
            else:
                await self.deliverer.deliver(stream.account_sid, url, params)

        task = self._chains[stream.sid] = self._spawn(send())

        def forget(done: asyncio.Task[None]) -> None:
            if self._chains.get(stream.sid) is done:
                del self._chains[stream.sid]

        task.add_done_callback(forget)

    def start_stream(self, call: Call, stream: Stream) -> None:
        """Its `stream-started` goes out once the call is in progress: at once, or when answered."""
        if call.status == "in-progress" and stream.status == "in-progress" and not stream.started:
            stream.started = True
            self.stream_event(stream, "stream-started")

    def stop_stream(
        self, stream: Stream, event: str = "stream-stopped", error: str | None = None
    ) -> None:
        if stream.status == "stopped":
            return
        stream.status = "stopped"
        stream.date_updated = rfc2822_now()
        self.stream_event(stream, event, error)

    async def answer(self, call: Call) -> list[dict[str, Any]]:
        """The call is answered: its waiting streams start; its callback hears it if it listens."""
        call.set_status("in-progress")
        for stream in call.streams.values():
            self.start_stream(call, stream)
        return await self.call_status(call, "in-progress")

    def answer_later(self, call: Call, seconds: float) -> None:
        async def answer() -> None:
            await asyncio.sleep(seconds)
            if self.calls.get(call.sid) is call and call.status == "ringing":
                await self.answer(call)

        self._spawn(answer())

    async def end(self, call: Call, status: str) -> list[dict[str, Any]]:
        call.set_status(status)
        return await self.call_status(call, status)

    async def call_status(
        self, call: Call, status: str, *, always: bool = False
    ) -> list[dict[str, Any]]:
        """Deliver a call status callback now if the call's callback hears `status` (`always`:
        whatever it hears); a terminal status ends the call's streams first."""
        if status in TERMINAL:
            for stream in call.streams.values():
                self.stop_stream(stream)
        if not call.status_callback or not (always or status in call.callback_statuses):
            return []
        params = call.webhook_params(status)
        if self.faults.drop(status):
            self.deliverer.drop(call.status_callback, params)
            return []
        attempts = await self.deliverer.deliver(call.account_sid, call.status_callback, params)
        return [{"status": a["status"], "attempt": a["attempt"]} for a in attempts]


def running(request: Request) -> Emulator:
    """The emulator the app's lifespan started."""
    emulator: Emulator = request.app.state.emulator
    return emulator
