"""`callstreams streams`: the operator API from a shell.

    callstreams streams list CALLSID
    callstreams streams get CALLSID NAME
    callstreams streams start CALLSID --profile PROFILE [--name NAME]
    callstreams streams start CALLSID --url wss://... --name NAME [--track T] [--param K=V]...
    callstreams streams stop CALLSID NAME

It talks HTTP to a running web process (`--api-url`, env `CALLSTREAMS_API_URL`)
with the operator bearer token (env `CALLSTREAMS_API_TOKEN`, or `--token`).
Exit codes: 0 done, 1 the API refused or failed (its message on stderr),
2 usage, 3 the API cannot be reached.
"""

import argparse
import io
import json
import sys
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import httpx

from service import sids
from service.config import DEFAULT_API_URL, ConfigError, load_client_settings
from service.twilio_terms import DEFAULT_TRACK, TRACKS

EXIT_OK, EXIT_API, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3
COLUMNS = ("NAME", "STATUS", "DESIRED", "SID", "ATTEMPTS", "ERROR")


class _Refused(Exception):
    """The API answered, but not with what was asked: exit 1."""

    def __init__(self, message: str, body: Any = None) -> None:
        super().__init__(message)
        self.body = body


class _Unreachable(Exception):
    """No answer from the API at all: exit 3."""


def _call_sid(value: str) -> str:
    if not sids.is_call_sid(value):
        raise argparse.ArgumentTypeError("expected CA followed by 32 hex digits")
    return value


def _account_sid(value: str) -> str:
    if not sids.is_account_sid(value):
        raise argparse.ArgumentTypeError("expected AC followed by 32 hex digits")
    return value


def _parameter(value: str) -> tuple[str, str]:
    key, sep, template = value.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError("expected KEY=VALUE")
    return key, template


def _seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = 0.0
    if not 0 < seconds <= 600:
        raise argparse.ArgumentTypeError("expected seconds, more than 0 and at most 600")
    return seconds


