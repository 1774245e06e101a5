"""``make prod-check``: run the app as production runs it and walk a customer's journey.

usage: python -m config.devstack --test -- python -m tests.production [--screenshots DIR]

Static files are built by ``deploy/build-static`` (the Dockerfile's step). The database is
bootstrapped with the admin URL and migrated with the owner URL; gunicorn, a Celery worker and
beat then get ``DJANGO_ENV=production``, fresh secrets and the runtime ``DATABASE_URL`` alone.
BabySea is the local provider, configured as a real BabySea endpoint (API key, base URL, output
host named in ``INGEST_INTERNAL_HOSTS``); Stripe is the suite's fake at its HTTP boundary; mail
goes over SMTP to a sink. Every request passes a TLS-terminating proxy stand-in. Prints each
step with its time; exits non-zero on any failed step or 5xx.
"""

from __future__ import annotations

import argparse
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import httpx

from config.devstack.processes import die_with_parent, free_ports
from config.env import with_credentials
from tests.production.browser import Browser, WalkFailed
from tests.production.stand_ins import SmtpSink, StripeApi, TlsProxy
from tests.production.walk import Journey

ROOT = Path(__file__).resolve().parents[2]
LOGS = ROOT / "test-artifacts" / "prod-check"
DBNAME = "genmedia"
# Settings the walk decides; anything else in the caller's environment is dropped.
OWN_PREFIXES = (
    "DJANGO_", "DATABASE_", "BILLING_", "LOCAL_", "INGEST_", "SIGNUP_", "STRIPE_", "PROVIDER_",
    "BABYSEA_", "REPLICATE_", "EMAIL_", "SITE_", "DEBUG", "SENTRY_", "CACHE_URL",
)  # fmt: skip


def say(step: str, seconds: float, note: str = "") -> None:
    print(f"prod-check: {step:<14} {seconds:6.2f}s  {note}".rstrip(), flush=True)


class Processes:
    """The production processes, each logging to its own file, stopped together."""

    def __init__(self) -> None:
        self.running: dict[str, subprocess.Popen] = {}

    def run(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        """Run a one-shot command; raise with its output when it fails."""
        done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
        (LOGS / f"{name}.log").write_text(done.stdout + done.stderr)
        if done.returncode != 0:
            raise WalkFailed(f"{name} exited {done.returncode}:\n{done.stdout}{done.stderr}")

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        log = open(LOGS / f"{name}.log", "wb")  # noqa: SIM115 - the child keeps writing to it
        self.running[name] = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            process_group=0,
            preexec_fn=die_with_parent(),
        )

    def wait_for_line(self, name: str, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.assert_alive()
            if text in (LOGS / f"{name}.log").read_text(errors="replace"):
                return
            time.sleep(0.2)
        raise WalkFailed(f"{name} did not log {text!r} within {timeout:.0f}s")

    def assert_nothing_logged_as_error(self) -> str:
        """Fail on any ERROR or CRITICAL log line or traceback from web, worker or beat."""
        markers = ('"level": "ERROR"', '"level": "CRITICAL"', "Traceback (most recent call last)")
        for name in ("web", "worker", "beat"):
            text = (LOGS / f"{name}.log").read_text(errors="replace")
            found = [line for line in text.splitlines() if any(m in line for m in markers)]
            if found:
                raise WalkFailed(f"{name} logged errors: {found[:3]}")
        return "web, worker, beat"

    def assert_alive(self) -> None:
        for name, process in self.running.items():
            if process.poll() is not None:
                raise WalkFailed(f"{name} exited with code {process.returncode}")

    def stop(self) -> None:
        for process in self.running.values():
            if process.poll() is None:
                os.killpg(process.pid, 15)
        for process in self.running.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, 9)
                process.wait()


def production_env(**settings: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(OWN_PREFIXES)}
    return {**base, "DJANGO_ENV": "production", "PYTHONUNBUFFERED": "1", **settings}


