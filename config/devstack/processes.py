"""Process plumbing shared by the launcher and ``make dev``: nothing may outlive its parent."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path

RUN_ID_VAR = "DEVSTACK_RUN_ID"
_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def say(message: str, prefix: str = "devstack") -> None:
    """Print one line to stderr, where it cannot mix with a command's own output."""
    print(f"{prefix}: {message}", file=sys.stderr, flush=True)


def die_with_parent(sig: int = signal.SIGTERM) -> Callable[[], None] | None:
    """Return a preexec_fn making the kernel send ``sig`` to the child when its parent dies.

    Popen runs it after any setuid, which would otherwise clear the setting. Linux only.
    """
    if _libc is None:
        return None
    libc = _libc
    parent = os.getpid()

    def arm() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the signal was armed
            os.kill(os.getpid(), sig)

    return arm


def process_identity(pid: int) -> tuple[int, str] | None:
    """Return a live process's start time and executable, which a reused PID cannot match."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        exe = os.readlink(f"/proc/{pid}/exe")
    except OSError:  # gone, or a zombie
        return None
    return int(stat.rsplit(")", 1)[1].split()[19]), exe


def wait_gone(pids: list[int], timeout: float) -> list[int]:
    """Wait for processes that need not be our children to exit; return those still alive."""
    deadline = time.monotonic() + timeout
    alive = [pid for pid in pids if process_identity(pid) is not None]
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = [pid for pid in alive if process_identity(pid) is not None]
    return alive


def marked_processes(run_id: str) -> list[int]:
    """Return the processes whose environment carries this run's id, except this one."""
    marker = f"{RUN_ID_VAR}={run_id}\0".encode()
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            with contextlib.suppress(OSError):
                if marker in Path(entry.path, "environ").read_bytes():
                    found.append(int(entry.name))
    return found


def stop_marked_processes(run_id: str, grace: float = 5.0) -> int:
    """Stop every process carrying this run's id; return how many there were.

    CMD's descendants inherit the id even when they leave its process group, so this finds
    what PR_SET_PDEATHSIG cannot: grandchildren whose own parent already died.
    """
    stopped: set[int] = set()
    deadline = time.monotonic() + grace
    while batch := marked_processes(run_id):
        stopped.update(batch)
        sig = signal.SIGTERM if time.monotonic() < deadline else signal.SIGKILL
        for pid in batch:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        wait_gone(batch, 0.5)
    return len(stopped)


def port_is_free(port: int) -> bool:
    """Return whether a server could listen on 127.0.0.1:``port`` now."""
    with socket.socket() as probe:
        # Servers set SO_REUSEADDR, so a port held only by TIME_WAIT sockets counts as free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports(count: int) -> list[int]:
    """Return ``count`` distinct ports the kernel considers free on 127.0.0.1."""
    with contextlib.ExitStack() as stack:
        probes = [stack.enter_context(socket.socket()) for _ in range(count)]
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in probes]


def choose_port(name: str, preferred: int | None, prefix: str = "devstack") -> int:
    """Return ``preferred`` when it is free, else a free port, saying so in one line."""
    if preferred is None:
        return free_ports(1)[0]
    if port_is_free(preferred):
        return preferred
    port = free_ports(1)[0]
    say(f"port {preferred} for {name} is busy; using {port}", prefix)
    return port
