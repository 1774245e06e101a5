"""What every benchmark needs: its own migrated database, and percentiles."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# Re-exported: every bench prepares its database the way `manage.py ledger dump_sql` does.
from config.dbroles import prepare_database  # noqa: E402, F401


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
