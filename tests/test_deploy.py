"""The deployment files agree with the code they deploy.

Dockerfile, deploy/compose.yaml, deploy/.env.example, the Kubernetes manifests, the
Grafana dashboard, the alerts and deploy/RUNBOOK.md name commands, settings, metrics,
ports and each other; these tests check every such name against its source of truth:
the CLI parser, `Settings`, the metrics registry, the rendered Kustomize overlay.
"""

import argparse
import copy
import fnmatch
import inspect
import json
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from ipaddress import ip_address
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from service.catalog import load_catalog
from service.cli import main as cli
from service.config import SECRET_FILES, Settings, load_settings
from service.web.metrics import WebMetrics
from worker.metrics import WorkerMetrics
from worker.settings import worker_settings

ROOT = Path(__file__).resolve().parent.parent
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
    return value in ("", "change-me") or re.fullmatch(r"(AC|SK)x{32}", value) is not None


def secret_problems(name: str, value: str) -> list[str]:
    """Why `value` of variable `name` may be a real credential; empty when it is not."""
    problems = []
    if re.search(r"(?<![0-9a-fA-F])(AC|SK)?[0-9a-f]{32}(?![0-9a-fA-F])", value):
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


@pytest.fixture(scope="module")
def rendered() -> list[Manifest]:
    return render(OVERLAY)


@pytest.fixture(scope="module")
def secret_example() -> Manifest:
    return load_one(SECRET_EXAMPLE)


