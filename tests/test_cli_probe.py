"""`callstreams health`: finding the container's process in a fake /proc, and checking it."""

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from service.cli import main as cli
from service.cli.dev import free_port
from service.cli.probe import EMULATOR_PORT, Target, Unhealthy, detect, probe
from tests.helpers import ACCOUNT_SID, AUTH_TOKEN

PYTHON = "/app/.venv/bin/python"
SCRIPT = "/app/.venv/bin/callstreams"


def fake_proc(root: Path, processes: dict[int, tuple[int, list[str]]]) -> Path:
    """A /proc with `pid: (ppid, argv)` entries, laid out as the kernel does."""
    for pid, (ppid, argv) in processes.items():
        directory = root / str(pid)
        directory.mkdir()
        (directory / "cmdline").write_bytes(b"".join(w.encode() + b"\0" for w in argv))
        comm = argv[0].rpartition("/")[2][:15] if argv else "kworker"
        (directory / "stat").write_text(f"{pid} ({comm}) S {ppid} {pid} {pid} 0 -1\n")
    (root / "self").mkdir()  # not a process: ignored
    return root


def test_pid_1_is_the_console_script(tmp_path: Path) -> None:
    argv = [PYTHON, SCRIPT, "web", "--host", "127.0.0.1", "--port", "9000"]
    target = detect(fake_proc(tmp_path, {1: (0, argv)}))
    assert target == Target(kind="web", pid=1, args=("--host", "127.0.0.1", "--port", "9000"))
    assert target.port() == 9000


def test_an_init_that_names_the_command(tmp_path: Path) -> None:
    proc = fake_proc(
        tmp_path,
        {1: (0, ["/sbin/docker-init", "--", "callstreams", "worker"]),
         7: (1, [PYTHON, SCRIPT, "worker"])},
    )  # fmt: skip
    assert detect(proc).kind == "worker"


def test_a_shell_at_pid_1_is_looked_through(tmp_path: Path) -> None:
    proc = fake_proc(
        tmp_path,
        {
            1: (0, ["/bin/sh", "-c", "callstreams emulator --port 8080"]),
            5: (1, []),  # a zombie: no command line
            6: (1, ["sleep", "100"]),
            7: (1, [PYTHON, SCRIPT, "emulator", "--host", "127.0.0.1", "--port=8080"]),
            8: (7, [PYTHON, SCRIPT, "web"]),  # a grandchild is not the container's process
        },
    )
    target = detect(proc)
    assert (target.kind, target.pid, target.port()) == ("emulator", 7, 8080)


def test_a_child_run_as_a_module(tmp_path: Path) -> None:
    """`callstreams dev` and the tests start processes as `python -m service.cli KIND`."""
    proc = fake_proc(
        tmp_path,
        {1: (0, ["/usr/bin/tini", "--", "/bin/sh", "/start.sh"]),
         9: (1, ["python3", "-u", "-m", "service.cli", "worker"])},
    )  # fmt: skip
    assert detect(proc) == Target(kind="worker", pid=9, args=())


def test_a_comm_with_spaces_and_parentheses(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path, {1: (0, ["/bin/sh"]), 4: (1, [PYTHON, SCRIPT, "web"])})
    (proc / "4" / "stat").write_text("4 (a) b (c) S 1 4 4 0 -1\n")
    assert detect(proc).pid == 4


def test_a_callstreams_command_without_a_health_check(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path, {1: (0, [PYTHON, SCRIPT, "dev", "--simulate"])})
    with pytest.raises(Unhealthy, match=r"`callstreams dev`, which has no health check"):
        detect(proc)


def test_no_callstreams_process(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path, {1: (0, ["/bin/sh", "-c", "sleep 1000"]), 2: (1, ["sleep"])})
    with pytest.raises(Unhealthy, match=r"no callstreams web, worker or emulator .*sleep 1000"):
        detect(proc)


def test_an_unreadable_proc(tmp_path: Path) -> None:
    with pytest.raises(Unhealthy, match="PID 1: unreadable"):
        detect(tmp_path / "missing")


def test_the_last_port_wins_and_a_bad_one_is_named() -> None:
    assert Target("web", 1, ("--port", "1", "--port=2")).port() == 2
    assert Target("web", 1, ("--host", "127.0.0.1")).port() is None
    with pytest.raises(Unhealthy, match="--port eighty is not a port"):
        Target("web", 1, ("--port", "eighty")).port()


def test_the_emulator_default_port_is_the_clis() -> None:
    assert cli.parser().parse_args(["emulator"]).port == EMULATOR_PORT


class _Answer(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path in ("/healthz", "/_emulator/stats") else 404)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[int]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Answer)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


def test_web_and_emulator_are_probed_over_http(server: int) -> None:
    assert probe("web", server) == f"ok: web: GET http://127.0.0.1:{server}/healthz answered 200"
    assert probe("emulator", server).startswith("ok: emulator: GET")


def test_a_failed_check_is_one_line_and_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    assert cli.main(["health", "--kind", "emulator", "--port", str(port)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"callstreams health: emulator: GET http://127.0.0.1:{port}/")
    assert err.count("\n") == 1


def test_web_port_comes_from_port(server: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PUBLIC_BASE_URL", "https://streams.example.com")
    monkeypatch.setenv("PORT", str(server))
    assert probe("web", None).endswith(f"127.0.0.1:{server}/healthz answered 200")


def test_worker_without_a_heartbeat(
    redis_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in {
        "REDIS_URL": redis_url, "PUBLIC_BASE_URL": "https://streams.example.com",
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
    }.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    assert cli.main(["health", "--kind", "worker"]) == 1
    assert capsys.readouterr().err == (
        "callstreams health: worker: not ready: no worker heartbeat in the last 6s\n"
    )


def test_a_configuration_error_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("PUBLIC_BASE_URL", raising=False)
    assert cli.main(["health", "--kind", "worker"]) == 1
    assert capsys.readouterr().err == "callstreams health: PUBLIC_BASE_URL: required but not set\n"
