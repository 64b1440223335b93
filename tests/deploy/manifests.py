"""What the deployment tests share: paths, loaders, a small Kustomize, the CLI's parser.

Dockerfile, deploy/compose.yaml, deploy/.env.example, the Kubernetes manifests, the
Grafana dashboard, the alerts and deploy/RUNBOOK.md name commands, settings, metrics,
ports and each other; the tests in this package check every such name against its source
of truth: the CLI parser, `Settings`, the metrics registry, the rendered Kustomize overlay.
"""

import argparse
import copy
import re
import shlex
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import pytest
import yaml

from service.cli import main as cli
from service.config import DEV_ACCOUNT_SID, DEV_API_TOKEN, DEV_AUTH_TOKEN, SECRET_FILES, Settings
from service.web.metrics import WebMetrics
from worker.metrics import WorkerMetrics

ROOT = Path(__file__).resolve().parent.parent.parent
DEPLOY = ROOT / "deploy"
KUBE = DEPLOY / "kubernetes"
BASE = KUBE / "base"
OVERLAY = KUBE / "overlays" / "example"
SECRET_EXAMPLE = OVERLAY / "secret.example.yaml"
RUNBOOK = DEPLOY / "RUNBOOK.md"
RUNBOOK_URL = "https://github.com/callstreams/callstreams/blob/main/deploy/RUNBOOK.md#"

KUBERNETES_VERSION = "1.30.0"
# Custom resources: no schema in kubernetes_validate; their structure is checked below.
CRD_API_VERSIONS = {
    "ServiceMonitor": "monitoring.coreos.com/v1",
    "PrometheusRule": "monitoring.coreos.com/v1",
}
CLUSTER_SCOPED = {"Namespace"}
KUSTOMIZATION_KEYS = {"apiVersion", "kind", "namespace", "resources", "patches", "images"}
UID = 10001
TMP = "/tmp"  # noqa: S108 (the pods' writable emptyDir)
FAKE_ACCOUNT_SID = "AC" + "0" * 32
FAKE_CALL_SID = "CA" + "0" * 32

Manifest = dict[str, Any]
ENV_NAMES = {field.alias for field in Settings.model_fields.values() if field.alias}

# The emulator's dev account and `callstreams dev`'s operator token: published, not secrets.
DEV_VALUES = {DEV_ACCOUNT_SID, DEV_AUTH_TOKEN, DEV_API_TOKEN}


# --- helpers -------------------------------------------------------------------------------------


def load_docs(path: Path) -> list[Manifest]:
    docs = [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]
    for doc in docs:
        assert isinstance(doc, dict), f"{path}: every document must be a mapping"
    return cast(list[Manifest], docs)


def load_one(path: Path) -> Manifest:
    docs = load_docs(path)
    assert len(docs) == 1, f"{path}: expected one document, found {len(docs)}"
    return docs[0]


def parse_command(argv: list[str], where: str) -> argparse.Namespace:
    """`argv` as `callstreams` would parse it, or a test failure naming `where`."""
    assert argv[:1] == ["callstreams"], f"{where}: {argv} is not a callstreams command"
    try:
        return cli.parser().parse_args(argv[1:])
    except SystemExit:
        pytest.fail(f"{where}: `{shlex.join(argv)}` is not a valid callstreams command")


def as_argv(command: str | list[str]) -> list[str]:
    return shlex.split(command) if isinstance(command, str) else [str(a) for a in command]


def is_placeholder_secret(value: str) -> bool:
    return (
        value in ("", "change-me", *DEV_VALUES) or re.fullmatch(r"(AC|SK)x{32}", value) is not None
    )


