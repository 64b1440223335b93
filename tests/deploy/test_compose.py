"""deploy/compose.yaml and deploy/.env.example against the CLI and `Settings`."""

import re
from ipaddress import ip_address
from urllib.parse import urlsplit

from service.catalog import load_catalog
from service.cli.probe import KINDS
from service.config import DEV_ACCOUNT_SID, DEV_AUTH_TOKEN, load_settings
from tests.deploy.manifests import (
    ENV_NAMES,
    INTERPOLATION,
    Manifest,
    as_argv,
    compose_text,
    env_example,
    filled_in,
    load_compose,
    parse_command,
    secret_problems,
)


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
        assert service["env_file"] == [{"path": ".env", "required": False}]
        assert service["depends_on"]["redis"]["condition"] == "service_healthy"
        assert set(service["environment"]) <= ENV_NAMES
    assert services["worker"]["stop_grace_period"] == "30s"


# --- a first `docker compose up` needs no deploy/.env --------------------------------------------


def test_every_compose_variable_has_a_default() -> None:
    for match in INTERPOLATION.finditer(compose_text()):
        if match[0] == "$$":
            continue
        name = match[1] or match[4]
        assert match[2] in ("-", ":-"), f"compose.yaml: ${{{name}}} has no default"


def test_compose_runs_against_the_emulator_by_default(compose: Manifest) -> None:
    services = compose["services"]
    emulator = parse_command(as_argv(services["emulator"]["command"]), "compose emulator")
    web = parse_command(as_argv(services["web"]["command"]), "compose web")
    assert emulator.account == [], "the emulator serves its default (dev) account"
    for name in ("web", "worker"):
        environment = services[name]["environment"]
        assert environment["TWILIO_ACCOUNT_SID"] == DEV_ACCOUNT_SID
        assert environment["TWILIO_AUTH_TOKEN"] == DEV_AUTH_TOKEN
        assert environment["TWILIO_API_BASE_URL"] == f"http://emulator:{emulator.port}"
        # The emulator signs webhooks for the URL it posts to: the web service, by name.
        assert environment["PUBLIC_BASE_URL"] == f"http://web:{web.port}"
        settings = load_settings(**environment)
        assert [p.name for p in load_catalog(settings).profiles] == [settings.stream_name]


def test_compose_defaults_are_the_env_example(compose: Manifest) -> None:
    example = env_example()
    environment = compose["services"]["web"]["environment"]
    for name, value in environment.items():
        if name != "REDIS_URL":
            assert example[name] == value, f"{name}: .env.example and compose's default differ"


def test_a_compose_env_file_overrides_the_defaults() -> None:
    web = load_compose({"TWILIO_API_BASE_URL": "https://api.twilio.com"})["services"]["web"]
    assert web["environment"]["TWILIO_API_BASE_URL"] == "https://api.twilio.com"
    # An empty value is kept, not defaulted: it means "unset" to the application.
    web = load_compose({"CALLSTREAMS_API_TOKEN": ""})["services"]["web"]
    assert web["environment"]["CALLSTREAMS_API_TOKEN"] == ""


def test_compose_images_and_build_take_overrides() -> None:
    default = load_compose()
    assert default["services"]["redis"]["image"] == "redis:7"
    build = default["services"]["web"]["build"]
    assert build["args"]["BASE_IMAGE"] == "python:3.11-slim"
    assert build["network"] == "default"
    changed = load_compose({"REDIS_IMAGE": "mirror/redis:7", "CALLSTREAMS_BUILD_NETWORK": "host"})
    assert changed["services"]["redis"]["image"] == "mirror/redis:7"
    for name in ("web", "worker", "emulator"):
        assert changed["services"][name]["build"]["network"] == "host"


def test_every_callstreams_service_has_a_fitting_health_check(compose: Manifest) -> None:
    services = compose["services"]
    check = services["emulator"]["healthcheck"]["test"]
    assert check[0] == "CMD"
    args = parse_command(check[1:], "compose emulator healthcheck")
    assert args.command == "health"
    assert args.kind in (None, "emulator")
    assert set(KINDS) <= set(services)


# --- deploy/.env.example --------------------------------------------------------------------------


def test_env_example_lists_every_setting() -> None:
    names = set(env_example())
    assert ENV_NAMES - names == set(), "settings missing from .env.example"
    assert names - ENV_NAMES == set(), "names in .env.example that Settings does not read"


def test_env_example_holds_no_secret() -> None:
    problems = [p for name, value in env_example().items() for p in secret_problems(name, value)]
    assert problems == []


def test_env_example_values_are_valid() -> None:
    load_settings(**filled_in(env_example()))


def test_env_example_account_is_valid_as_is() -> None:
    """Copied unchanged, the placeholder must not stop web and worker at start."""
    assert re.fullmatch(r"AC[0-9a-f]{32}", env_example()["TWILIO_ACCOUNT_SID"])
