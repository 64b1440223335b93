"""SIGHUP reloads the configuration file, in the web process and in the worker alike.

A bad file keeps the running configuration and says why in the log; a good one is
handed whole to the process, which swaps it in between requests or jobs.
"""

import asyncio
import contextlib
import signal
from collections.abc import Callable, Iterator

import structlog

from service.catalog import Catalog, load_catalog
from service.config import ConfigError, Settings

log = structlog.get_logger("callstreams.reload")


def reload(settings: Settings, apply: Callable[[Catalog], None]) -> bool:
    """Load the configuration again and apply it; False (and a log line) if it is bad."""
    try:
        catalog = load_catalog(settings)
    except ConfigError as error:
        log.error("reload failed, keeping the running configuration", error=str(error))
        return False
    apply(catalog)
    log.info(
        "configuration reloaded",
        profiles=[p.name for p in catalog.profiles],
        accounts=len(catalog.accounts),
    )
    return True


@contextlib.contextmanager
def reload_on_sighup(settings: Settings, apply: Callable[[Catalog], None]) -> Iterator[None]:
    """Reload on SIGHUP while the block runs. Outside the main thread (an in-process
    test) there is no signal to handle: tests call `reload` directly."""
    loop = asyncio.get_running_loop()
    installed = False
    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
        loop.add_signal_handler(signal.SIGHUP, reload, settings, apply)
        installed = True
    try:
        yield
    finally:
        if installed:
            loop.remove_signal_handler(signal.SIGHUP)
