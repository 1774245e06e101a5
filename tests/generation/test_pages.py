"""The generate, detail, progress, cancel and history pages."""

import re

import pytest
from django.urls import reverse

from generation.models import Generation, Status
from ledger import api as ledger
from tests.generation.flow import start

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("generation_settings"),
]


def _make(user, **extra) -> Generation:
    values = {
        "model_key": "flux-schnell",
        "kind": "image",
        "prompt": "a lighthouse",
        "params": {"ratio": "1:1", "output_format": "png", "outputs": "1"},
        "cost": 5,
        "provider": "babysea",
        "hold_ttl_seconds": 60,
    }
    return Generation.objects.create(user=user, **{**values, **extra})


def test_generate_page_lists_the_catalogue_and_prices_the_defaults(alice_client, alice, fund):
    """The form is built from the catalogue and shows the live price and the balance."""
    fund(alice, 12)
    response = alice_client.get(reverse("generation:create") + "?model=flux-pro")
    html = response.content.decode()
    assert response.status_code == 200
    assert "Loop animation" in html and "Short clip" in html
    assert '<span class="stat">12</span> credits' in html
    assert "you have 12" in html
    assert 'hx-post="/generations/estimate/"' in html
    assert html.index('id="prompt"') < html.index('id="model-picker"')


def test_generate_button_is_disabled_with_a_reason_when_credits_are_short(alice_client):
    """Without enough credits the submit button is disabled and says why."""
    html = alice_client.get(reverse("generation:create")).content.decode()
    assert "This costs 5 credits and you have 0" in html
    assert "disabled" in html


def test_estimate_partial_uses_the_catalogue_price(alice_client):
    """The live estimate is the same function as the stored cost."""
    url = reverse("generation:estimate")
    answer = alice_client.post(url, {"model": "clip-video", "duration": "5", "resolution": "720p"})
    assert '<span class="stat">125</span>' in answer.content.decode()
    assert alice_client.get(url, {"model": "clip-video"}).status_code == 405


