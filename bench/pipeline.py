"""Benchmark the generation pipeline end to end (bench/README.md).

Creates its own database (the project's bootstrap, then ``migrate`` as the owner), starts
gunicorn, a Celery worker and the local provider (its default delay, small outputs), then submits
N generations through the real generate view (GET the form, POST it) from several signed-in users
at a steady offered rate and waits until every one is settled. Reports throughput and
submit-to-settled latency (p50/p95), asserts none were lost, every user was charged exactly and
``ledger_check()`` is empty. The baseline, measured in the same run, is the local provider alone:
generate, then poll until done.

Sustained, not a burst: submissions are spaced evenly at ``--rate`` per second (``--rate 0``
sends them all at once, the old method, which measures how fast a backlog drains). A warm-up
round runs first, untimed, so imports and connections are not counted as per-generation cost.
``generations_per_s`` runs from the first submit to the last settlement; ``settled_per_s`` from
the first settlement to the last. Diagnostics: per-stage p50/p95 from the event rows, the
deepest Celery queues, CPU per process kind, and PostgreSQL commits and new sessions per
generation.

Run through the launcher so PostgreSQL, Valkey and S3 exist with fsync and synchronous_commit on:
``python -m config.devstack --test -- .venv/bin/python bench/pipeline.py --quick``
(``--pool prefork --worker-concurrency 6`` gives the previous worker topology).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from support import percentile, prepare_database, serving  # noqa: E402

from config.dbroles import drop_database  # noqa: E402
from tests.e2e.helpers import LocalProvider, free_port, wait_until  # noqa: E402

SECRET = "whsec_bench_" + uuid.uuid4().hex
CSRF = re.compile(rb'name="csrfmiddlewaretoken" value="([^"]+)"')


STAGES = ("queued", "reserved", "dispatched", "processing", "succeeded")


def stage_breakdown(submit_time: dict[str, float]) -> dict[str, tuple[float, float]]:
    """Return p50/p95 seconds of each step of the timeline, from the generations' event rows."""
    from generation.models import GenerationEvent

    marks: dict[str, dict[str, float]] = {}
    events = GenerationEvent.objects.filter(
        generation_id__in=submit_time, name__in=STAGES
    ).values_list("generation_id", "name", "created_at")
    for generation_id, name, created in events:
        marks.setdefault(str(generation_id), {}).setdefault(name, created.timestamp())
    steps: dict[str, list[float]] = {}
    for generation_id, times in marks.items():
        times = {"submit": submit_time[generation_id], **times}
        previous = "submit"
        for name in STAGES:
            if name in times:
                steps.setdefault(f"{previous}>{name}", []).append(times[name] - times[previous])
                previous = name
    return {
        step: (statistics.median(values), percentile(values, 0.95))
        for step, values in steps.items()
    }


class QueueSampler(threading.Thread):
    """Sample the Celery queues' lengths in Redis while the run lasts."""

    def __init__(self, redis_url: str, queues: tuple[str, ...]) -> None:
        super().__init__(daemon=True)
        import redis

        self.redis = redis.Redis.from_url(redis_url)
        self.queues = queues
        self.samples: dict[str, list[int]] = {queue: [] for queue in queues}
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.wait(0.2):
            for queue in self.queues:
                # kombu's Redis transport keeps a list per queue and priority step.
                keys = self.redis.keys(f"{queue}*")
                depth = sum(self.redis.llen(key) for key in keys if self.redis.type(key) == b"list")
                self.samples[queue].append(depth)

    def summary(self) -> dict[str, int]:
        return {queue: max(values, default=0) for queue, values in self.samples.items()}


