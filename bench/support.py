"""What every benchmark needs: its own migrated database, and percentiles."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from config.dbroles import RolePlan, bootstrap, drop_database  # noqa: E402
from config.env import with_credentials  # noqa: E402


def prepare_database(admin_url: str, dbname: str, **settings: str) -> tuple[dict, RolePlan]:
    """Bootstrap and migrate a fresh database as production does; return the app's environment.

    ``settings`` are extra environment variables for the app (they win over the defaults here).
    """
    plan = RolePlan.for_database(dbname)
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
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(40),
        **settings,
    }
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--database", "owner", "-v", "0"],
        cwd=ROOT,
        env={**os.environ, **env},
        check=True,
    )
    return env, plan


def percentile(values: list[float], fraction: float) -> float:
    """Return the nearest-rank percentile (``fraction`` 0.95 for p95) of a non-empty list."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def serving(web: str) -> bool:
    """Return whether the app at ``web`` answers ``/healthz`` without a server error."""
    try:
        return httpx.get(f"{web}/healthz", timeout=2).status_code < 500
    except httpx.HTTPError:
        return False
