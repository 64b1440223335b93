"""`callstreams health`: the health check of whichever callstreams process this container runs.

One image runs every process, so its one `HEALTHCHECK` cannot name a port or a
command: it runs `callstreams health`, which finds the process from `/proc` and
checks what fits it:

    web       GET http://127.0.0.1:PORT/healthz (its --port, else PORT, else 8000)
    worker    its heartbeat in Redis, as `callstreams worker --check`
    emulator  GET http://127.0.0.1:PORT/_emulator/stats (its --port, else 8001)

The process is PID 1, or, when PID 1 is an init (tini, `docker run --init`) or a
shell, one of its children. `--kind` skips the search. Exit 0 with one `ok: ...`
line, 1 with one line saying why not.
"""

import argparse
import asyncio
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal, get_args

import httpx

from service.config import ConfigError, load_settings

Kind = Literal["web", "worker", "emulator"]
KINDS: tuple[Kind, ...] = get_args(Kind)
PROC = Path("/proc")
EMULATOR_PORT = 8001  # `callstreams emulator`'s default --port
HTTP_TIMEOUT_S = 2.0  # well inside the image's HEALTHCHECK --timeout
PATHS: dict[Kind, str] = {"web": "/healthz", "emulator": "/_emulator/stats"}


class Unhealthy(Exception):
    """Why the check failed, in one line: exit 1."""


@dataclass(frozen=True)
class Target:
    """A callstreams process found in /proc: its kind and the arguments after the kind."""

    kind: Kind
    pid: int
    args: tuple[str, ...]

    def port(self) -> int | None:
        """The process's `--port`, as argparse reads it (the last one wins), or None."""
        value = None
        for i, word in enumerate(self.args):
            if word == "--port" and i + 1 < len(self.args):
                value = self.args[i + 1]
            elif word.startswith("--port="):
                value = word.removeprefix("--port=")
        if value is None:
            return None
        if not value.isdigit() or int(value) > 65535:
            raise Unhealthy(f"{self.kind} (PID {self.pid}): --port {value} is not a port")
        return int(value)


def callstreams_args(argv: Sequence[str]) -> tuple[str, ...] | None:
    """The words after `callstreams` (or `python -m service.cli`) in `argv`, or None.

    The console script shows up as `python /app/.venv/bin/callstreams web ...`, an
    init as `tini -- callstreams web ...`: the command may be anywhere in argv."""
    for i, word in enumerate(argv):
        if PurePosixPath(word).name == "callstreams":
            return tuple(argv[i + 1 :])
        if word == "-m" and tuple(argv[i + 1 : i + 2]) == ("service.cli",):
            return tuple(argv[i + 2 :])
    return None


def _argv(proc: Path, pid: int) -> list[str]:
    """A process's command line; empty for a kernel thread, a zombie or a process gone."""
    try:
        raw = (proc / str(pid) / "cmdline").read_bytes().rstrip(b"\0")
    except OSError:
        return []
    return [word.decode(errors="replace") for word in raw.split(b"\0")] if raw else []


def _children(proc: Path, parent: int) -> list[int]:
    """The processes whose parent is `parent`, by pid."""
    found = []
    try:
        entries = [entry for entry in proc.iterdir() if entry.name.isdigit()]
    except OSError:
        return []
    for entry in entries:
        try:
            stat = (entry / "stat").read_text(errors="replace")
        except OSError:
            continue
        # `pid (comm) state ppid ...`: comm may hold spaces and parentheses.
        fields = stat.rpartition(")")[2].split()
        if len(fields) > 1 and fields[1] == str(parent):
            found.append(int(entry.name))
    return sorted(found)


def _as_target(pid: int, args: tuple[str, ...]) -> Target | None:
    for kind in KINDS:
        if args[:1] == (kind,):
            return Target(kind=kind, pid=pid, args=args[1:])
    return None


def detect(proc: Path = PROC) -> Target:
    """The callstreams process this container runs, or Unhealthy saying why none is."""
    first = _argv(proc, 1)
    args = callstreams_args(first)
    if args is not None:
        target = _as_target(1, args)
        if target is None:
            command = " ".join(args[:1]) or "(no command)"
            raise Unhealthy(f"PID 1 runs `callstreams {command}`, which has no health check")
        return target
    for pid in _children(proc, 1):
        child = callstreams_args(_argv(proc, pid))
        if child is not None and (target := _as_target(pid, child)) is not None:
            return target
    shown = shlex.join(first)[:80] if first else "unreadable"
    raise Unhealthy(f"no callstreams web, worker or emulator process here (PID 1: {shown})")


def _get(kind: Kind, port: int) -> str:
    url = f"http://127.0.0.1:{port}{PATHS[kind]}"
    try:
        status = httpx.get(url, timeout=HTTP_TIMEOUT_S).status_code
    except httpx.HTTPError as error:
        raise Unhealthy(f"{kind}: GET {url}: {type(error).__name__}: {error}") from None
    if status != 200:
        raise Unhealthy(f"{kind}: GET {url} answered {status}")
    return f"ok: {kind}: GET {url} answered 200"


def _worker() -> str:
    from worker.settings import check

    ok, message = asyncio.run(check(load_settings()))
    if not ok:
        raise Unhealthy(f"worker: {message}")
    return f"ok: worker: {message.removeprefix('ok: ')}"


def probe(kind: Kind, port: int | None) -> str:
    """Check a process of `kind`: the `ok: ...` line, or Unhealthy."""
    if kind == "worker":
        return _worker()
    if port is None:
        port = load_settings().port if kind == "web" else EMULATOR_PORT
    return _get(kind, port)


def run(args: argparse.Namespace) -> int:
    try:
        if args.kind is None:
            target = detect()
            line = probe(target.kind, args.port if args.port is not None else target.port())
        else:
            line = probe(args.kind, args.port)
    except (Unhealthy, ConfigError) as error:
        print(f"callstreams health: {error}", file=sys.stderr)
        return 1
    print(line)
    return 0


def add_parser(
    subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]",
) -> argparse.ArgumentParser:
    """Register `health` under `subparsers`."""
    health = subparsers.add_parser(
        "health", help="check this container's callstreams process (the image's HEALTHCHECK)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    health.add_argument(
        "--kind", choices=KINDS, help="the process to check, instead of finding it in /proc"
    )
    health.add_argument(
        "--port", type=int, help="its port (web, emulator), instead of the one it was given"
    )
    health.set_defaults(run=run)
    return health
