"""The alerts' shape, their runbook sections, and the commands the docs name."""

import re
import shlex
from pathlib import Path

import pytest

from tests.deploy.manifests import (
    DEPLOY,
    FAKE_CALL_SID,
    RUNBOOK,
    RUNBOOK_URL,
    Manifest,
    parse_command,
)


def test_alerts_shape(rules: list[Manifest]) -> None:
    alerts = [rule["alert"] for rule in rules]
    assert len(alerts) == len(set(alerts)) >= 5
    for rule in rules:
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        assert rule["annotations"]["runbook_url"].startswith(RUNBOOK_URL), rule["alert"]
        assert re.fullmatch(r"\d+[smh]", rule["for"]), rule["alert"]
    exprs = " ".join(rule["expr"] for rule in rules)
    for metric in (
        "callstreams_twilio_requests_total",
        "callstreams_queue_depth",
        "callstreams_answered_to_stream_started_seconds_bucket",
        "callstreams_redis_up",
    ):
        assert metric in exprs
    assert "histogram_quantile(0.99" in exprs
    assert "up{" in exprs


# --- (h) runbook anchors and commands in the docs ------------------------------------------------


def anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors, outside code blocks."""
    text = re.sub(r"^```.*?^```", "", markdown, flags=re.S | re.M)
    found = set()
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*#*$", text, flags=re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        found.add(slug)
    return found


def test_runbook_has_a_section_per_alert(rules: list[Manifest]) -> None:
    markdown = RUNBOOK.read_text(encoding="utf-8")
    headings = anchors(markdown)
    for rule in rules:
        anchor = rule["annotations"]["runbook_url"].removeprefix(RUNBOOK_URL)
        assert anchor in headings, f"{rule['alert']}: no heading for #{anchor} in RUNBOOK.md"
    links = set(re.findall(r"\]\(#([^)]+)\)", markdown))
    assert links <= headings


@pytest.mark.parametrize("path", [RUNBOOK, DEPLOY / "README.md"], ids=lambda p: p.name)
def test_documented_commands_exist(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    # A command starts a line, an inline code span, or follows `kubectl exec ... --`.
    commands = re.findall(r"(?:^|`|-- )(callstreams(?: [\w.=/-]+)+)", text, flags=re.M)
    assert commands
    for command in commands:
        argv = [FAKE_CALL_SID if word == "CALLSID" else word for word in shlex.split(command)]
        parse_command(argv, f"{path.name}: {command}")
