"""Every page at 375 px: no sideways scroll, labelled controls, no console errors or CSP
violations (the fixtures check all three), and a screenshot of each for a human to look at.
"""

from __future__ import annotations

import uuid

import pytest

from generation.models import Generation, Status
from generation.services.submission import submit_generation
from ledger import api as ledger
from media_store import api as media
from tests.e2e.helpers import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

NOT_FOUND = r"status of 404"


def test_signed_out_pages_fit_a_phone_and_explain_errors(app, browser, user_factory, pack):
    """Landing, sign in (with a wrong password), sign up (with mismatched passwords), reset."""
    page = browser.page
    user = user_factory()
    for name, path in [
        ("home", "/"),
        ("login", "/accounts/login/"),
        ("password-reset", "/accounts/password/reset/"),
    ]:
        browser.go(path)
        browser.shot(name)

    browser.go("/accounts/login/")
    page.get_by_label("Email").fill(user.email)
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("alert").wait_for()
    assert "not correct" in page.get_by_role("alert").inner_text()
    assert page.get_by_role("link", name="Forgot your password?").is_visible()
    browser.shot("login-error", desktop=False)

    browser.go("/accounts/signup/")
    page.get_by_label("Email").fill(f"x-{uuid.uuid4().hex[:6]}@example.com")
    page.get_by_label("Password", exact=True).fill("a-long-Passphrase-42")
    page.get_by_label("Password (again)").fill("something else entirely")
    page.get_by_role("button", name="Create account").click()
    page.locator(".errorlist").first.wait_for()
    assert "same password" in page.locator(".errorlist").first.inner_text()
    browser.shot("signup-error", desktop=False)

    browser.go("/accounts/password/reset/")
    page.get_by_label("Email").fill(user.email)
    page.get_by_role("button", name="Send the link").click()
    page.wait_for_url("**/password/reset/done/")
    browser.shot("password-reset-done", desktop=False)

    browser.watch.allow_once(NOT_FOUND)
    assert browser.go("/no-such-page/").status == 404
    browser.shot("not-found", desktop=False)


def test_signed_in_pages_fit_a_phone(app, browser, user_factory, pack):
    """Dashboard, billing, generate, detail, history, account pages and the withheld output."""
    page = browser.page
    user = user_factory()
    ledger.grant(user.pk, 60, key=f"browser:{uuid.uuid4()}", source="test")
    generation = submit_generation(
        user, model_key="flux-schnell", prompt="a red kite over dunes", params={"outputs": "2"}
    )
    wait_until(
        lambda: Generation.objects.get(pk=generation.pk).status == Status.SUCCEEDED,
        timeout=45,
        what="the generation to succeed",
    )
    browser.login_as(user)
    for name, path in [
        ("dashboard", "/dashboard/"),
        ("billing", "/billing/"),
        ("billing-cancel", "/billing/cancel/"),
        ("generate-video", "/generations/new/?model=clip-video"),
        ("generation-detail", f"/generations/{generation.pk}/"),
        ("history-filtered-empty", "/generations/?status=failed"),
        ("account-email", "/accounts/email/"),
        ("account-password", "/accounts/password/change/"),
        ("logout-confirm", "/accounts/logout/"),
    ]:
        response = browser.go(path)
        assert response.status == 200, f"{path} answered {response.status}"
        if name == "generation-detail":
            wait_until(
                lambda: (
                    page.evaluate(
                        "() => [...document.querySelectorAll('#generation-live img')]"
                        ".filter(i => i.complete && i.naturalWidth > 0).length"
                    )
                    == 2
                ),
                timeout=15,
                what="both outputs to load",
            )
        browser.shot(name)

    # An unpaid generation's output: the owner is told why and what to do, not shown it.
    asset = media.assets_for_generation(generation.pk)[0]
    media.set_withheld(generation.pk, True)
    browser.watch.allow_once(r"status of 402")
    assert browser.go(asset.url).status == 402
    assert page.get_by_role("link", name="Buy credits").is_visible()
    browser.shot("media-withheld", desktop=False)
