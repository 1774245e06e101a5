"""Races on real, separate server sessions (threads and processes), each checked to the credit."""

import multiprocessing
import threading
import time
from datetime import timedelta

import psycopg
import pytest

from ledger import api

from .conftest import audit_for, check_for

pytestmark = pytest.mark.django_db(transaction=True)


def _run_threads(n, target):
    barrier = threading.Barrier(n)
    results: list = [None] * n
    errors: list = []

    def work(i):
        try:
            results[i] = target(i, barrier)
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    return results


def _sessions(admin, db_urls) -> int:
    return admin.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE usename = %s AND datname = %s",
        [f"{db_urls.prefix}_app", db_urls.dbname],
    ).fetchone()[0]


def test_32_holds_on_an_account_affording_k_give_exactly_k(connect, db_urls, account, ref):
    k = 9
    api.grant(account, k * 3, key=ref("k"), source="test")
    admin = connect("admin")
    conns = [connect("app") for _ in range(32)]
    assert _sessions(admin, db_urls) >= 32

    def hold(i, barrier):
        barrier.wait()
        return (
            conns[i]
            .execute(
                "SELECT status FROM ledger_hold(%s, %s, 3, '5 minutes')", [account, ref("job")]
            )
            .fetchone()[0]
        )

    statuses = _run_threads(32, hold)
    assert statuses.count("held") == k
    assert statuses.count("insufficient") == 32 - k
    assert api.balance(account) == api.Balance(0, k * 3)
    assert check_for(admin, account) == []


def _process_holds(url: str, account: str, tag: str, n: int, queue) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        out = [
            conn.execute(
                "SELECT status FROM ledger_hold(%s, %s, 1, '5 minutes')", [account, f"{tag}-{i}"]
            ).fetchone()[0]
            for i in range(n)
        ]
    queue.put(out)


def test_holds_from_separate_processes_never_overdraw(db_urls, connect, account, ref):
    api.grant(account, 13, key=ref("k"), source="test")
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    procs = [
        ctx.Process(target=_process_holds, args=(db_urls.app, str(account), ref(f"p{i}"), 5, queue))
        for i in range(6)
    ]
    for p in procs:
        p.start()
    statuses = [s for _ in procs for s in queue.get(timeout=60)]
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    assert statuses.count("held") == 13
    assert api.balance(account) == api.Balance(0, 13)
    assert check_for(connect("admin"), account) == []


@pytest.mark.parametrize("first", ["capture", "release"])
@pytest.mark.parametrize(
    ("first_level", "second_level"),
    [
        ("read committed", "repeatable read"),
        ("read committed", "serializable"),
        ("repeatable read", "read committed"),
        ("serializable", "serializable"),
        ("repeatable read", "repeatable read"),
    ],
)
def test_capture_and_release_of_one_hold_settle_it_once(
    connect, account, ref, first, first_level, second_level
):
    api.grant(account, 10, key=ref("k"), source="test")
    job = ref("job")
    api.hold(account, job, 4, ttl=timedelta(minutes=5))
    a, b = connect("app"), connect("app")
    b.autocommit = False
    calls = {
        "capture": "SELECT status FROM ledger_capture(%s)",
        "release": "SELECT status FROM ledger_release(%s)",
    }
    second = "release" if first == "capture" else "capture"
    # The second caller takes its snapshot before the first commits, then runs into its lock.
    b.execute(f"SET TRANSACTION ISOLATION LEVEL {second_level.upper()}")
    b.execute("SELECT 1 FROM pg_class LIMIT 1")
    a.autocommit = False
    a.execute(f"SET TRANSACTION ISOLATION LEVEL {first_level.upper()}")
    first_status = a.execute(calls[first], [job]).fetchone()[0]
    assert first_status == ("captured" if first == "capture" else "released")
    outcome: dict = {}

    def run_second():
        try:
            outcome["status"] = b.execute(calls[second], [job]).fetchone()[0]
            b.commit()
        except psycopg.errors.SerializationFailure:
            b.rollback()
            outcome["status"] = "serialization_failure"

    t = threading.Thread(target=run_second)
    t.start()
    time.sleep(0.3)  # let the second call block on the hold row
    a.commit()
    t.join(30)
    b.autocommit = True
    if second_level == "read committed":
        expected = {"already_captured"} if second == "release" else {"late_charged"}
    else:
        expected = {"serialization_failure"}
    assert outcome["status"] in expected
    # The caller's retry (what ledger.api does) gets the settled answer, never a second settlement.
    retried = b.execute(calls[second], [job]).fetchone()[0]
    if second == "release":
        assert retried == "already_captured"
        assert api.balance(account) == api.Balance(6, 0)
    else:
        assert retried in ("late_charged", "duplicate")
        assert api.balance(account) == api.Balance(6, 0)
    assert api.hold_status(job) in ("captured", "late_charged")
    assert check_for(connect("admin"), account) == []
    assert audit_for(connect("admin"), account) == []


