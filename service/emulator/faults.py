"""Faults the emulator injects into its REST answers, to rehearse incidents.

A fault applies to `create`, `stop` or `any` request, to a share of them
(`ratio`) and optionally a limited number of times (`count`). The first rule
that fires decides; a request no rule picks is served normally.
"""

import random
from dataclasses import asdict, dataclass
from typing import Any, Literal, get_args

Kind = Literal["latency", "429", "500", "503", "timeout", "reset-before", "reset-after"]
Operation = Literal["create", "stop", "any"]
KINDS: tuple[str, ...] = get_args(Kind)
OPERATIONS: tuple[str, ...] = get_args(Operation)


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

    def view(self) -> dict[str, Any]:
        return asdict(self)


def parse_fault(raw: object) -> Fault:
    """A fault from the control API's JSON."""
    if not isinstance(raw, dict):
        raise FaultError("a fault is a JSON object")
    unknown = set(raw) - {"kind", "ratio", "count", "operation", "seconds", "retry_after"}
    if unknown:
        raise FaultError(f"unknown fault fields: {', '.join(sorted(unknown))}")
    kind = raw.get("kind")
    if kind not in KINDS:
        raise FaultError(f"kind must be one of {', '.join(KINDS)}")
    operation = raw.get("operation", "any")
    if operation not in OPERATIONS:
        raise FaultError(f"operation must be one of {', '.join(OPERATIONS)}")
    ratio, count = raw.get("ratio", 1.0), raw.get("count")
    seconds, retry_after = raw.get("seconds"), raw.get("retry_after")
    if not isinstance(ratio, int | float) or not 0 <= ratio <= 1:
        raise FaultError("ratio must be a number from 0 to 1")
    if count is not None and (not isinstance(count, int) or count < 1):
        raise FaultError("count must be a positive integer or null")
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


class Faults:
    """The rules in force, and the draw that picks one for a request."""

    def __init__(self, rules: list[Fault] | None = None, seed: int | None = None) -> None:
        self.rules = list(rules or [])
        self._random = random.Random(seed)

    def pick(self, operation: Literal["create", "stop"]) -> Fault | None:
        for rule in self.rules:
            if rule.operation not in ("any", operation):
                continue
            if rule.ratio < 1 and self._random.random() >= rule.ratio:
                continue
            if rule.count is not None:
                rule.count -= 1
                if rule.count == 0:
                    self.rules.remove(rule)
            return rule
        return None
