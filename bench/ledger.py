"""Benchmark the ledger functions against a raw guarded UPDATE on one server (bench/README.md).

Creates two fresh databases (throughput, then scaling) with the project's bootstrap, migrates each
with ``manage.py migrate`` as the owner, then measures:

* ``ledger_check()`` and the sweeper (1000 due holds) at 10 thousand and at 1 million journal
  rows (``--quick``: 100 thousand), best of several runs each, on a fresh journal, after a
  CHECKPOINT (and after the throughput database is dropped);
* the time to expire 100,000 due holds with ``ledger_expire_due``;
* ops/s of ``UPDATE ... SET available = available - 1 WHERE ... AND available >= 1`` (the
  baseline), ``ledger_hold``, hold+capture cycles and ``ledger_grant``, each on 1000 accounts
  (spread) and on 1 hot account, by the same 8 client processes on the same 8 connections
  (psycopg, autocommit, prepared statements after the first calls), in short slices
  interleaved round by round; each ratio to the baseline is taken within a round and the
  median over rounds is reported, with every round's ratio and the clients' CPU per op.

Prints a table and ends with one JSON line. Needs ``DATABASE_ADMIN_URL`` (a superuser); run it
through the launcher so fsync and synchronous_commit are on:
``python -m config.devstack --test -- .venv/bin/python bench/ledger.py --quick``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from config.dbroles import RolePlan, bootstrap, drop_database, url_for_database  # noqa: E402
from config.env import with_credentials  # noqa: E402

CLIENTS = 8
SPREAD_ACCOUNTS = 1000
FUNDS = 10**11


class Clients:
    """CLIENTS worker processes, each with one connection kept for the whole run.

    Every case (baseline and functions alike) runs on the same processes, connections and
    driver, one statement per round trip, so only the SQL differs. Processes, not threads: the
    GIL would make the client the bottleneck on 2 cores. Each slice reports its op count and
    the client CPU it used, so a run can show the clients were not what limited it.
    """

    def __init__(self, url: str, spread: list[str], hot: list[str]) -> None:
        ctx = multiprocessing.get_context("fork")
        self.barrier = ctx.Barrier(CLIENTS + 1)
        self.results = ctx.Queue()
        self.inboxes = [ctx.Queue() for _ in range(CLIENTS)]
        self.procs = [
            ctx.Process(
                target=_worker,
                args=(url, n, spread, hot, inbox, self.barrier, self.results),
                daemon=True,
            )
            for n, inbox in enumerate(self.inboxes)
        ]
        for p in self.procs:
            p.start()
        self.backends = [self.results.get(timeout=60) for _ in self.procs]

    def run(self, case: str, where: str, seconds: float) -> tuple[float, float, float | None]:
        """Return ops/s, client and server CPU seconds per op of ``case`` on ``where``."""
        tag = uuid.uuid4().hex[:10]
        for n, inbox in enumerate(self.inboxes):
            inbox.put((case, where, seconds, f"{tag}-{n}"))
        server_cpu = backend_cpu(self.backends)
        self.barrier.wait()
        started = time.perf_counter()
        replies = [self.results.get(timeout=seconds + 120) for _ in self.procs]
        elapsed = max(time.perf_counter() - started, seconds)
        total = sum(count for count, _ in replies)
        cpu = sum(cpu for _, cpu in replies)
        after = backend_cpu(self.backends)
        server = (
            None if server_cpu is None or after is None else (after - server_cpu) / max(total, 1)
        )
        return total / elapsed, cpu / max(total, 1), server

    def close(self) -> None:
        for inbox in self.inboxes:
            inbox.put(None)
        for p in self.procs:
            p.join(timeout=30)


def backend_cpu(pids: list[int]) -> float | None:
    """Return the CPU seconds the server backends ``pids`` have used (None if not on this host).

    On a shared machine wall-clock rates move with other users' load; CPU per op does not (much),
    so it is reported next to every rate. Linux /proc/<pid>/schedstat is in nanoseconds.
    """
    try:
        return sum(int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) for pid in pids) / 1e9
    except (OSError, ValueError, IndexError):
        return None


def _worker(url, n, spread, hot, inbox, barrier, results):
    """Run slices as the parent asks, on one connection, until told to stop."""
    rng = random.Random(n)
    with psycopg.connect(url, autocommit=True) as conn:
        results.put(conn.info.backend_pid)
        while (job := inbox.get()) is not None:
            case, where, seconds, tag = job
            accounts = spread if where == "spread" else hot
            count = 0
            barrier.wait()
            cpu = time.process_time()
            deadline = time.perf_counter() + seconds
            while time.perf_counter() < deadline:
                account = accounts[rng.randrange(len(accounts))]
                count += 1
                ref = f"{tag}-{count}"
                if case == "raw":
                    conn.execute(
                        "UPDATE bench_raw SET available = available - 1 "
                        "WHERE account_id = %s AND available >= 1",
                        [account],
                    )
                elif case == "hold":
                    conn.execute("SELECT * FROM ledger_hold(%s, %s, 1, '1 hour')", [account, ref])
                elif case == "cycle":
                    conn.execute("SELECT * FROM ledger_hold(%s, %s, 1, '1 hour')", [account, ref])
                    conn.execute("SELECT * FROM ledger_capture(%s, NULL)", [ref])
                elif case == "grant":
                    conn.execute(
                        "SELECT * FROM ledger_grant(%s, 1, %s, 'bench', '')", [account, ref]
                    )
            results.put((count, time.process_time() - cpu))


def migrate(admin_url: str, plan: RolePlan) -> tuple[str, str]:
    """Bootstrap the bench database and run the project's migrations as its owner."""
    drop_database(admin_url, plan.dbname)
    bootstrap(admin_url, plan)
    owner = with_credentials(admin_url, user=plan.owner, password="", dbname=plan.dbname)
    app = with_credentials(admin_url, user=plan.app, password="", dbname=plan.dbname)
    env = {
        **os.environ,
        "DATABASE_URL": app,
        "DATABASE_OWNER_URL": owner,
        "DATABASE_ROLE_PREFIX": plan.prefix,
        "DJANGO_SECRET_KEY": os.environ.get("DJANGO_SECRET_KEY", uuid.uuid4().hex * 2),
    }
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--database", "owner", "-v", "0"],
        cwd=ROOT,
        env=env,
        check=True,
    )
    return owner, app


