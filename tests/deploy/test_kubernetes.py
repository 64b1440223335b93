"""The Kubernetes manifests: they validate, render, reference each other and fit the code."""

import inspect
import re
import shutil
import subprocess
from collections.abc import Mapping
from ipaddress import ip_address
from pathlib import Path
from urllib.parse import urlsplit

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from service.catalog import load_catalog
from service.cli import main as cli
from service.config import Settings
from tests.deploy.manifests import (
    BASE,
    CLUSTER_SCOPED,
    CRD_API_VERSIONS,
    DEPLOY,
    ENV_NAMES,
    KUBE,
    KUBERNETES_VERSION,
    OVERLAY,
    ROOT,
    SECRET_EXAMPLE,
    TMP,
    UID,
    Manifest,
    containers,
    find,
    key,
    load_docs,
    load_one,
    matches,
    parse_command,
    pod_labels,
    registered_names,
    render,
    secret_problems,
)
from worker.settings import worker_settings

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


# --- egress reaches every Redis the docs describe -------------------------------------------------


def documented_redis_ports() -> set[int]:
    """Ports of the Redis URLs in deploy/README.md and the Secret example (defaults filled)."""
    ports: set[int] = set()
    for path in (DEPLOY / "README.md", SECRET_EXAMPLE):
        for url in re.findall(r"rediss?(?:\+sentinel)?://[^\s`'\"]+", path.read_text()):
            sentinel = "+sentinel" in url
            hosts = urlsplit(url).netloc.rpartition("@")[2]
            for host in hosts.split(","):
                port = host.rpartition(":")[2] if ":" in host else ""
                ports.add(int(port) if port.isdigit() else 26379 if sentinel else 6379)
    return ports


def test_network_policies_let_every_documented_redis_through(rendered: list[Manifest]) -> None:
    wanted = documented_redis_ports()
    assert {6379, 6380, 26379} <= wanted
    for name in ("callstreams-web", "callstreams-worker"):
        policy = find(rendered, "NetworkPolicy", name)
        allowed = {
            port["port"]
            for rule in policy["spec"]["egress"]
            if "to" not in rule
            for port in rule.get("ports", [])
            if port.get("protocol", "TCP") == "TCP"
        }
        assert wanted <= allowed, f"{name}: egress misses {sorted(wanted - allowed)}"
