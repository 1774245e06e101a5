"""The paying user's journeys in Chromium against the live server, a real worker and the local
provider: sign up, verify, buy, generate, watch, see the image and the ledger; cancel; no credits.
"""

from __future__ import annotations

import re
import uuid

import pytest
from django.core import mail

from generation.catalogue import CATALOGUE
from generation.models import AT_PROVIDER, Generation, Status
from ledger import api as ledger
from media_store import api as media
from tests.e2e.helpers import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def confirmation_link(email: str) -> str:
    """Return the path of the newest verification link sent to ``email``."""

    def found():
        for message in reversed(mail.outbox):
            if email in message.to:
                match = re.search(
                    r"https?://[^/\s]+(/accounts/confirm-email/[^\s]+/)", message.body
                )
                if match:
                    return match.group(1)
        return None

    return wait_until(found, timeout=10, what=f"a verification email to {email}")


def test_sign_up_verify_buy_generate_and_see_the_image_and_its_charge(app, browser, pack):
    """The whole first visit: every step is a page a user clicks through, ending in the ledger."""
    page = browser.page
    email = f"new-{uuid.uuid4().hex[:8]}@example.com"
    password = "a-long-Passphrase-42"

    browser.go("/")
    expect_text(page, "Pay only for what succeeds")
    expect_text(page, "from 5 credits")  # the catalogue's live price on the landing page
    browser.shot("home-anonymous")
    page.get_by_role("link", name="Create a free account").first.click()
    page.wait_for_url("**/accounts/signup/")
    browser.shot("signup")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_label("Password (again)").fill(password)
    page.get_by_role("button", name="Create account").click()
    page.wait_for_url("**/accounts/confirm-email/")
    expect_text(page, "Check your email")
    browser.shot("verification-sent")

    browser.go(confirmation_link(email))
    browser.shot("confirm-email")
    page.get_by_role("button", name="Confirm").click()
    page.wait_for_url("**/dashboard/")
    expect_text(page, "Nothing yet")
    browser.shot("dashboard-empty")

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Billing").click()
    page.wait_for_url("**/billing/")
    browser.shot("billing-empty")
    page.get_by_role("button", name=f"Buy {pack.name}", exact=True).click()
    page.wait_for_url("**/billing/standin/**")
    browser.shot("checkout-standin")
    page.get_by_role("button", name="Pay $5.00").click()
    page.wait_for_url("**/billing/success/**")
    expect_text(page, "Payment received")
    browser.shot("purchase-success")
    from accounts.models import User

    user = User.objects.get(email=email)
    assert ledger.balance(user.pk).available == 100

    page.get_by_role("link", name="Generate something").click()
    page.wait_for_url("**/generations/new/**")
    browser.shot("generate")
    page.get_by_label("Prompt").fill("a lighthouse in fog, watercolour")
    app.provider.set_faults(delay_ms=2500)  # slow enough to watch the bar move
    page.get_by_role("button", name="Generate", exact=True).click()
    page.wait_for_url(re.compile(r".*/generations/[0-9a-f-]{36}/$"))
    page.locator("progress.progress").wait_for()
    browser.shot("generation-running", desktop=False)
    seen = set()

    def done() -> bool:
        seen.add(page.locator("#generation-status").inner_text())
        return "Succeeded" in seen

    wait_until(done, timeout=45, interval=0.2, what="the status badge to reach Succeeded")
    assert seen & {"Queued", "Reserved", "Dispatched", "Processing"}, seen
    image = page.locator("#generation-live img")
    image.wait_for()
    wait_until(
        lambda: image.evaluate("img => img.complete && img.naturalWidth > 0"),
        timeout=15,
        what="the output image to load through its signed URL",
    )
    browser.shot("generation-done")

    generation = Generation.objects.get(user=user)
    assert generation.status == Status.SUCCEEDED
    assert balance_of(user) == (95, 0)
    rows = page.locator("table tbody tr")
    assert {"Reserved while it runs", "Charged"} <= {
        text.strip() for text in rows.locator("td:nth-child(2)").all_inner_texts()
    }

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Billing").click()
    activity = page.locator("#activity + p + .table-wrap table")
    rows = [t.strip() for t in activity.locator("tbody td:nth-child(2)").all_inner_texts()]
    spec = CATALOGUE[generation.model_key]
    assert rows[:2] == [f"{spec.name} · 5 credits", f"Purchase · {pack.name}"], rows
    browser.shot("billing-after")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="History").click()
    expect_text(page, "a lighthouse in fog")
    browser.shot("history")
    assert media.assets_for_generation(generation.pk)


