"""A video generation end to end in Chromium: a real H.264 MP4 from the local provider is stored,
shown with its poster, and plays; the galleries show the poster with the duration.
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


def test_a_generated_video_plays_with_its_poster_and_galleries_show_its_length(
    app, browser, user_factory
):
    user = user_factory()
    ledger.grant(user.pk, 100, key=f"browser:{uuid.uuid4()}", source="test")
    generation = submit_generation(
        user,
        model_key="clip-video",
        prompt="a paper boat drifting",
        params={"ratio": "16:9", "duration": "3", "resolution": "480p"},
    )
    wait_until(
        lambda: Generation.objects.get(pk=generation.pk).status == Status.SUCCEEDED,
        timeout=60,
        what="the video generation to succeed",
    )
    [asset] = media.assets_for_generation(generation.pk)
    assert (asset.content_type, asset.width, asset.height) == ("video/mp4", 854, 480)
    assert asset.duration_ms == 3000
    assert asset.thumbnail_url is not None

    browser.login_as(user)
    page = browser.page
    browser.go(f"/generations/{generation.pk}/")
    video = page.locator("video.media-asset")
    assert video.get_attribute("poster") == asset.thumbnail_url
    assert page.locator("video.media-asset source").get_attribute("type") == "video/mp4"
    assert "0:03" in page.locator(".media-frame figcaption").inner_text()
    # The poster is a real image behind the owner's redirect to a signed URL.
    poster = page.evaluate(
        """async (url) => {
            const image = new Image();
            image.src = url;
            await image.decode();
            return [image.naturalWidth, image.naturalHeight];
        }""",
        asset.thumbnail_url,
    )
    assert poster[0] > 0 and poster[1] > 0
    # It plays: enough data for the current frame, then the clock moves.
    video.evaluate("v => { v.muted = true; return v.play(); }")
    page.wait_for_function(
        "() => document.querySelector('video.media-asset').readyState >= 2", timeout=15_000
    )
    page.wait_for_function(
        "() => document.querySelector('video.media-asset').currentTime > 0.5", timeout=15_000
    )
    assert video.evaluate("v => v.error") is None
    assert video.evaluate("v => [v.videoWidth, v.videoHeight]") == [854, 480]
    video.evaluate("v => { v.pause(); v.currentTime = 0; }")
    browser.shot("video-detail")

    for path, name in (("/generations/", "video-history"), ("/dashboard/", "video-dashboard")):
        browser.go(path)
        card = page.locator(f'a.gallery-card[href="/generations/{generation.pk}/"]')
        assert "Video 0:03" in card.locator(".thumb-duration").inner_text()
        loaded = card.locator(".thumb img").evaluate(
            "img => img.decode().then(() => img.naturalWidth)"
        )
        assert loaded > 0
        browser.shot(name)
