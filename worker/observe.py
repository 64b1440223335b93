"""The worker's own /metrics endpoint and the queue-depth gauge behind autoscaling.

The endpoint runs on the worker's event loop behind the same HTTP layer as the web
process (`service/http_server.py`): no thread per connection, a bound on
connections, deadlines for slow clients. Its socket is bound before the worker
starts, so a port already taken is a one-line start-up error naming the setting.
"""

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from service.config import ConfigError, Settings
from service.http_server import IDLE_SECONDS, GuardedHttpTools
from worker.metrics import WorkerMetrics

QUEUE_DEPTH_INTERVAL_S = 5.0
MAX_CONNECTIONS = 64  # Prometheus scrapes with one or two; the rest is someone else


def metrics_socket(settings: Settings) -> socket.socket | None:
    """The listening socket for /metrics, or None when the port is 0."""
    host, port = settings.worker_metrics_host, settings.worker_metrics_port
    if not port:
        return None
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError as error:
        sock.close()
        raise ConfigError(
            f"CALLSTREAMS_WORKER_METRICS_PORT: cannot listen on {host}:{port} "
            f"({error.strerror}); another worker on this host may have it, give each its "
            "own port or 0 for none"
        ) from None
    sock.setblocking(False)
    return sock


class _Listener(uvicorn.Server):
    """uvicorn on a loop it does not own: arq handles the process's signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _app(metrics: WorkerMetrics) -> Starlette:
    async def scrape(request: Request) -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return Starlette(routes=[Route("/metrics", scrape)])


async def _track_queue_depth(redis: Redis, queue: str, metrics: WorkerMetrics) -> None:
    while True:
        with contextlib.suppress(RedisError, OSError):
            metrics.queue_depth.set(await redis.zcard(queue))
        await asyncio.sleep(QUEUE_DEPTH_INTERVAL_S)


@asynccontextmanager
async def observed(
    redis: Redis, queue: str, metrics: WorkerMetrics, sock: socket.socket | None
) -> AsyncIterator[None]:
    """Serve metrics on `sock` (None: not at all) and keep the queue depth current."""
    tasks = [asyncio.create_task(_track_queue_depth(redis, queue, metrics))]
    listener = None
    if sock is not None:
        config = uvicorn.Config(
            _app(metrics), http=GuardedHttpTools, limit_concurrency=MAX_CONNECTIONS,
            timeout_keep_alive=IDLE_SECONDS, lifespan="off", log_config=None,
            access_log=False,
        )  # fmt: skip
        listener = _Listener(config)
        tasks.append(asyncio.create_task(listener.serve(sockets=[sock])))
    try:
        yield
    finally:
        if listener is not None:
            listener.should_exit = True
            await tasks.pop()
        for task in tasks:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*tasks)