def secret_problems(name: str, value: str) -> list[str]:
    """Why `value` of variable `name` may be a real credential; empty when it is not."""
    problems = []
    real = r"(?<![0-9a-fA-F])(AC|SK)?[0-9a-f]{32}(?![0-9a-fA-F])"
    if value not in DEV_VALUES and re.search(real, value):
        problems.append(f"{name}: looks like a real SID or token")
    credential = name in (*SECRET_FILES, "TWILIO_ACCOUNT_SID", "TWILIO_API_KEY")
    if credential and not is_placeholder_secret(value):
        problems.append(f"{name}: must be empty or a placeholder such as change-me")
    if "://" in value and urlsplit(value).password not in (None, "", "change-me"):
        problems.append(f"{name}: carries a password other than change-me")
    return problems


def filled_in(values: Mapping[str, str]) -> dict[str, str]:
    """Placeholder credentials replaced by well-formed fake ones; empty values dropped."""
    out = {name: value for name, value in values.items() if value != ""}
    for name, value in out.items():
        if name == "TWILIO_ACCOUNT_SID" and value.startswith("ACx"):
            out[name] = FAKE_ACCOUNT_SID
    return out


def containers(resources: list[Manifest]) -> Iterator[tuple[Manifest, Manifest]]:
    for resource in resources:
        if resource["kind"] == "Deployment":
            for container in resource["spec"]["template"]["spec"]["containers"]:
                yield resource, container


def pod_labels(deployment: Manifest) -> Mapping[str, str]:
    labels: Mapping[str, str] = deployment["spec"]["template"]["metadata"]["labels"]
    return labels


