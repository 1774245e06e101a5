"""Run the whole app for development: ``make dev`` runs this inside ``config.devstack``.

It makes ``.dev/env`` (random secrets and the development switches) once, prepares the database,
then runs the web server, a Celery worker, beat and the local provider, prefixing each line of
their output with their name. Ctrl-C or SIGTERM stops them all; so does any one of them dying.
While they run, ``.dev/run.env`` holds the servers' addresses, so ``make manage ARGS=...``
(``python -m config.devrun manage ...``) runs a management command against them.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import selectors
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from config.devstack.processes import choose_port, die_with_parent, say

ROOT = Path(__file__).resolve().parent.parent
DEV_DIR = ROOT / ".dev"
ENV_FILE = DEV_DIR / "env"
# Written while `make dev` runs, removed when it stops: what `make manage` needs to reach it.
RUN_ENV_FILE = DEV_DIR / "run.env"
RUN_ENV_PREFIXES = ("DATABASE_", "REDIS_URL", "CACHE_URL", "AWS_", "SITE_URL", "LOCAL_PROVIDER_")
STOP_TIMEOUT = 10.0
PREFERRED_WEB_PORT = 8000
PREFERRED_PROVIDER_PORT = 8010  # settings' default LOCAL_PROVIDER_URL
SWITCHES = {
    "DJANGO_ENV": "development",
    "DEBUG": "true",
    "BILLING_STANDIN_ENABLED": "true",
    "LOCAL_PROVIDER_ENABLED": "true",
    "INGEST_ALLOW_PRIVATE_HOSTS": "true",
    "SIGNUP_BONUS_CREDITS": "100",
}


def _secrets() -> dict[str, str]:
    return {
        # The dev- markers let production's checks recognise a copied development secret.
        "DJANGO_SECRET_KEY": "dev-" + secrets.token_urlsafe(50),
        "STRIPE_WEBHOOK_SECRET": "whsec_dev" + secrets.token_hex(24),
        "PROVIDER_WEBHOOK_SECRET": "dev-" + secrets.token_urlsafe(32),
        "DATABASE_APP_PASSWORD": secrets.token_urlsafe(24),
        "DATABASE_OWNER_PASSWORD": secrets.token_urlsafe(24),
    }


def development_env(path: Path = ENV_FILE) -> dict[str, str]:
    """Return the values in ``path``, first adding any it lacks; secrets are made once per file.

    Appending instead of rewriting keeps values someone edited by hand.
    """
    from dotenv import dotenv_values

    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a+") as env_file:
        env_file.seek(0)
        existing = env_file.read()
        values = {k: v for k, v in dotenv_values(path).items() if v is not None}
        missing = {k: v for k, v in {**_secrets(), **SWITCHES}.items() if k not in values}
        if missing:
            if not existing:
                env_file.write(
                    "# Made by `make dev` for this checkout only; never use in production.\n"
                )
            elif not existing.endswith("\n"):
                env_file.write("\n")
            env_file.writelines(f"{key}={value}\n" for key, value in missing.items())
    return {**values, **missing}


def write_run_env(env: dict[str, str], names: set[str], path: Path = RUN_ENV_FILE) -> None:
    """Record the running stack's addresses and ``names`` (secrets, switches) for commands from
    a second terminal."""
    values = {k: v for k, v in env.items() if k in names or k.startswith(RUN_ENV_PREFIXES)}
    values["DEVRUN_PID"] = str(os.getpid())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write("# Written by `make dev` while it runs; `make manage` reads it.\n")
        out.writelines(f"{key}={value}\n" for key, value in sorted(values.items()))


def manage(args: list[str], path: Path = RUN_ENV_FILE) -> int:
    """Run ``manage.py ARGS`` against the running ``make dev`` (``make manage ARGS=...``)."""
    from dotenv import dotenv_values

    values = {k: v for k, v in dotenv_values(path).items() if v is not None}
    if not _alive(values.get("DEVRUN_PID", "")):
        say("make dev is not running here; start it first (make manage uses its servers)", "manage")
        return 1
    os.chdir(ROOT)
    argv = [sys.executable, "manage.py", *args]
    os.execve(sys.executable, argv, {**values, **os.environ})  # noqa: S606 - no shell wanted
    return 0  # not reached


def _alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


@dataclass
class Child:
    """One supervised process and the partial line of output not yet printed."""

    name: str
    process: subprocess.Popen
    pending: bytes = field(default=b"", repr=False)

    def emit(self, data: bytes, width: int) -> None:
        """Print complete lines with the child's name in front, keeping any partial line."""
        lines = (self.pending + data).split(b"\n")
        self.pending = lines.pop()
        for line in lines:
            text = line.decode(errors="replace").rstrip("\r")
            sys.stdout.write(f"{self.name:<{width}} | {text}\n")
        sys.stdout.flush()


