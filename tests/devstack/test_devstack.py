"""The launcher behind `make dev` and `make test`: what it starts, and that nothing outlives it."""

import json
import os
import pty
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from config.devstack.launcher import servers_needed
from config.devstack.processes import port_is_free, process_identity, wait_gone
from config.devstack.servers import PREFERRED_PORTS, remove_relocated_data

ROOT = Path(__file__).resolve().parents[2]
SERVER_VARIABLES = (
    "DATABASE_URL",
    "DATABASE_ADMIN_URL",
    "DATABASE_OWNER_URL",
    "REDIS_URL",
    "AWS_S3_ENDPOINT_URL",
    "AWS_STORAGE_BUCKET_NAME",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
)
NO_POSTGRES = {"DATABASE_ADMIN_URL": "postgresql://postgres@127.0.0.1:1/postgres"}
NO_VALKEY = {"REDIS_URL": "redis://127.0.0.1:1/0"}
NO_S3 = {"AWS_STORAGE_BUCKET_NAME": "elsewhere"}

CHECK_SERVERS = """
import os, socket, sys
import boto3, psycopg
from botocore.config import Config
with psycopg.connect(os.environ["DATABASE_ADMIN_URL"]) as db:
    settings = db.execute(
        "select current_setting('fsync'), current_setting('synchronous_commit'),"
        " current_setting('max_connections')"
    ).fetchone()
port = int(os.environ["REDIS_URL"].rsplit(":", 1)[1].split("/")[0])
with socket.create_connection(("127.0.0.1", port)) as valkey:
    valkey.sendall(b"PING\\r\\n")
    pong = valkey.recv(16)
s3 = boto3.client("s3", endpoint_url=os.environ["AWS_S3_ENDPOINT_URL"],
                  region_name=os.environ["AWS_S3_REGION_NAME"],
                  config=Config(signature_version="s3v4", s3={"addressing_style": "path"}))
buckets = [b["Name"] for b in s3.list_buckets()["Buckets"]]
print(settings, pong, buckets, "DATABASE_URL" in os.environ)
sys.exit(3)
"""

SPAWN_AND_WAIT = """
import subprocess, sys, time
escaped = subprocess.Popen(["sleep", "300"], start_new_session=True)
print("pids", escaped.pid, flush=True)
time.sleep(300)
"""


def launcher_env(**overrides: str) -> dict[str, str]:
    """Return this process's environment without the servers the suite itself runs on."""
    env = {k: v for k, v in os.environ.items() if k not in SERVER_VARIABLES}
    env.pop("DEVSTACK_RUN_ID", None)
    return {**env, **overrides}


@pytest.fixture
def launch():
    """Start launchers in the background; any a failed test leaves running are stopped."""
    started: list[subprocess.Popen] = []

    def start(state: Path, *args: str, env: dict[str, str], **kwargs) -> subprocess.Popen:
        argv = [sys.executable, "-m", "config.devstack", "--state", str(state), *args]
        process = subprocess.Popen(argv, cwd=ROOT, env=env, text=True, **kwargs)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.terminate()
            process.communicate(timeout=30)


def recorded_pids(state: Path) -> list[int]:
    return [entry["pid"] for entry in json.loads((state / "pids.json").read_text())]


@pytest.fixture
def reachable_state():
    """Give a state dir the unprivileged PostgreSQL user can reach (pytest's tmp is 0700)."""
    path = Path(tempfile.mkdtemp(prefix="devstack-test-"))
    path.chmod(0o755)
    yield path
    remove_relocated_data(path)
    shutil.rmtree(path, ignore_errors=True)


def test_servers_start_only_for_absent_settings():
    """A setting present in the environment means its server is not started."""
    needed, given = servers_needed({"DATABASE_URL": "postgresql://x@h/db", "REDIS_URL": ""})
    assert needed == ["valkey", "s3"]
    assert given == ["DATABASE_URL"]
    needed, given = servers_needed({"AWS_STORAGE_BUCKET_NAME": "b", "DATABASE_ADMIN_URL": "u"})
    assert needed == ["valkey"]


