"""One submit, one charge; the price shown is the price charged; only usable models run."""

import re
import threading

import pytest
from django.db import connections
from django.urls import reverse

from generation.exceptions import PriceChanged
from generation.models import Generation
from generation.services.submission import submit_generation
from ledger import api as ledger

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("generation_settings"),
]
KEY = "k" * 32
FORM = {"model": "flux-schnell", "prompt": "a red kite", "outputs": "2", "ratio": "16:9"}


def form_key(html: str) -> str:
    return re.search(r'name="submission_key" value="([^"]+)"', html).group(1)


def test_the_form_carries_a_fresh_one_time_key_and_the_price_it_shows(alice_client, alice, fund):
    fund(alice, 50)
    url = reverse("generation:create") + "?model=clip-video"
    first, second = (alice_client.get(url).content.decode() for _ in range(2))

    assert form_key(first) != form_key(second) and len(form_key(first)) >= 16
    assert 'name="estimate" value="45"' in first
    assert "data-submit-once" in first and "js/submit-once.js" in first


def test_the_same_form_posted_twice_makes_one_generation_and_opens_it_twice(
    alice_client, alice, fund
):
    fund(alice, 20)
    form = {**FORM, "submission_key": KEY, "estimate": "10"}

    first = alice_client.post(reverse("generation:create"), form)
    second = alice_client.post(reverse("generation:create"), form)

    generation = Generation.objects.get(user=alice)
    assert generation.submission_key == KEY
    detail = reverse("generation:detail", args=[generation.pk])
    assert (first.status_code, first["Location"]) == (302, detail)
    assert (second.status_code, second["Location"]) == (302, detail)


def test_two_concurrent_submissions_of_one_key_store_one_generation(alice, fund):
    fund(alice, 20)
    barrier = threading.Barrier(2)
    results: list = []

    def submit():
        try:
            barrier.wait()
            results.append(
                submit_generation(
                    alice,
                    model_key="flux-schnell",
                    prompt="a red kite",
                    params={"outputs": "2"},
                    submission_key=KEY,
                )
            )
        finally:
            connections.close_all()

    threads = [threading.Thread(target=submit) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(results) == 2 and results[0].pk == results[1].pk
    assert Generation.objects.filter(user=alice).count() == 1


def test_the_key_is_per_user(alice, bob, fund):
    fund(alice, 20)
    fund(bob, 20)
    args = {"model_key": "flux-schnell", "prompt": "a red kite", "params": {}}

    mine = submit_generation(alice, submission_key=KEY, **args)
    theirs = submit_generation(bob, submission_key=KEY, **args)

    assert mine.pk != theirs.pk and theirs.user == bob


def test_a_malformed_key_is_refused(alice_client, alice, fund):
    fund(alice, 20)
    response = alice_client.post(
        reverse("generation:create"), {**FORM, "submission_key": "short'; --"}
    )

    assert response.status_code == 400
    assert "reload the page" in response.content.decode()
    assert not Generation.objects.exists()


def test_a_stale_price_is_refused_and_nothing_is_held(alice_client, alice, fund):
    fund(alice, 200)
    stale = {
        "model": "clip-video",
        "prompt": "a seal in the arctic",
        "duration": "5",
        "resolution": "720p",
        "submission_key": KEY,
        "estimate": "45",
    }

    response = alice_client.post(reverse("generation:create"), stale)

    html = response.content.decode()
    assert response.status_code == 400
    assert "The price of these options is 125 credits" in html
    assert 'name="estimate" value="125"' in html  # the page now shows the real price
    assert form_key(html) != KEY
    assert not Generation.objects.exists()
    assert ledger.balance(alice.pk) == ledger.Balance(200, 0)
    with pytest.raises(PriceChanged):
        submit_generation(
            alice,
            model_key="clip-video",
            prompt="a seal",
            params={"duration": "5", "resolution": "720p"},
            expected_cost=45,
        )


def test_an_unknown_model_is_refused_not_replaced(alice_client, alice, fund):
    fund(alice, 20)
    response = alice_client.post(reverse("generation:create"), {**FORM, "model": "gpt-9"})

    assert response.status_code == 400
    assert "Choose a model from the list." in response.content.decode()
    assert not Generation.objects.exists()


def test_a_model_whose_provider_is_not_configured_is_neither_offered_nor_run(
    alice_client, alice, fund, settings
):
    settings.REPLICATE_API_TOKEN = ""
    fund(alice, 50)
    page = alice_client.get(reverse("generation:create")).content.decode()
    direct = alice_client.get(reverse("generation:create") + "?model=sdxl-replicate")
    posted = alice_client.post(
        reverse("generation:create"),
        {"model": "sdxl-replicate", "prompt": "a red kite", "submission_key": KEY},
    )

    assert "sdxl-replicate" not in page and "flux-schnell" in page
    assert direct.status_code == 400 and "not available here" in direct.content.decode()
    body = posted.content.decode()
    assert posted.status_code == 400 and "is not available here" in body
    assert "REPLICATE" not in body
    assert not Generation.objects.exists()