def wait_until_ready(url: str, processes: Processes, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        processes.assert_alive()
        try:
            if httpx.get(url, timeout=10).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise WalkFailed(f"{url} did not answer 200 within {timeout:.0f}s")


def screenshot(origin_url: str, directory: Path) -> None:
    """Save the production home page at phone and desktop widths (for a person to look at)."""
    from playwright.sync_api import sync_playwright

    chromium = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
    directory.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        for width in (375, 1280):
            page = browser.new_page(viewport={"width": width, "height": 900})
            page.set_extra_http_headers({"X-Forwarded-Proto": "https"})
            page.goto(origin_url + "/")
            page.screenshot(path=str(directory / f"home-{width}.png"), full_page=True)
            page.close()
        browser.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.production", description=__doc__)
    parser.add_argument("--screenshots", type=Path, help="save the home page at 375 and 1280 px")
    args = parser.parse_args(argv)
    admin_url = os.environ.get("DATABASE_ADMIN_URL")
    if not admin_url:
        print("prod-check: DATABASE_ADMIN_URL is not set; run `make prod-check`", file=sys.stderr)
        return 2
    LOGS.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    processes = Processes()
    stand_ins: list = []
    try:
        code = walk(admin_url, processes, stand_ins, args.screenshots)
    except WalkFailed as failure:
        print(f"prod-check: FAILED: {failure}", file=sys.stderr)
        print(f"prod-check: process logs are in {LOGS}", file=sys.stderr)
        code = 1
    finally:
        processes.stop()
        for stand_in in stand_ins:
            stand_in.stop()
    say("total", time.monotonic() - began, "passed" if code == 0 else "FAILED")
    return code


def walk(admin_url: str, processes: Processes, stand_ins: list, shots: Path | None) -> int:
    python = sys.executable
    started = time.monotonic()
    processes.run(
        "build-static", [str(ROOT / "deploy" / "build-static")], {**os.environ, "PYTHON": python}
    )
    say("build static", time.monotonic() - started, "deploy/build-static, as the Dockerfile")

    started = time.monotonic()
    gunicorn_port, provider_port = free_ports(2)
    proxy, stripe, sink = TlsProxy(gunicorn_port), StripeApi(), SmtpSink()
    stand_ins += [proxy, stripe, sink]
    origin = f"https://127.0.0.1:{proxy.port}"
    passwords = {role: secrets.token_urlsafe(18) for role in ("app", "owner")}
    role_url = {
        role: with_credentials(admin_url, user=f"{DBNAME}_{role}", password=pw, dbname=DBNAME)
        for role, pw in passwords.items()
    }
    secret = {
        "stripe": "whsec_" + secrets.token_urlsafe(32),
        "provider": secrets.token_urlsafe(32),
        "babysea_key": "bs_" + secrets.token_urlsafe(24),
    }
    env = production_env(
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        DJANGO_ALLOWED_HOSTS="127.0.0.1",
        DJANGO_ADMIN_URL=f"staff-{secrets.token_hex(6)}/",
        SITE_URL=origin,
        DATABASE_URL=role_url["app"],
        DATABASE_CONN_MAX_AGE="60",
        EMAIL_HOST="127.0.0.1",
        EMAIL_PORT=str(sink.port),
        EMAIL_USE_TLS="false",
        DEFAULT_FROM_EMAIL="Genmedia <noreply@example.com>",
        STRIPE_SECRET_KEY="sk_test_" + secrets.token_hex(12),
        STRIPE_WEBHOOK_SECRET=secret["stripe"],
        STRIPE_API_BASE_URL=stripe.url,
        STRIPE_MAX_NETWORK_RETRIES="0",
        BABYSEA_API_KEY=secret["babysea_key"],
        BABYSEA_API_BASE_URL=f"http://127.0.0.1:{provider_port}",
        BABYSEA_OUTPUT_HOSTS="127.0.0.1",
        INGEST_INTERNAL_HOSTS="127.0.0.1",
        PROVIDER_WEBHOOK_SECRET=secret["provider"],
    )
    manage = [python, "manage.py"]
    bootstrap_env = {
        **env,
        "DATABASE_OWNER_URL": role_url["owner"],
        "DATABASE_ADMIN_URL": admin_url,
    }
    processes.run("db_bootstrap", [*manage, "db_bootstrap"], bootstrap_env)
    processes.run(
        "migrate",
        [*manage, "migrate", "--noinput"],
        {**env, "DATABASE_OWNER_URL": role_url["owner"]},
    )
    processes.run("check", [*manage, "check", "--deploy", "--database", "default"], env)
    say("database", time.monotonic() - started, "bootstrap (admin URL), migrate (owner URL), check")

    started = time.monotonic()
    provider = [python, "-m", "generation.local_provider", "--port", str(provider_port)]
    provider += ["--callback-url", f"{proxy.url}/webhooks/providers/babysea/"]
    provider += ["--secret", secret["provider"], "--api-key", secret["babysea_key"]]
    provider += ["--delay-ms", "300", "--image-size", "64"]
    processes.start(
        "provider", provider, {k: v for k, v in os.environ.items() if k != "DJANGO_ENV"}
    )
    gunicorn = [
        python,
        "-m",
        "gunicorn",
        "config.wsgi:application",
        "--bind",
        f"127.0.0.1:{gunicorn_port}",
    ]
    gunicorn += ["--workers", "1", "--access-logfile", "-", "--no-control-socket"]
    processes.start("web", gunicorn, env)
    # One process each: the walk is one customer, and CI's two cores start all of them at once.
    celery = [python, "-m", "celery", "-A", "config"]
    worker = [*celery, "worker", "-Q", "start,settle,default", "-c", "1", "-l", "info"]
    processes.start("worker", worker, env)
    schedule = str(LOGS / "celerybeat-schedule")
    processes.start("beat", [*celery, "beat", "-s", schedule, "-l", "info"], env)
    wait_until_ready(f"{proxy.url}/healthz", processes)
    processes.wait_for_line("worker", " ready.")
    processes.wait_for_line("beat", "beat: Starting")
    say("start", time.monotonic() - started, "gunicorn, worker, beat: DATABASE_URL only")

    journey = Journey(Browser(proxy.url, origin), proxy, sink, stripe, secret["stripe"])
    for name, step in journey.steps():
        started = time.monotonic()
        note = step()
        processes.assert_alive()
        say(name, time.monotonic() - started, note or "")
    started = time.monotonic()
    note = processes.assert_nothing_logged_as_error()
    say("no errors", time.monotonic() - started, note)
    if shots:
        started = time.monotonic()
        screenshot(proxy.url, shots)
        say("screenshots", time.monotonic() - started, str(shots))
    return 0


if __name__ == "__main__":
    sys.exit(main())
