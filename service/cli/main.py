"""`callstreams`: one command for every process, each failing with one clear line."""

import argparse
import asyncio
import functools
import gc
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from service import logs, sids
from service.cli import operator, probe
from service.cli.dev import run_dev
from service.cli.simulate import simulate_call
from service.config import DEV_ACCOUNT_SID, DEV_AUTH_TOKEN, ConfigError, Settings, load_settings

if TYPE_CHECKING:
    from service.emulator.faults import Fault


def _settings(**overrides: object) -> Settings:
    settings = load_settings(**{k: v for k, v in overrides.items() if v is not None})
    logs.configure(settings.log_format, settings.log_level, settings.log_phone_numbers)
    return settings


def _web(args: argparse.Namespace) -> int:
    import uvicorn

    from service.catalog import load_catalog
    from service.http_server import IDLE_SECONDS, GuardedHttpTools
    from service.web.app import create_app

    settings = _settings(HOST=args.host, PORT=args.port)
    catalog = load_catalog(settings)  # fail here, in one line, not in each uvicorn worker
    # The app logs each request itself (service.web.access), with its request id.
    run = functools.partial(
        uvicorn.run, host=settings.host, port=settings.port, loop="uvloop",
        http=GuardedHttpTools, limit_concurrency=settings.max_connections,
        timeout_keep_alive=IDLE_SECONDS, log_config=None, access_log=False,
        timeout_graceful_shutdown=20,
    )  # fmt: skip
    if args.workers > 1:
        run("service.cli.main:web_app", factory=True, workers=args.workers)
    else:
        app = create_app(settings, catalog)
        _settle_heap()
        run(app)
    return 0


def web_app() -> object:
    """The app factory uvicorn calls in each of several worker processes."""
    from service.web.app import create_app

    app = create_app(_settings())
    _settle_heap()
    return app


def _settle_heap() -> None:
    """Keep the objects made at start out of the garbage collector's full passes: a
    full pass over every imported module's objects stalls the loop for tens of ms."""
    gc.collect()
    gc.freeze()


def _worker(args: argparse.Namespace) -> int:
    from worker.settings import check, create_worker

    settings = _settings()
    if args.check:
        ok, message = asyncio.run(check(settings))
        print(message)
        return 0 if ok else 1
    import uvloop

    uvloop.install()
    worker = create_worker(settings)
    _settle_heap()
    worker.run()
    return 0


def _emulator(args: argparse.Namespace) -> int:
    import uvicorn

    from service.emulator import EmulatorConfig, create_emulator_app
    from service.emulator.faults import FaultError, parse_drop_flag
    from service.emulator.numbers import NumberError, parse_number_flag

    accounts = dict(a.split(":", 1) for a in args.account) or {DEV_ACCOUNT_SID: DEV_AUTH_TOKEN}
    if args.answer_after is not None and not 0 <= args.answer_after < float("inf"):
        raise ConfigError("--answer-after must be a number of seconds, 0 or more")
    try:
        numbers = [parse_number_flag(n, next(iter(accounts))) for n in args.number]
    except NumberError as error:
        raise ConfigError(f"--number {error}") from None
    try:
        drops = [parse_drop_flag(d) for d in args.drop]
    except FaultError as error:
        raise ConfigError(f"--drop {error}") from None
    logs.configure("console", "info")
    config = EmulatorConfig(
        accounts=accounts, latency=args.latency, max_concurrency=args.max_concurrency,
        stream_started_delay=args.stream_started_delay, faults=[*args.fault, *drops],
        seed=args.seed, numbers=numbers, ringing_create=args.ringing_create,
        answer_after=args.answer_after,
    )  # fmt: skip
    app = create_emulator_app(config)
    uvicorn.run(app, host=args.host, port=args.port, log_config=None)
    return 0


def _dev(args: argparse.Namespace) -> int:
    return run_dev(port=args.port, emulator_port=args.emulator_port, simulate=args.simulate)


def _simulate(args: argparse.Namespace) -> int:
    return asyncio.run(
        simulate_call(args.emulator, args.web, args.token, args.account, inbound=args.inbound)
    )


def _account(value: str) -> str:
    sid, sep, token = value.partition(":")
    if not sep or not sids.is_account_sid(sid) or not token:
        raise argparse.ArgumentTypeError("expected ACCOUNT_SID:AUTH_TOKEN")
    return value


