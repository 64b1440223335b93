"""Structured logs: one event per line, JSON in production, readable in dev.

Phone numbers are redacted unless the operator opts in, and secrets are never
passed to a logger in the first place.
"""

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

PHONE_FIELDS = frozenset({"From", "To", "Caller", "Called", "ForwardedFrom", "from_", "to"})


def _redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in PHONE_FIELDS & event.keys():
        event[key] = "[redacted]"
    return event


def configure(fmt: str = "console", level: str = "info", phone_numbers: bool = False) -> None:
    """Set up structlog and route the stdlib loggers (uvicorn, arq) through it."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if not phone_numbers:
        shared.append(_redact)
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
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
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "arq"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
