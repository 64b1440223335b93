"""The Dockerfile, .dockerignore and the build's pins."""

import fnmatch
import json
import re
import shlex
import subprocess
import tomllib
from ipaddress import ip_address

from service.config import Settings
from tests.deploy.manifests import (
    ENV_NAMES,
    ROOT,
    UID,
    dockerfile_global_args,
    dockerfile_stages,
    parse_command,
)


def test_dockerfile_builds_with_uv_in_a_builder_stage() -> None:
    builder, *_, runtime = dockerfile_stages()
    runs = [rest for keyword, rest in builder if keyword == "RUN"]
    assert any("pip install" in r and "uv" in r for r in runs)
    syncs = [r for r in runs if "uv sync --frozen" in r]
    assert len(syncs) == 2
    assert "--no-install-project" in syncs[0]
    assert all("--no-dev" in r for r in syncs)
    # Both stages start from BASE_IMAGE, python:3.11-slim unless the build says otherwise.
    assert dockerfile_global_args()["BASE_IMAGE"] == "python:3.11-slim"
    assert builder[0] == ("FROM", "${BASE_IMAGE} AS builder")
    assert runtime[0] == ("FROM", "${BASE_IMAGE}")
    assert any(k == "COPY" and "--from=" in r and ".venv" in r for k, r in runtime)


def test_dockerfile_pins_the_uv_that_ci_uses() -> None:
    builder = dockerfile_stages()[0]
    args = dict(rest.split("=", 1) for keyword, rest in builder if keyword == "ARG")
    (ci,) = re.findall(r"uv==([\w.]+)", (ROOT / ".ci" / "run").read_text())
    assert args["UV_VERSION"] == ci
    (install,) = [r for k, r in builder if k == "RUN" and "pip install" in r]
    assert '"uv==${UV_VERSION}"' in install


def test_build_backend_is_pinned() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    requires = pyproject["build-system"]["requires"]
    assert requires
    for requirement in requires:
        assert re.fullmatch(r"[A-Za-z0-9_.-]+==[\w.]+", requirement), f"{requirement} is not pinned"


def test_dockerfile_runtime_stage() -> None:
    runtime = dockerfile_stages()[-1]
    instructions = dict(runtime)
    user = instructions["USER"].split(":")[0]
    assert user == str(UID)
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


def test_healthcheck_fits_every_process() -> None:
    """`callstreams health` finds the process; a fixed URL would fail worker and emulator."""
    options, _, command = dict(dockerfile_stages()[-1])["HEALTHCHECK"].partition("CMD ")
    args = parse_command(json.loads(command), "Dockerfile HEALTHCHECK")
    assert args.command == "health"
    assert args.kind is None
    assert args.port is None
    timeout = re.search(r"--timeout=(\d+)s", options)
    assert timeout, "HEALTHCHECK needs a --timeout"
    assert int(timeout[1]) >= 5, "the CLI alone takes about a second to start"


def test_runtime_user_is_a_regular_account() -> None:
    """10001 is above SYS_UID_MAX (999): `useradd --system` would warn."""
    runs = [rest for keyword, rest in dockerfile_stages()[-1] if keyword == "RUN"]
    (add,) = [shlex.split(r) for r in runs if "useradd" in r]
    useradd = add[add.index("useradd") :]
    assert "--system" not in useradd
    assert "-r" not in useradd
    assert useradd[useradd.index("--uid") + 1] == str(UID)
    assert "--no-log-init" in useradd  # hadolint DL3046: no huge sparse lastlog


def test_hadolint_reports_nothing() -> None:
    found = subprocess.run(
        ["hadolint", "--no-color", str(ROOT / "Dockerfile")], capture_output=True, text=True
    )
    assert found.returncode == 0, found.stdout + found.stderr


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