def test_canceling_a_slow_generation_gives_the_credits_back(app, browser, user_factory):
    """Cancel while the provider works: canceled, the hold released, the balance whole again."""
    user = user_factory()
    ledger.grant(user.pk, 20, key=f"browser:{uuid.uuid4()}", source="test")
    app.provider.set_faults(delay_ms=60_000)
    browser.login_as(user)
    page = browser.page
    browser.go("/generations/new/")
    page.get_by_label("Prompt").fill("a slow glacier")
    page.get_by_role("button", name="Generate", exact=True).click()
    page.wait_for_url(re.compile(r".*/generations/[0-9a-f-]{36}/$"))
    cancel = page.get_by_role("button", name="Cancel and return 5 credits")
    # The button is there from queued on, but the provider must have the job for a real cancel.
    wait_until(
        lambda: Generation.objects.filter(user=user, status__in=AT_PROVIDER).exists(),
        timeout=30,
        what="the generation to reach the provider",
    )
    assert ledger.balance(user.pk).held == 5
    page.reload()
    cancel.click()
    expect_text(page, "Canceled. Your credits were returned.")
    assert page.locator("#generation-status").inner_text() == "Canceled"
    browser.shot("generation-canceled", desktop=False)
    wait_until(
        lambda: balance_of(user) == (20, 0),
        timeout=15,
        what="the hold to be released",
    )
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Billing").click()
    assert "20 credits" in page.locator("#balance-slot").inner_text()


def test_generating_without_credits_says_why_and_charges_nothing(app, browser, user_factory):
    """The form is disabled with the reason and a way to buy; a forced submit is rejected, free."""
    user = user_factory()
    browser.login_as(user)
    page = browser.page
    browser.go("/generations/new/")
    expect_text(page, "This costs 5 credits and you have 0. Buy credits to continue.")
    generate = page.get_by_role("button", name="Generate", exact=True)
    assert generate.is_disabled()
    assert page.locator("#submit-reason").get_by_role("link", name="Buy credits").is_visible()
    browser.shot("generate-no-credits")

    # Someone who bypasses the disabled button still gets a clear refusal and pays nothing.
    page.get_by_label("Prompt").fill("a free lunch")
    generate.evaluate("button => { button.disabled = false; }")
    generate.click()
    page.wait_for_url(re.compile(r".*/generations/[0-9a-f-]{36}/$"))
    wait_until(
        lambda: page.locator("#generation-status").inner_text() == "Rejected",
        timeout=30,
        what="the generation to be rejected",
    )
    expect_text(page, "This costs 5 credits and 0 are available. Buy a credit pack and try again.")
    assert page.get_by_role("link", name="Buy credits").is_visible()
    browser.shot("generation-rejected", desktop=False)
    assert balance_of(user) == (0, 0)
    assert ledger.check() == []


def test_another_users_media_url_is_not_found(app, browser_factory, user_factory):
    """Bob opening Alice's media link gets the same 404 as a link that never existed."""
    alice, bob = user_factory(), user_factory()
    ledger.grant(alice.pk, 10, key=f"browser:{uuid.uuid4()}", source="test")
    from generation.services.submission import submit_generation

    generation = submit_generation(
        alice, model_key="flux-schnell", prompt="a private sketch", params={}
    )
    wait_until(
        lambda: Generation.objects.get(pk=generation.pk).status == Status.SUCCEEDED,
        timeout=45,
        what="Alice's generation to succeed",
    )
    [asset] = media.assets_for_generation(generation.pk)

    owner = browser_factory()
    owner.login_as(alice)
    mine = owner.context.request.get(asset.url)  # follows the redirect to the signed URL
    assert mine.status == 200 and mine.body()[:4] == b"\x89PNG"

    other = browser_factory()
    other.login_as(bob)
    other.watch.allow_once(r"Failed to load resource: the server responded with a status of 404")
    theirs = other.go(asset.url)
    assert theirs.status == 404
    theirs_body = theirs.text()
    expect_text(other.page, "We could not find that page")
    other.shot("media-not-yours", desktop=False)
    missing = other.go(f"/media/{uuid.uuid4()}/")
    assert missing.status == 404
    assert theirs_body == missing.text()


def balance_of(user) -> tuple[int, int]:
    balance = ledger.balance(user.pk)
    return balance.available, balance.held


def expect_text(page, text: str) -> None:
    """Wait (with a deadline) until ``text`` is on the page."""
    page.get_by_text(text, exact=False).first.wait_for()