def test_50_connections_granting_one_key_grant_once(connect, account, ref):
    key = ref("checkout")
    conns = [connect("app") for _ in range(50)]

    def grant(i, barrier):
        barrier.wait()
        return (
            conns[i]
            .execute("SELECT status FROM ledger_grant(%s, 25, %s, 'stripe', '')", [account, key])
            .fetchone()[0]
        )

    statuses = _run_threads(50, grant)
    assert statuses.count("granted") == 1
    assert statuses.count("duplicate") == 49
    assert api.balance(account) == api.Balance(25, 0)
    assert check_for(connect("admin"), account) == []


def test_sweeper_and_capture_at_the_expiry_instant_settle_each_hold_once(connect, account, ref):
    api.grant(account, 1000, key=ref("k"), source="test")
    jobs = [ref("job") for _ in range(12)]
    for job in jobs:
        api.hold(account, job, 10, ttl=timedelta(seconds=1))
    sweeper, capturer = connect("app"), connect("app")
    time.sleep(0.95)
    stop = threading.Event()

    def sweep():
        while not stop.is_set():
            sweeper.execute("SELECT ledger_expire_due(5)")

    t = threading.Thread(target=sweep)
    t.start()
    statuses = [
        capturer.execute("SELECT status FROM ledger_capture(%s)", [j]).fetchone()[0] for j in jobs
    ]
    stop.set()
    t.join(30)
    assert set(statuses) <= {"captured", "late_charged"}
    # The sweeper may also expire holds other tests left behind: count this account's only.
    expiries = "SELECT count(*) FROM ledger_entry WHERE account_id = %s AND kind = 'expire'"
    expired = connect("admin").execute(expiries, [account]).fetchone()[0]
    assert statuses.count("late_charged") == expired
    # Captured or expired-then-late-charged: each job paid exactly once.
    assert api.balance(account) == api.Balance(1000 - 10 * len(jobs), 0)
    assert check_for(connect("admin"), account) == []
    assert audit_for(connect("admin"), account) == []