def matches(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return bool(selector) and all(labels.get(key) == value for key, value in selector.items())


def key(resource: Manifest) -> tuple[str, str | None, str]:
    metadata = resource["metadata"]
    return resource["kind"], metadata.get("namespace"), metadata["name"]


# --- a small Kustomize ---------------------------------------------------------------------------


def merge(target: Manifest, patch: Mapping[str, Any]) -> None:
    """A strategic merge for what our patches do: mappings merge, anything else replaces."""
    for name, value in patch.items():
        if isinstance(value, Mapping) and isinstance(target.get(name), dict):
            merge(target[name], value)
        else:
            target[name] = copy.deepcopy(value)


def retag(image: str, change: Mapping[str, str]) -> str | None:
    name = image.partition("@")[0]
    repository, colon, tag = name.rpartition(":")
    if not colon or "/" in tag:
        repository = name
    if repository != change["name"]:
        return None
    new = change.get("newName", repository)
    return f"{new}:{change['newTag']}" if "newTag" in change else new


def render(directory: Path) -> list[Manifest]:
    """The resources `kubectl kustomize directory` would print, for the features we use."""
    path = directory / "kustomization.yaml"
    assert path.is_file(), f"{directory}: no kustomization.yaml"
    spec = load_one(path)
    assert spec.get("kind") == "Kustomization", f"{path}: kind must be Kustomization"
    assert str(spec.get("apiVersion")).startswith("kustomize.config.k8s.io/"), path
    unknown = set(spec) - KUSTOMIZATION_KEYS
    assert not unknown, f"{path}: {sorted(unknown)} not understood by this test's renderer"

    resources: list[Manifest] = []
    for entry in spec.get("resources", []):
        target = (directory / entry).resolve()
        assert target.exists(), f"{path}: resource {entry} does not exist"
        resources.extend(render(target) if target.is_dir() else load_docs(target))
    for patch in spec.get("patches", []):
        assert set(patch) == {"path"}, f"{path}: only file patches are understood"
        change = load_one(directory / patch["path"])
        found = [r for r in resources if key(r) == key(change)]
        assert found, f"{path}: patch {patch['path']} matches no resource"
        merge(found[0], change)
    if namespace := spec.get("namespace"):
        for resource in resources:
            if resource["kind"] in CLUSTER_SCOPED:
                assert resource["kind"] != "Namespace" or resource["metadata"]["name"] == namespace
            else:
                resource["metadata"]["namespace"] = namespace
    for change in spec.get("images", []):
        applied = False
        for _, container in containers(resources):
            if (image := retag(container["image"], change)) is not None:
                container["image"], applied = image, True
        assert applied, f"{path}: image {change['name']} matches no container"
    keys = [key(r) for r in resources]
    assert len(keys) == len(set(keys)), f"{path}: a resource is defined twice"
    return resources


def find(resources: list[Manifest], kind: str, name: str) -> Manifest:
    found = [r for r in resources if r["kind"] == kind and r["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


# --- compose: the file as `docker compose config` reads it with no .env ---------------------------

COMPOSE = DEPLOY / "compose.yaml"
# ${NAME}, ${NAME-default}, ${NAME:-default}, ${NAME?error}, ${NAME:?error}; $$ is a literal $.
INTERPOLATION = re.compile(
    r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|\$([A-Za-z_]\w*)"
)


def interpolate(text: str, environment: Mapping[str, str]) -> str:
    """Compose's interpolation of `text` (the subset compose.yaml may use)."""

    def value(match: "re.Match[str]") -> str:
        if match[0] == "$$":
            return "$"
        name = match[1] or match[4]
        given = environment.get(name)
        operator, default = match[2], match[3] or ""
        if operator == "-":
            return default if given is None else given
        if operator == ":-":
            return given or default
        if given is None or (operator == ":?" and not given):
            pytest.fail(f"compose.yaml: ${{{name}}} is required but has no default")
        return given

    return INTERPOLATION.sub(value, text)


def compose_text() -> str:
    """compose.yaml without its comment lines, which compose never interpolates."""
    lines = COMPOSE.read_text(encoding="utf-8").splitlines()
    return "\n".join(line for line in lines if not line.lstrip().startswith("#"))


def _interpolated(node: Any, environment: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, environment)
    if isinstance(node, dict):
        return {name: _interpolated(value, environment) for name, value in node.items()}
    if isinstance(node, list):
        return [_interpolated(value, environment) for value in node]
    return node


def load_compose(environment: Mapping[str, str] | None = None) -> Manifest:
    """compose.yaml as compose reads it: parsed, then each string value interpolated."""
    return cast(Manifest, _interpolated(load_one(COMPOSE), environment or {}))


def env_example() -> dict[str, str]:
    values: dict[str, str] = {}
    for number, line in enumerate((DEPLOY / ".env.example").read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, equals, value = line.partition("=")
        assert equals, f".env.example:{number}: not NAME=value"
        assert name not in values, f".env.example: {name} twice"
        values[name.strip()] = value.strip()
    return values


def dockerfile_instructions() -> list[tuple[str, str]]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text(encoding="utf-8"))
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def dockerfile_global_args() -> dict[str, str]:
    """The ARGs before the first FROM (those FROM may use), with their defaults."""
    args: dict[str, str] = {}
    for keyword, rest in dockerfile_instructions():
        if keyword == "FROM":
            break
        assert keyword == "ARG", "only ARG may come before the first FROM"
        name, _, default = rest.partition("=")
        args[name] = default
    return args


def dockerfile_stages() -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for keyword, rest in dockerfile_instructions():
        if keyword == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((keyword, rest))
    assert stages, "Dockerfile has no FROM"
    return stages


SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "gauge": ("",),
    "summary": ("", "_count", "_sum", "_created"),
    "info": ("_info",),
}


def registered_names() -> set[str]:
    names: set[str] = set()
    families = [*WebMetrics().registry.collect(), *WorkerMetrics().registry.collect()]
    for family in families:
        names.update(family.name + suffix for suffix in SUFFIXES[family.type])
        names.update(sample.name for sample in family.samples)
    return names


def metric_names(expr: str) -> set[str]:
    return set(re.findall(r"callstreams_[a-z_]+", expr))


def balanced(expr: str) -> bool:
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    stack: list[str] = []
    for char in expr:
        if char in "([{":
            stack.append(char)
        elif char in ")]}" and (not stack or "([{"[")]}".index(char)] != stack.pop()):
            return False
    return not stack


def dashboard_exprs(dashboard: Manifest) -> list[str]:
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") == "query":
            query = variable["query"]
            exprs.append(query["query"] if isinstance(query, dict) else query)
    return exprs