def test_command_reaches_every_server_and_its_exit_code_is_kept(launch, tmp_path):
    """CMD finds durable PostgreSQL, Valkey and the bucket; the test run's state is removed."""
    process = launch(
        tmp_path, "--test", "--", sys.executable, "-c", CHECK_SERVERS,
        env=launcher_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    out, err = process.communicate(timeout=60)
    assert process.returncode == 3, err
    assert "('on', 'on', '300') b'+PONG\\r\\n' ['media'] False" in out
    assert "started postgres" in err and "valkey" in err and "s3" in err
    assert list((tmp_path / "test-runs").iterdir()) == []


def test_given_settings_pass_through_untouched(tmp_path):
    """With every server given, nothing starts and CMD sees the given values."""
    env = launcher_env(**NO_POSTGRES, **NO_VALKEY, **NO_S3)
    show = "import os; print(os.environ['REDIS_URL'], os.environ.get('AWS_S3_ENDPOINT_URL'))"
    done = subprocess.run(
        [sys.executable, "-m", "config.devstack", "--state", str(tmp_path), "--test", "--",
         sys.executable, "-c", show],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["redis://127.0.0.1:1/0", "None"]
    assert "started nothing; from environment: DATABASE_ADMIN_URL" in done.stderr


def test_sigkill_of_the_launcher_leaves_no_process_behind(launch, tmp_path):
    """Servers die through PDEATHSIG; CMD and a child that left its session, by the guardian."""
    process = launch(
        tmp_path, "--test", "--", sys.executable, "-c", SPAWN_AND_WAIT,
        env=launcher_env(**NO_S3), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    line = process.stdout.readline()
    assert line.startswith("pids"), process.stderr.read()
    state = tmp_path / "test-runs" / str(process.pid)
    servers = recorded_pids(state)
    children = [int(p.name) for p in Path("/proc").iterdir() if _child_of(p, process.pid)]
    command = [pid for pid in children if pid not in servers]
    everything = [*servers, *command, int(line.split()[1])]
    assert len(everything) == 4 and all(process_identity(pid) for pid in everything)

    process.kill()
    process.wait()
    assert wait_gone(everything, 20) == []
    process.stderr.read()  # the guardian holds stderr until it has finished
    assert not state.exists()


def _child_of(entry: Path, parent: int) -> bool:
    try:
        stat = (entry / "stat").read_text()
    except OSError:
        return False
    return (
        int(stat.rsplit(")", 1)[1].split()[1]) == parent
        and "config.devstack" not in (entry / "cmdline").read_text()
    )


def test_busy_preferred_port_is_replaced_and_announced(tmp_path):
    """In dev mode a taken preferred port is swapped for a free one, with one line saying so."""
    preferred = PREFERRED_PORTS["valkey"]
    with socket.socket() as blocker:
        if port_is_free(preferred):
            # Same option as the probe, or TIME_WAIT leftovers of an earlier stack block the bind.
            blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            blocker.bind(("127.0.0.1", preferred))
            blocker.listen()
        show = "import os; print(os.environ['REDIS_URL'])"
        env = launcher_env(**NO_POSTGRES, **NO_S3)
        done = subprocess.run(
            [sys.executable, "-m", "config.devstack", "--state", str(tmp_path), "--",
             sys.executable, "-c", show],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    port = int(done.stdout.strip().rsplit(":", 1)[1].split("/")[0])
    assert port != preferred
    assert f"port {preferred} for valkey is busy; using {port}" in done.stderr


def test_failing_server_prints_its_log_and_runs_nothing(reachable_state):
    """A server that cannot start is named, its log tail shown, and CMD never runs."""
    data = reachable_state / "pg"
    data.mkdir(mode=0o700)
    (data / "PG_VERSION").write_text("9.6\n")  # a cluster from an old major version
    (data / "postgresql.conf").write_text("")
    if os.geteuid() == 0:
        nobody = 65534
        os.chown(data, nobody, nobody)
    marker = reachable_state / "ran"
    done = subprocess.run(
        [sys.executable, "-m", "config.devstack", "--state", str(reachable_state), "--",
         "touch", str(marker)],
        cwd=ROOT, env=launcher_env(**NO_VALKEY, **NO_S3), capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode != 0
    assert "initialized by PostgreSQL version 9.6" in done.stderr
    assert done.stderr.rstrip().splitlines()[-1].startswith("devstack: postgres failed to start")
    assert not marker.exists()


def test_ctrl_c_at_the_terminal_stops_cmd_and_servers(launch, tmp_path):
    """Ctrl-C reaches CMD (the terminal's foreground group) and then every server stops."""
    primary, secondary = pty.openpty()
    wait_forever = "import time; print('cmd-ready', flush=True); time.sleep(300)"
    process = launch(
        tmp_path, "--", sys.executable, "-c", wait_forever,
        env=launcher_env(**NO_POSTGRES, **NO_S3), stdin=secondary, stdout=secondary,
        stderr=secondary, start_new_session=True,
        preexec_fn=lambda: _take_terminal(secondary),
    )  # fmt: skip
    os.close(secondary)
    output = _read_until(primary, b"cmd-ready")
    servers = recorded_pids(tmp_path)
    os.write(primary, b"\x03")
    assert process.wait(timeout=20) == 130, output
    assert wait_gone(servers, 5) == []
    os.close(primary)


def _take_terminal(fd: int) -> None:
    import fcntl
    import termios

    fcntl.ioctl(fd, termios.TIOCSCTTY, 0)


def _read_until(fd: int, wanted: bytes, timeout: float = 30) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while wanted not in seen and time.monotonic() < deadline:
        seen += os.read(fd, 4096)
    return seen


def test_sigterm_reaches_cmd_and_its_code_is_returned(launch, tmp_path):
    """SIGTERM to the launcher is forwarded to CMD, whose exit status becomes the launcher's."""
    process = launch(
        tmp_path, "--test", "--", sys.executable, "-c",
        "import time; print('ready', flush=True); time.sleep(300)",
        env=launcher_env(**NO_POSTGRES, **NO_S3), stdout=subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout.readline().strip() == "ready"
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=20) == 128 + signal.SIGTERM


def test_servers_left_by_a_killed_run_are_reaped_only_when_still_theirs(tmp_path):
    """A recorded PID is stopped when its start time and binary match, and spared otherwise."""
    orphan = subprocess.Popen(["sleep", "300"])
    stranger = subprocess.Popen(["sleep", "301"])
    try:
        start, exe = process_identity(orphan.pid)
        other_start, other_exe = process_identity(stranger.pid)
        records = [
            {"name": "valkey", "pid": orphan.pid, "start": start, "exe": exe, "signal": 15},
            # Same PID reused by another program: its start time no longer matches.
            {"name": "s3", "pid": stranger.pid, "start": other_start - 1, "exe": other_exe,
             "signal": 15},
        ]  # fmt: skip
        (tmp_path / "pids.json").write_text(json.dumps(records))
        done = subprocess.run(
            [sys.executable, "-m", "config.devstack", "--state", str(tmp_path), "--", "true"],
            cwd=ROOT, env=launcher_env(**NO_POSTGRES, **NO_VALKEY, **NO_S3),
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert orphan.wait(timeout=5) == -signal.SIGTERM
        assert f"stopped valkey (pid {orphan.pid}) left by an earlier run" in done.stderr
        assert stranger.poll() is None
    finally:
        orphan.kill()
        stranger.kill()
        orphan.wait()
        stranger.wait()
