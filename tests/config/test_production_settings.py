"""Production refuses development conveniences and an unsafe role model.

Every process here gets only the runtime role's ``DATABASE_URL``, as web, worker and beat do.
"""

import os
import subprocess
import sys
from pathlib import Path

import psycopg
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
        SITE_URL="https://app.example.com",
        DJANGO_ADMIN_URL="staff-only-7f3a/",
        DATABASE_URL=db_urls.app,
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


def python(env: dict[str, str], code: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter, as a server process would import the app."""
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
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


def test_runtime_url_alone_serves(db_urls):
    env = production_env(db_urls)
    assert not any(key in env for key in ("DATABASE_OWNER_URL", "DATABASE_ADMIN_URL"))
    result = python(env, "import config.wsgi")
    assert result.returncode == 0, result.stderr


def test_migrate_alone_asks_for_the_owner_url(db_urls):
    result = manage(production_env(db_urls), "migrate", "--check")
    assert result.returncode != 0
    assert "migrate needs DATABASE_OWNER_URL" in result.stderr
    with_owner = production_env(db_urls, DATABASE_OWNER_URL=db_urls.owner)
    result = manage(with_owner, "migrate", "--check")
    assert result.returncode == 0, result.stdout + result.stderr


def test_missing_runtime_url_is_refused_not_derived(db_urls, settings):
    env = production_env(db_urls, DATABASE_URL=None, DATABASE_ADMIN_URL=settings.DATABASE_ADMIN_URL)
    result = manage(env, "check")
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "Configuration error: DATABASE_URL is not set (the runtime role; see .env.example)."
    ]


def test_unset_django_env_stops_with_one_line(db_urls):
    result = manage(production_env(db_urls, DJANGO_ENV=None), "check")
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "Configuration error: DJANGO_ENV is not set: one of development, test, production "
        "(see .env.example)."
    ]


@pytest.mark.parametrize("program", ["wsgi", "celery"])
def test_unset_django_env_stops_web_and_celery(db_urls, program):
    code = {
        "wsgi": "import config.wsgi",
        "celery": "from config.celery import app; app.loader.import_default_modules()",
    }[program]
    result = python(production_env(db_urls, DJANGO_ENV=None), code)
    assert result.returncode != 0
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .endswith("DJANGO_ENV is not set: one of development, test, production (see .env.example).")
    )


@pytest.mark.parametrize(
    ("enabling", "secret"),
    [
        ({"BABYSEA_API_KEY": "bs_live_" + "k" * 24}, "PROVIDER_WEBHOOK_SECRET"),
        ({"REPLICATE_API_TOKEN": "r8_" + "t" * 24}, "REPLICATE_WEBHOOK_SECRET"),
    ],
)
def test_enabled_provider_without_its_callback_secret_is_refused(db_urls, enabling, secret):
    env = production_env(db_urls, **enabling, **{secret: None})
    result = manage(env, "check")
    assert result.returncode != 0
    assert f"{secret} is not set, but the provider it verifies is enabled" in result.stderr


def test_local_provider_without_a_secret_is_refused_in_development(db_urls):
    env = production_env(
        db_urls,
        DJANGO_ENV="development",
        LOCAL_PROVIDER_ENABLED="true",
        PROVIDER_WEBHOOK_SECRET=None,
    )
    result = manage(env, "check")
    assert result.returncode != 0
    assert "PROVIDER_WEBHOOK_SECRET is not set" in result.stderr


@pytest.mark.parametrize(
    ("base", "refused"),
    [
        ("http://api.stripe.example", True),
        ("http://127.0.0.1:9999", False),
        ("https://api.stripe.com", False),
    ],
)
def test_stripe_api_base_must_be_https_unless_loopback(db_urls, base, refused):
    result = manage(production_env(db_urls, STRIPE_API_BASE_URL=base), "check")
    assert ("STRIPE_API_BASE_URL must be https" in result.stderr) is refused
    assert (result.returncode != 0) is refused


@pytest.mark.parametrize(
    ("site_url", "refused"),
    [
        (None, True),
        ("http://app.example.com", True),
        ("https://app.example.com", False),
    ],
)
def test_site_url_must_be_the_public_https_address(db_urls, site_url, refused):
    result = manage(production_env(db_urls, SITE_URL=site_url), "check")
    assert ("SITE_URL must be the site's public https address" in result.stderr) is refused
    assert (result.returncode != 0) is refused


def test_development_secret_is_refused(db_urls):
    env = production_env(db_urls, DJANGO_SECRET_KEY="dev-" + "k" * 60)
    result = manage(env, "check")
    assert "SECRET_KEY is a development secret" in result.stderr


def test_runtime_url_pointing_at_the_owner_is_refused(db_urls):
    env = production_env(db_urls, DATABASE_URL=db_urls.owner)
    result = manage(env, "check", "--database", "default")
    assert result.returncode != 0
    assert "must own nothing" in result.stderr
    assert (
        "may write ledger_account, ledger_alert_state, ledger_entry, ledger_hold" in result.stderr
    )


def test_runtime_role_granted_a_ledger_write_is_refused(db_urls):
    grant = f"GRANT INSERT ON ledger_entry TO {db_urls.prefix}_app"
    with psycopg.connect(db_urls.owner, autocommit=True) as owner:
        owner.execute(grant)
        try:
            result = manage(production_env(db_urls), "check", "--database", "default")
        finally:
            owner.execute(grant.replace("GRANT", "REVOKE").replace(" TO ", " FROM "))
    assert result.returncode != 0
    assert "may write ledger_entry directly" in result.stderr
    assert "must own nothing" not in result.stderr


@pytest.mark.parametrize("program", ["worker", "beat"])
def test_celery_refuses_to_start_an_unsafe_production(db_urls, program, tmp_path):
    env = production_env(db_urls, DATABASE_URL=db_urls.owner)
    argv = [sys.executable, "-m", "celery", "-A", "config", program, "-l", "warning"]
    if program == "beat":
        argv += ["-s", str(tmp_path / "schedule")]
    else:
        argv += ["-P", "solo"]
    result = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
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
    result = python(env, "import config.wsgi")
    assert result.returncode != 0
    assert "LOCAL_PROVIDER_ENABLED is a development switch" in result.stderr