def fresh_database(admin_url: str, plans: list[RolePlan]) -> tuple[str, str]:
    """Create, bootstrap and migrate a new bench database; remember it in ``plans`` to drop."""
    dbname = f"bench_ledger_{uuid.uuid4().hex[:6]}"
    plan = RolePlan(dbname, dbname, f"{dbname}_owner", "", f"{dbname}_app", "")
    plans.append(plan)
    return migrate(admin_url, plan)


def drop_plan(admin_url: str, plan: RolePlan) -> None:
    """Drop a bench database and its roles."""
    drop_database(admin_url, plan.dbname)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        for role in (plan.app, plan.owner):
            conn.execute(f'DROP ROLE IF EXISTS "{role}"')


def seed_accounts(app: str, owner: str, prefix: str) -> tuple[list[str], list[str]]:
    """Fund 1000 spread accounts and one hot one, and the raw baseline's table alike."""
    spread = [str(uuid.uuid4()) for _ in range(SPREAD_ACCOUNTS)]
    hot = [str(uuid.uuid4())]
    with psycopg.connect(app, autocommit=True) as conn, conn.cursor() as cur:
        cur.executemany(
            "SELECT ledger_grant(%s, %s, %s, 'bench', '')",
            [(a, FUNDS, f"seed-{a}") for a in spread + hot],
        )
    with psycopg.connect(owner, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE bench_raw (account_id uuid PRIMARY KEY, available bigint NOT NULL "
            "CHECK (available >= 0)) WITH (fillfactor = 70)"
        )
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO bench_raw VALUES (%s, %s)", [(a, FUNDS) for a in spread + hot]
            )
        conn.execute(f'GRANT SELECT, UPDATE ON bench_raw TO "{prefix}_app"')
        conn.execute("ANALYZE")
    return spread, hot