def find(resources: list[Manifest], kind: str, name: str) -> Manifest:
    found = [r for r in resources if r["kind"] == kind and r["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


# --- (a) compose ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> Manifest:
    return load_one(DEPLOY / "compose.yaml")


def test_compose_has_the_services_and_health_checks(compose: Manifest) -> None:
    services = compose["services"]
    assert set(services) == {"redis", "web", "worker", "emulator"}
    for name in ("redis", "web", "worker"):
        check = services[name].get("healthcheck", {})
        assert check.get("test"), f"{name}: no healthcheck"
        assert not check.get("disable"), f"{name}: healthcheck disabled"
    assert services["emulator"].get("profiles"), "the emulator runs only under a profile"
    assert services["worker"]["deploy"]["replicas"] == 2


def test_compose_redis_persists_to_a_named_volume(compose: Manifest) -> None:
    redis = compose["services"]["redis"]
    assert "--appendonly yes" in redis["command"]
    source, _, target = redis["volumes"][0].partition(":")
    assert target == "/data"
    assert source in (compose.get("volumes") or {}), f"{source} is not a named volume"


def test_compose_commands_exist_in_the_cli(compose: Manifest) -> None:
    services = compose["services"]
    for name in ("web", "worker", "emulator"):
        args = parse_command(as_argv(services[name]["command"]), f"compose {name}")
        assert args.command == name
    check = services["worker"]["healthcheck"]["test"]
    assert check[0] == "CMD"
    args = parse_command(check[1:], "compose worker healthcheck")
    assert args.command == "worker"
    assert args.check


def test_compose_ports_and_urls_agree(compose: Manifest) -> None:
    services = compose["services"]
    web = parse_command(as_argv(services["web"]["command"]), "compose web")
    assert f"{web.port}:{web.port}" in services["web"]["ports"]
    assert f"127.0.0.1:{web.port}/healthz" in " ".join(services["web"]["healthcheck"]["test"])
    emulator = parse_command(as_argv(services["emulator"]["command"]), "compose emulator")
    assert ip_address(emulator.host).is_unspecified
    assert f"{emulator.port}:{emulator.port}" in services["emulator"]["ports"]
    for name in ("web", "worker"):
        service = services[name]
        assert urlsplit(service["environment"]["REDIS_URL"]).hostname == "redis"
        assert service["env_file"] == ".env"
        assert service["depends_on"]["redis"]["condition"] == "service_healthy"
        assert set(service["environment"]) <= ENV_NAMES
    assert services["worker"]["stop_grace_period"] == "30s"


# --- (b) .env.example ----------------------------------------------------------------------------


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


def test_env_example_lists_every_setting() -> None:
    names = set(env_example())
    assert ENV_NAMES - names == set(), "settings missing from .env.example"
    assert names - ENV_NAMES == set(), "names in .env.example that Settings does not read"


def test_env_example_holds_no_secret() -> None:
    problems = [p for name, value in env_example().items() for p in secret_problems(name, value)]
    assert problems == []


def test_env_example_values_are_valid() -> None:
    load_settings(**filled_in(env_example()))


# --- (c) every manifest validates ----------------------------------------------------------------


def manifest_files() -> list[Path]:
    return sorted(p for p in KUBE.rglob("*.yaml") if p.name != "kustomization.yaml")


def validate(manifest: Manifest, where: str) -> None:
    kind = manifest.get("kind")
    if kind in CRD_API_VERSIONS:
        assert manifest.get("apiVersion") == CRD_API_VERSIONS[kind], where
        return
    try:
        kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as error:
        path = ".".join(str(item) for item in error.path)
        problem = f"{where}: {kind} {manifest['metadata'].get('name')}: {path}: {error.message}"
    else:
        return
    pytest.fail(problem)  # outside the except block: no schema dump in the report


@pytest.mark.parametrize("path", manifest_files(), ids=lambda p: str(p.relative_to(KUBE)))
def test_manifest_validates(path: Path) -> None:
    for manifest in load_docs(path):
        validate(manifest, str(path.relative_to(ROOT)))


def test_rendered_overlay_validates(rendered: list[Manifest]) -> None:
    for manifest in rendered:
        validate(manifest, "rendered overlay")


# --- (d) the kustomization renders and its references resolve ------------------------------------


def test_base_is_namespace_agnostic() -> None:
    for resource in render(BASE):
        assert "namespace" not in resource["metadata"], key(resource)


def test_overlay_sets_namespace_and_image(rendered: list[Manifest]) -> None:
    spec = load_one(OVERLAY / "kustomization.yaml")
    namespace = spec["namespace"]
    find(rendered, "Namespace", namespace)
    for resource in rendered:
        if resource["kind"] not in CLUSTER_SCOPED:
            assert resource["metadata"]["namespace"] == namespace, key(resource)
    (image,) = spec["images"]
    for deployment, container in containers(rendered):
        assert container["image"] == f"{image['newName']}:{image['newTag']}", key(deployment)


def test_secret_is_applied_on_its_own(secret_example: Manifest) -> None:
    listed = load_one(OVERLAY / "kustomization.yaml")["resources"]
    assert SECRET_EXAMPLE.name not in listed, "applying the overlay must not overwrite secrets"
    assert secret_example["kind"] == "Secret"
    values = {**secret_example.get("stringData", {}), **secret_example.get("data", {})}
    assert set(values) <= ENV_NAMES
    assert [p for name, value in values.items() for p in secret_problems(name, value)] == []


def reference_problems(resources: list[Manifest]) -> list[str]:
    """Every name one resource gives of another, that does not resolve."""
    problems: list[str] = []
    index = {key(r): r for r in resources}

    def has(kind: str, namespace: str | None, name: str, where: str) -> Manifest | None:
        found = index.get((kind, namespace, name))
        if found is None:
            problems.append(f"{where}: {kind} {name} does not exist")
        return found

    deployments = [r for r in resources if r["kind"] == "Deployment"]

    def pods(selector: Mapping[str, str], namespace: str | None, where: str) -> list[Manifest]:
        found = [
            d
            for d in deployments
            if d["metadata"].get("namespace") == namespace and matches(selector, pod_labels(d))
        ]
        if not found:
            problems.append(f"{where}: selector {dict(selector)} matches no pods")
        return found

    def ports(found: list[Manifest]) -> set[str | int]:
        return {
            value
            for d in found
            for c in d["spec"]["template"]["spec"]["containers"]
            for p in c.get("ports", [])
            for value in (p.get("name"), p["containerPort"])
            if value is not None
        }

    for d in deployments:
        where = f"Deployment {d['metadata']['name']}"
        namespace = d["metadata"].get("namespace")
        if not matches(d["spec"]["selector"]["matchLabels"], pod_labels(d)):
            problems.append(f"{where}: selector does not match its pod labels")
        pod = d["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        for volume in volumes.values():
            if "configMap" in volume:
                config = has("ConfigMap", namespace, volume["configMap"]["name"], where)
                for item in volume["configMap"].get("items", []):
                    if config is not None and item["key"] not in config.get("data", {}):
                        problems.append(f"{where}: ConfigMap has no key {item['key']}")
            if "secret" in volume:
                has("Secret", namespace, volume["secret"]["secretName"], where)
        for container in pod["containers"]:
            for source in container.get("envFrom", []):
                for kind, field in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
                    if field in source and not source[field].get("optional"):
                        has(kind, namespace, source[field]["name"], where)
            for env in container.get("env", []):
                for kind, field in (("ConfigMap", "configMapKeyRef"), ("Secret", "secretKeyRef")):
                    ref = env.get("valueFrom", {}).get(field)
                    if ref and (found := has(kind, namespace, ref["name"], where)):
                        values = {**found.get("data", {}), **found.get("stringData", {})}
                        if ref["key"] not in values:
                            problems.append(f"{where}: {kind} {ref['name']} has no {ref['key']}")
            for mount in container.get("volumeMounts", []):
                if mount["name"] not in volumes:
                    problems.append(f"{where}: mounts unknown volume {mount['name']}")
            for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
                port = container.get(probe, {}).get("httpGet", {}).get("port")
                if port is not None and port not in ports([d]):
                    problems.append(f"{where}: {probe} port {port} is not a container port")

    services = [r for r in resources if r["kind"] == "Service"]
    for service in services:
        where = f"Service {service['metadata']['name']}"
        namespace = service["metadata"].get("namespace")
        backends = pods(service["spec"]["selector"], namespace, where)
        for port in service["spec"]["ports"]:
            target = port.get("targetPort", port["port"])
            if backends and target not in ports(backends):
                problems.append(f"{where}: targetPort {target} is not a container port")

    for resource in resources:
        kind, namespace, name = key(resource)
        where, spec = f"{kind} {name}", resource.get("spec", {})
        if kind == "HorizontalPodAutoscaler":
            target = spec["scaleTargetRef"]
            has(target["kind"], namespace, target["name"], where)
        elif kind == "PodDisruptionBudget":
            pods(spec["selector"]["matchLabels"], namespace, where)
        elif kind == "NetworkPolicy":
            selected = pods(spec["podSelector"]["matchLabels"], namespace, where)
            for rule in spec.get("ingress", []):
                for port in rule.get("ports", []):
                    if selected and port["port"] not in ports(selected):
                        problems.append(f"{where}: ingress port {port['port']} is not served")
        elif kind == "Ingress":
            for rule in spec["rules"]:
                for path in rule["http"]["paths"]:
                    backend = path["backend"]["service"]
                    found = has("Service", namespace, backend["name"], where)
                    wanted = backend["port"].get("name", backend["port"].get("number"))
                    ports_of = (found or {}).get("spec", {}).get("ports", [])
                    served = {v for p in ports_of for v in (p.get("name"), p["port"])}
                    if found and wanted not in served:
                        problems.append(f"{where}: Service {backend['name']} has no port {wanted}")
        elif kind == "ServiceMonitor":
            selected = [
                s
                for s in services
                if s["metadata"].get("namespace") == namespace
                and matches(spec["selector"]["matchLabels"], s["metadata"].get("labels", {}))
            ]
            if not selected:
                problems.append(f"{where}: selects no Service")
            for endpoint in spec["endpoints"]:
                for service in selected:
                    if endpoint["port"] not in {p.get("name") for p in service["spec"]["ports"]}:
                        problems.append(
                            f"{where}: Service {service['metadata']['name']} has no port "
                            f"named {endpoint['port']}"
                        )
    return problems


def test_references_resolve(rendered: list[Manifest], secret_example: Manifest) -> None:
    assert reference_problems([*rendered, secret_example]) == []


def test_reference_check_catches_a_missing_config_map(rendered: list[Manifest]) -> None:
    broken = [r for r in rendered if key(r)[2] != "callstreams-profiles"]
    assert any("callstreams-profiles" in p for p in reference_problems(broken))


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_renderer_agrees_with_kubectl_kustomize(rendered: list[Manifest]) -> None:
    output = subprocess.run(
        ["kubectl", "kustomize", str(OVERLAY)], capture_output=True, text=True, check=True
    ).stdout
    theirs = [doc for doc in yaml.safe_load_all(output) if doc]
    assert sorted(theirs, key=key) == sorted(rendered, key=key)


# --- the pods ------------------------------------------------------------------------------------


def test_pods_are_hardened(rendered: list[Manifest]) -> None:
    for deployment, container in containers(rendered):
        where = deployment["metadata"]["name"]
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, where
        assert pod["securityContext"]["runAsUser"] == UID, where
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", where
        context = container["securityContext"]
        assert context["runAsNonRoot"] is True, where
        assert context["runAsUser"] == UID, where
        assert context["readOnlyRootFilesystem"] is True, where
        assert context["allowPrivilegeEscalation"] is False, where
        assert context["capabilities"]["drop"] == ["ALL"], where
        assert context["seccompProfile"]["type"] == "RuntimeDefault", where
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert "emptyDir" in volumes[mounts[TMP]], f"{where}: {TMP} must be an emptyDir"
        for bound in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(container["resources"][bound]), where


def uvicorn_grace_s() -> int:
    found = set(re.findall(r"timeout_graceful_shutdown=(\d+)", inspect.getsource(cli)))
    assert len(found) == 1, "service/cli.py: expected one timeout_graceful_shutdown"
    return int(found.pop())


def test_web_pod(rendered: list[Manifest]) -> None:
    web = find(rendered, "Deployment", "callstreams-web")
    pod = web["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    args = parse_command(container.get("command", []) + container.get("args", []), "web pod")
    assert args.command == "web"
    assert ip_address(args.host).is_unspecified
    assert {"name": "http", "containerPort": args.port, "protocol": "TCP"} in container["ports"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    sleep = container["lifecycle"]["preStop"]["exec"]["command"]
    assert sleep[0] == "sleep"
    assert pod["terminationGracePeriodSeconds"] >= int(sleep[1]) + uvicorn_grace_s()


def test_worker_pod(rendered: list[Manifest]) -> None:
    worker = find(rendered, "Deployment", "callstreams-worker")
    assert worker["spec"]["replicas"] == 2
    (container,) = worker["spec"]["template"]["spec"]["containers"]
    args = parse_command(container.get("command", []) + container.get("args", []), "worker pod")
    assert args.command == "worker"
    assert not args.check
    for probe in ("readinessProbe", "livenessProbe"):
        check = parse_command(container[probe]["exec"]["command"], f"worker {probe}")
        assert check.command == "worker"
        assert check.check
    config = find(rendered, "ConfigMap", "callstreams-config")["data"]
    default = Settings.model_fields["worker_metrics_port"].default
    port = int(config.get("CALLSTREAMS_WORKER_METRICS_PORT", default))
    assert {"name": "metrics", "containerPort": port, "protocol": "TCP"} in container["ports"]


def test_autoscalers(rendered: list[Manifest]) -> None:
    web = find(rendered, "HorizontalPodAutoscaler", "callstreams-web")
    assert web["apiVersion"] == "autoscaling/v2"
    assert web["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    worker = find(rendered, "HorizontalPodAutoscaler", "callstreams-worker")
    assert worker["apiVersion"] == "autoscaling/v2"
    (metric,) = worker["spec"]["metrics"]
    source = metric[metric["type"].lower()]
    assert metric["type"] in ("External", "Pods")
    assert source["metric"]["name"] == "callstreams_queue_depth"
    assert source["metric"]["name"] in registered_names()


def test_configuration_names_are_settings(rendered: list[Manifest]) -> None:
    config = find(rendered, "ConfigMap", "callstreams-config")
    assert set(config["data"]) <= ENV_NAMES
    for _, container in containers(rendered):
        assert {env["name"] for env in container.get("env", [])} <= ENV_NAMES


# --- (e) the profiles load with the project's own loader -----------------------------------------


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


def test_profiles_config_map_loads(rendered: list[Manifest], deployed_settings: Settings) -> None:
    profiles = find(rendered, "ConfigMap", "callstreams-profiles")
    for deployment, container in containers(rendered):
        (path,) = [e["value"] for e in container["env"] if e["name"] == "CALLSTREAMS_CONFIG"]
        directory, _, filename = path.rpartition("/")
        (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == directory]
        volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
        assert volumes[mount["name"]]["configMap"]["name"] == "callstreams-profiles"
        assert filename in profiles["data"]
    catalog = load_catalog(deployed_settings)
    assert [p.name for p in catalog.profiles] == ["transcription"]
    assert catalog.profiles[0].track == "both_tracks"


def test_workers_may_finish_their_jobs(
    rendered: list[Manifest], compose: Manifest, deployed_settings: Settings
) -> None:
    wait = worker_settings(deployed_settings)["job_completion_wait"]
    worker = find(rendered, "Deployment", "callstreams-worker")
    assert worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > wait
    assert int(compose["services"]["worker"]["stop_grace_period"].removesuffix("s")) > wait


# --- (f) the Dockerfile --------------------------------------------------------------------------


def dockerfile_stages() -> list[list[tuple[str, str]]]:
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text(encoding="utf-8"))
    stages: list[list[tuple[str, str]]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        if keyword.upper() == "FROM":
            stages.append([])
        assert stages, "Dockerfile must start with FROM"
        stages[-1].append((keyword.upper(), rest.strip()))
    return stages


def test_dockerfile_builds_with_uv_in_a_builder_stage() -> None:
    builder, *_, runtime = dockerfile_stages()
    runs = [rest for keyword, rest in builder if keyword == "RUN"]
    assert any("pip install" in r and "uv" in r for r in runs)
    syncs = [r for r in runs if "uv sync --frozen" in r]
    assert len(syncs) == 2
    assert "--no-install-project" in syncs[0]
    assert all("--no-dev" in r for r in syncs)
    assert runtime[0] == ("FROM", "python:3.11-slim")
    assert any(k == "COPY" and "--from=" in r and ".venv" in r for k, r in runtime)


def test_dockerfile_runtime_stage() -> None:
    runtime = dockerfile_stages()[-1]
    instructions = dict(runtime)
    user = instructions["USER"].split(":")[0]
    assert user == str(UID)
    assert "/healthz" in instructions["HEALTHCHECK"]
    assert instructions["STOPSIGNAL"] == "SIGTERM"
    assert "ENTRYPOINT" not in instructions
    args = parse_command(json.loads(instructions["CMD"]), "Dockerfile CMD")
    assert args.command == "web"
    assert ip_address(args.host).is_unspecified
    exposed = {int(p) for p in instructions["EXPOSE"].split()}
    assert {8000, Settings.model_fields["worker_metrics_port"].default} <= exposed
    env = {
        item.split("=", 1)[0]
        for keyword, rest in runtime
        if keyword == "ENV"
        for item in shlex.split(rest)
    }
    assert env - {"PATH", "PYTHONUNBUFFERED"} <= ENV_NAMES


def test_dockerignore_keeps_what_the_build_copies() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert {".git", ".venv", "tests"} <= set(patterns)
    builder = dockerfile_stages()[0]
    sources = [
        source
        for keyword, rest in builder
        if keyword == "COPY" and "--from=" not in rest
        for source in rest.split()[:-1]
    ]
    assert {"pyproject.toml", "uv.lock", "service", "worker", "README.md"} <= set(sources)
    for source in sources:
        assert (ROOT / source).exists(), source
        for pattern in patterns:
            assert not fnmatch.fnmatch(source, pattern.removeprefix("**/")), (source, pattern)


# --- (g) every metric named in the dashboard and the alerts exists -------------------------------


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


@pytest.fixture(scope="module")
def dashboard() -> Manifest:
    return cast(Manifest, json.loads((DEPLOY / "grafana" / "callstreams.json").read_text()))


@pytest.fixture(scope="module")
def rules(rendered: list[Manifest]) -> list[Manifest]:
    rule = find(rendered, "PrometheusRule", "callstreams")
    return [r for group in rule["spec"]["groups"] for r in group["rules"]]


def dashboard_exprs(dashboard: Manifest) -> list[str]:
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") == "query":
            query = variable["query"]
            exprs.append(query["query"] if isinstance(query, dict) else query)
    return exprs


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


def test_metric_check_catches_an_unknown_metric() -> None:
    assert not metric_names("rate(callstreams_webhook_total[5m])") <= registered_names()


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
