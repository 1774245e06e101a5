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

``--capacity`` searches instead: it offers ``--start-rate`` for ``--step-seconds``, then raises
the rate by ``--step-factor`` round after round until p95 passes ``--p95-limit`` (3 s) or a
generation is lost, and reports the highest offered rate that held as
``capacity_generations_per_s``. Commits per generation count every PostgreSQL transaction
(``pg_stat_database.xact_commit``, reads and Django's connection health checks included);
``xids_per_generation`` counts transaction ids consumed (writing transactions, plus savepoints
that wrote).
``--app-root DIR`` runs gunicorn and the worker from another checkout with the same driver, so a
baseline commit and the change are measured back to back in one launcher session::

    python -m config.devstack --test -- bash -c '.venv/bin/python bench/pipeline.py \
        --capacity --app-root /tmp/baseline; .venv/bin/python bench/pipeline.py --capacity'

Run through the launcher so PostgreSQL, Valkey and S3 exist with fsync and synchronous_commit on:
``python -m config.devstack --test -- .venv/bin/python bench/pipeline.py --quick``
(``--pool prefork --worker-concurrency 6`` gives the previous worker topology).
"""

from __future__ import annotations

import argparse
import json
import os
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

from support import generate_form, percentile, prepare_database, serving  # noqa: E402

from config.dbroles import drop_database  # noqa: E402
from tests.e2e.helpers import LocalProvider, free_port, wait_until  # noqa: E402

SECRET = "whsec_bench_" + uuid.uuid4().hex


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


def _launcher_pid() -> int:
    """Return the devstack launcher's pid (its children include PostgreSQL), else the parent's."""
    pid = os.getppid()
    while pid > 1:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            break
        if b"config.devstack" in cmdline:
            return pid
        pid = int(stat.rsplit(")", 1)[1].split()[1])
    return os.getppid()


def _db_counters(cursor) -> tuple[int, int]:
    cursor.execute(
        "SELECT xact_commit, sessions FROM pg_stat_database WHERE datname = current_database()"
    )
    return cursor.fetchone()


def start(argv: list[str], env: dict[str, str], log: Path, cwd: Path = ROOT) -> subprocess.Popen:
    return subprocess.Popen(
        argv,
        cwd=cwd,
        env=env,
        stdout=open(log, "wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def submit_through_view(client: httpx.Client) -> tuple[str, float]:
    """GET the generate page, POST the form; return the generation id and the submit time."""
    page = client.get("/generations/new/?model=flux-schnell")
    began = time.time()
    response = client.post(
        "/generations/new/",
        data=generate_form(page.content, "a small bench image"),
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


def _xid(cursor) -> int:
    """Return the next transaction id: its growth counts the transactions that wrote."""
    cursor.execute("SELECT pg_current_xact_id()::text::bigint")
    return cursor.fetchone()[0]


class Round:
    """One timed round at an offered rate, measured from the first submit to the last settle."""

    def __init__(self, clients, concurrency: int, broker_url: str) -> None:
        self.clients, self.concurrency, self.broker_url = clients, concurrency, broker_url

    def run(self, rate: float, total: int) -> dict:
        from django.db import connection

        from generation.models import Generation, Status

        sampler = QueueSampler(self.broker_url, ("start", "settle"))
        sampler.start()
        cpu_before = _cpu_groups(_launcher_pid())
        with connection.cursor() as cursor:
            commits_before, sessions_before = _db_counters(cursor)
            xid_before = _xid(cursor)
        started = time.time()

        def paced(i: int) -> tuple[str, float]:
            if rate > 0:
                time.sleep(max(0.0, started + i / rate - time.time()))
            return submit_through_view(self.clients[i % len(self.clients)])

        with ThreadPoolExecutor(self.concurrency) as pool:
            submitted = list(pool.map(paced, range(total)))
        submit_time = {gid: began for gid, began in submitted}
        ids = list(submit_time)
        settled = wait_until(
            lambda: all_settled(ids),
            timeout=max(120, total / max(rate, 1) * 4),
            interval=0.5,
            what="every generation to settle",
        )
        sampler.halt.set()
        cpu_after = _cpu_groups(_launcher_pid())
        with connection.cursor() as cursor:
            xid_after = _xid(cursor)
            # The statistics collector reports a backend's counts within a second.
            time.sleep(1.1)
            commits_after, sessions_after = _db_counters(cursor)
        rows = list(
            Generation.objects.filter(pk__in=ids).values_list("pk", "status", "finished_at")
        )
        done = [(pk, status, finished) for pk, status, finished in rows if finished]
        latencies = [finished.timestamp() - submit_time[str(pk)] for pk, _, finished in done]
        finished_last = max(finished.timestamp() for _, _, finished in done)
        first_submit = min(submit_time.values())
        elapsed = finished_last - first_submit
        succeeded = sum(1 for _, status, _ in rows if status == Status.SUCCEEDED)
        cpu = {
            kind: round((cpu_after.get(kind, 0.0) - cpu_before.get(kind, 0.0)) / total * 1000, 1)
            for kind in sorted(cpu_after)
        }
        # The system under test: not the bench's own clients, not the stand-in provider.
        served = sum(v for k, v in cpu.items() if k not in ("bench", "provider", "other"))
        return {
            "offered_rate_per_s": rate or None,
            "generations": total,
            "settled": bool(settled),
            "submitted_per_s": round(
                (total - 1) / max(max(submit_time.values()) - first_submit, 1e-9), 2
            ),
            "generations_per_s": round(total / elapsed, 2),
            "p50_s": round(statistics.median(latencies), 3),
            "p95_s": round(percentile(latencies, 0.95), 3),
            "max_s": round(max(latencies), 3),
            "succeeded": succeeded,
            "lost": total - succeeded,
            "stages_p50_p95_s": {
                k: [round(a, 3), round(b, 3)] for k, (a, b) in stage_breakdown(submit_time).items()
            },
            "max_queue_depth": sampler.summary(),
            "cpu_ms_by_process": cpu,
            "cpu_ms_per_generation": round(served, 1),
            # Every transaction (reads too); transaction ids consumed count the writing ones,
            # plus one per savepoint that wrote (a ledger call inside a caller's transaction).
            "commits_per_generation": round((commits_after - commits_before) / total, 1),
            "xids_per_generation": round((xid_after - xid_before - 1) / total, 1),
            "db_sessions_per_generation": round((sessions_after - sessions_before) / total, 1),
        }


def all_settled(ids) -> bool:
    from generation.models import Generation, Status

    return (
        not Generation.objects.filter(pk__in=ids)
        .exclude(status__in=(Status.SUCCEEDED, Status.FAILED, Status.REJECTED))
        .exists()
        and not Generation.objects.filter(pk__in=ids, pending_action__isnull=False).exists()
    )


def capacity_search(round_: Round, args) -> tuple[float, list[dict]]:
    """Raise the offered rate until p95 passes the limit or anything is lost.

    Each step offers ``rate`` for ``--step-seconds``; the capacity is the highest offered rate
    whose round kept p95 under ``--p95-limit`` with nothing lost.
    """
    rate, best, steps = args.start_rate, 0.0, []
    while rate <= args.max_rate:
        total = max(40, round(rate * args.step_seconds))
        step = round_.run(rate, total)
        steps.append(step)
        passed = step["settled"] and step["lost"] == 0 and step["p95_s"] < args.p95_limit
        print(
            f"offered {rate:>6.1f}/s  achieved {step['generations_per_s']:>6.2f}/s  "
            f"p50 {step['p50_s']:>6.3f}s  p95 {step['p95_s']:>6.3f}s  lost {step['lost']}  "
            f"commits {step['commits_per_generation']:>5.1f} "
            f"(xids {step['xids_per_generation']:>4.1f})  "
            f"cpu {step['cpu_ms_per_generation']:>6.1f} ms  {'ok' if passed else 'STOP'}",
            flush=True,
        )
        if not passed:
            break
        best = rate
        rate = round(rate * args.step_factor, 1)
    return best, steps


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="60 generations instead of 300")
    parser.add_argument(
        "--capacity",
        action="store_true",
        help="raise the offered rate step by step until p95 passes --p95-limit or any is lost",
    )
    parser.add_argument("--start-rate", type=float, default=8.0)
    parser.add_argument("--step-factor", type=float, default=1.25)
    parser.add_argument("--max-rate", type=float, default=60.0)
    parser.add_argument("--step-seconds", type=float, default=12.0)
    parser.add_argument("--p95-limit", type=float, default=3.0)
    parser.add_argument(
        "--app-root",
        type=Path,
        default=ROOT,
        help="run gunicorn and the worker from this checkout (a baseline commit's worktree)",
    )
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
    # Enough for every round of a capacity search, which stops at --max-rate.
    granted = 1_000_000 if args.capacity else (total + args.warmup) * 10
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
    # The clients keep connections alive between rounds, as browsers do; gunicorn's 2 s default
    # would close them while idle and race the next request into a connection reset.
    web_argv += ["--keep-alive", "75"]
    worker_argv = [sys.executable, "-m", "celery", "-A", "config", "worker"]
    worker_argv += ["-Q", "start,settle,default", "-P", args.pool]
    worker_argv += ["-c", str(args.worker_concurrency), "--prefetch-multiplier", "1"]
    worker_argv += ["--without-gossip", "--without-mingle", "-l", "warning"]
    app_root = args.app_root.resolve()
    processes = [
        start(web_argv, env, logs / "web.log", cwd=app_root),
        start(worker_argv, env, logs / "worker.log", cwd=app_root),
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

        with ThreadPoolExecutor(args.concurrency) as pool:
            warm = [
                gid
                for gid, _ in pool.map(
                    lambda i: submit_through_view(clients[i % len(clients)]), range(args.warmup)
                )
            ]
        wait_until(lambda: all_settled(warm), timeout=120, interval=0.2, what="the warm-up round")
        timed = Round(clients, args.concurrency, settings.CELERY_BROKER_URL)
        if args.capacity:
            capacity, steps = capacity_search(timed, args)
            measured = [step for step in steps if step["offered_rate_per_s"] == capacity]
            best = measured[0] if measured else steps[0]
        else:
            best = timed.run(args.rate, total)
            steps = [best]
        all_ids = list(Generation.objects.filter(user__in=users).values_list("pk", flat=True))
        succeeded_all = Generation.objects.filter(pk__in=all_ids, status=Status.SUCCEEDED).count()
        lost = len(all_ids) - succeeded_all
        violations = ledger.check()
        charged = sum(granted - ledger.balance(u.pk).available for u in users)
        with connection.cursor() as cursor:
            facts = {}
            for name in ("server_version", "fsync", "synchronous_commit"):
                cursor.execute(f"SHOW {name}")
                facts[name] = cursor.fetchone()[0]
        result = {
            "bench": "pipeline",
            "mode": "capacity" if args.capacity else "rate",
            "app_root": str(app_root),
            "app_commit": subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"],
                cwd=app_root,
                capture_output=True,
                text=True,
            ).stdout.strip(),
            **({"capacity_generations_per_s": capacity} if args.capacity else {}),
            **{k: best[k] for k in best if k not in ("stages_p50_p95_s", "max_queue_depth")},
            "stages_p50_p95_s": best["stages_p50_p95_s"],
            "max_queue_depth": best["max_queue_depth"],
            "steps": [
                {
                    k: step[k]
                    for k in (
                        "offered_rate_per_s",
                        "generations_per_s",
                        "p95_s",
                        "lost",
                        "commits_per_generation",
                        "cpu_ms_per_generation",
                    )
                }
                for step in steps
            ],
            "warmup_generations": args.warmup,
            "baseline_provider_p50_s": round(statistics.median(baseline), 3),
            "baseline_provider_p95_s": round(percentile(baseline, 0.95), 3),
            # Over every round, warm-up included: nothing lost, every success charged once.
            "lost": lost,
            "charged_exactly": charged == succeeded_all * 5,
            "ledger_check_clean": not violations,
            "web": f"gunicorn gthread {args.web_workers}x{args.web_threads}",
            "worker": f"celery {args.pool} -c {args.worker_concurrency}",
            "conn_max_age": args.conn_max_age,
            "postgres_version": facts["server_version"],
            "fsync": facts["fsync"],
            "synchronous_commit": facts["synchronous_commit"],
            "cpus": os.cpu_count(),
            "load_average_1m": round(os.getloadavg()[0], 2),
        }
        print(f"\n{'metric':<30}{'value':>12}")
        for key in (
            "capacity_generations_per_s",
            "offered_rate_per_s",
            "generations_per_s",
            "p50_s",
            "p95_s",
            "max_s",
            "baseline_provider_p50_s",
            "baseline_provider_p95_s",
            "lost",
            "charged_exactly",
            "ledger_check_clean",
            "commits_per_generation",
            "xids_per_generation",
            "db_sessions_per_generation",
            "cpu_ms_per_generation",
        ):
            if key in result:
                print(f"{key:<30}{result[key]!s:>12}")
        print(f"\n{'stage':<30}{'p50_s':>10}{'p95_s':>10}")
        for step, (p50, p95) in best["stages_p50_p95_s"].items():
            print(f"{step:<30}{p50:>10.3f}{p95:>10.3f}")
        print(f"\n{'cpu ms per generation':<30}")
        for kind, value in best["cpu_ms_by_process"].items():
            print(f"{kind:<30}{value:>10.1f}")
        print(f"{'max queue depth':<30}{best['max_queue_depth']!s:>10}")
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