def test_a_terminated_backend_blocked_in_a_call_then_retried_ends_the_same(connect, account, ref):
    api.grant(account, 10, key=ref("k"), source="test")
    job = ref("job")
    admin, victim = connect("admin"), connect("app")
    pid = victim.info.backend_pid
    blocker = connect("admin")
    blocker.autocommit = False
    blocker.execute("SELECT 1 FROM ledger_account WHERE account_id = %s FOR UPDATE", [account])
    failure: dict = {}

    def blocked_hold():
        try:
            victim.execute("SELECT status FROM ledger_hold(%s, %s, 4, '5 minutes')", [account, job])
        except psycopg.OperationalError as exc:
            failure["error"] = exc

    t = threading.Thread(target=blocked_hold)
    t.start()
    for _ in range(100):
        waiting = admin.execute(
            "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", [pid]
        ).fetchone()
        if waiting and waiting[0] == "Lock":
            break
        time.sleep(0.05)
    assert waiting[0] == "Lock"
    assert admin.execute("SELECT pg_terminate_backend(%s)", [pid]).fetchone()[0]
    t.join(30)
    blocker.rollback()
    assert "error" in failure
    assert api.hold_status(job) is None  # the killed call's work was rolled back
    retry = connect("app")
    assert (
        retry.execute(
            "SELECT status FROM ledger_hold(%s, %s, 4, '5 minutes')", [account, job]
        ).fetchone()[0]
        == "held"
    )
    assert (
        retry.execute(
            "SELECT status FROM ledger_hold(%s, %s, 4, '5 minutes')", [account, job]
        ).fetchone()[0]
        == "duplicate"
    )
    assert api.balance(account) == api.Balance(6, 4)
    assert check_for(admin, account) == []


def test_api_reconnects_and_retries_after_its_backend_is_terminated(connect, account, ref):
    api.grant(account, 10, key=ref("k"), source="test")
    job = ref("job")
    admin = connect("admin")
    blocker = connect("admin")
    blocker.autocommit = False
    blocker.execute("SELECT 1 FROM ledger_account WHERE account_id = %s FOR UPDATE", [account])
    result: dict = {}

    def blocked_hold():
        from django.db import connections

        try:
            result["hold"] = api.hold(account, job, 4, ttl=timedelta(minutes=5))
        finally:
            connections.close_all()

    t = threading.Thread(target=blocked_hold)
    t.start()
    pid = None
    for _ in range(100):
        row = admin.execute(
            "SELECT pid FROM pg_stat_activity"
            " WHERE wait_event_type = 'Lock' AND query LIKE '%%ledger_hold(%%'"
        ).fetchone()
        if row:
            pid = row[0]
            break
        time.sleep(0.05)
    assert pid is not None
    admin.execute("SELECT pg_terminate_backend(%s)", [pid])
    time.sleep(0.2)
    blocker.rollback()
    t.join(30)
    assert result["hold"].status == "held"
    assert api.balance(account) == api.Balance(6, 4)
    assert check_for(admin, account) == []


def test_api_refuses_inside_a_transaction_that_holds_locks(account, ref, user_factory):
    from django.db import transaction

    from ledger.exceptions import LedgerError

    with transaction.atomic():
        user_factory()
        with pytest.raises(LedgerError, match="inside a transaction"):
            api.grant(account, 5, key=ref("k"), source="test")
    assert api.balance(account) == api.Balance(0, 0)


def test_api_retries_serialization_failures_with_the_same_arguments(account, ref, monkeypatch):
    from django.db import connections

    api.grant(account, 10, key=ref("k"), source="test")
    job = ref("job")
    real = connections["default"].cursor
    failures = {"left": 2}

    class Flaky:
        def __init__(self, cursor):
            self._cursor = cursor

        def __enter__(self):
            self._cursor.__enter__()
            return self

        def __exit__(self, *exc):
            return self._cursor.__exit__(*exc)

        def execute(self, sql, params=None):
            if "ledger_hold(" in sql and failures["left"]:
                failures["left"] -= 1
                # A real 40001 from the server, raised through Django's error wrapper.
                return self._cursor.execute(
                    "DO $$ BEGIN RAISE EXCEPTION USING ERRCODE = '40001', MESSAGE = 'forced';"
                    " END $$"
                )
            return self._cursor.execute(sql, params)

        def __getattr__(self, name):
            return getattr(self._cursor, name)

    monkeypatch.setattr(connections["default"], "cursor", lambda: Flaky(real()))
    assert api.hold(account, job, 3, ttl=timedelta(minutes=5)).status == "held"
    assert failures["left"] == 0
    monkeypatch.undo()
    assert api.balance(account) == api.Balance(7, 3)