def _fault(value: str) -> "Fault":
    from service.emulator.faults import FaultError, parse_flag

    try:
        return parse_flag(value)
    except FaultError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="callstreams", description=__doc__)
    commands = root.add_subparsers(dest="command", required=True)

    web = commands.add_parser("web", help="the web process (webhooks, operator API, health)")
    web.add_argument("--host", help="listen address (env HOST, default 127.0.0.1)")
    web.add_argument("--port", type=int, help="listen port (env PORT, default 8000)")
    web.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    web.set_defaults(run=_web)

    worker = commands.add_parser("worker", help="the worker process (starts and stops streams)")
    worker.add_argument("--check", action="store_true", help="exit 0 if a worker is alive")
    worker.set_defaults(run=_worker)

    emulator = commands.add_parser("emulator", help="a local stand-in for Twilio")
    emulator.add_argument("--host", default="127.0.0.1")
    emulator.add_argument("--port", type=int, default=8001)
    emulator.add_argument(
        "--account", type=_account, action="append", default=[],
        help=f"ACCOUNT_SID:AUTH_TOKEN, repeatable (default {DEV_ACCOUNT_SID}:{DEV_AUTH_TOKEN})",
    )  # fmt: skip
    emulator.add_argument(
        "--latency", type=float, default=0.0, help="seconds every REST answer takes"
    )
    emulator.add_argument(
        "--max-concurrency", type=int, help="per account; requests beyond it get 429 (20429)"
    )
    emulator.add_argument(
        "--stream-started-delay", type=float, default=0.0,
        help="seconds between a create and its stream-started callback",
    )  # fmt: skip
    emulator.add_argument(
        "--fault", type=_fault, action="append", default=[],
        help="KIND[:RATIO[:OPERATION[:SECONDS]]], repeatable; KIND is one of "
        "latency, 429, 500, 503, timeout, reset-before, reset-after; "
        "OPERATION is create, stop, fetch or any (default)",
    )  # fmt: skip
    emulator.add_argument(
        "--drop", action="append", default=[], metavar="CALLBACK[:RATIO[:COUNT]]",
        help="lose a callback, never sent nor retried (logged with dropped: true), repeatable; "
        "CALLBACK is a call status (completed, busy, no-answer, canceled, failed, in-progress, "
        "ringing, initiated, queued) or a stream event (stream-started, stream-stopped, "
        "stream-error); RATIO defaults to 1, COUNT to every time",
    )  # fmt: skip
    emulator.add_argument("--seed", type=int, help="seed for the faults' random draws")
    emulator.add_argument(
        "--number", action="append", default=[], metavar="NUMBER=VOICE_URL[,STATUS_CALLBACK]",
        help="a phone number of the first account, repeatable: its Voice URL (requested with "
        "POST when a call comes in) and its optional call status callback (sent only "
        "the final status); the callback starts at the comma before its http(s)://",
    )  # fmt: skip
    emulator.add_argument(
        "--answer-after", type=float, metavar="SECONDS",
        help="a call to a number is answered this long after its Voice URL answered "
        "(default: it rings until answered through the control API)",
    )  # fmt: skip
    emulator.add_argument(
        "--ringing-create", choices=("refuse", "accept"), default="refuse",
        help="a stream create on a ringing call: refuse (400, 21220; the default) or accept "
        "(its stream-started is sent when the call is answered)",
    )  # fmt: skip
    emulator.set_defaults(run=_emulator)

    dev = commands.add_parser("dev", help="everything on this machine, against the emulator")
    dev.add_argument("--port", type=int, default=8000, help="web port")
    dev.add_argument("--emulator-port", type=int, default=8001)
    dev.add_argument("--simulate", action="store_true", help="run one simulated call at start")
    dev.set_defaults(run=_dev)

    simulate = commands.add_parser(
        "simulate-call", help="answer a call at the emulator and follow its streams"
    )
    simulate.add_argument("--emulator", default="http://127.0.0.1:8001")
    simulate.add_argument("--web", default="http://127.0.0.1:8000")
    simulate.add_argument("--token", required=True, help="the operator API token")
    simulate.add_argument("--account", default=DEV_ACCOUNT_SID)
    simulate.add_argument(
        "--inbound", action="store_true",
        help="the call comes in to a number whose Voice URL is the front door (/twilio/voice)",
    )  # fmt: skip
    simulate.set_defaults(run=_simulate)

    operator.add_parser(commands)
    probe.add_parser(commands)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        code: int = args.run(args)
    except ConfigError as error:
        print(f"callstreams {args.command}: configuration error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
