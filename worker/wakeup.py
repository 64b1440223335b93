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
from service.store import StoreUnavailable

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
        self.ctx["lock_ms"] = int(self.in_progress_timeout_s * 1000)
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
        """Run each job, unless this worker already runs it. Unlike arq's `start_jobs`
        (three round trips to start a job, one more to finish it, and a re-check of the
        jobs it already runs), a job of ours is taken and completed in the same Lua
        steps as its record: see `service/queue.py` and `worker/jobs.py`."""
        for raw_id in job_ids:
            job_id = raw_id.decode()
            if job_id in self.tasks:
                continue
            parsed = queue.parse_job_id(job_id)
            if parsed is None:
                log.warning("not a job of callstreams, left in the queue", job=job_id)
                continue
            await self.sem.acquire()
            if self.job_counter >= self.max_jobs:
                self.sem.release()
                return
            self.job_counter += 1
            task = self.loop.create_task(self._run(job_id, *parsed))
            task.add_done_callback(self._job_done)
            self.tasks[job_id] = task

    async def _run(self, job_id: str, function: str, args: tuple[str, ...]) -> None:
        """One job, within its timeout. A job that fails stays in the queue, marked
        running until its lock lapses, then runs again: the record says what is left."""
        job = self.functions[function]
        try:
            async with asyncio.timeout(self.job_timeout_s):
                outcome = await job.coroutine({**self.ctx, "job_id": job_id}, *args)
        except TimeoutError:
            self.jobs_failed += 1
            log.warning("job timed out; it runs again once its lock lapses", job=job_id)
            return
        except StoreUnavailable as error:
            self.jobs_failed += 1
            log.warning("job could not reach Redis; it runs again once its lock lapses",
                        job=job_id, error=str(error))  # fmt: skip
            return
        except Exception:
            self.jobs_failed += 1
            log.exception("job failed; it runs again once its lock lapses", job=job_id)
            return
        if outcome in ("retry", "waiting", "answered", "busy"):
            self.jobs_retried += 1
        elif outcome != "elsewhere":
            self.jobs_complete += 1

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
