"""Browser fixtures: Debian's Chromium driven by Playwright against the live server and workers.

Every page a test opens is watched: console errors, page errors and CSP violations (reported by
an init script through ``securitypolicyviolation``) are collected and asserted empty, and
``shot()`` checks a page for horizontal scroll at 375 px before saving its screenshot to
``test-artifacts/screenshots/``.
"""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis
from django.conf import settings as django_settings
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from tests.e2e.conftest import FAST, worker_env
from tests.e2e.conftest import SECRET as E2E_SECRET
from tests.e2e.helpers import ROOT, LocalProvider, Worker, wait_until

# `make test` exports CHROMIUM_PATH (Debian's chromium unless you name another).
CHROMIUM = os.environ.get("CHROMIUM_PATH") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
MOBILE = {"width": 375, "height": 740}
DESKTOP = {"width": 1280, "height": 860}
STRIPE_SECRET = "whsec_browser_" + uuid.uuid4().hex

# Reported to the page's console, which Playwright hears; CSP reports never need a network.
CSP_LISTENER = """
document.addEventListener('securitypolicyviolation', (e) => {
  console.error('CSP violation: ' + e.violatedDirective + ' blocked ' + (e.blockedURI || 'inline'));
});
"""


@dataclass
class Watch:
    """What went wrong on a page: console errors, uncaught exceptions, CSP violations."""

    problems: list[str] = field(default_factory=list)
    expected: list[re.Pattern] = field(default_factory=list)

    def console(self, message) -> None:
        if message.type != "error":
            return
        text = message.text
        if any(pattern.search(text) for pattern in self.expected):
            return
        self.problems.append(f"console: {text} ({message.location.get('url', '')})")

    def allow_once(self, pattern: str) -> None:
        """Accept one expected error (a deliberate 404 logs "Failed to load resource")."""
        self.expected.append(re.compile(pattern))

    def assert_clean(self) -> None:
        assert self.problems == [], "\n".join(self.problems)


@pytest.fixture(scope="package")
def chromium():
    """One headless Chromium for the browser tests (never ``playwright install``: Debian's).

    Playwright's sync API keeps an event loop running in this thread until it stops, which makes
    Django refuse ORM calls here (the test body, the database flush after each test). They are
    still plain synchronous calls, so allow them for exactly as long as Playwright runs.
    """
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"{CHROMIUM} is missing: apt-get install -y chromium (make test does it as root), "
            "or set CHROMIUM_PATH to a Chromium or Chrome"
        )
    from playwright.sync_api import sync_playwright

    before = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            yield browser
            browser.close()
    finally:
        if before is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = before


@dataclass
class Stack:
    provider: LocalProvider
    worker: Worker


@pytest.fixture(scope="package")
def stack(db_urls, live_server, django_db_setup, tmp_path_factory):
    """The local provider calling the live server back, and one real worker, for all tests here.

    Started once (a worker takes seconds to boot on a busy machine); each test makes its own
    users and rows, and the settings the workers read are the e2e ones.
    """
    callback_url = f"{live_server.url}/webhooks/providers/babysea/"
    provider = LocalProvider(callback_url=callback_url, secret=E2E_SECRET, delay_ms=300)
    env = worker_env(db_urls, provider)
    # Messages left by earlier tests name rows that no longer exist: start from an empty broker.
    redis.Redis.from_url(django_settings.CELERY_BROKER_URL).flushdb()
    log = tmp_path_factory.mktemp("browser") / "worker.log"
    worker = Worker(env, log=log, name="browser")
    try:
        wait_until(
            lambda: log.exists() and b" ready." in log.read_bytes(),
            timeout=90,
            what=f"worker to be ready (log {log})",
        )
        yield Stack(provider=provider, worker=worker)
    finally:
        worker.stop()
        provider.stop()


@pytest.fixture
def app(stack, settings, chromium, transactional_db):
    """The whole product over HTTP: stand-in checkout, local provider, the worker, fast polls."""
    from generation.providers import reset_providers

    settings.LOCAL_PROVIDER_ENABLED = True
    settings.LOCAL_PROVIDER_URL = stack.provider.url
    settings.PROVIDER_WEBHOOK_SECRET = E2E_SECRET
    settings.INGEST_ALLOW_PRIVATE_HOSTS = True
    for name, value in FAST.items():
        setattr(settings, name, int(value))
    settings.BILLING_STANDIN_ENABLED = True
    settings.STRIPE_SECRET_KEY = ""
    settings.STRIPE_LIVEMODE = False
    settings.STRIPE_WEBHOOK_SECRET = STRIPE_SECRET
    settings.SIGNUP_BONUS_CREDITS = 0
    stack.provider.set_faults()  # each test starts with the default delay and no faults
    reset_providers()
    yield stack
    reset_providers()


