"""Settings and profiles: bad configuration stops the process with one clear line."""

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from service.catalog import load_catalog
from service.config import ConfigError, load_settings
from service.profiles import Profile
from tests.helpers import ACCOUNT_SID, catalog_from

BASE = {
    "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
    "TWILIO_AUTH_TOKEN": "tok",
    "PUBLIC_BASE_URL": "https://streams.example.com/",
    "STREAM_URL": "wss://asr.example.com/x",
}


def test_defaults_and_durations() -> None:
    settings = load_settings(**BASE, CALLSTREAMS_RECORD_TTL="12h")
    assert settings.public_base_url == "https://streams.example.com"
    assert settings.record_ttl == timedelta(hours=12)
    assert settings.redis_url == "redis://localhost:6379/0"
    assert settings.stream_status_url == "https://streams.example.com/twilio/stream-status"


def test_api_key_is_used_for_rest_auth() -> None:
    key = "SK" + "1" * 32
    catalog = load_catalog(load_settings(**BASE, TWILIO_API_KEY=key, TWILIO_API_SECRET="s3"))
    assert catalog.accounts[ACCOUNT_SID].rest_auth == (key, "s3")
    assert load_catalog(load_settings(**BASE)).accounts[ACCOUNT_SID].rest_auth == (
        ACCOUNT_SID,
        "tok",
    )


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ({"TWILIO_ACCOUNT_SID": "AC123"}, "TWILIO_ACCOUNT_SID"),
        ({"PUBLIC_BASE_URL": "streams.example.com"}, "PUBLIC_BASE_URL"),
        ({"REDIS_URL": "http://x"}, "REDIS_URL"),
        ({"CALLSTREAMS_RECORD_TTL": "soon"}, "CALLSTREAMS_RECORD_TTL"),
        ({"TWILIO_API_KEY": "SK" + "1" * 32}, "TWILIO_API_SECRET"),
        ({"STREAM_TRACK": "all"}, "STREAM_TRACK"),
    ],
)
def test_bad_values_name_the_variable(override: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_catalog(load_settings(**{**BASE, **override}))
    assert named in str(error.value)
    assert "\n" not in str(error.value)


def test_bad_profile_variables() -> None:
    with pytest.raises(ConfigError, match="STREAM_URL: must be a wss:// URL"):
        load_catalog(load_settings(**{**BASE, "STREAM_URL": "https://x"}))
    with pytest.raises(ConfigError, match="STREAM_URL: required"):
        load_catalog(load_settings(**{**BASE, "STREAM_URL": None}))


def test_profiles_file_reports_every_problem(tmp_path: Path) -> None:
    toml = """
[[streams]]
name = "a"
url = "http://x"

[[streams]]
name = "a"
url = "wss://x.example.com"
track = "sideways"

[[streams]]
name = "b"
url = "wss://b.example.com"
parameters = { who = "{Fromm}" }
"""
    with pytest.raises(ConfigError) as error:
        catalog_from(tmp_path, toml, **BASE)
    message = str(error.value)
    assert "streams[a].url" in message
    assert "streams[a].track" in message
    assert "{Fromm}" in message


def test_profiles_file_match_and_templates(tmp_path: Path) -> None:
    toml = """
[[streams]]
name = "transcription"
url = "wss://asr.example.com/twilio"
track = "both_tracks"
[streams.parameters]
tenant = "acme"
caller = "{From}"
[streams.match]
Direction = "inbound"
To = ["+15551234567", "+15557654321"]
"""
    [profile] = catalog_from(tmp_path, toml, **BASE).profiles
    fields = {"Direction": "inbound", "To": "+15557654321", "From": "+15550001111"}
    assert profile.matches(fields)
    assert not profile.matches({**fields, "Direction": "outbound-api"})
    assert not profile.matches({**fields, "To": "+1999"})
    assert profile.render(fields) == {"tenant": "acme", "caller": "+15550001111"}


def test_profile_rules() -> None:
    with pytest.raises(ValueError, match="query"):
        Profile(name="a", url="wss://x.example.com/?a=1")
    with pytest.raises(ValueError, match="at most 99"):
        Profile(name="a", url="wss://x.example.com", parameters={str(i): "" for i in range(100)})


def test_cli_prints_one_line_without_secrets() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TWILIO_", "STREAM_"))}
    env.update(TWILIO_AUTH_TOKEN="super-secret-token", TWILIO_ACCOUNT_SID="ACnope")
    result = subprocess.run(
        [sys.executable, "-m", "service.cli", "web"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "TWILIO_ACCOUNT_SID" in lines[0]
    assert "PUBLIC_BASE_URL" in lines[0]
    assert "super-secret-token" not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


def test_track_limit_across_profiles_that_can_match_one_call(tmp_path: Path) -> None:
    both = '[[streams]]\nname = "{}"\nurl = "wss://x.example.com"\ntrack = "both_tracks"\n'
    inbound_only = both + "[streams.match]\nDirection = 'inbound'\n"
    outbound_only = both + "[streams.match]\nDirection = 'outbound-api'\n"
    # Three both_tracks profiles matching every call: 6 tracks, refused.
    with pytest.raises(ConfigError, match="a, b, c can all match one call and need 6 tracks"):
        catalog_from(tmp_path, both.format("a") + both.format("b") + both.format("c"), **BASE)
    # Inbound and outbound profiles never match the same call: 4 tracks at most, accepted.
    toml = both.format("a") + inbound_only.format("b") + outbound_only.format("c")
    profiles = catalog_from(tmp_path, toml, **BASE).profiles
    assert [p.name for p in profiles] == ["a", "b", "c"]


def test_rediss_verifies_the_servers_hostname_in_web_and_worker() -> None:
    from service.web.app import redis_client
    from worker.settings import redis_settings

    settings = load_settings(**BASE, REDIS_URL="rediss://redis.example.com:6380/0")
    web = redis_client(settings).connection_pool.connection_kwargs
    assert (web["ssl_check_hostname"], web["ssl_cert_reqs"]) == (True, "required")
    worker = redis_settings(settings)
    assert (worker.ssl, worker.ssl_check_hostname, worker.ssl_cert_reqs) == (True, True, "required")
    plain = redis_client(load_settings(**BASE)).connection_pool.connection_kwargs
    assert "ssl_check_hostname" not in plain


def test_numbers_of_the_front_door(tmp_path: Path) -> None:
    toml = """
[[streams]]
name = "asr"
url = "wss://asr.example.com/twilio"

[[numbers]]
to = ["+15551234567", "+15557654321"]
twiml_url = "https://webhooks.twilio.com/v1/Accounts/AC1/Flows/FW1"

[[numbers]]
to = "*"
twiml_url = "http://ivr.example.com/voice"
method = "GET"
"""
    catalog = catalog_from(tmp_path, toml, **BASE)
    named, every = catalog.numbers
    assert (named.to, named.method) == (("+15551234567", "+15557654321"), "POST")
    assert (every.to, every.method) == (("*",), "GET")


def test_every_number_problem_at_once(tmp_path: Path) -> None:
    toml = f"""
[[streams]]
name = "asr"
url = "wss://asr.example.com/twilio"

[[numbers]]
to = ["+15551234567"]
twiml_url = "ftp://x.example.com"
method = "PUT"

[[numbers]]
to = ["+15551234567", " +1555"]
twiml_url = "https://a.example.com"

[[numbers]]
to = "+15557654321"
twiml_url = "https://a.example.com"
accounts = ["AC{"f" * 32}"]
colour = "blue"
"""
    with pytest.raises(ConfigError) as error:
        catalog_from(tmp_path, toml, **BASE, VOICE_TWIML_URL="https://b.example.com")
    message = str(error.value)
    assert "numbers[0].twiml_url: must be an absolute http(s) URL" in message
    assert "numbers[0].method" in message
    assert "numbers[1].to: numbers must not be empty or padded" in message
    assert "numbers[2].colour" in message
    assert f"AC{'f' * 32} is not a configured account" not in message  # that entry is invalid


def test_two_entries_for_one_number_are_refused(tmp_path: Path) -> None:
    toml = """
[[streams]]
name = "asr"
url = "wss://asr.example.com/twilio"

[[numbers]]
to = ["+15551234567", "*"]
twiml_url = "https://a.example.com"

[[numbers]]
to = "+15551234567"
twiml_url = "https://b.example.com"
"""
    with pytest.raises(ConfigError) as error:
        catalog_from(tmp_path, toml, **BASE, VOICE_TWIML_URL="https://c.example.com")
    message = str(error.value)
    assert "numbers[0].to: * also served by VOICE_TWIML_URL" in message
    assert "numbers[1].to: +15551234567 also served by numbers[0]" in message
    with pytest.raises(ConfigError, match="VOICE_TWIML_URL: must be an absolute http"):
        load_settings(**BASE, VOICE_TWIML_URL="/relative")
