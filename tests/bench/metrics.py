"""The benchmark's table: one row a metric, with its target where it has one."""

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Metric:
    """One row of the table; `target` and `met` are None for a number given for context."""

    label: str
    value: float
    unit: str
    target: str | None = None
    met: bool | None = None


def info(label: str, value: float, unit: str) -> Metric:
    return Metric(label, value, unit)


def at_least(label: str, value: float, unit: str, bound: float) -> Metric:
    return Metric(label, value, unit, f">= {bound:g} {unit}".strip(), value >= bound)


def at_most(label: str, value: float, unit: str, bound: float) -> Metric:
    return Metric(label, value, unit, f"<= {bound:g} {unit}".strip(), value <= bound)


def _shown(value: float) -> str:
    """Counts and large numbers whole, the rest to two decimals."""
    return f"{value:.0f}" if value == int(value) or abs(value) >= 100 else f"{value:.2f}"


def table(metrics: dict[str, Metric], about: dict[str, Any], options: dict[str, Any]) -> str:
    rows = [("metric", "measured", "target", "met")]
    for metric in metrics.values():
        measured = f"{_shown(metric.value)} {metric.unit}".strip()
        met = "-" if metric.met is None else ("yes" if metric.met else "no")
        rows.append((metric.label, measured, metric.target or "-", met))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = [" | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    settings = ", ".join(f"{key} {value}" for key, value in options.items())
    head = (
        f"machine: {about['cpu']}, {about['cores']} cores, Python {about['python']}\n"
        f"settings: {settings}\n"
    )
    return head + "\n".join(lines)