def grow_journal(owner: str, accounts: list[str], rows: int) -> None:
    """Append ``rows`` consistent grant entries (as the owner, in bulk) spread over ``accounts``."""
    per = max(1, rows // len(accounts))
    with psycopg.connect(owner, autocommit=True) as conn:
        conn.execute(
            """
            WITH acc AS (SELECT a.account_id, a.available, a.held, a.version
                         FROM ledger_account a WHERE a.account_id = ANY(%s::uuid[])),
            ins AS (
                INSERT INTO ledger_entry (account_id, account_version, kind, amount,
                    available_delta, held_delta, available_after, held_after, idempotency_key,
                    source)
                SELECT acc.account_id, acc.version + g, 'grant', 1, 1, 0, acc.available + g,
                       acc.held, 'grow-' || acc.account_id || '-' || (acc.version + g), 'bench'
                FROM acc, generate_series(1, %s) g
            )
            UPDATE ledger_account a SET available = a.available + %s, granted = a.granted + %s,
                   version = a.version + %s
            WHERE a.account_id = ANY(%s::uuid[])
            """,
            [accounts, per, per, per, per, accounts],
        )
        for table in ("ledger_entry", "ledger_account", "ledger_hold"):
            conn.execute(f"VACUUM ANALYZE {table}")


def settle(admin_url: str) -> None:
    """Write out every dirty buffer now, so no checkpoint runs inside the timings that follow.

    Growing the journal writes hundreds of megabytes of WAL; the checkpoint it triggers would
    otherwise share the 2 cores with whichever timing happened to come next.
    """
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute("CHECKPOINT")


def make_due_holds(owner: str, accounts: list[str], count: int) -> None:
    """Create ``count`` consistent pending holds that are already due (as the owner, in bulk)."""
    per = max(1, count // len(accounts))
    with psycopg.connect(owner, autocommit=True) as conn:
        conn.execute(
            """
            WITH acc AS (SELECT a.account_id, a.available, a.held, a.version
                         FROM ledger_account a WHERE a.account_id = ANY(%s::uuid[])),
            h AS (
                INSERT INTO ledger_hold (reference, account_id, amount, expires_at)
                SELECT 'due-' || gen_random_uuid(), acc.account_id, 1, now() - interval '1 minute'
                FROM acc, generate_series(1, %s)
                RETURNING hold_id, account_id
            ),
            steps AS (
                SELECT h.hold_id, h.account_id,
                       row_number() OVER (PARTITION BY h.account_id ORDER BY h.hold_id) AS n
                FROM h
            )
            INSERT INTO ledger_entry (account_id, account_version, kind, amount, available_delta,
                held_delta, available_after, held_after, hold_id)
            SELECT s.account_id, acc.version + s.n, 'hold', 1, -1, 1, acc.available - s.n,
                   acc.held + s.n, s.hold_id
            FROM steps s JOIN acc USING (account_id)
            """,
            [accounts, per],
        )
        conn.execute(
            "UPDATE ledger_account SET available = available - %s, held = held + %s, "
            "version = version + %s WHERE account_id = ANY(%s::uuid[])",
            [per, per, per, accounts],
        )
        conn.execute("VACUUM ANALYZE ledger_hold")
        conn.execute("VACUUM ANALYZE ledger_account")


def sweep_all(app: str) -> tuple[int, float]:
    """Expire every due hold; return (count, seconds)."""
    with psycopg.connect(app, autocommit=True) as conn:
        started = time.perf_counter()
        total = 0
        while expired := conn.execute("SELECT ledger_expire_due(10000)").fetchone()[0]:
            total += expired
        return total, time.perf_counter() - started


def time_check(app: str, repeats: int = 3) -> tuple[float, int, float | None]:
    """Return the best of ``repeats`` ledger_check() timings, its violations and best server CPU."""
    best, violations, best_cpu = float("inf"), 0, None
    with psycopg.connect(app, autocommit=True) as conn:
        pid = conn.info.backend_pid
        for _ in range(repeats):
            cpu = backend_cpu([pid])
            started = time.perf_counter()
            violations = len(conn.execute("SELECT * FROM ledger_check()").fetchall())
            best = min(best, time.perf_counter() - started)
            after = backend_cpu([pid])
            if cpu is not None and after is not None:
                best_cpu = after - cpu if best_cpu is None else min(best_cpu, after - cpu)
    return best, violations, best_cpu


def time_sweeper(app: str, owner: str, accounts: list[str]) -> float:
    """Return the seconds to expire 1000 due holds spread over ``accounts``."""
    make_due_holds(owner, accounts, 1000)
    count, seconds = sweep_all(app)
    assert count >= 1000, count
    return seconds


def journal_rows(owner: str) -> int:
    with psycopg.connect(owner, autocommit=True) as conn:
        return conn.execute("SELECT count(*) FROM ledger_entry").fetchone()[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="shorter runs, 100k-row scaling (<60 s)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the bench database")
    args = parser.parse_args()
    admin_url = os.environ.get("DATABASE_ADMIN_URL")
    if not admin_url:
        print("DATABASE_ADMIN_URL is required (run through python -m config.devstack --test)")
        return 2
    # Short slices, many rounds: each function slice sits next to a baseline slice of the same
    # round, so the ratio is taken per round (load on a shared machine drifts between rounds,
    # much less within one) and the median of the rounds is reported.
    seconds, rounds = (0.8, 3) if args.quick else (3.0, 7)
    big = 100_000 if args.quick else 1_000_000
    load_start = [round(x, 2) for x in os.getloadavg()]
    wall = time.perf_counter()
    plans: list[RolePlan] = []
    clients = None
    try:
        # Throughput on a fresh database; scaling on another fresh one, so each starts from the
        # same state whatever the other did (the rounds append tens of thousands of entries).
        owner, app = fresh_database(admin_url, plans)
        throughput_url = url_for_database(admin_url, plans[-1].dbname)
        with psycopg.connect(throughput_url, autocommit=True) as conn:
            server = {
                "postgres_version": conn.execute("SHOW server_version").fetchone()[0],
                "fsync": conn.execute("SHOW fsync").fetchone()[0],
                "synchronous_commit": conn.execute("SHOW synchronous_commit").fetchone()[0],
            }
        spread, hot = seed_accounts(app, owner, plans[-1].prefix)
        cases = ["raw", "hold", "cycle", "grant"]
        clients = Clients(app, spread, hot)
        for where in ("spread", "hot"):  # warm-up: connections, plans, prepared statements
            for case in cases:
                clients.run(case, where, 0.3)
        rates: dict[str, list[float]] = {}
        ratios: dict[str, list[float]] = {}
        cpu_per_op: dict[str, list[float]] = {}
        server_per_op: dict[str, list[float]] = {}
        for n in range(rounds):
            for where in ("spread", "hot"):
                # Alternate the order each round so neither side always runs first.
                order = cases if n % 2 == 0 else cases[::-1]
                got = {case: clients.run(case, where, seconds) for case in order}
                for case, (rate, cpu, backend) in got.items():
                    rates.setdefault(f"{case}_{where}", []).append(rate)
                    cpu_per_op.setdefault(f"{case}_{where}", []).append(cpu)
                    if backend is not None:
                        server_per_op.setdefault(f"{case}_{where}", []).append(backend)
                    ratios.setdefault(f"{case}_{where}", []).append(rate / got["raw"][0])
        clients.close()
        clients = None
        median = {k: statistics.median(v) for k, v in rates.items()}
        median_ratio = {k: statistics.median(v) for k, v in ratios.items()}
        final_check, violations_after, _ = time_check(app, repeats=1)
        if not args.keep:  # its buffers would crowd the scaling database's
            drop_plan(admin_url, plans.pop())

        # Scaling: both sizes measured in the same state (freshly vacuumed and analyzed), best
        # of several runs each.
        owner, app = fresh_database(admin_url, plans)
        spread, hot = seed_accounts(app, owner, plans[-1].prefix)
        grow_journal(owner, spread + hot, 10_000 - journal_rows(owner))
        settle(admin_url)
        rows_small = journal_rows(owner)
        check_small, _, check_small_cpu = time_check(app, repeats=7)
        sweep_small = min(time_sweeper(app, owner, spread) for _ in range(3))
        grow_journal(owner, spread + hot, big - journal_rows(owner))
        settle(admin_url)
        rows_big = journal_rows(owner)
        check_big, violations, check_big_cpu = time_check(app, repeats=7)
        sweep_big = min(time_sweeper(app, owner, spread) for _ in range(3))

        make_due_holds(owner, spread, 100_000)
        expired, sweeper_100k = sweep_all(app)
        violations += time_check(app, repeats=1)[1]
    finally:
        if clients is not None:
            clients.close()
        if not args.keep:
            for plan in plans:
                drop_plan(admin_url, plan)

    def ratio(case: str, where: str) -> float:
        return round(median_ratio[f"{case}_{where}"], 3)

    figures = {
        "raw_spread_per_s": round(median["raw_spread"]),
        "raw_hot_per_s": round(median["raw_hot"]),
        "hold_spread_per_s": round(median["hold_spread"]),
        "hold_hot_per_s": round(median["hold_hot"]),
        "cycle_spread_per_s": round(median["cycle_spread"]),
        "cycle_hot_per_s": round(median["cycle_hot"]),
        "grant_spread_per_s": round(median["grant_spread"]),
        "grant_hot_per_s": round(median["grant_hot"]),
        "hold_vs_raw_spread": ratio("hold", "spread"),
        "hold_vs_raw_hot": ratio("hold", "hot"),
        "cycle_vs_raw_spread": ratio("cycle", "spread"),
        "cycle_vs_raw_hot": ratio("cycle", "hot"),
        "grant_vs_raw_spread": ratio("grant", "spread"),
        "grant_vs_raw_hot": ratio("grant", "hot"),
        "sweeper_100k_seconds": round(sweeper_100k, 3),
        "sweeper_100k_expired": expired,
        "journal_rows_small": rows_small,
        "journal_rows_big": rows_big,
        "check_small_seconds": round(check_small, 4),
        "check_big_seconds": round(check_big, 4),
        "check_scaling": round(check_big / check_small, 3),
        "sweeper_1k_small_seconds": round(sweep_small, 4),
        "sweeper_1k_big_seconds": round(sweep_big, 4),
        "sweeper_scaling": round(sweep_big / sweep_small, 3),
        "check_violations": violations + violations_after,
        "final_check_seconds": round(final_check, 4),
        "ratio_rounds": {k: [round(r, 3) for r in v] for k, v in ratios.items() if "raw" not in k},
        # Client CPU per op (the 8 client processes): if this times the rate approached the
        # cores, the clients and not the server would be what the baseline measures.
        "client_cpu_us_per_op": {
            k: round(statistics.median(v) * 1e6, 1) for k, v in cpu_per_op.items()
        },
        "server_cpu_us_per_op": {
            k: round(statistics.median(v) * 1e6, 1) for k, v in server_per_op.items()
        },
        "check_small_server_cpu_seconds": check_small_cpu and round(check_small_cpu, 4),
        "check_big_server_cpu_seconds": check_big_cpu and round(check_big_cpu, 4),
        "loadavg_start": load_start,
        "loadavg_end": [round(x, 2) for x in os.getloadavg()],
        "clients": CLIENTS,
        "seconds_per_case": seconds,
        "rounds": rounds,
        "quick": args.quick,
        "cpu_count": os.cpu_count(),
        "wall_seconds": round(time.perf_counter() - wall, 1),
        **server,
    }
    print(f"{rounds} rounds of {seconds} s per case, {CLIENTS} client processes; medians")
    server_us = figures["server_cpu_us_per_op"]
    print(
        f"{'case':<14}{'spread ops/s':>14}{'x raw':>8}{'hot ops/s':>12}{'x raw':>8}"
        f"{'server CPU us/op spread, hot':>31}"
    )
    for case in ("raw", "hold", "cycle", "grant"):
        print(
            f"{case:<14}{median[case + '_spread']:>14.0f}{ratio(case, 'spread'):>8.2f}"
            f"{median[case + '_hot']:>12.0f}{ratio(case, 'hot'):>8.2f}"
            f"{server_us.get(case + '_spread', float('nan')):>22.0f}"
            f"{server_us.get(case + '_hot', float('nan')):>9.0f}"
        )
    print(f"load average: {load_start} at start, {figures['loadavg_end']} at end")
    print(f"sweeper: {expired} due holds expired in {sweeper_100k:.2f} s")
    print(
        f"ledger_check(): {check_small * 1000:.1f} ms at {rows_small} rows, "
        f"{check_big * 1000:.1f} ms at {rows_big} rows (x{check_big / check_small:.2f}); "
        f"server CPU {figures['check_small_server_cpu_seconds']} s, "
        f"{figures['check_big_server_cpu_seconds']} s"
    )
    print(
        f"sweeper (1000 due): {sweep_small * 1000:.1f} ms at {rows_small} rows, "
        f"{sweep_big * 1000:.1f} ms at {rows_big} rows (x{sweep_big / sweep_small:.2f})"
    )
    print(json.dumps(figures))
    return 0 if figures["check_violations"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
