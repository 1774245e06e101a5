"""Benchmark the generation pipeline end to end (DESIGN section 9).

Creates its own database (the project's bootstrap, then ``migrate`` as the owner), starts
gunicorn, Celery workers and the local provider (its default delay, small outputs), then submits
N generations through the real generate view from several signed-in users at once and waits
until every one is settled. Reports throughput and submit-to-settled latency (p50/p95), asserts
none were lost and ``ledger_check()`` is empty. The baseline, measured in the same run with the
same concurrency, is the local provider alone: generate, then poll until done.

Run through the launcher so PostgreSQL, Valkey and S3 exist with fsync and synchronous_commit on:
``python -m config.devstack --test -- .venv/bin/python bench/pipeline.py --quick``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from config.dbroles import RolePlan, bootstrap, drop_database  # noqa: E402
from config.env import with_credentials  # noqa: E402
from tests.e2e.helpers import LocalProvider, free_port, wait_until  # noqa: E402

SECRET = "whsec_bench_" + uuid.uuid4().hex
CSRF = re.compile(rb'name="csrfmiddlewaretoken" value="([^"]+)"')


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def prepare_database(admin_url: str) -> dict[str, str]:
    """Bootstrap and migrate a fresh database; return the environment that points at it."""
    dbname = f"bench_pipeline_{os.getpid()}"
    plan = RolePlan(dbname, dbname, f"{dbname}_owner", "", f"{dbname}_app", "")
    drop_database(admin_url, dbname)
    bootstrap(admin_url, plan)
    env = {
        "DATABASE_URL": with_credentials(admin_url, user=plan.app, password="", dbname=dbname),
        "DATABASE_OWNER_URL": with_credentials(
            admin_url, user=plan.owner, password="", dbname=dbname
        ),
        "DATABASE_ROLE_PREFIX": plan.prefix,
        "DATABASE_NAME": dbname,
        "DJANGO_ENV": "test",
        "DJANGO_SECRET_KEY": uuid.uuid4().hex * 2,
    }
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--database", "owner", "-v", "0"],
        cwd=ROOT,
        env={**os.environ, **env},
        check=True,
    )
    return env


def start(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        argv,
        cwd=ROOT,
        env=env,
        stdout=open(log, "wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def submit_through_view(web: str, cookies: dict[str, str]) -> tuple[str, float]:
    """GET the generate page, POST the form; return the generation id and the submit time."""
    with httpx.Client(base_url=web, cookies=cookies, timeout=30) as client:
        page = client.get("/generations/new/?model=flux-schnell")
        token = CSRF.search(page.content).group(1).decode()
        began = time.time()
        response = client.post(
            "/generations/new/",
            data={
                "csrfmiddlewaretoken": token,
                "model": "flux-schnell",
                "prompt": "a small bench image",
                "ratio": "1:1",
                "output_format": "png",
                "outputs": "1",
            },
            headers={"Referer": f"{web}/generations/new/"},
        )
    if response.status_code != 302:
        raise RuntimeError(f"submit answered {response.status_code}: {response.text[:300]}")
    return response.headers["location"].rstrip("/").rsplit("/", 1)[1], began


def provider_baseline(provider_url: str, count: int, concurrency: int) -> list[float]:
    """Generate and poll against the local provider alone: the floor under our pipeline."""

    def one(_: int) -> float:
        began = time.time()
        with httpx.Client(base_url=provider_url, timeout=30) as client:
            job = client.post(
                "/v1/generate/image/bfl/flux-schnell",
                json={"generation_prompt": "baseline", "local_fault": {"lose_callback": True}},
            ).json()["data"]["generation_id"]
            while client.get(f"/v1/content/{job}").json()["data"]["generation_status"] != (
                "succeeded"
            ):
                time.sleep(0.05)
        return time.time() - began

    with ThreadPoolExecutor(concurrency) as pool:
        return list(pool.map(one, range(count)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="60 generations instead of 300")
    parser.add_argument("--users", type=int, default=6)
    parser.add_argument("--concurrency", type=int, default=12)
    args = parser.parse_args()
    total = 60 if args.quick else 300
    admin_url = os.environ.get("DATABASE_ADMIN_URL")
    if not admin_url:
        print("DATABASE_ADMIN_URL is not set: run through python -m config.devstack --test")
        return 2
    db_env = prepare_database(admin_url)
    os.environ.update(db_env)
    web_port = free_port()
    web = f"http://127.0.0.1:{web_port}"
    provider = LocalProvider(
        callback_url=f"{web}/webhooks/providers/babysea/", secret=SECRET, delay_ms=500
    )
    env = {
        **os.environ,
        **db_env,
        "LOCAL_PROVIDER_ENABLED": "true",
        "LOCAL_PROVIDER_URL": provider.url,
        "PROVIDER_WEBHOOK_SECRET": SECRET,
        "INGEST_ALLOW_PRIVATE_HOSTS": "true",
        "GENERATION_RATE_LIMIT_COUNT": "0",
        "SITE_URL": web,
        "LOG_LEVEL": "INFO",
    }
    os.environ.update({k: env[k] for k in ("LOCAL_PROVIDER_ENABLED", "LOCAL_PROVIDER_URL")})
    logs = (
        Path(os.environ.get("BENCH_LOG_DIR", ROOT / ".dev" / "bench")) / f"pipeline-{os.getpid()}"
    )
    logs.mkdir(parents=True, exist_ok=True)
    processes = [
        start(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "config.wsgi",
                "-b",
                f"127.0.0.1:{web_port}",
                "-w",
                "3",
                "-k",
                "gthread",
                "--threads",
                "4",
            ],
            env,
            logs / "web.log",
        ),
        start(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "-Q",
                "start,settle,default",
                "-c",
                "6",
                "--prefetch-multiplier",
                "1",
                "--without-gossip",
                "--without-mingle",
                "-l",
                "warning",
            ],
            env,
            logs / "worker.log",
        ),
    ]
    try:
        import django

        django.setup()
        from django.contrib.auth import get_user_model
        from django.db import connection
        from django.test import Client

        from generation.models import Generation, Status
        from ledger import api as ledger

        wait_until(lambda: _up(web), timeout=60, what="gunicorn")
        from config.celery import app

        wait_until(lambda: app.control.ping(timeout=1.0), timeout=90, what="the Celery worker")
        users, cookies = [], []
        for index in range(args.users):
            user = get_user_model().objects.create_user(
                email=f"bench-{index}-{uuid.uuid4().hex[:6]}@example.com", password=None
            )
            ledger.grant(user.pk, total * 10, key=f"bench:{user.pk}", source="bench")
            client = Client()
            client.force_login(user)
            users.append(user)
            cookies.append({"sessionid": client.cookies["sessionid"].value})
        # Warm every gunicorn worker and the Celery pool before timing.
        with ThreadPoolExecutor(args.concurrency) as pool:
            list(pool.map(lambda i: httpx.get(f"{web}/healthz", timeout=10), range(12)))

        baseline = provider_baseline(provider.url, min(total, 60), args.concurrency)

        started = time.time()
        with ThreadPoolExecutor(args.concurrency) as pool:
            submitted = list(
                pool.map(
                    lambda i: submit_through_view(web, cookies[i % len(cookies)]), range(total)
                )
            )
        submit_time = {gid: began for gid, began in submitted}

        def all_settled() -> bool:
            return (
                not Generation.objects.filter(pk__in=submit_time)
                .exclude(status__in=(Status.SUCCEEDED, Status.FAILED, Status.REJECTED))
                .exists()
                and not Generation.objects.filter(
                    pk__in=submit_time, pending_action__isnull=False
                ).exists()
            )

        wait_until(all_settled, timeout=300, interval=0.2, what="every generation to settle")
        rows = list(
            Generation.objects.filter(pk__in=submit_time).values_list("pk", "status", "finished_at")
        )
        latencies = [finished.timestamp() - submit_time[str(pk)] for pk, _, finished in rows]
        finished_last = max(finished.timestamp() for _, _, finished in rows)
        elapsed = finished_last - started
        succeeded = sum(1 for _, status, _ in rows if status == Status.SUCCEEDED)
        lost = total - succeeded
        violations = ledger.check()
        charged = sum(total * 10 - ledger.balance(u.pk).available for u in users)
        with connection.cursor() as cursor:
            facts = {}
            for name in ("server_version", "fsync", "synchronous_commit"):
                cursor.execute(f"SHOW {name}")
                facts[name] = cursor.fetchone()[0]
        result = {
            "bench": "pipeline",
            "generations": total,
            "generations_per_s": round(total / elapsed, 2),
            "p50_s": round(statistics.median(latencies), 3),
            "p95_s": round(percentile(latencies, 0.95), 3),
            "max_s": round(max(latencies), 3),
            "baseline_provider_p50_s": round(statistics.median(baseline), 3),
            "baseline_provider_p95_s": round(percentile(baseline, 0.95), 3),
            "lost": lost,
            "charged_exactly": charged == succeeded * 5,
            "ledger_check_clean": not violations,
            "postgres_version": facts["server_version"],
            "fsync": facts["fsync"],
            "synchronous_commit": facts["synchronous_commit"],
            "cpus": os.cpu_count(),
        }
        print(f"{'metric':<28}{'value':>12}")
        for key in (
            "generations",
            "generations_per_s",
            "p50_s",
            "p95_s",
            "max_s",
            "baseline_provider_p50_s",
            "baseline_provider_p95_s",
            "lost",
            "charged_exactly",
            "ledger_check_clean",
        ):
            print(f"{key:<28}{result[key]!s:>12}")
        print(json.dumps(result))
        return 0 if (lost == 0 and not violations and result["charged_exactly"]) else 1
    finally:
        for process in processes:
            try:
                os.killpg(process.pid, 15)
                process.wait(timeout=20)
            except Exception:
                os.killpg(process.pid, 9)
        provider.stop()
        from django.db import connections

        connections.close_all()
        drop_database(admin_url, db_env["DATABASE_NAME"])


def _up(web: str) -> bool:
    try:
        return httpx.get(f"{web}/healthz", timeout=2).status_code < 500
    except httpx.HTTPError:
        return False


if __name__ == "__main__":
    sys.exit(main())
