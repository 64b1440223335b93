"""Every metric the Grafana dashboard and the alerts name exists, on a scraped job."""

import re

from tests.deploy.manifests import (
    Manifest,
    balanced,
    dashboard_exprs,
    find,
    matches,
    metric_names,
    registered_names,
)


def test_dashboard_shape(dashboard: Manifest) -> None:
    assert dashboard["uid"]
    assert dashboard["title"]
    assert dashboard["schemaVersion"] >= 36
    panels = dashboard["panels"]
    assert panels
    assert len({p["id"] for p in panels}) == len(panels)
    for panel in panels:
        assert panel["type"] in ("timeseries", "stat"), panel["title"]
        targets = panel["targets"]
        assert targets, panel["title"]
        assert all(t["expr"].strip() for t in targets), panel["title"]
        assert len({t["refId"] for t in targets}) == len(targets), panel["title"]
    exprs = dashboard_exprs(dashboard)
    shown = set().union(*map(metric_names, exprs))
    assert {
        "callstreams_webhooks_total",
        "callstreams_stream_outcomes_total",
        "callstreams_twilio_requests_total",
        "callstreams_twilio_request_seconds_bucket",
        "callstreams_answered_to_create_sent_seconds_bucket",
        "callstreams_answered_to_stream_started_seconds_bucket",
        "callstreams_queue_depth",
        "callstreams_redis_up",
    } <= shown


def test_dashboard_and_alert_metrics_exist(dashboard: Manifest, rules: list[Manifest]) -> None:
    known = registered_names()
    for expr in [*dashboard_exprs(dashboard), *(rule["expr"] for rule in rules)]:
        assert metric_names(expr) <= known, f"unknown metric in: {expr}"
        assert balanced(expr), f"unbalanced brackets in: {expr}"


def test_jobs_named_in_queries_are_scraped(
    dashboard: Manifest, rules: list[Manifest], rendered: list[Manifest]
) -> None:
    # With no jobLabel, a ServiceMonitor's job label is the name of the Service it scraped.
    monitor = find(rendered, "ServiceMonitor", "callstreams")
    jobs = {
        s["metadata"]["name"]
        for s in rendered
        if s["kind"] == "Service"
        and matches(monitor["spec"]["selector"]["matchLabels"], s["metadata"].get("labels", {}))
    }
    assert "jobLabel" not in monitor["spec"]
    for expr in [*dashboard_exprs(dashboard), *(rule["expr"] for rule in rules)]:
        assert set(re.findall(r'job="([^"]+)"', expr)) <= jobs, expr


def test_metric_check_catches_an_unknown_metric() -> None:
    assert not metric_names("rate(callstreams_webhook_total[5m])") <= registered_names()
