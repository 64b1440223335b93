"""Twilio's Call resource as the source of truth, for calls whose end we never heard of.

Twilio retries a status callback once, and only when it could not connect; a lost
`completed` would leave a call's records `in-progress` for days. A call with
unfinished records and no Twilio event for `CALLSTREAMS_RECONCILE_AFTER` is checked
with one `GET …/Calls/{CallSid}.json`, and again every period while it stays so; a
call Twilio reports ended (or does not know: a 404) is closed as its `completed`
callback would have closed it; any other refusal (our credentials, say) closes nothing
and the call is checked again. The Calls list is never polled.

One reconciler runs at a time across workers (a Redis lock per pass), and each call
is taken by one of them per period whatever happens (`Records.take_due` is atomic).
Its requests go through the same client, per-account cap and retry policy as jobs.
"""

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import structlog

from service.store import StoreUnavailable
from service.twilio_terms import TERMINAL
from worker.deps import Deps, request

log = structlog.get_logger("callstreams.reconciler")

BATCH = 200  # calls taken at once; a pass goes on while it finds full batches


def tick(period: timedelta) -> float:
    """Seconds between passes: often enough that a call is checked soon after its period."""
    return min(30.0, max(0.25, period.total_seconds() / 4))


class Reconciler:
    def __init__(self, deps: Deps, period: timedelta) -> None:
        self.deps = deps
        self.period = period
        self.owner = secrets.token_hex(8)

    async def run(self) -> None:
        """Pass after pass, for as long as the worker runs; Redis outages are waited out."""
        interval = tick(self.period)
        while True:
            try:
                # The turn lapses by itself after one interval: nothing to release.
                if await self.deps.records.take_turn(self.owner, timedelta(seconds=interval)):
                    await self.reconcile()
            except StoreUnavailable as error:
                log.warning("reconciler: redis unavailable", error=str(error))
            except Exception:  # a bad pass must not end reconciling for good
                log.exception("reconciler pass failed")
            await asyncio.sleep(interval)

    async def reconcile(self) -> int:
        """One pass over every call that is due; how many were checked."""
        checked = 0
        while True:
            due = await self.deps.records.take_due(self.period, BATCH)
            await asyncio.gather(*(self.check(call_sid) for call_sid in due))
            checked += len(due)
            if len(due) < BATCH:
                return checked

    async def check(self, call_sid: str) -> str:
        """Settle one call against Twilio; the outcome is counted and returned."""
        outcome = await self._check(call_sid)
        self.deps.metrics.reconciled_calls.labels(outcome).inc()
        if outcome != "live":
            log.info("reconciled", call_sid=call_sid, outcome=outcome)
        return outcome

    async def _check(self, call_sid: str) -> str:
        records = self.deps.records
        call = await records.call(call_sid)
        unsettled = call.unsettled
        if call.ended or not unsettled:
            await records.settle(call_sid)
            return "settled"
        account_sid = unsettled[0]["account_sid"]
        fetch = self.deps.twilio.fetch_call(account_sid, call_sid)
        answer = await request(self.deps, "fetch", fetch)
        if answer.kind == "not-found":
            await records.call_ended(
                call_sid, account_sid, "completed", "Twilio does not know the call"
            )
            return "unknown"
        if answer.kind != "ok":  # throttled, down, or refusing our credentials: ask again
            delay = self.deps.policy.delay(1, answer.retry_after)
            await records.recheck(call_sid, self.period, timedelta(seconds=delay))
            return "error"
        status = answer.body.get("status")
        if status in TERMINAL:
            why = "Twilio's Call resource says it ended; its status callback never came"
            await records.call_ended(call_sid, account_sid, str(status), why)
            return "ended"
        return "live"


@asynccontextmanager
async def reconciling(deps: Deps, period: timedelta) -> AsyncIterator[None]:
    """Run the reconciler while the block runs; a zero period turns it off."""
    if not period:
        yield
        return
    task = asyncio.create_task(Reconciler(deps, period).run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