class Supervisor:
    """Start children in their own process groups and stop them all together."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.children: list[Child] = []
        self.selector = selectors.DefaultSelector()
        self.stop_requested = 0

    def start(self, name: str, argv: list[str]) -> None:
        """Start ``argv`` with output captured; its process group lets a stop reach its children."""
        process = subprocess.Popen(  # noqa: S603 - our own commands, from the project's python
            argv,
            cwd=ROOT,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            process_group=0,
            preexec_fn=die_with_parent(),
        )
        child = Child(name, process)
        self.children.append(child)
        self.selector.register(process.stdout, selectors.EVENT_READ, child)

    def pump(self, timeout: float) -> None:
        """Copy whatever output is ready, waiting at most ``timeout`` seconds."""
        width = max(len(child.name) for child in self.children)
        for key, _ in self.selector.select(timeout):
            child: Child = key.data
            data = os.read(key.fd, 65536)
            if data:
                child.emit(data, width)
            else:
                self.selector.unregister(key.fileobj)
                if child.pending:
                    child.emit(b"\n", width)

    def exited(self) -> Child | None:
        """Return a child that has exited, if any."""
        return next((c for c in self.children if c.process.poll() is not None), None)

    def stop(self) -> None:
        """Signal every child's group, wait for all, then kill what is left."""
        for child in reversed(self.children):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while time.monotonic() < deadline and any(c.process.poll() is None for c in self.children):
            self.pump(0.1)
        for child in self.children:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.process.pid, signal.SIGKILL)
            child.process.wait()
        self.pump(0)


def prepare(python: str, env: dict[str, str], supervisor: Supervisor) -> None:
    """Bring the database up to date and create the demo user; exit on the first failure."""
    for args in (["prepare_development"],):
        say(f"manage.py {' '.join(args)}", "devrun")
        argv = [python, "manage.py", *args]
        preexec = die_with_parent()
        done = subprocess.run(argv, cwd=ROOT, env=env, check=False, preexec_fn=preexec)  # noqa: S603
        if supervisor.stop_requested:
            return
        if done.returncode != 0:
            say(f"manage.py {args[0]} failed (exit {done.returncode}); stopping", "devrun")
            sys.exit(done.returncode or 1)


def answers(port: int) -> bool:
    """Return whether something accepts connections on 127.0.0.1:``port``."""
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
        return True
    return False


def main() -> int:
    """Prepare, start and supervise the development processes; return non-zero if one died."""
    if not (ROOT / "manage.py").exists():
        say("manage.py not found; run from the project checkout", "devrun")
        return 1
    own = development_env()
    env = {**own, **os.environ, "PYTHONUNBUFFERED": "1"}
    python = sys.executable
    supervisor = Supervisor(env)

    def on_signal(signum: int, _frame: object) -> None:
        supervisor.stop_requested = signum

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    prepare(python, env, supervisor)
    if supervisor.stop_requested:
        return 0
    # collectstatic is skipped: with DEBUG on, runserver serves static files from the apps.
    web_port = choose_port("web", PREFERRED_WEB_PORT, "devrun")
    # Links in emails and provider callbacks must reach this server even on a fallback port.
    env.setdefault("SITE_URL", f"http://127.0.0.1:{web_port}")
    if (ROOT / "generation" / "local_provider" / "__main__.py").exists():
        provider_port = choose_port("local provider", PREFERRED_PROVIDER_PORT, "devrun")
        env["LOCAL_PROVIDER_URL"] = f"http://127.0.0.1:{provider_port}"
        provider = [python, "-m", "generation.local_provider", "--port", str(provider_port)]
        supervisor.start("provider", provider)
    write_run_env(env, set(own))
    supervisor.start("web", [python, "manage.py", "runserver", f"127.0.0.1:{web_port}"])
    celery = [python, "-m", "celery", "-A", "config"]
    worker = [*celery, "worker", "-Q", "start,settle,default", "-c", "2"]
    supervisor.start("worker", [*worker, "--prefetch-multiplier", "1", "-l", "info"])
    schedule = str(DEV_DIR / "celerybeat-schedule")
    supervisor.start("beat", [*celery, "beat", "-s", schedule, "-l", "info"])
    announced = False
    code = 0
    while not supervisor.stop_requested:
        supervisor.pump(0.2)
        if not announced and answers(web_port):
            say(f"Open http://127.0.0.1:{web_port}/ (demo login printed above)", "devrun")
            announced = True
        if dead := supervisor.exited():
            say(f"{dead.name} exited with code {dead.process.returncode}; stopping all", "devrun")
            code = max(dead.process.returncode, 0) or 1
            break
    supervisor.stop()
    RUN_ENV_FILE.unlink(missing_ok=True)
    return code


if __name__ == "__main__":
    if sys.argv[1:2] == ["manage"]:
        sys.exit(manage(sys.argv[2:]))
    sys.exit(main())
