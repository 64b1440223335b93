"""The worker's own /metrics endpoint and the queue-depth gauge behind autoscaling."""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from prometheus_client import start_http_server
from redis.asyncio import Redis
from redis.exceptions import RedisError

from worker.metrics import WorkerMetrics

QUEUE_DEPTH_INTERVAL_S = 5.0


async def _track_queue_depth(redis: Redis, queue: str, metrics: WorkerMetrics) -> None:
    while True:
        with contextlib.suppress(RedisError, OSError):
            metrics.queue_depth.set(await redis.zcard(queue))
        await asyncio.sleep(QUEUE_DEPTH_INTERVAL_S)


@asynccontextmanager
async def observed(
    redis: Redis, queue: str, metrics: WorkerMetrics, port: int
) -> AsyncIterator[None]:
    """Serve metrics on `port` (0: not at all) and keep the queue depth current."""
    server = start_http_server(port, registry=metrics.registry)[0] if port else None
    tracker = asyncio.create_task(_track_queue_depth(redis, queue, metrics))
    try:
        yield
    finally:
        tracker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await tracker
        if server is not None:
            server.shutdown()
            server.server_close()
