"""The billing page a customer reads and the phone layout, at 375 and 1280 px with screenshots."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from billing.models import CheckoutSession, PaymentReversal, StripeMode
from generation.models import Generation
from ledger import api as ledger

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

TAP = 44


def _generation(user, *, model_key: str, cost: int) -> Generation:
    generation = Generation.objects.create(
        user=user,
        model_key=model_key,
        kind="image",
        prompt="a paper boat",
        params={},
        cost=cost,
        provider="babysea",
        hold_ttl_seconds=600,
    )
    held = ledger.hold(user.pk, generation.hold_reference, cost, ttl=timedelta(minutes=10))
    assert held.status == "held"
    return generation


def _refunded_purchase(user, pack) -> CheckoutSession:
    checkout = CheckoutSession.objects.create(
        user=user,
        pack=pack,
        mode=StripeMode.STANDIN,
        credits=pack.credits,
        stripe_price_id=pack.stripe_price_id or "price_starter",
        amount=pack.price_amount,
        currency=pack.currency,
        stripe_session_id=f"cs_test_{uuid.uuid4().hex}",
        stripe_payment_intent_id=f"pi_{uuid.uuid4().hex}",
        status=CheckoutSession.Status.PAID,
        amount_total=pack.price_amount,
        fulfilled_at=timezone.now(),
    )
    ledger.grant(
        user.pk,
        pack.credits,
        key=checkout.grant_key,
        source="stripe_checkout",
        memo=f"Stripe Checkout {checkout.stripe_session_id}",
    )
    PaymentReversal.objects.create(
        stripe_payment_intent_id=checkout.stripe_payment_intent_id,
        user=user,
        checkout_session=checkout,
        credits_granted=pack.credits,
        amount_paid=pack.price_amount,
        currency=pack.currency,
        refunded=200,
    )
    return checkout


def test_the_billing_page_reads_as_a_statement_on_a_phone_and_a_desktop(
    app, browser, user_factory, staff, pack
):
    user = user_factory()
    checkout = _refunded_purchase(user, pack)
    done = _generation(user, model_key="loop-animation", cost=20)
    assert ledger.capture(done.hold_reference).status == "captured"
    _generation(user, model_key="flux-schnell", cost=5)
    ledger.adjust(
        user.pk, 3, key=f"admin-adjust:{uuid.uuid4()}", actor=staff.email, reason="staff only"
    )
    browser.login_as(user)
    page = browser.page

    browser.go("/billing/")
    browser.shot("billing-statement")

    body = page.locator("main").inner_text()
    assert "Loop animation · 20 credits" in body and "In progress" in body
    assert "Partially refunded" in body and "Balance correction by support" in body
    for hidden in (staff.email, "staff only", checkout.stripe_session_id, "Hold", "Capture"):
        assert hidden not in body, hidden
    page.get_by_role("link", name="Loop animation · 20 credits").click()
    page.wait_for_url(f"**/generations/{done.pk}/")
    assert "Reserved while it runs" in page.locator("#credits").inner_text()
    browser.shot("generation-credits")


def test_on_a_phone_the_navigation_keeps_every_section_with_44px_targets(
    app, browser, user_factory
):
    user = user_factory()
    browser.login_as(user)
    page = browser.page
    browser.go("/billing/")

    nav = page.get_by_role("navigation", name="Main").first
    for name in ("Dashboard", "Generate", "History", "Billing"):
        link = nav.get_by_role("link", name=name, exact=True)
        assert link.is_visible(), name
        assert link.bounding_box()["height"] >= TAP, name
    browser.shot("nav-phone")