def _cpu_groups(root_pid: int) -> dict[str, float]:
    """Return CPU seconds used so far by every process under ``root_pid``, by kind."""
    tick = os.sysconf("SC_CLK_TCK")
    children: dict[int, list[int]] = {}
    info: dict[int, tuple[str, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="ignore")
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        # utime, stime, and cutime, cstime: reaped children (PostgreSQL's exited backends).
        ppid, used = int(fields[1]), sum(int(value) for value in fields[11:15])
        children.setdefault(ppid, []).append(int(entry.name))
        info[int(entry.name)] = (cmdline, used / tick)
    totals: dict[str, float] = {}
    stack = [root_pid]
    while stack:
        pid = stack.pop()
        stack.extend(children.get(pid, ()))
        if pid not in info:
            continue
        cmdline, seconds = info[pid]
        kind = next(
            (
                name
                for name, needle in (
                    ("postgres", "postgres"),
                    ("valkey", "valkey"),
                    ("s3", "weed"),
                    ("gunicorn", "gunicorn"),
                    ("celery", "celery"),
                    ("provider", "local_provider"),
                    ("bench", "bench/pipeline.py"),
                )
                if needle in cmdline
            ),
            "other",
        )
        totals[kind] = totals.get(kind, 0.0) + seconds
    return totals


def _db_counters(cursor) -> tuple[int, int]:
    cursor.execute(
        "SELECT xact_commit, sessions FROM pg_stat_database WHERE datname = current_database()"
    )
    return cursor.fetchone()


def start(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        argv,
        cwd=ROOT,
        env=env,
        stdout=open(log, "wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def submit_through_view(client: httpx.Client) -> tuple[str, float]:
    """GET the generate page, POST the form; return the generation id and the submit time."""
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
        headers={"Referer": f"{client.base_url}/generations/new/"},
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
    parser.add_argument(
        "--warmup",
        type=int,
        default=12,
        help="untimed generations first, so every process has imported and connected",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=32,
        help="client threads (enough that a slow answer never holds back the offered rate)",
    )
    parser.add_argument(
        "--baseline-concurrency", type=int, default=12, help="clients of the provider-only baseline"
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=12.0,
        help="offered submissions per second, evenly spaced (0: one burst, as fast as possible)",
    )
    parser.add_argument("--web-workers", type=int, default=3)
    parser.add_argument("--web-threads", type=int, default=4)
    # Settling is I/O-bound (commits, provider and storage calls): threads keep more of it in
    # flight than processes on two cores, and share one set of warm clients.
    parser.add_argument("--worker-concurrency", type=int, default=16)
    parser.add_argument("--pool", default="threads", choices=("prefork", "threads"))
    parser.add_argument(
        "--conn-max-age", type=int, default=600, help="DATABASE_CONN_MAX_AGE for web and workers"
    )
    args = parser.parse_args()
    total = 60 if args.quick else 300
    granted = (total + args.warmup) * 10
    admin_url = os.environ.get("DATABASE_ADMIN_URL")
    if not admin_url:
        print("DATABASE_ADMIN_URL is not set: run through python -m config.devstack --test")
        return 2
    db_env, _ = prepare_database(admin_url, f"bench_pipeline_{os.getpid()}")
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
        # The limiters still count every request; they are set not to trip on a load test.
        "GENERATION_RATE_LIMIT_COUNT": "1000000",
        "WEBHOOK_RATE_LIMIT_COUNT": "1000000",
        "SITE_URL": web,
        "LOG_LEVEL": "INFO",
        "DATABASE_CONN_MAX_AGE": str(args.conn_max_age),
    }
    os.environ.update({k: env[k] for k in ("LOCAL_PROVIDER_ENABLED", "LOCAL_PROVIDER_URL")})
    logs = (
        Path(os.environ.get("BENCH_LOG_DIR", ROOT / ".dev" / "bench")) / f"pipeline-{os.getpid()}"
    )
    logs.mkdir(parents=True, exist_ok=True)
    web_argv = [sys.executable, "-m", "gunicorn", "config.wsgi", "-b", f"127.0.0.1:{web_port}"]
    web_argv += ["-w", str(args.web_workers), "-k", "gthread", "--threads", str(args.web_threads)]
    worker_argv = [sys.executable, "-m", "celery", "-A", "config", "worker"]
    worker_argv += ["-Q", "start,settle,default", "-P", args.pool]
    worker_argv += ["-c", str(args.worker_concurrency), "--prefetch-multiplier", "1"]
    worker_argv += ["--without-gossip", "--without-mingle", "-l", "warning"]
    processes = [
        start(web_argv, env, logs / "web.log"),
        start(worker_argv, env, logs / "worker.log"),
    ]
    try:
        import django

        django.setup()
        from django.conf import settings
        from django.contrib.auth import get_user_model
        from django.db import connection
        from django.test import Client

        from generation.models import Generation, Status
        from ledger import api as ledger

        wait_until(lambda: serving(web), timeout=60, what="gunicorn")
        from config.celery import app

        wait_until(lambda: app.control.ping(timeout=1.0), timeout=90, what="the Celery worker")
        users, clients = [], []
        for index in range(args.users):
            user = get_user_model().objects.create_user(
                email=f"bench-{index}-{uuid.uuid4().hex[:6]}@example.com", password=None
            )
            ledger.grant(user.pk, granted, key=f"bench:{user.pk}", source="bench")
            client = Client()
            client.force_login(user)
            users.append(user)
            # One keep-alive client per signed-in user, as a browser would hold.
            clients.append(
                httpx.Client(
                    base_url=web,
                    cookies={"sessionid": client.cookies["sessionid"].value},
                    timeout=30,
                )
            )
        # Warm every gunicorn worker before timing, and give each client its CSRF cookie once
        # (concurrent first visits would each set a different one, as in a real browser).
        with ThreadPoolExecutor(args.concurrency) as pool:
            list(pool.map(lambda i: httpx.get(f"{web}/healthz", timeout=10), range(12)))
        for client in clients:
            client.get("/generations/new/?model=flux-schnell").raise_for_status()

        baseline = provider_baseline(provider.url, min(total, 60), args.baseline_concurrency)

        def all_settled(ids) -> bool:
            return (
                not Generation.objects.filter(pk__in=ids)
                .exclude(status__in=(Status.SUCCEEDED, Status.FAILED, Status.REJECTED))
                .exists()
                and not Generation.objects.filter(pk__in=ids, pending_action__isnull=False).exists()
            )

        with ThreadPoolExecutor(args.concurrency) as pool:
            warm = [
                gid
                for gid, _ in pool.map(
                    lambda i: submit_through_view(clients[i % len(clients)]), range(args.warmup)
                )
            ]
        wait_until(lambda: all_settled(warm), timeout=120, interval=0.2, what="the warm-up round")

        sampler = QueueSampler(settings.CELERY_BROKER_URL, ("start", "settle"))
        sampler.start()
        cpu_before = _cpu_groups(os.getppid())
        with connection.cursor() as cursor:
            commits_before, sessions_before = _db_counters(cursor)
        started = time.time()

        def paced(i: int) -> tuple[str, float]:
            if args.rate > 0:
                time.sleep(max(0.0, started + i / args.rate - time.time()))
            return submit_through_view(clients[i % len(clients)])

        with ThreadPoolExecutor(args.concurrency) as pool:
            submitted = list(pool.map(paced, range(total)))
        submit_time = {gid: began for gid, began in submitted}

        wait_until(
            lambda: all_settled(list(submit_time)),
            timeout=300,
            interval=0.2,
            what="every generation to settle",
        )
        sampler.halt.set()
        cpu_after = _cpu_groups(os.getppid())
        with connection.cursor() as cursor:
            commits_after, sessions_after = _db_counters(cursor)
        rows = list(
            Generation.objects.filter(pk__in=submit_time).values_list("pk", "status", "finished_at")
        )
        latencies = [finished.timestamp() - submit_time[str(pk)] for pk, _, finished in rows]
        finished_last = max(finished.timestamp() for _, _, finished in rows)
        first_submit = min(submit_time.values())
        elapsed = finished_last - first_submit
        submitted_per_s = (total - 1) / max(max(submit_time.values()) - first_submit, 1e-9)
        finished_first = min(finished.timestamp() for _, _, finished in rows)
        drain_per_s = (total - 1) / max(finished_last - finished_first, 1e-9)
        succeeded = sum(1 for _, status, _ in rows if status == Status.SUCCEEDED)
        lost = total - succeeded
        warm_succeeded = Generation.objects.filter(pk__in=warm, status=Status.SUCCEEDED).count()
        lost += args.warmup - warm_succeeded
        stages = stage_breakdown(submit_time)
        violations = ledger.check()
        charged = sum(granted - ledger.balance(u.pk).available for u in users)
        with connection.cursor() as cursor:
            facts = {}
            for name in ("server_version", "fsync", "synchronous_commit"):
                cursor.execute(f"SHOW {name}")
                facts[name] = cursor.fetchone()[0]
        cpu = {
            kind: round((cpu_after.get(kind, 0.0) - cpu_before.get(kind, 0.0)) / total * 1000, 1)
            for kind in sorted(cpu_after)
        }
        result = {
            "bench": "pipeline",
            "generations": total,
            "warmup_generations": args.warmup,
            "offered_rate_per_s": args.rate or None,
            "submitted_per_s": round(submitted_per_s, 2),
            # Conservative: from the first submit to the last settlement, ramp-up included.
            "generations_per_s": round(total / elapsed, 2),
            # From the first settlement to the last: the steady rate results come out at.
            "settled_per_s": round(drain_per_s, 2),
            "p50_s": round(statistics.median(latencies), 3),
            "p95_s": round(percentile(latencies, 0.95), 3),
            "max_s": round(max(latencies), 3),
            "baseline_provider_p50_s": round(statistics.median(baseline), 3),
            "baseline_provider_p95_s": round(percentile(baseline, 0.95), 3),
            "lost": lost,
            "charged_exactly": charged == (succeeded + warm_succeeded) * 5,
            "ledger_check_clean": not violations,
            "stages_p50_p95_s": {k: [round(a, 3), round(b, 3)] for k, (a, b) in stages.items()},
            "max_queue_depth": sampler.summary(),
            "cpu_ms_per_generation": cpu,
            "db_commits_per_generation": round((commits_after - commits_before) / total, 1),
            "db_sessions_per_generation": round((sessions_after - sessions_before) / total, 1),
            "web": f"gunicorn gthread {args.web_workers}x{args.web_threads}",
            "worker": f"celery {args.pool} -c {args.worker_concurrency}",
            "conn_max_age": args.conn_max_age,
            "postgres_version": facts["server_version"],
            "fsync": facts["fsync"],
            "synchronous_commit": facts["synchronous_commit"],
            "cpus": os.cpu_count(),
        }
        print(f"{'metric':<28}{'value':>12}")
        for key in (
            "generations",
            "offered_rate_per_s",
            "submitted_per_s",
            "generations_per_s",
            "settled_per_s",
            "p50_s",
            "p95_s",
            "max_s",
            "baseline_provider_p50_s",
            "baseline_provider_p95_s",
            "lost",
            "charged_exactly",
            "ledger_check_clean",
            "db_commits_per_generation",
            "db_sessions_per_generation",
        ):
            print(f"{key:<28}{result[key]!s:>12}")
        print(f"\n{'stage':<28}{'p50_s':>10}{'p95_s':>10}")
        for step, (p50, p95) in stages.items():
            print(f"{step:<28}{p50:>10.3f}{p95:>10.3f}")
        print(f"\n{'cpu ms per generation':<28}{'':>10}")
        for kind, value in cpu.items():
            print(f"{kind:<28}{value:>10.1f}")
        print(f"{'max queue depth':<28}{sampler.summary()!s:>10}")
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


if __name__ == "__main__":
    sys.exit(main())
