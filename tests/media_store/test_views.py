"""/media/<id>/ sends the owner to a fresh signed URL and tells everyone else nothing."""

import uuid

import pytest
from django.urls import reverse

from media_store import api
from tests.media_store.conftest import image_bytes, mp4_bytes

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("private_hosts_allowed")]


@pytest.fixture
def alices_image(alice, payload_server):
    url = payload_server.serve("/alice.png", image_bytes("PNG", (120, 80)))
    return api.ingest(
        owner_id=alice.pk, generation_id=uuid.uuid4(), source_url=url, allowed_hosts=["127.0.0.1"]
    )


@pytest.mark.parametrize("route", ["media_store:asset", "media_store:thumbnail"])
def test_owner_is_redirected_to_a_fresh_uncached_signed_url(
    backend_name, alice_client, alices_image, fetch_signed, route
):
    """Each visit signs a new short-lived URL that serves the bytes; nothing may cache it."""
    response = alice_client.get(reverse(route, kwargs={"asset_id": alices_image.id}))
    assert response.status_code == 302
    assert "no-store" in response["Cache-Control"]
    status, body = fetch_signed(response["Location"])
    assert status == 200
    assert body[:4] in (b"\x89PNG", b"RIFF")


def test_another_user_and_a_random_id_get_identical_404s(client, bob, alices_image):
    """Bob cannot tell Alice's asset from one that does not exist."""
    client.force_login(bob)
    theirs = client.get(alices_image.url)
    missing = client.get(reverse("media_store:asset", kwargs={"asset_id": uuid.uuid4()}))
    thumb = client.get(alices_image.thumbnail_url)
    assert theirs.status_code == missing.status_code == thumb.status_code == 404
    assert theirs.content == missing.content
    assert "Location" not in theirs


def test_anonymous_visitor_is_sent_to_login(client, alices_image):
    """Logged-out users are asked to sign in, and learn nothing about the asset."""
    response = client.get(alices_image.url)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))


def test_video_thumbnail_route_serves_its_poster(alice, alice_client, payload_server):
    """A video's thumbnail is its poster (the first frame), behind the same signed redirect."""
    url = payload_server.serve("/clip.mp4", mp4_bytes())
    info = api.ingest(
        owner_id=alice.pk, generation_id=uuid.uuid4(), source_url=url, allowed_hosts=["127.0.0.1"]
    )
    assert info.thumbnail_url == f"{info.url}thumbnail/"
    response = alice_client.get(info.thumbnail_url)
    assert response.status_code == 302
    assert response["Cache-Control"] == "no-store"


def test_deleted_asset_is_gone_for_its_owner(alice_client, alices_image):
    """After delete the owner's link is a 404 too, and deleting again is harmless."""
    api.delete(alices_image.id)
    api.delete(alices_image.id)
    assert alice_client.get(alices_image.url).status_code == 404
    assert api.assets_for_generation(alices_image.generation_id) == []
    with pytest.raises(api.AssetNotFound):
        api.signed_url(alices_image.id)


@pytest.mark.parametrize("seconds", [0, 301, -5])
def test_signed_url_lifetime_is_capped_at_five_minutes(alices_image, seconds):
    """Lifetimes outside 1..300 seconds are refused rather than silently stretched."""
    with pytest.raises(ValueError):
        api.signed_url(alices_image.id, seconds=seconds)


def test_default_lifetime_never_exceeds_five_minutes(alices_image, settings):
    """A misconfigured MEDIA_SIGNED_URL_SECONDS still signs for at most 300 seconds."""
    settings.MEDIA_SIGNED_URL_SECONDS = 86_400
    assert "X-Amz-Expires=300" in api.signed_url(alices_image.id)


def test_filesystem_file_view_is_off_for_the_s3_backend(client, settings):
    """The token route only exists when the filesystem backend is configured."""
    settings.MEDIA_BACKEND = "s3"
    response = client.get(reverse("media_store:file", kwargs={"token": "anything"}))
    assert response.status_code == 404


def test_only_get_is_allowed(alice_client, alices_image):
    """The redirect is a read; other methods are refused."""
    assert alice_client.post(alices_image.url).status_code == 405


def test_asset_partial_links_only_to_app_urls(alices_image):
    """Pages embed app links (the in-app viewer, /media/<id>/), never a signed URL that could
    outlive the session."""
    from django.template.loader import render_to_string

    html = render_to_string("media_store/partials/asset.html", {"asset": alices_image})
    viewer = f"/generations/{alices_image.generation_id}/media/{alices_image.id}/"
    assert f'src="{alices_image.thumbnail_url}"' in html
    assert f'href="{viewer}"' in html
    full = render_to_string("media_store/partials/asset.html", {"asset": alices_image, "full": 1})
    assert f'src="{alices_image.url}"' in full
    assert "X-Amz" not in html + full and "://" not in html + full


def test_pages_allow_the_signed_url_origin_for_images_and_video(client, settings):
    """Browsers check img-src and media-src on the redirect target, so the S3 origin is listed."""
    policy = client.get(reverse("pages:home"))["Content-Security-Policy"]
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";") if part.strip())
    origin = settings.AWS_S3_PUBLIC_ENDPOINT_URL.rstrip("/")
    assert origin in directives["img-src"].split()
    assert origin in directives["media-src"].split()
