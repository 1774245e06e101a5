"""One click is one charge, and the price on screen is the price charged, in Chromium."""

from __future__ import annotations

import re
import uuid

import pytest
from playwright.sync_api import Error as PlaywrightError

from generation.models import Generation
from ledger import api as ledger
from ledger import selectors as ledger_selectors
from tests.e2e.helpers import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def funded_user(user_factory, credits: int):
    user = user_factory()
    ledger.grant(user.pk, credits, key=f"browser:{uuid.uuid4()}", source="test")
    return user


def double_click(page, button, gap_ms: int = 60) -> None:
    """Two real mouse clicks on the button's centre, ``gap_ms`` apart."""
    button.scroll_into_view_if_needed()
    box = button.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.click(x, y)
    page.wait_for_timeout(gap_ms)
    page.mouse.click(x, y)


def holds_of(user) -> list:
    return [e for e in ledger_selectors.journal_page(user.pk, limit=50).entries if e.kind == "hold"]


@pytest.mark.parametrize("javascript", [True, False], ids=["script", "no-script"])
def test_two_clicks_60_ms_apart_make_one_generation_and_one_hold(
    app, browser_factory, live_server, chromium, user_factory, javascript
):
    """With the page's script the second click finds the button busy; without it the browser
    posts twice and the form's one-time key makes the second post open the first generation."""
    user = funded_user(user_factory, 50)
    if javascript:
        browser = browser_factory()
    else:
        browser = browser_factory()
        browser.context.close()
        browser.context = chromium.new_context(
            viewport={"width": 375, "height": 740},
            base_url=live_server.url,
            java_script_enabled=False,
        )
        browser.page = browser.context.new_page()
    browser.login_as(user)
    page = browser.page
    browser.go("/generations/new/")
    page.get_by_label("Prompt").fill("a kite over the dunes")

    double_click(page, page.get_by_role("button", name="Generate", exact=True))

    # Without the script the second post aborts the first navigation: wait for the one that
    # lands.
    for attempt in range(3):
        try:
            page.wait_for_url(re.compile(r".*/generations/[0-9a-f-]{36}/$"))
            break
        except PlaywrightError:
            if attempt == 2:
                raise
    generation = Generation.objects.get(user=user)
    assert page.url.endswith(f"/generations/{generation.pk}/")
    wait_until(lambda: holds_of(user), timeout=30, what="the generation's hold")
    assert len(holds_of(user)) == 1
    assert Generation.objects.filter(user=user).count() == 1


def test_the_price_follows_every_option_change_before_any_prompt(app, browser, user_factory):
    """Options changed before the prompt is typed re-price at once; the charge is that price."""
    user = funded_user(user_factory, 500)
    browser.login_as(user)
    page = browser.page
    browser.go("/generations/new/?model=clip-video")
    estimate = page.locator("#estimate .stat")
    assert estimate.inner_text() == "45"

    # The second change supersedes the first's price request (hx-sync replace), and htmx logs
    # the aborted request; the price that lands must reflect both changes.
    browser.watch.allow_once(r"htmx:(afterRequest|sendAbort)")
    page.get_by_label("Seconds").select_option("5")
    page.get_by_label("Resolution").select_option("720p")

    page.wait_for_function(
        "() => document.querySelector('#estimate .stat').textContent.trim() === '125'"
    )
    browser.shot("generate-repriced", desktop=True)
    page.get_by_label("Prompt").fill("a seal in the arctic")
    page.get_by_role("button", name="Generate", exact=True).click()
    page.wait_for_url(re.compile(r".*/generations/[0-9a-f-]{36}/$"))
    assert Generation.objects.get(user=user).cost == 125
