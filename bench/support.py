"""What every benchmark needs: its own migrated database, percentiles, and the generate form."""

from __future__ import annotations

import re
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


CSRF = re.compile(rb'name="csrfmiddlewaretoken" value="([^"]+)"')
# The form's one-time key: a browser posts it back, and a repeat of it is the same submission.
SUBMISSION_KEY = re.compile(rb'name="submission_key" value="([^"]+)"')


def generate_form(page: bytes, prompt: str) -> dict[str, str]:
    """Return what a browser posts from the generate page: one small Flux Schnell image."""
    key = SUBMISSION_KEY.search(page)
    return {
        "csrfmiddlewaretoken": CSRF.search(page).group(1).decode(),
        "submission_key": key.group(1).decode() if key else "",
        "model": "flux-schnell",
        "prompt": prompt,
        "ratio": "1:1",
        "output_format": "png",
        "outputs": "1",
    }
