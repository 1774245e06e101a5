"""Pages of issue 15 and 18 in a real browser: the Stripe portal under CSP, turning on two-factor
sign-in (375 and 1280 px), and the ledger admin as an operator sees it (1280 px).
"""

from __future__ import annotations

import uuid

import pytest
from allauth.mfa.totp.internal.auth import format_hotp_value, hotp_value
from django.contrib.auth.models import Group

from tests.billing.conftest import fake_stripe, stripe_settings  # noqa: F401 (fixtures)
from tests.browser.conftest import DESKTOP, SCREENSHOTS

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PORTAL_PAGE = "<!doctype html><title>Stripe customer portal</title><p>Portal stand-in</p>"


def sign_in(browser, user) -> None:
    page = browser.page
    browser.go("/accounts/login/")
    page.get_by_label("Email").fill(user.email)
    page.get_by_label("Password").fill(f"pw-{user.email}")
    page.get_by_role("button", name="Sign In").click()
    page.wait_for_url("**/dashboard/")


def test_the_portal_button_reaches_stripe_without_a_csp_violation(
    browser,
    user_factory,
    fake_stripe,  # noqa: F811 (the imported fixture)
):
    """form-action must allow billing.stripe.com: Chrome checks the redirect after the POST."""
    from billing.models import StripeCustomer, Subscription

    user = user_factory()
    StripeCustomer.objects.create(user=user, mode="test", stripe_customer_id="cus_portal")
    Subscription.objects.create(
        user=user,
        mode="test",
        stripe_subscription_id=f"sub_{uuid.uuid4().hex[:10]}",
        stripe_customer_id="cus_portal",
        status="active",
    )
    page = browser.page
    # Stripe is outside the sandbox: its page is served locally, after Chrome's CSP check.
    page.route(
        "https://billing.stripe.com/**",
        lambda route: route.fulfill(status=200, content_type="text/html", body=PORTAL_PAGE),
    )
    browser.login_as(user)
    browser.go("/billing/")
    page.get_by_role("button", name="Manage or cancel in Stripe").click()
    page.wait_for_url("https://billing.stripe.com/p/session/**")
    assert page.title() == "Stripe customer portal"
    assert browser.watch.problems == []


def test_a_user_turns_on_two_factor_sign_in(browser, user_factory):
    """From the account menu: the settings page, the QR code step, recovery codes."""
    page = browser.page
    user = user_factory()
    sign_in(browser, user)
    page.locator("summary", has_text=user.email).click()
    page.get_by_role("link", name="Two-factor sign-in").click()
    page.wait_for_url("**/accounts/2fa/")
    browser.shot("mfa-index")
    page.get_by_role("link", name="Activate").click()
    # Turning it on asks for the password again, however recent the sign-in.
    page.wait_for_url("**/accounts/reauthenticate/**")
    page.get_by_label("Password").fill(f"pw-{user.email}")
    page.get_by_role("button", name="Confirm").click()
    page.wait_for_url("**/2fa/totp/activate/")
    browser.shot("mfa-activate")
    secret = page.locator("#authenticator_secret").input_value()
    import time

    code = format_hotp_value(hotp_value(secret, int(time.time()) // 30))
    page.get_by_label("Authenticator code").fill(code)
    page.get_by_role("button", name="Activate").click()
    page.wait_for_url("**/2fa/recovery-codes/")
    browser.shot("mfa-recovery-codes")
    browser.go("/accounts/2fa/")
    assert "active" in page.content()
    browser.shot("mfa-index-active")


def test_the_ledger_admin_as_an_operator(browser, user_factory):
    """Lists with emails and true counts, a detail page, the adjust form and health."""
    from ledger import api

    customer = user_factory()
    for n in range(3):
        api.grant(customer.pk, 10 + n, key=f"admin-shot-{uuid.uuid4()}", source="test")
    operator = user_factory(f"operator-{uuid.uuid4().hex[:6]}@example.com", is_staff=True)
    operator.groups.add(Group.objects.get(name="Ledger operator"))
    browser.login_as(operator)
    page = browser.page
    page.set_viewport_size(DESKTOP)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with api.reading_as_staff():
        from ledger.models import Entry

        entry = Entry.objects.filter(account_id=customer.pk).first()
    for name, path in [
        ("admin-ledger-entries", f"/admin/ledger/entry/?q={customer.email}"),
        ("admin-ledger-entry", f"/admin/ledger/entry/{entry.pk}/change/"),
        ("admin-ledger-accounts", f"/admin/ledger/account/?q={customer.email}"),
        ("admin-ledger-adjust", f"/admin/ledger/account/{customer.pk}/adjust/"),
        ("admin-ledger-health", "/admin/ledger/account/health/"),
    ]:
        assert browser.go(path).status == 200, path
        page.set_viewport_size(DESKTOP)
        page.screenshot(path=SCREENSHOTS / f"{name}-1280.png", full_page=True)
    browser.go(f"/admin/ledger/entry/?q={customer.email}")
    assert "3 entries" in page.content() and customer.email in page.content()
