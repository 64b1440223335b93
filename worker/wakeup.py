"""arq's worker, woken the moment a job is enqueued instead of polling hard.

arq polls its queue every `poll_delay`: 0.5 s costs half a second per stream,
2 ms costs 13 % of a core while idle. Our enqueue scripts also PUBLISH on
`<queue>:wake`; this worker waits on that channel, or for one of its jobs to
finish (a free slot while a backlog waits), with the poll delay only as the
fallback for deferred retries and missed messages. It also survives Redis
outages: a failed poll is logged and retried, where arq's loop would die.
"""

import asyncio
import contextlib
from typing import Any

import structlog
from arq.connections import create_pool
from arq.worker import Worker
from redis.exceptions import RedisError

from service import queue

log = structlog.get_logger("callstreams.worker")


class Wakeup:
    """Why the worker's loop woke: job ids the enqueue scripts announced, or anything
    else (the poll delay, a finished job, a resubscribe) that calls for reading the queue."""

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self._job_ids: list[bytes] = []
        self._poll = True

    def announce(self, job_id: bytes) -> None:
        self._job_ids.append(job_id)
        self.event.set()

    def poll(self) -> None:
        self._poll = True
        self.event.set()

    def take(self) -> list[bytes] | None:
        """The announced job ids to start, or None to read the queue instead."""
        self.event.clear()
        job_ids, self._job_ids = self._job_ids, []
        poll, self._poll = self._poll, False
        return None if poll or not job_ids else job_ids


class WakingWorker(Worker):
    """A Worker whose main loop waits on a wake-up message or the poll delay."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # arq keeps a job locked for its timeout + 10 s after a worker died; the
        # record's lease already prevents concurrent Twilio calls, so a shorter
        # lock lets another worker take over a killed worker's job in seconds.
        self.in_progress_timeout_s = (self.job_timeout_s or 0) + 1
        self._wakeup = Wakeup()

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
        self._taker = queue.Taker(
            self.pool, self.queue_name, int(self.in_progress_timeout_s * 1000)
        )
        if self.on_startup:
            await self.on_startup(self.ctx)
        wakeup = self._wakeup
        listener = asyncio.create_task(self._listen(wakeup))
        try:
            while True:
                job_ids = wakeup.take()
                try:
                    if job_ids is None:
                        await self._poll_iteration()
                    else:  # just enqueued: start them without reading the queue first
                        await self.start_jobs(job_ids)
                except (RedisError, OSError) as error:
                    log.warning("queue poll failed", error=f"{type(error).__name__}: {error}")
                if self.burst and await self._burst_done():
                    return
                try:
                    await asyncio.wait_for(wakeup.event.wait(), self.poll_delay_s)
                except TimeoutError:
                    wakeup.poll()
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        """arq's `start_jobs` in one Redis round trip per job instead of three, and
        without the jobs this worker is already running (they stay at the head of
        the queue until they finish; arq would check each of them again)."""
        for raw_id in job_ids:
            job_id = raw_id.decode()
            if job_id in self.tasks:
                continue
            await self.sem.acquire()
            if self.job_counter >= self.max_jobs:
                self.sem.release()
                return
            score = await self._taker.take(job_id)
            if score is None:  # running elsewhere, finished, or deferred meanwhile
                self.sem.release()
                continue
            self.job_counter += 1
            task = self.loop.create_task(self.run_job(job_id, score))
            task.add_done_callback(self._job_done)
            self.tasks[job_id] = task

    def _job_done(self, _: "asyncio.Task[None]") -> None:
        self._release_sem_dec_counter_on_complete()
        # A free slot while a backlog may wait: read the queue now, not at the next poll.
        self._wakeup.poll()

    async def _burst_done(self) -> bool:
        if 0 <= self.max_burst_jobs <= self._jobs_started() or not await self.pool.zcard(
            self.queue_name
        ):
            await asyncio.gather(*self.tasks.values())
            return True
        return False

    async def _listen(self, wakeup: Wakeup) -> None:
        """Announce every enqueued job id; resubscribe after Redis comes back."""
        channel = queue.wake_channel(self.queue_name)
        while True:
            pubsub = self.pool.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(channel)
                wakeup.poll()  # catch up on anything enqueued while unsubscribed
                async for message in pubsub.listen():
                    wakeup.announce(message["data"])
            except (RedisError, OSError):
                await asyncio.sleep(min(1.0, self.poll_delay_s))
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