@dataclass
class Browser:
    """A browser context at 375 px with helpers that keep every page honest."""

    context: object
    page: object
    watch: Watch
    base_url: str

    def go(self, path: str) -> object:
        response = self.page.goto(self.base_url + path)
        self.page.wait_for_load_state("load")
        return response

    def shot(self, name: str, *, desktop: bool = True) -> None:
        """Check the page at 375 px (no sideways scroll, every control and image labelled), then
        save mobile (and desktop) screenshots."""
        page = self.page
        page.set_viewport_size(MOBILE)
        fits = "() => document.documentElement.scrollWidth <= window.innerWidth"
        # A resize takes effect on the next frame: give layout a moment, then judge.
        with contextlib.suppress(PlaywrightTimeout):
            page.wait_for_function(fits, timeout=2_000)
        overflow = page.evaluate(
            "() => [document.documentElement.scrollWidth, window.innerWidth,"
            " [...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right"
            " > window.innerWidth + 1 && e.parentElement.getBoundingClientRect().right"
            " <= window.innerWidth + 1).slice(0, 5)"
            ".map(e => e.tagName + '.' + e.className + ' in ' + e.parentElement.tagName + '.'"
            " + e.parentElement.className)]"
        )
        scroll_width, inner_width, culprits = overflow
        assert scroll_width <= inner_width, (
            f"{name} scrolls sideways at 375 px ({scroll_width} > {inner_width}): {culprits}"
        )
        unlabeled = page.evaluate(
            "() => [...document.querySelectorAll('input, select, textarea, button, img')]"
            ".filter(e => e.type !== 'hidden' && !e.closest('[hidden]'))"
            ".filter(e => e.tagName === 'IMG' ? !e.hasAttribute('alt')"
            " : e.tagName === 'BUTTON' ? !e.textContent.trim() && !e.getAttribute('aria-label')"
            " : !(e.labels && e.labels.length) && !e.getAttribute('aria-label'))"
            ".map(e => e.outerHTML.slice(0, 120))"
        )
        assert unlabeled == [], f"{name} has controls or images without a label: {unlabeled}"
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=SCREENSHOTS / f"{name}-375.png", full_page=True)
        if desktop:
            page.set_viewport_size(DESKTOP)
            page.screenshot(path=SCREENSHOTS / f"{name}-1280.png", full_page=True)
            page.set_viewport_size(MOBILE)

    def login_as(self, user) -> None:
        """Sign ``user`` in by giving the browser a session made by Django's test client."""
        from django.test import Client

        client = Client()
        client.force_login(user)
        cookie = client.cookies[django_settings.SESSION_COOKIE_NAME]
        self.context.add_cookies(
            [{"name": cookie.key, "value": cookie.value, "url": self.base_url}]
        )


@pytest.fixture
def browser_factory(chromium, live_server):
    """Open fresh browser contexts (one per user); each is checked for console errors at the end."""
    opened: list[Browser] = []

    def open_browser() -> Browser:
        context = chromium.new_context(viewport=MOBILE, base_url=live_server.url)
        context.set_default_timeout(15_000)
        context.add_init_script(CSP_LISTENER)
        page = context.new_page()
        watch = Watch()
        page.on("console", watch.console)
        page.on("pageerror", lambda error: watch.problems.append(f"pageerror: {error}"))
        browser = Browser(context=context, page=page, watch=watch, base_url=live_server.url)
        opened.append(browser)
        return browser

    yield open_browser
    for browser in opened:
        browser.context.close()
    for browser in opened:
        browser.watch.assert_clean()


@pytest.fixture
def browser(browser_factory) -> Browser:
    return browser_factory()


@pytest.fixture
def pack(transactional_db):
    """A credit pack on sale (the stand-in pays for it)."""
    from billing.models import CreditPack

    return CreditPack.objects.create(
        name="Starter",
        slug=f"starter-{uuid.uuid4().hex[:6]}",
        credits=100,
        price_amount=500,
        currency="usd",
        stripe_lookup_key="starter",
    )
