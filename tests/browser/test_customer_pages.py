"""The billing page a customer reads and the phone layout, at 375 and 1280 px with screenshots."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from billing.models import CheckoutSession, PaymentReversal, StripeMode
from generation.models import Generation
from ledger import api as ledger
from tests.e2e.helpers import wait_until

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


def test_the_generate_page_keeps_the_prompt_prices_by_post_and_shows_the_output_large(
    app, browser, user_factory
):
    user = user_factory()
    ledger.grant(user.pk, 100, key=f"browser:{uuid.uuid4()}", source="test")
    browser.login_as(user)
    page = browser.page
    prompt = "a lighthouse in fog, watercolour"
    urls: list[str] = []
    page.on("request", lambda request: urls.append(request.url))
    browser.go("/generations/new/")

    box = page.get_by_label("Prompt").bounding_box()
    assert box["y"] < page.locator("#model-picker").bounding_box()["y"]
    page.get_by_label("Prompt").fill(prompt)
    page.locator("#model-picker label", has_text="Flux Pro").click()
    expect = page.locator("#estimate .stat")
    wait_until(lambda: expect.inner_text() == "12", timeout=10, what="the price of Flux Pro")
    assert page.get_by_label("Prompt").input_value() == prompt
    browser.shot("generate-form")
    page.locator("#model-picker label", has_text="Flux Schnell").click()
    wait_until(lambda: expect.inner_text() == "5", timeout=10, what="the price of Flux Schnell")
    assert not [url for url in urls if "lighthouse" in url], urls

    page.get_by_role("button", name="Generate", exact=True).click()
    page.wait_for_url("**/generations/*/")
    image = page.locator("#generation-live .media-hero img")
    image.wait_for(timeout=45_000)
    wait_until(
        lambda: image.evaluate("img => img.complete && img.naturalWidth > 0"),
        timeout=15,
        what="the output to load",
    )
    assert image.bounding_box()["width"] >= 300
    for name in ("Download", "View full size"):
        assert page.get_by_role("link", name=name).bounding_box()["height"] >= TAP
    browser.shot("generation-output")

    href = page.get_by_role("link", name="Download").get_attribute("href")
    download = page.request.get(browser.base_url + href)
    assert download.status == 200
    assert download.headers["content-disposition"].startswith("attachment")

    page.get_by_role("link", name="View full size").click()
    page.wait_for_url("**/media/**")
    viewer = page.locator("figure img")
    wait_until(
        lambda: viewer.evaluate("img => img.complete && img.naturalWidth > 0"),
        timeout=15,
        what="the viewer's image to load",
    )
    browser.shot("output-viewer")
    page.go_back()

    page.get_by_role("button", name="Run again with these settings").click()
    page.wait_for_url("**/generations/new/")
    assert page.get_by_label("Prompt").input_value() == prompt
    assert page.locator("#model-picker input:checked").get_attribute("value") == "flux-schnell"
    assert not [url for url in urls if "lighthouse" in url], urls

    page.go_back()
    page.get_by_role("button", name="Delete generation").click()
    page.wait_for_url("**/generations/")
    assert Generation.objects.get(user=user).deleted_at is not None
