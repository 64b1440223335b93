"""Structured logs: one event per line, JSON in production, readable in dev.

The service's own events go straight from structlog to stderr: the standard
library's logging machinery costs more than the rest of a webhook. Other
libraries' records (uvicorn, arq, httpx) are rendered the same way through
logging. Phone numbers are redacted unless the operator opts in, and secrets
are never passed to a logger in the first place.
"""

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import orjson
import structlog

PHONE_FIELDS = frozenset({"From", "To", "Caller", "Called", "ForwardedFrom", "from_", "to"})
# Libraries that log every request or job at INFO: only their warnings, unless debugging.
CHATTY = ("httpx", "httpcore", "arq.worker", "arq.jobs")


def _redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in PHONE_FIELDS & event.keys():
        event[key] = "[redacted]"
    return event


def _json(event: Any, **_: Any) -> str:
    """orjson renders an event in a fraction of the standard library's time."""
    return orjson.dumps(event, default=str).decode()


def configure(fmt: str = "console", level: str = "info", phone_numbers: bool = False) -> None:
    """Set up structlog, and route the standard library's loggers through the same renderer."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if not phone_numbers:
        shared.append(_redact)
    renderer: Any = (
        structlog.processors.JSONRenderer(serializer=_json)
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        logger_factory=structlog.WriteLoggerFactory(sys.stderr),
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "arq", *CHATTY):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
        logger.setLevel(logging.NOTSET if level == "debug" or name not in CHATTY else "WARNING")
