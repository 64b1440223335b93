"""The manifests the deployment tests read, loaded once per module."""

import json
from typing import cast

import pytest

from service.config import Settings, load_settings
from tests.deploy.manifests import (
    DEPLOY,
    OVERLAY,
    SECRET_EXAMPLE,
    Manifest,
    filled_in,
    find,
    load_compose,
    load_one,
    render,
)


@pytest.fixture(scope="module")
def rendered() -> list[Manifest]:
    return render(OVERLAY)


@pytest.fixture(scope="module")
def secret_example() -> Manifest:
    return load_one(SECRET_EXAMPLE)


@pytest.fixture(scope="module")
def compose() -> Manifest:
    """deploy/compose.yaml as compose reads it on a fresh clone: no .env, no variables set."""
    return load_compose()


@pytest.fixture(scope="module")
def dashboard() -> Manifest:
    return cast(Manifest, json.loads((DEPLOY / "grafana" / "callstreams.json").read_text()))


@pytest.fixture(scope="module")
def rules(rendered: list[Manifest]) -> list[Manifest]:
    rule = find(rendered, "PrometheusRule", "callstreams")
    return [r for group in rule["spec"]["groups"] for r in group["rules"]]


@pytest.fixture(scope="module")
def deployed_settings(
    rendered: list[Manifest], secret_example: Manifest, tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    """Settings as the pods build them: the ConfigMaps, and the Secret with fake values."""
    profiles = find(rendered, "ConfigMap", "callstreams-profiles")
    file = tmp_path_factory.mktemp("profiles") / "streams.toml"
    file.write_text(profiles["data"]["streams.toml"], encoding="utf-8")
    environment = {
        **find(rendered, "ConfigMap", "callstreams-config")["data"],
        **secret_example["stringData"],
        "CALLSTREAMS_CONFIG": str(file),
    }
    return load_settings(**filled_in(environment))
