"""Odd input at the generate and buy forms: a clear 4xx or a normal answer, never a 500."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.models import CheckoutSession
from generation.models import Generation
from tests.security.conftest import csrf_client
from tests.security.fuzz import FUZZ

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("no_limits")]

odd_text = st.one_of(
    st.text(max_size=60),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=30),
    st.sampled_from(["\x00", "a\x00b\x00c", "<script>alert(1)</script>", "' OR 1=1 --", "\ud7ff"]),
    st.just("x" * 5000),
    st.integers(min_value=-(2**80), max_value=2**80).map(str),
)


@pytest.fixture
def provider_on(settings):
    """Let submissions reach the database (the local provider counts as configured)."""
    from generation.providers import reset_providers

    settings.LOCAL_PROVIDER_ENABLED = True
    settings.LOCAL_PROVIDER_URL = "http://127.0.0.1:9"
    settings.PROVIDER_WEBHOOK_SECRET = "whsec_" + "s" * 32  # the provider needs one to count
    reset_providers()
    yield settings
    reset_providers()


def signed_in(user):
    client = csrf_client(user)
    client.get("/dashboard/")
    return client, client.cookies["csrftoken"].value


def test_generate_form_survives_odd_input(world, provider_on):
    """Any model, prompt and parameters: 302 to a stored generation or a 400 form, never 500."""
    client, token = signed_in(world.bob)

    @FUZZ
    @given(
        model=st.sampled_from(["flux-schnell", "loop-animation", "clip-video"]) | odd_text,
        prompt=odd_text,
        fields=st.dictionaries(
            st.sampled_from(["ratio", "outputs", "duration", "resolution", "output_format"])
            | st.text(max_size=10),
            odd_text,
            max_size=5,
        ),
    )
    def attempt(model, prompt, fields):
        before = Generation.objects.filter(user=world.bob).count()
        data = {**fields, "model": model, "prompt": prompt, "csrfmiddlewaretoken": token}
        response = client.post("/generations/new/", data)
        assert response.status_code in (200, 302, 400), response.status_code
        created = Generation.objects.filter(user=world.bob).count() - before
        assert created == (1 if response.status_code == 302 else 0)
        if created:
            stored = Generation.objects.filter(user=world.bob).latest("created_at")
            assert "\x00" not in stored.prompt and stored.cost > 0

    attempt()


def test_a_prompt_with_a_nul_byte_gets_a_form_error_not_a_500(world, provider_on):
    """Found by the fuzzer: PostgreSQL text cannot hold NUL, so the form must refuse it."""
    client, token = signed_in(world.bob)
    response = client.post(
        "/generations/new/",
        {"model": "flux-schnell", "prompt": "00\x00", "csrfmiddlewaretoken": token},
    )
    assert response.status_code == 400
    assert b"control characters" in response.content
    assert not Generation.objects.filter(user=world.bob).exists()


def test_estimate_survives_odd_form_data(world):
    """The live estimate (a POST) answers 200 with a reason for any model and parameters."""
    client, token = signed_in(world.bob)

    @FUZZ
    @given(
        query=st.dictionaries(
            st.sampled_from(["model", "ratio", "outputs", "duration", "prompt"]), odd_text
        )
    )
    def attempt(query):
        data = {**query, "csrfmiddlewaretoken": token}
        assert client.post("/generations/estimate/", data).status_code == 200

    attempt()


def test_buy_form_survives_odd_packs(world):
    """Any pack value, in the form or the path: 303 back or to Checkout, never 500."""
    client, token = signed_in(world.bob)

    @FUZZ
    @given(
        pack=odd_text | st.just(str(world.pack.pk)),
        path_id=st.none() | st.integers(min_value=0, max_value=10**30),
    )
    def attempt(pack, path_id):
        before = CheckoutSession.objects.filter(user=world.bob).count()
        url = "/billing/buy/" if path_id is None else f"/billing/buy/{path_id}/"
        response = client.post(url, {"pack": pack, "csrfmiddlewaretoken": token})
        assert response.status_code == 303, response.status_code
        created = CheckoutSession.objects.filter(user=world.bob).count() - before
        chosen = str(path_id) if path_id else pack
        assert created == (1 if chosen == str(world.pack.pk) else 0)

    attempt()


def test_other_users_ids_in_forms_change_nothing(world):
    """Bob posting Alice's generation id to cancel gets 404 and her generation stays."""
    client, token = signed_in(world.bob)
    response = client.post(
        f"/generations/{world.generation.pk}/cancel/", {"csrfmiddlewaretoken": token}
    )
    assert response.status_code == 404
    world.generation.refresh_from_db()
    assert world.generation.status == "queued"
