"""arq's wire format as `service/queue.py` writes it, and the arq internals the worker
builds on: if an arq release changes either, these fail before a deployment does."""

import inspect
from collections.abc import Callable
from datetime import timedelta

import pytest
from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix, job_key_prefix
from arq.jobs import Job, JobStatus, deserialize_job_raw
from arq.worker import Worker
from redis.asyncio import Redis

from service import queue
from service.clock import now_ms
from service.config import Settings
from service.record import new_record
from service.store import Records
from tests.helpers import ACCOUNT_SID, call_sid

pytestmark = pytest.mark.anyio

# What `worker/wakeup.py` calls or replaces on arq's Worker, with the parameters it uses.
WORKER_METHODS = {
    "main": ["self"],
    "start_jobs": ["self", "job_ids"],
    "run_job": ["self", "job_id", "score"],
    "_poll_iteration": ["self"],
    "_release_sem_dec_counter_on_complete": ["self"],
    "_jobs_started": ["self"],
}
WORKER_ATTRIBUTES = (
    "_pool", "redis_settings", "job_serializer", "job_deserializer", "queue_name",
    "expires_extra_ms", "ctx", "on_startup", "burst", "poll_delay_s", "tasks", "sem",
    "job_counter", "max_jobs", "max_burst_jobs", "in_progress_timeout_s", "job_timeout_s",
)  # fmt: skip


async def _noop(ctx: dict[str, object]) -> None:
    return None


async def test_arq_internals_keep_their_shape() -> None:
    for name, parameters in WORKER_METHODS.items():
        method = getattr(Worker, name)
        assert list(inspect.signature(method).parameters) == parameters, name
    assert inspect.iscoroutinefunction(Worker.run_job)
    assert inspect.iscoroutinefunction(Worker.start_jobs)
    worker = Worker(functions=[_noop], handle_signals=False)
    for attribute in WORKER_ATTRIBUTES:
        assert hasattr(worker, attribute), attribute
    assert (job_key_prefix, in_progress_key_prefix) == ("arq:job:", "arq:in-progress:")


def test_a_job_payload_is_what_arq_reads() -> None:
    spec = queue.job(queue.START, call_sid(), "transcription", at_ms=1_000, defer_ms=500)
    assert spec.job_id == f"start_stream:{call_sid()}:transcription"
    assert (spec.score, spec.key) == (1_500, f"arq:job:{spec.job_id}")
    # What arq's run_job reads back from the job key.
    function, args, kwargs, job_try, enqueued = deserialize_job_raw(
        spec.payload, deserializer=queue.loads
    )
    assert (function, list(args), kwargs, enqueued) == (
        queue.START, [call_sid(), "transcription"], {}, 1_000,
    )  # fmt: skip
    assert job_try is None


@pytest.fixture
def records(redis: Redis, make_settings: Callable[..., Settings]) -> Records:
    settings = make_settings()
    return Records(redis, queue=settings.queue_name, record_ttl=settings.record_ttl)


async def test_a_claimed_job_is_an_arq_job(records: Records, redis_url: str) -> None:
    record = new_record(
        call_sid=call_sid(), account_sid=ACCOUNT_SID, name="transcription", url="wss://a.b/c",
        track="inbound_track", parameters={}, profile="transcription", answered_at=None,
    )  # fmt: skip
    [claimed] = await records.claim(call_sid(), [record])
    assert claimed.outcome == "claimed"
    arq = ArqRedis.from_url(redis_url)
    try:
        job_id = f"{queue.START}:{call_sid()}:transcription"
        job = Job(job_id, arq, _queue_name=records.queue, _deserializer=queue.loads)
        assert await job.status() == JobStatus.queued
        info = await job.info()
        assert info is not None
        assert (info.function, list(info.args)) == (queue.START, [call_sid(), "transcription"])
        # arq itself sees the id as taken: the same job is never queued twice.
        again = await arq.enqueue_job(
            queue.START, call_sid(), "transcription", _job_id=job_id, _queue_name=records.queue
        )
        assert again is None
    finally:
        await arq.aclose()


async def test_a_job_is_taken_once_only_when_due_and_done_with_its_record(
    records: Records, redis: Redis
) -> None:
    record = new_record(
        call_sid=call_sid(), account_sid=ACCOUNT_SID, name="transcription", url="wss://a.b/c",
        track="inbound_track", parameters={}, profile="transcription", answered_at=None,
    )  # fmt: skip
    await records.claim(call_sid(), [record])
    job_id = f"{queue.START}:{call_sid()}:transcription"
    run = queue.Run(job_id, records.queue, lock_ms=10_000)
    lease = timedelta(seconds=5)
    action, taken, _ = await records.begin(call_sid(), "transcription", "start", lease, run)
    assert (action, taken is not None) == ("create", True)
    assert await redis.exists(queue.in_progress_key(job_id)) == 1
    again = await records.begin(call_sid(), "transcription", "start", lease, run)
    assert again[0] == "elsewhere"  # running: not taken twice
    await records.finish(call_sid(), "transcription", "retry", run, 60.0)
    assert await redis.exists(queue.in_progress_key(job_id)) == 0
    assert (await records.begin(call_sid(), "transcription", "start", lease, run))[0] == (
        "elsewhere"  # deferred
    )
    await redis.zadd(records.queue, {job_id: now_ms()})
    await records.begin(call_sid(), "transcription", "start", lease, run)
    await records.finish(call_sid(), "transcription", "created", run, sid="MZ" + "1" * 32)
    assert await redis.zscore(records.queue, job_id) is None  # done: out of the queue
    assert await redis.exists(queue.job_key(job_id), queue.in_progress_key(job_id)) == 0
    assert (await records.begin(call_sid(), "transcription", "start", lease, run))[0] == (
        "elsewhere"  # finished and removed
    )


def test_our_job_ids_name_their_function_and_arguments() -> None:
    assert queue.parse_job_id(f"start_stream:{call_sid()}:asr") == (
        queue.START, (call_sid(), "asr"),
    )  # fmt: skip
    for other in ("cron:reconcile", f"other:{call_sid()}:asr", "start_stream:a:b:c"):
        assert queue.parse_job_id(other) is None
