"""Benchmark the Stripe webhook end to end under gunicorn (bench/README.md).

Creates its own database with the project's bootstrap and migrations, seeds N buyers with one
open Checkout stand-in purchase each, starts the app under gunicorn with the stand-in on (so the
production webhook path runs unchanged and no Stripe API is called), then sends every purchase's
``checkout.session.completed`` twice (half of all deliveries are duplicates, shuffled so many
race) over several keep-alive connections, each event signed here as Stripe signs it.

A baseline runs interleaved with the same connections: the same requests with a wrong
signature, which the app rejects after the HMAC check without touching the database. At the
end it counts grants per key in SQL (``exactly_once``: one grant per purchase, none missing,
every balance equal to the pack, every event processed).

Run it through the launcher so PostgreSQL and Valkey exist with fsync on:
``python -m config.devstack --test -- .venv/bin/python bench/webhooks.py --quick``.
Prints a table and ends with one JSON line.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import http.client
import json
import os
import random
import secrets
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from support import percentile, prepare_database  # noqa: E402

from config.dbroles import drop_database, url_for_database  # noqa: E402
from tests.e2e.helpers import free_port  # noqa: E402

SECRET = "whsec_bench_" + secrets.token_hex(16)
CREDITS = 100


def sign(payload: bytes) -> str:
    timestamp = int(time.time())
    mac = hmac.new(SECRET.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def seed(env: dict[str, str], count: int) -> list[dict]:
    """Create buyers and their open stand-in purchases through billing's own service."""
    os.environ.update(env)
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    import django

    django.setup()
    from django.contrib.auth import get_user_model

    from billing.checkout import start_checkout
    from billing.models import CreditPack

    pack = CreditPack.objects.create(
        name="Bench Pack", slug="bench", credits=CREDITS, price_amount=1000, stripe_price_id="p"
    )
    users = get_user_model().objects.bulk_create(
        get_user_model()(email=f"bench-{n}-{uuid.uuid4().hex[:6]}@example.com")
        for n in range(count)
    )
    events = []
    for user in users:
        checkout = start_checkout(user, pack)
        session = {
            "id": checkout.stripe_session_id,
            "object": "checkout.session",
            "status": "complete",
            "payment_status": "paid",
            "payment_intent": "pi_bench_" + secrets.token_hex(8),
        }
        events.append(
            {
                "id": "evt_bench_" + secrets.token_hex(12),
                "object": "event",
                "api_version": "2026-10-28.endive",
                "created": int(time.time()),
                "livemode": False,
                "type": "checkout.session.completed",
                "data": {"object": session},
                "_user": str(user.pk),
            }
        )
    from django.db import connections

    connections.close_all()
    return events


def start_server(env: dict[str, str], workers: int, threads: int) -> tuple[subprocess.Popen, int]:
    port = free_port()
    server = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "gunicorn"),
            "config.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--worker-class",
            "gthread",
            "--threads",
            str(threads),
            "--keep-alive",
            "30",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", "/healthz")
            connection.getresponse().read()
            return server, port
        except OSError:
            if server.poll() is not None:
                raise SystemExit("gunicorn exited during start-up") from None
            time.sleep(0.2)
    raise SystemExit("gunicorn did not start within 60 s")


def send_all(port: int, bodies: list[tuple[bytes, bool]], clients: int) -> tuple[float, list]:
    """Send every (payload, signed) over ``clients`` keep-alive connections; return wall time
    and (status, seconds) per request."""
    queue = list(reversed(bodies))
    lock = threading.Lock()
    results: list[tuple[int, float]] = []

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        while True:
            with lock:
                if not queue:
                    break
                payload, good = queue.pop()
            headers = {
                "Content-Type": "application/json",
                "Stripe-Signature": sign(payload) if good else "t=1,v1=" + "0" * 64,
            }
            started = time.perf_counter()
            connection.request("POST", "/webhooks/stripe/", body=payload, headers=headers)
            response = connection.getresponse()
            response.read()
            elapsed = time.perf_counter() - started
            with lock:
                results.append((response.status, elapsed))
        connection.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started, results


