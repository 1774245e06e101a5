"""Count the database commits one generation costs, by phase and by statement.

Runs generations one at a time through the code the servers run, in this process so every
statement is seen: the generate page and its POST (Django's test client through the whole
middleware stack), the start task's service (hold, reserve, dispatch to the local provider), the
provider's two signed callbacks through the real endpoint, and the settle task's service for each
(ingest, capture). A Django execute wrapper counts every autocommit statement as one commit and
every outermost ``atomic`` block as one; ``pg_stat_database.xact_commit`` over the same run is
printed beside it as a check (it also sees connection set-up and the session middleware).

``python -m config.devstack --test -- .venv/bin/python bench/commits.py [--generations 20]``
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from support import generate_form, prepare_database  # noqa: E402

from config.dbroles import drop_database  # noqa: E402
from tests.e2e.helpers import LocalProvider, babysea_header, wait_until  # noqa: E402

SECRET = "whsec_commits_" + uuid.uuid4().hex
PHASES = ("create", "start", "callback", "settle")


class CommitCounter:
    """An execute wrapper: which phase is running, and what each of its commits held."""

    def __init__(self, connection) -> None:
        self.connection = connection
        self.phase = "setup"
        self.commits: collections.Counter = collections.Counter()
        self.statements: collections.Counter = collections.Counter()
        self.by_statement: dict[str, collections.Counter] = collections.defaultdict(
            collections.Counter
        )
        self._open = False

    def __call__(self, execute, sql, params, many, context):
        shape = " ".join(str(sql).split())[:90]
        self.statements[self.phase] += 1
        if not self.connection.in_atomic_block:
            self.commits[self.phase] += 1
            self.by_statement[self.phase][f"auto: {shape}"] += 1
        elif not self._open:
            self._open = True
            phase = self.phase
            self.by_statement[phase][f"atomic: {shape}"] += 1

            def committed() -> None:
                self.commits[phase] += 1

            self.connection.on_commit(committed)
            self.connection.on_commit(self._close)
        return execute(sql, params, many, context)

    def _close(self) -> None:
        self._open = False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generations", type=int, default=20)
    parser.add_argument("--show", type=int, default=12, help="statements listed per phase")
    args = parser.parse_args()
    admin_url = os.environ.get("DATABASE_ADMIN_URL")
    if not admin_url:
        print("DATABASE_ADMIN_URL is not set: run through python -m config.devstack --test")
        return 2
    db_env, _ = prepare_database(admin_url, f"bench_commits_{os.getpid()}")
    provider = LocalProvider(callback_url="http://127.0.0.1:9/unused/", secret=SECRET, delay_ms=50)
    provider.set_faults(lose_callback=True)
    os.environ.update(
        {
            **db_env,
            "LOCAL_PROVIDER_ENABLED": "true",
            "LOCAL_PROVIDER_URL": provider.url,
            "PROVIDER_WEBHOOK_SECRET": SECRET,
            "INGEST_ALLOW_PRIVATE_HOSTS": "true",
            "GENERATION_RATE_LIMIT_COUNT": "1000000",
            "WEBHOOK_RATE_LIMIT_COUNT": "1000000",
            "DATABASE_CONN_MAX_AGE": "600",
        }
    )
    try:
        import django

        django.setup()
        from django.contrib.auth import get_user_model
        from django.db import connection
        from django.test import Client

        from generation.models import Generation, ProviderCallback, Status
        from generation.services.callbacks import settle_callback
        from generation.services.dispatch import start_generation
        from ledger import api as ledger
        from tests.generation.flow import callback_body

        user = get_user_model().objects.create_user(email="commits@example.com", password=None)
        ledger.grant(user.pk, 10 * (args.generations + 2), key=f"bench:{user.pk}", source="bench")
        client = Client()
        client.force_login(user)

        def xact_commit() -> int:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
                )
                return cursor.fetchone()[0]

        def one_generation() -> str:
            counter.phase = "create"
            page = client.get("/generations/new/?model=flux-schnell")
            response = client.post(
                "/generations/new/", data=generate_form(page.content, "counting commits")
            )
            assert response.status_code == 302, response.content[:300]
            generation_id = response["Location"].rstrip("/").rsplit("/", 1)[1]
            counter.phase = "start"
            start_generation(generation_id)
            counter.phase = "check"
            generation = Generation.objects.get(pk=generation_id)
            job = wait_until(
                lambda: (
                    data
                    if (data := provider.content(generation.provider_job_id).json()["data"])[
                        "generation_status"
                    ]
                    == "succeeded"
                    else None
                ),
                timeout=20,
                what="the job",
            )
            counter.phase = "callback"
            for body in (callback_body(job, status="processing"), callback_body(job)):
                answer = client.post(
                    "/webhooks/providers/babysea/",
                    data=body,
                    content_type="application/json",
                    HTTP_X_BABYSEA_SIGNATURE=babysea_header(body, SECRET),
                )
                assert answer.status_code == 200, answer.content
            counter.phase = "check"
            ids = list(
                ProviderCallback.objects.filter(
                    generation_id=generation_id, processed_at__isnull=True
                )
                .order_by("pk")
                .values_list("pk", flat=True)
            )
            counter.phase = "settle"
            for callback_id in ids:
                settle_callback(callback_id)
            counter.phase = "check"
            assert Generation.objects.get(pk=generation_id).status == Status.SUCCEEDED
            return generation_id

        counter = CommitCounter(connection)
        one_generation()  # warm-up: imports, connections, first-request caches
        connection.execute_wrappers.append(counter)
        counter.commits.clear(), counter.statements.clear(), counter.by_statement.clear()
        counter.phase = "setup"
        before = xact_commit()
        for _ in range(args.generations):
            one_generation()
        counter.phase = "setup"
        time.sleep(1.1)  # a backend reports its counts to the statistics within a second
        after = xact_commit()
        n = args.generations
        print(f"{'phase':<12}{'commits':>10}{'statements':>12}   (per generation)")
        for phase in PHASES:
            commits, statements = counter.commits[phase] / n, counter.statements[phase] / n
            print(f"{phase:<12}{commits:>10.1f}{statements:>12.1f}")
        counted = sum(counter.commits[p] for p in PHASES) / n
        checks = counter.commits["check"] / n
        server = (after - before) / n - checks - 1 / n
        print(f"{'total':<12}{counted:>10.1f}")
        print(
            f"pg_stat_database xact_commit per generation (less the bench's checks): {server:.1f}"
        )
        for phase in PHASES:
            print(f"\n{phase}: commits by first statement (per generation)")
            for shape, count in counter.by_statement[phase].most_common(args.show):
                print(f"  {count / n:>5.1f}  {shape}")
        print(
            json.dumps(
                {
                    "bench": "commits",
                    "generations": n,
                    "commits_per_generation": round(counted, 1),
                    "xact_commit_per_generation": round(server, 1),
                    "by_phase": {p: round(counter.commits[p] / n, 1) for p in PHASES},
                }
            )
        )
        return 0
    finally:
        provider.stop()
        from django.db import connections

        connections.close_all()
        drop_database(admin_url, db_env["DATABASE_NAME"])


if __name__ == "__main__":
    sys.exit(main())
