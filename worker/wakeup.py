"""arq's worker, woken the moment a job is enqueued instead of polling hard.

arq polls its queue every `poll_delay`: 0.5 s costs half a second per stream,
2 ms costs 13 % of a core while idle. Our enqueue scripts also PUBLISH on
`<queue>:wake`; this worker waits on that channel, with the poll delay only as
the fallback for deferred retries and missed messages. It also survives Redis
outages: a failed poll is logged and retried, where arq's loop would die.
"""

import asyncio
import contextlib
from typing import Any

import structlog
from arq.connections import create_pool
from arq.worker import Worker
from redis.exceptions import RedisError

log = structlog.get_logger("callstreams.worker")


def wake_channel(queue_name: str) -> str:
    return f"{queue_name}:wake"


class WakingWorker(Worker):
    """A Worker whose main loop waits on a wake-up message or the poll delay."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # arq keeps a job locked for its timeout + 10 s after a worker died; the
        # record's lease already prevents concurrent Twilio calls, so a shorter
        # lock lets another worker take over a killed worker's job in seconds.
        self.in_progress_timeout_s = (self.job_timeout_s or 0) + 1

    async def main(self) -> None:
        if self._pool is None:
            self._pool = await create_pool(
                self.redis_settings,
                job_deserializer=self.job_deserializer,
                job_serializer=self.job_serializer,
                default_queue_name=self.queue_name,
                expires_extra_ms=self.expires_extra_ms,
            )
        self.ctx["redis"] = self.pool
        if self.on_startup:
            await self.on_startup(self.ctx)
        wake = asyncio.Event()
        listener = asyncio.create_task(self._listen(wake))
        try:
            while True:
                wake.clear()
                try:
                    await self._poll_iteration()
                except (RedisError, OSError) as error:
                    log.warning("queue poll failed", error=f"{type(error).__name__}: {error}")
                if self.burst and await self._burst_done():
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), self.poll_delay_s)
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener

    async def _burst_done(self) -> bool:
        if 0 <= self.max_burst_jobs <= self._jobs_started() or not await self.pool.zcard(
            self.queue_name
        ):
            await asyncio.gather(*self.tasks.values())
            return True
        return False

    async def _listen(self, wake: asyncio.Event) -> None:
        """Set `wake` on every message; resubscribe after Redis comes back."""
        channel = wake_channel(self.queue_name)
        while True:
            pubsub = self.pool.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(channel)
                wake.set()  # catch up on anything enqueued while unsubscribed
                async for _ in pubsub.listen():
                    wake.set()
            except (RedisError, OSError):
                await asyncio.sleep(min(1.0, self.poll_delay_s))
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