def verify(admin_db_url: str, events: list[dict]) -> dict:
    keys = [f"checkout:{e['data']['object']['id']}" for e in events]
    users = [e["_user"] for e in events]
    with psycopg.connect(admin_db_url, autocommit=True) as conn:
        per_key = dict(
            conn.execute(
                "SELECT idempotency_key, count(*) FROM ledger_entry "
                "WHERE idempotency_key = ANY(%s) GROUP BY 1",
                [keys],
            ).fetchall()
        )
        balances = dict(
            conn.execute(
                "SELECT account_id::text, available FROM ledger_account "
                "WHERE account_id = ANY(%s::uuid[])",
                [users],
            ).fetchall()
        )
        unprocessed = conn.execute(
            "SELECT count(*) FROM billing_stripeevent WHERE processed_at IS NULL"
        ).fetchone()[0]
        stored = conn.execute("SELECT count(*) FROM billing_stripeevent").fetchone()[0]
        paid = conn.execute(
            "SELECT count(*) FROM billing_checkoutsession WHERE status = 'paid'"
        ).fetchone()[0]
        check = conn.execute("SELECT count(*) FROM ledger_check()").fetchone()[0]
        settings = dict(
            conn.execute(
                "SELECT name, setting FROM pg_settings "
                "WHERE name IN ('fsync', 'synchronous_commit', 'server_version')"
            ).fetchall()
        )
    return {
        "grants": sum(per_key.values()),
        "max_grants_per_key": max(per_key.values(), default=0),
        "keys_granted": len(per_key),
        "balances_right": sum(1 for u in users if balances.get(u) == CREDITS),
        "events_stored": stored,
        "events_unprocessed": unprocessed,
        "purchases_paid": paid,
        "ledger_check_clean": check == 0,
        **settings,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="500 purchases instead of 2000")
    parser.add_argument("--clients", type=int, default=8, help="concurrent connections")
    parser.add_argument("--workers", type=int, default=3, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=4, help="threads per gunicorn worker")
    parser.add_argument("--rounds", type=int, default=4, help="interleaved baseline/real rounds")
    args = parser.parse_args()
    admin_url = os.environ.get("DATABASE_ADMIN_URL")
    if not admin_url:
        raise SystemExit("DATABASE_ADMIN_URL is not set: run through `python -m config.devstack`.")
    count = 500 if args.quick else 2000
    dbname = "bench_webhooks"

    app_env, _ = prepare_database(
        admin_url,
        dbname,
        DATABASE_CONN_MAX_AGE="600",
        DJANGO_ENV="development",
        DEBUG="false",
        BILLING_STANDIN_ENABLED="true",
        STRIPE_WEBHOOK_SECRET=SECRET,
        STRIPE_SECRET_KEY="",
        SIGNUP_BONUS_CREDITS="0",
        # Thousands of deliveries from one address: the per-sender limit would throttle them.
        WEBHOOK_RATE_LIMIT_COUNT="0",
        LOG_LEVEL="WARNING",
    )
    env = {**os.environ, **app_env}
    events = seed(env, count)
    server, port = start_server(env, args.workers, args.threads)
    try:
        payloads = [
            json.dumps({k: v for k, v in e.items() if k != "_user"}).encode() for e in events
        ]
        deliveries = payloads + payloads  # every event twice: Stripe's at-least-once delivery
        random.Random(7).shuffle(deliveries)
        send_all(port, [(b'{"warm": "up"}', False)] * 50, args.clients)
        real_time, baseline_time, real, baseline = 0.0, 0.0, [], []
        step = -(-len(deliveries) // args.rounds)
        for start in range(0, len(deliveries), step):
            chunk = deliveries[start : start + step]
            seconds, results = send_all(port, [(p, False) for p in chunk], args.clients)
            baseline_time += seconds
            baseline += results
            seconds, results = send_all(port, [(p, True) for p in chunk], args.clients)
            real_time += seconds
            real += results
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)

    facts = verify(url_for_database(admin_url, dbname), events)
    drop_database(admin_url, dbname)
    latencies = [seconds for _, seconds in real]
    statuses = sorted({status for status, _ in real})
    exactly_once = (
        statuses == [200]
        and facts["grants"] == count
        and facts["max_grants_per_key"] == 1
        and facts["keys_granted"] == count
        and facts["balances_right"] == count
        and facts["events_stored"] == count
        and facts["events_unprocessed"] == 0
        and facts["purchases_paid"] == count
    )
    figures = {
        "events_per_s": round(len(real) / real_time, 1),
        "unique_events_per_s": round(count / real_time, 1),
        "p50_s": round(statistics.median(latencies), 4),
        "p95_s": round(percentile(latencies, 0.95), 4),
        "p99_s": round(percentile(latencies, 0.99), 4),
        "baseline_rejected_per_s": round(len(baseline) / baseline_time, 1),
        "vs_baseline": round((len(real) / real_time) / (len(baseline) / baseline_time), 3),
        "deliveries": len(real),
        "unique_events": count,
        "duplicates": len(real) - count,
        "statuses": statuses,
        "exactly_once": exactly_once,
        "ledger_check_clean": facts["ledger_check_clean"],
        "clients": args.clients,
        "gunicorn": f"{args.workers}x{args.threads} gthread",
        "postgres": facts["server_version"],
        "fsync": facts["fsync"],
        "synchronous_commit": facts["synchronous_commit"],
        "cpu_count": os.cpu_count(),
    }
    print(f"{'webhook bench':<34}{'value':>14}")
    for name, value in (
        ("deliveries (half duplicates)", figures["deliveries"]),
        ("signed deliveries/s", figures["events_per_s"]),
        ("unique events/s", figures["unique_events_per_s"]),
        ("p50 latency (s)", figures["p50_s"]),
        ("p95 latency (s)", figures["p95_s"]),
        ("p99 latency (s)", figures["p99_s"]),
        ("baseline: rejected signature/s", figures["baseline_rejected_per_s"]),
        ("ratio to baseline", figures["vs_baseline"]),
        ("grants (one per purchase)", f"{facts['grants']}/{count}"),
        ("max grants for one key", facts["max_grants_per_key"]),
        ("exactly once", exactly_once),
        ("ledger_check clean", facts["ledger_check_clean"]),
        ("server", f"gunicorn {figures['gunicorn']}, {args.clients} connections"),
        (
            "postgres / fsync / sync commit",
            f"{facts['server_version']} / {facts['fsync']} / {facts['synchronous_commit']}",
        ),
        ("cpus", os.cpu_count()),
    ):
        print(f"{name:<34}{value!s:>14}")
    print(json.dumps(figures))
    return 0 if exactly_once else 1


if __name__ == "__main__":
    sys.exit(main())
