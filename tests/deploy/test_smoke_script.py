"""deploy/smoke-test.sh is valid bash (it needs Docker, so the suite never runs it)."""

import subprocess

from tests.deploy.manifests import DEPLOY

SCRIPT = DEPLOY / "smoke-test.sh"


def test_smoke_test_parses() -> None:
    found = subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True, text=True)
    assert found.returncode == 0, found.stderr


def test_smoke_test_passes_shellcheck() -> None:
    found = subprocess.run(["shellcheck", str(SCRIPT)], capture_output=True, text=True)
    assert found.returncode == 0, found.stdout


def test_smoke_test_takes_a_base_image_and_a_build_network() -> None:
    text = SCRIPT.read_text(encoding="utf-8")
    assert '--build-arg "BASE_IMAGE=$base_image"' in text
    assert '--network "$build_network"' in text
    assert "set -euo pipefail" in text
    usage = subprocess.run(["bash", str(SCRIPT), "--help"], capture_output=True, text=True)
    assert usage.returncode == 0
    for option in ("--base-image", "--network", "--redis-image", "--keep"):
        assert option in usage.stdout