def test_changing_model_keeps_the_prompt_and_prices_the_new_model(alice_client, alice, fund):
    """A preview POST with another model keeps the prompt; old options that do not fit drop."""
    fund(alice, 500)
    response = alice_client.post(
        reverse("generation:create"),
        {"preview": "1", "model": "clip-video", "prompt": "a red kite", "ratio": "16:9"},
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert ">a red kite</textarea>" in html
    assert re.search(r'value="clip-video"[^>]*checked', html)


def test_submit_queues_and_redirects_to_the_detail_page(alice_client, alice, fund):
    """A valid submit stores a queued generation with its cost and opens its page."""
    fund(alice, 20)
    response = alice_client.post(
        reverse("generation:create"),
        {"model": "flux-schnell", "prompt": "a red kite", "outputs": "2", "ratio": "16:9"},
    )
    generation = Generation.objects.get(user=alice)
    assert response.status_code == 302
    assert response["Location"] == reverse("generation:detail", args=[generation.pk])
    assert (generation.status, generation.cost, generation.params["ratio"]) == (
        Status.QUEUED,
        10,
        "16:9",
    )


def test_invalid_submit_shows_the_error_and_stores_nothing(alice_client, alice, fund):
    """A value outside the catalogue is refused with a message; nothing is stored."""
    fund(alice, 20)
    response = alice_client.post(
        reverse("generation:create"), {"model": "flux-schnell", "prompt": "a kite", "outputs": "9"}
    )
    assert response.status_code == 400
    assert "Images must be one of 1, 2, 4." in response.content.decode()
    assert not Generation.objects.exists()


def test_progress_polls_only_while_running(alice_client, alice):
    """The fragment carries hx-trigger every 1s while active and drops it when terminal."""
    generation = _make(alice, status=Status.PROCESSING, progress=40)
    url = reverse("generation:progress", args=[generation.pk])
    html = alice_client.get(url).content.decode()
    assert 'hx-trigger="every 1s"' in html and 'value="40"' in html
    Generation.objects.filter(pk=generation.pk).update(status=Status.FAILED, error_message="x")
    assert "hx-trigger" not in alice_client.get(url).content.decode()


def test_detail_shows_timeline_and_ledger_entries(alice_client, alice, fund):
    """The detail page lists the events and the hold's journal entries."""
    fund(alice, 10)
    generation = start(_make(alice))
    html = alice_client.get(reverse("generation:detail", args=[generation.pk])).content.decode()
    assert "5 credits held." in html
    assert '<td data-label="What happened">Reserved while it runs</td>' in html
    assert "Cancel and return 5 credits" in html
    ledger.release(generation.hold_reference)


def test_cancel_from_the_page_returns_credits(alice_client, alice, fund):
    """POST cancel moves to canceled and the balance is back at once."""
    fund(alice, 10)
    generation = start(_make(alice))
    response = alice_client.post(reverse("generation:cancel", args=[generation.pk]))
    assert response.status_code == 302
    generation.refresh_from_db()
    assert generation.status == Status.CANCELED
    assert ledger.balance(alice.pk).available == 10


def test_other_users_generations_are_not_found(client, alice, bob):
    """Bob gets 404 on Alice's detail, progress and cancel."""
    generation = _make(alice, status=Status.PROCESSING)
    client.force_login(bob)
    for name in ("generation:detail", "generation:progress"):
        assert client.get(reverse(name, args=[generation.pk])).status_code == 404
    assert client.post(reverse("generation:cancel", args=[generation.pk])).status_code == 404
    generation.refresh_from_db()
    assert generation.status == Status.PROCESSING


def test_history_filters_by_status_and_paginates(alice_client, alice, bob):
    """History shows only the user's rows, 12 a page, filtered by status."""
    for _ in range(13):
        _make(alice, status=Status.SUCCEEDED)
    _make(alice, status=Status.FAILED, prompt="the failed one")
    _make(bob, status=Status.FAILED, prompt="bob's row")
    page_one = alice_client.get(reverse("generation:history")).content.decode()
    assert "Page 1 of 2" in page_one
    failed = alice_client.get(reverse("generation:history") + "?status=failed").content.decode()
    assert "the failed one" in failed and "bob&#x27;s row" not in failed
    assert "a lighthouse" not in failed


def test_pages_require_login(client):
    """Anonymous visitors are sent to sign in."""
    response = client.get(reverse("generation:create"))
    assert response.status_code == 302 and "login" in response["Location"]


def test_gallery_reads_every_preview_in_one_query(alice_client, alice):
    """History and dashboard cards show each succeeded generation's first output, with the
    same number of queries for two cards as for six."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from media_store.models import Asset

    def queries_for(count: int) -> tuple[int, str]:
        Generation.objects.filter(user=alice).delete()
        for n in range(count):
            generation = _make(alice, status=Status.SUCCEEDED, prompt=f"card {n}")
            for index in (1, 0):  # the first output is index 0, whatever the insert order
                Asset.objects.create(
                    owner_id=alice.pk,
                    generation_id=generation.pk,
                    index=index,
                    key=f"test/{generation.pk}/{index}.png",
                    content_type="image/png",
                    size=1,
                    sha256="0" * 64,
                    width=64 + index,
                    height=64,
                )
        with CaptureQueriesContext(connection) as history:
            html = alice_client.get(reverse("generation:history")).content.decode()
        with CaptureQueriesContext(connection) as dashboard:
            alice_client.get(reverse("pages:dashboard"))
        return len(history.captured_queries) + len(dashboard.captured_queries), html

    two, _ = queries_for(2)
    six, html = queries_for(6)
    assert two == six
    assert html.count('width="64"') == 6 and 'width="65"' not in html


def test_generate_page_reads_the_balance_once(alice_client, alice, fund, monkeypatch):
    """The header and the estimate show the same balance, from one read per request."""
    fund(alice, 40)
    reads = []
    real = ledger.balance
    monkeypatch.setattr(
        ledger, "balance", lambda account_id: reads.append(account_id) or real(account_id)
    )
    html = alice_client.get(reverse("generation:create")).content.decode()
    assert reads == [alice.pk]
    assert html.count("40 credits") >= 1
