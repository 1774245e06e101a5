"""Production refuses development conveniences and an unsafe role model."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.django_db


def production_env(db_urls, **overrides: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DATABASE_", "DJANGO_", "BILLING_", "LOCAL_", "INGEST_", "SIGNUP_"))
    }
    env.update(
        DJANGO_ENV="production",
        DJANGO_SECRET_KEY="p" * 20 + "-a-long-random-production-secret-0123456789-abcdefghij",
        DJANGO_ALLOWED_HOSTS="app.example.com",
        DJANGO_ADMIN_URL="staff-only-7f3a/",
        DATABASE_URL=db_urls.app,
        DATABASE_OWNER_URL=db_urls.owner,
        DATABASE_ROLE_PREFIX=db_urls.prefix,
        STRIPE_SECRET_KEY="sk_live_" + "x" * 24,
        STRIPE_WEBHOOK_SECRET="whsec_" + "y" * 32,
        PROVIDER_WEBHOOK_SECRET="z" * 40,
    )
    env.update(overrides)
    return {key: value for key, value in env.items() if value is not None}


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_is_clean_at_warning_level(db_urls):
    result = manage(production_env(db_urls), "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues (0 silenced)" in result.stdout


def test_runtime_role_passes_the_database_checks(db_urls):
    result = manage(production_env(db_urls), "check", "--deploy", "--database", "default")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    "switch", ["BILLING_STANDIN_ENABLED", "LOCAL_PROVIDER_ENABLED", "INGEST_ALLOW_PRIVATE_HOSTS"]
)
def test_development_switches_are_refused(db_urls, switch):
    result = manage(production_env(db_urls, **{switch: "true"}), "check", "--deploy")
    assert result.returncode != 0
    assert f"{switch} is a development switch" in result.stderr


def test_signup_bonus_is_refused(db_urls):
    result = manage(production_env(db_urls, SIGNUP_BONUS_CREDITS="50"), "check")
    assert "SIGNUP_BONUS_CREDITS is a development switch" in result.stderr


def test_missing_owner_url_is_refused(db_urls):
    result = manage(production_env(db_urls, DATABASE_OWNER_URL=None), "check")
    assert result.returncode != 0
    assert "DATABASE_OWNER_URL is not set" in result.stderr


def test_development_secret_is_refused(db_urls):
    env = production_env(db_urls, DJANGO_SECRET_KEY="dev-" + "k" * 60)
    result = manage(env, "check")
    assert "SECRET_KEY is a development secret" in result.stderr


def test_runtime_url_pointing_at_the_owner_is_refused(db_urls):
    env = production_env(db_urls, DATABASE_URL=db_urls.owner)
    result = manage(env, "check", "--database", "default")
    assert result.returncode != 0
    assert "must own nothing" in result.stderr


def test_missing_secret_fails_with_one_line_naming_it(db_urls):
    result = manage(production_env(db_urls, DJANGO_SECRET_KEY=None), "check")
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "Configuration error: DJANGO_SECRET_KEY is not set (see .env.example)."
    ]


def test_malformed_setting_fails_naming_it(db_urls):
    result = manage(production_env(db_urls, DATABASE_CONN_MAX_AGE="soon"), "check")
    assert "DATABASE_CONN_MAX_AGE must be a whole number" in result.stderr


def test_wsgi_refuses_to_serve_an_unsafe_production(db_urls):
    env = production_env(db_urls, LOCAL_PROVIDER_ENABLED="true")
    result = subprocess.run(
        [sys.executable, "-c", "import config.wsgi"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "LOCAL_PROVIDER_ENABLED is a development switch" in result.stderr