def add_parser(
    subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]",
) -> argparse.ArgumentParser:
    """Register `streams` and its list/get/start/stop commands under `subparsers`."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--api-url", metavar="URL",
        help=f"the web process (env CALLSTREAMS_API_URL, default {DEFAULT_API_URL})",
    )  # fmt: skip
    common.add_argument(
        "--token", help="operator API token (env CALLSTREAMS_API_TOKEN; prefer the env, "
        "a command line is visible to other users of the machine)",
    )  # fmt: skip
    common.add_argument("--json", action="store_true", help="print the API's JSON as is")
    common.add_argument(
        "--timeout", type=_seconds, default=10.0, metavar="SECONDS", help="default 10"
    )

    streams = subparsers.add_parser(
        "streams", help="list, read, start and stop a call's streams (operator API)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    commands = streams.add_subparsers(dest="streams_command", required=True, metavar="COMMAND")

    listing = commands.add_parser("list", parents=[common], help="the call's streams, a table")
    listing.add_argument("call_sid", metavar="CALLSID", type=_call_sid)

    get = commands.add_parser("get", parents=[common], help="one stream, every field")
    get.add_argument("call_sid", metavar="CALLSID", type=_call_sid)
    get.add_argument("name", metavar="NAME")

    stop = commands.add_parser("stop", parents=[common], help="stop a stream by its name")
    stop.add_argument("call_sid", metavar="CALLSID", type=_call_sid)
    stop.add_argument("name", metavar="NAME")

    start = commands.add_parser(
        "start", parents=[common], help="start one stream: a configured profile or inline",
        description="Start a configured profile (its match is ignored), optionally under "
        "another name, or an inline profile given by --url and --name.",
    )  # fmt: skip
    start.add_argument("call_sid", metavar="CALLSID", type=_call_sid)
    source = start.add_mutually_exclusive_group(required=True)
    source.add_argument("--profile", help="a configured stream profile")
    source.add_argument("--url", help="inline profile: the wss:// URL to stream to")
    start.add_argument("--name", help="the stream's name (required with --url)")
    start.add_argument("--track", choices=TRACKS, help=f"inline profile (default {DEFAULT_TRACK})")
    start.add_argument(
        "--param", dest="parameters", type=_parameter, action="append", default=[],
        metavar="KEY=VALUE", help="inline profile: a custom parameter, repeatable; "
        "VALUE may name call fields, e.g. {CallSid}",
    )  # fmt: skip
    start.add_argument(
        "--account", type=_account_sid, metavar="ACCOUNT_SID",
        help="the call's account, when several are configured",
    )  # fmt: skip
    start.set_defaults(start_parser=start)

    stop_all = commands.add_parser("stop-all", parents=[common], help="stop every stream of a call")
    stop_all.add_argument("call_sid", metavar="CALLSID", type=_call_sid)

    calls = commands.add_parser(
        "calls", parents=[common], help="an account's recent calls and their streams"
    )
    calls.add_argument(
        "--account", type=_account_sid, metavar="ACCOUNT_SID",
        help="the account, when several are configured",
    )  # fmt: skip
    calls.add_argument("--limit", type=int, default=20, help="how many calls (default 20)")

    for parser in (listing, get, stop, start, stop_all, calls):
        parser.set_defaults(run=run)
    return streams


def _start_body(args: argparse.Namespace) -> dict[str, Any]:
    parser: argparse.ArgumentParser = args.start_parser
    body: dict[str, Any]
    if args.profile is not None:
        if args.track is not None or args.parameters:
            parser.error("--track and --param go with --url, not --profile")
        body = {"profile": args.profile}
        if args.name is not None:
            body["name"] = args.name
    else:
        if args.name is None:
            parser.error("--url needs --name")
        body = {"name": args.name, "url": args.url}
        if args.track is not None:
            body["track"] = args.track
        if args.parameters:
            body["parameters"] = dict(args.parameters)
    if args.account is not None:
        body["account_sid"] = args.account
    return body


def _request(args: argparse.Namespace) -> tuple[str, str, dict[str, Any] | None]:
    command: str = args.streams_command
    if command == "calls":
        query = {"limit": str(args.limit)}
        if args.account is not None:
            query["account_sid"] = args.account
        return "GET", f"/v1/calls?{urlencode(query)}", None
    call = f"/v1/calls/{quote(args.call_sid, safe='')}"
    if command == "stop-all":
        return "POST", f"{call}/stop", None
    base = f"{call}/streams"
    if command == "list":
        return "GET", base, None
    name = quote(args.name or "", safe="")
    if command == "get":
        return "GET", f"{base}/{name}", None
    if command == "stop":
        return "POST", f"{base}/{name}/stop", None
    return "POST", base, _start_body(args)


def _one_line(text: str) -> str:
    return " ".join("".join(c if c.isprintable() else " " for c in text).split())


def _describe(detail: Any) -> str:
    if isinstance(detail, list):
        return "; ".join(
            f"{item.get('field')}: {item.get('message')}" if isinstance(item, dict) else str(item)
            for item in detail
        )
    return "" if detail is None else str(detail)


def _call(method: str, url: str, token: str, body: Any, timeout: float) -> Any:
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    try:
        with httpx.Client(timeout=timeout, headers=headers) as client:
            response = client.request(method, url, json=body)
    except httpx.TimeoutException:
        raise _Unreachable(f"no answer within {timeout:g}s") from None
    except httpx.TransportError as error:
        raise _Unreachable(str(error) or type(error).__name__) from None
    try:
        data = response.json()
    except ValueError:
        data = None
    if response.is_success and isinstance(data, dict):
        return data
    if isinstance(data, dict) and "error" in data:
        detail = _describe(data.get("detail"))
        message = f"{response.status_code} {data['error']}" + (f": {detail}" if detail else "")
    elif response.is_success:
        message = f"{response.status_code}: the answer is not a JSON object"
    else:
        message = f"{response.status_code} {response.reason_phrase}".strip()
    raise _Refused(message, data)


def _text(value: Any) -> str:
    if value is None or value == "":
        return "-"
    return _one_line(str(value))


def _error_cell(error: Any) -> str:
    if not isinstance(error, dict):
        return _text(error)
    if error.get("code") is not None:
        return _text(error["code"])
    message = _text(error.get("message"))
    return message if len(message) <= 40 else message[:37] + "..."


def _table(records: Sequence[dict[str, Any]]) -> str:
    rows = [COLUMNS] + [
        (
            _text(r.get("name")),
            _text(r.get("status")),
            _text(r.get("desired")),
            _text(r.get("sid")),
            _text(r.get("attempts")),
            _error_cell(r.get("error")),
        )
        for r in records
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def _details(record: dict[str, Any]) -> str:
    lines = []
    for key, value in record.items():
        if key == "parameters" and isinstance(value, dict):
            shown = ", ".join(f"{k}={v}" for k, v in value.items()) or None
        elif key == "error" and isinstance(value, dict):
            shown = f"{value.get('code') or '-'} {value.get('message') or ''}".strip()
            if value.get("more_info"):
                shown += f" ({value['more_info']})"
        else:
            shown = value
        lines.append((key, _text(shown)))
    width = max((len(key) for key, _ in lines), default=0)
    return "\n".join(f"{key.ljust(width)}  {value}" for key, value in lines)


def _shown(url: str) -> str:
    """The URL without any user:password part, fit for a message."""
    parts = urlsplit(url)
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()


def run(args: argparse.Namespace) -> int:
    """The `streams` commands: one HTTP request, its answer printed, an exit code."""
    prefix = f"callstreams streams {args.streams_command}"
    for stream in (sys.stdout, sys.stderr):  # a server's text never fails on a narrow locale
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")
    try:
        client = load_client_settings(
            CALLSTREAMS_API_URL=args.api_url, CALLSTREAMS_API_TOKEN=args.token
        )
    except ConfigError as error:
        message = str(error).replace("CALLSTREAMS_API_URL", "--api-url / CALLSTREAMS_API_URL")
        print(f"{prefix}: {message}", file=sys.stderr)
        return EXIT_USAGE
    api_url = client.api_url
    token = client.api_token.get_secret_value().strip() if client.api_token else ""
    if not token:
        print(f"{prefix}: no API token: set CALLSTREAMS_API_TOKEN or pass --token",
              file=sys.stderr)  # fmt: skip
        return EXIT_USAGE
    method, path, body = _request(args)

    def safe(text: str) -> str:  # the API never echoes the token; make sure of it
        return _one_line(text.replace(token, "***") if len(token) >= 4 else text)

    try:
        data = _call(method, api_url + path, token, body, args.timeout)
    except _Unreachable as error:
        print(
            f"{prefix}: cannot connect to {safe(_shown(api_url))}: {safe(str(error))}",
            file=sys.stderr,
        )
        return EXIT_UNREACHABLE
    except _Refused as error:
        if args.json and error.body is not None:
            print(json.dumps(error.body, indent=2, ensure_ascii=False))
        print(f"{prefix}: {safe(str(error))}", file=sys.stderr)
        return EXIT_API
    if args.json:
        print(json.dumps(data, indent=2, ensure_ascii=False))
    elif args.streams_command in ("list", "stop-all"):
        records = [r for r in data.get("streams") or [] if isinstance(r, dict)]
        print(_table(records) if records else f"no streams on {args.call_sid}")
    elif args.streams_command == "calls":
        calls = [c for c in data.get("calls") or [] if isinstance(c, dict)]
        for call in calls:
            ended = f" (ended: {call['ended']})" if call.get("ended") else ""
            print(f"{_text(call.get('call_sid'))}{ended}")
            print(_table([r for r in call.get("streams") or [] if isinstance(r, dict)]))
        if not calls:
            print("no calls")
    elif args.streams_command == "get":
        print(_details(data))
    else:
        print(_table([data]))
    return EXIT_OK
