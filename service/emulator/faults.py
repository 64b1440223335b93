"""Faults the emulator injects, to rehearse incidents.

A REST fault applies to `create`, `stop`, `fetch` or `any` request, to a share
of them (`ratio`) and optionally a limited number of times (`count`). The first
rule that fires decides; a request no rule picks is served normally.

A `drop` fault loses one kind of callback instead: a call status (`completed`,
`in-progress`, ...) or a stream event (`stream-started`, ...), named by
`callback`, with `ratio` and `count` as above. A dropped callback is never
sent, not even retried; the webhooks log keeps it with `"dropped": true`.
"""

import random
from dataclasses import asdict, dataclass
from typing import Any, Literal, get_args

from service.emulator.world import CALL_STATUSES, STREAM_EVENTS

Kind = Literal["latency", "429", "500", "503", "timeout", "reset-before", "reset-after", "drop"]
Operation = Literal["create", "stop", "fetch", "any"]
KINDS: tuple[str, ...] = get_args(Kind)
OPERATIONS: tuple[str, ...] = get_args(Operation)
CALLBACKS = (*CALL_STATUSES, *STREAM_EVENTS)
REST_FIELDS = {"kind", "ratio", "count", "operation", "seconds", "retry_after"}
DROP_FIELDS = {"kind", "ratio", "count", "callback"}


class FaultError(ValueError):
    """A fault description that cannot be used; the message says which part."""


@dataclass
class Fault:
    kind: Kind
    ratio: float = 1.0
    count: int | None = None  # None: for as long as the rule is in place
    operation: Operation = "any"
    seconds: float = 0.0  # latency before answering; for `timeout`, how long it withholds
    retry_after: float | None = None  # sent with 429
    callback: str | None = None  # what a `drop` loses

    def view(self) -> dict[str, Any]:
        return asdict(self)


def parse_fault(raw: object) -> Fault:
    """A fault from the control API's JSON."""
    if not isinstance(raw, dict):
        raise FaultError("a fault is a JSON object")
    kind = raw.get("kind")
    if kind not in KINDS:
        raise FaultError(f"kind must be one of {', '.join(KINDS)}")
    unknown = set(raw) - (DROP_FIELDS if kind == "drop" else REST_FIELDS)
    if unknown:
        raise FaultError(f"fields a {kind} fault does not take: {', '.join(sorted(unknown))}")
    ratio, count = raw.get("ratio", 1.0), raw.get("count")
    if isinstance(ratio, bool) or not isinstance(ratio, int | float) or not 0 <= ratio <= 1:
        raise FaultError("ratio must be a number from 0 to 1")
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
        raise FaultError("count must be a positive integer or null")
    if kind == "drop":
        callback = raw.get("callback")
        if callback not in CALLBACKS:
            raise FaultError(f"callback must be one of {', '.join(CALLBACKS)}")
        return Fault("drop", float(ratio), count, callback=callback)
    operation = raw.get("operation", "any")
    if operation not in OPERATIONS:
        raise FaultError(f"operation must be one of {', '.join(OPERATIONS)}")
    seconds, retry_after = raw.get("seconds"), raw.get("retry_after")
    if seconds is None:
        seconds = 30.0 if kind == "timeout" else 0.0
    if not isinstance(seconds, int | float) or not 0 <= seconds <= 300:
        raise FaultError("seconds must be a number from 0 to 300")
    if retry_after is not None and (not isinstance(retry_after, int | float) or retry_after < 0):
        raise FaultError("retry_after must be a non-negative number")
    return Fault(kind, float(ratio), count, operation, float(seconds), retry_after)


def parse_flag(text: str) -> Fault:
    """A fault from the command line: `KIND[:RATIO[:OPERATION[:SECONDS]]]`."""
    parts = text.split(":")
    if len(parts) > 4:
        raise FaultError(f"{text!r}: expected KIND[:RATIO[:OPERATION[:SECONDS]]]")
    if parts[0] == "drop":
        raise FaultError(f"{text!r}: a drop is given as --drop CALLBACK[:RATIO[:COUNT]]")
    raw: dict[str, Any] = {"kind": parts[0]}
    try:
        if len(parts) > 1:
            raw["ratio"] = float(parts[1])
        if len(parts) > 3:
            raw["seconds"] = float(parts[3])
    except ValueError as error:
        raise FaultError(f"{text!r}: ratio and seconds must be numbers") from error
    if len(parts) > 2:
        raw["operation"] = parts[2]
    return parse_fault(raw)


def parse_drop_flag(text: str) -> Fault:
    """A drop fault from the command line: `CALLBACK[:RATIO[:COUNT]]`."""
    parts = text.split(":")
    if len(parts) > 3:
        raise FaultError(f"{text!r}: expected CALLBACK[:RATIO[:COUNT]]")
    raw: dict[str, Any] = {"kind": "drop", "callback": parts[0]}
    try:
        if len(parts) > 1:
            raw["ratio"] = float(parts[1])
        if len(parts) > 2:
            raw["count"] = int(parts[2])
    except ValueError as error:
        raise FaultError(f"{text!r}: ratio must be a number and count an integer") from error
    try:
        return parse_fault(raw)
    except FaultError as error:
        raise FaultError(f"{text!r}: {error}") from None


class Faults:
    """The rules in force, and the draw that picks one for a request or a callback."""

    def __init__(self, rules: list[Fault] | None = None, seed: int | None = None) -> None:
        self.rules = list(rules or [])
        self._random = random.Random(seed)

    def pick(self, operation: Literal["create", "stop", "fetch"]) -> Fault | None:
        for rule in self.rules:
            if rule.kind != "drop" and rule.operation in ("any", operation) and self._fires(rule):
                return rule
        return None

    def drop(self, callback: str) -> bool:
        """Whether this callback is to be lost."""
        return any(
            rule.kind == "drop" and rule.callback == callback and self._fires(rule)
            for rule in list(self.rules)
        )

    def _fires(self, rule: Fault) -> bool:
        """Draw for `rule`; a rule whose count runs out is removed."""
        if rule.ratio < 1 and self._random.random() >= rule.ratio:
            return False
        if rule.count is not None:
            rule.count -= 1
            if rule.count == 0:
                self.rules.remove(rule)
        return True
