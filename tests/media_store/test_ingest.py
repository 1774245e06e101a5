"""Ingest copies a provider's output into private storage once, and refuses anything unsafe."""

import hashlib
import threading
import uuid

import httpx
import pytest
from django.db import connections

from media_store import api, fetch
from media_store.backends import get_backend
from media_store.models import Asset
from tests.media_store.conftest import image_bytes, mp4_bytes, webm_bytes

LOCAL = ["127.0.0.1"]
PUBLIC_IP = "93.184.216.34"  # Never contacted: the routing transport below sends it to loopback.


class RoutingTransport(httpx.BaseTransport):
    """Network stand-in: connections to PUBLIC_IP land on the loopback payload server."""

    def __init__(self, port: int) -> None:
        self.inner = httpx.HTTPTransport(retries=0)
        self.port = port
        self.seen: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request.url.host)
        if request.url.host == PUBLIC_IP:
            request.url = request.url.copy_with(host="127.0.0.1", port=self.port)
        elif request.url.host != "127.0.0.1":
            raise AssertionError(f"test tried to leave the machine: {request.url}")
        return self.inner.handle_request(request)


@pytest.fixture
def public_network(monkeypatch, payload_server):
    """Pretend ``cdn.example.test`` is a public host that is really the payload server."""
    transport = RoutingTransport(payload_server.port)
    lookups: list[str] = []

    def resolve(host: str, port: int) -> list[str]:
        lookups.append(host)
        return {"cdn.example.test": [PUBLIC_IP], "internal.example.test": ["10.1.2.3"]}[host]

    monkeypatch.setattr(fetch, "resolve_host", resolve)
    monkeypatch.setattr(fetch, "open_transport", lambda: transport)
    transport.lookups = lookups
    return transport


def _stored_keys(owner_id, generation_id) -> list[str]:
    backend = get_backend()
    listing = backend._internal().list_objects_v2(
        Bucket=backend.conf.bucket, Prefix=f"{owner_id}/{generation_id}/"
    )
    return sorted(item["Key"] for item in listing.get("Contents", []))


def _ingest(ids, url, allowed=LOCAL, index=0):
    owner_id, generation_id = ids
    return api.ingest(
        owner_id=owner_id,
        generation_id=generation_id,
        source_url=url,
        allowed_hosts=allowed,
        index=index,
    )


@pytest.mark.django_db
@pytest.mark.usefixtures("private_hosts_allowed")
def test_png_is_stored_with_hash_dimensions_and_thumbnail(
    payload_server, ids, backend_name, fetch_signed
):
    """The asset records what the bytes are, and both signed URLs serve real images."""
    png = image_bytes("PNG", (900, 600))
    info = _ingest(ids, payload_server.serve("/out.png", png, headers={"Content-Type": "x/y"}))
    assert (info.content_type, info.size, info.sha256) == (
        "image/png",
        len(png),
        hashlib.sha256(png).hexdigest(),
    )
    assert (info.width, info.height, info.duration_ms) == (900, 600, None)
    assert info.url == f"/media/{info.id}/"
    assert info.thumbnail_url == f"/media/{info.id}/thumbnail/"
    assert fetch_signed(api.signed_url(info.id)) == (200, png)
    status, thumb = fetch_signed(api.signed_url(info.id, thumbnail=True))
    assert status == 200
    assert thumb.startswith(b"RIFF") and thumb[8:12] == b"WEBP"
    assert api.assets_for_generation(ids[1]) == [info]


@pytest.mark.django_db
@pytest.mark.usefixtures("private_hosts_allowed")
@pytest.mark.parametrize(
    ("body", "content_type", "duration_ms", "size"),
    [
        (image_bytes("JPEG"), "image/jpeg", None, (64, 48)),
        (image_bytes("GIF"), "image/gif", None, (64, 48)),
        (image_bytes("WEBP"), "image/webp", None, (64, 48)),
        (mp4_bytes(2, 320), "video/mp4", 2000, (320, 240)),
        (webm_bytes(1, 320), "video/webm", 1000, (320, 240)),
    ],
)
def test_each_supported_type_is_recognised_by_its_bytes(
    payload_server, ids, body, content_type, duration_ms, size
):
    """JPEG, GIF, WebP, MP4 and WebM are told apart by magic bytes, whatever the header says."""
    info = _ingest(ids, payload_server.serve("/out", body, headers={"Content-Type": "text/html"}))
    assert info.content_type == content_type
    assert (info.width, info.height) == size
    assert info.duration_ms == duration_ms
    # An image's thumbnail, a video's poster: every stored output has a preview.
    assert info.thumbnail_url is not None


@pytest.mark.django_db
@pytest.mark.usefixtures("private_hosts_allowed")
def test_repeat_ingest_returns_the_first_asset_without_downloading(payload_server, ids):
    """A duplicate callback or a retried task gets the stored asset; the source is not fetched."""
    url = payload_server.serve("/once.png", image_bytes("PNG"))
    first = _ingest(ids, url)
    second = _ingest(ids, url)
    assert second == first
    assert payload_server.hits("/once.png") == 1
    assert Asset.objects.filter(generation_id=ids[1]).count() == 1


@pytest.mark.django_db
@pytest.mark.usefixtures("private_hosts_allowed")
def test_outputs_of_one_generation_are_kept_apart_by_index(payload_server, ids):
    """Index 0 and index 1 are two assets listed in order."""
    url = payload_server.serve("/a.png", image_bytes("PNG"))
    second = _ingest(ids, url, index=1)
    first = _ingest(ids, url, index=0)
    assert [a.id for a in api.assets_for_generation(ids[1])] == [first.id, second.id]


@pytest.mark.django_db
@pytest.mark.usefixtures("private_hosts_allowed")
def test_same_generation_for_another_owner_is_refused(payload_server, ids):
    """A generation's asset never changes hands, even if a caller passes the wrong owner."""
    url = payload_server.serve("/a.png", image_bytes("PNG"))
    _ingest(ids, url)
    with pytest.raises(api.IngestRefused) as refused:
        _ingest((uuid.uuid4(), ids[1]), url)
    assert refused.value.reason == "conflict"


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("private_hosts_allowed")
def test_concurrent_duplicate_ingests_create_one_asset(payload_server, ids):
    """Four simultaneous ingests of one output agree on one asset; losers remove their objects."""
    url = payload_server.serve("/race.png", image_bytes("PNG", (300, 200)), delay=0.2)
    barrier = threading.Barrier(4)
    results, errors = [], []

    def run():
        try:
            barrier.wait()
            results.append(_ingest(ids, url))
        except Exception as error:  # surfaced by the assertion below
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert len({info.id for info in results}) == 1
    assert Asset.objects.filter(generation_id=ids[1]).count() == 1
    asset = Asset.objects.get(generation_id=ids[1])
    assert _stored_keys(*ids) == sorted([asset.key, asset.thumbnail_key])


@pytest.mark.django_db
@pytest.mark.usefixtures("private_hosts_allowed")
@pytest.mark.parametrize("chunked", [False, True], ids=["declared-length", "chunked-stream"])
def test_oversized_download_is_refused(payload_server, ids, settings, chunked):
    """Over the cap is refused whether the length is declared up front or only streamed."""
    settings.INGEST_MAX_BYTES = 200_000
    body = image_bytes("PNG") + bytes(300_000)
    url = payload_server.serve("/big.png", body, chunked=chunked)
    with pytest.raises(api.IngestRefused) as refused:
        _ingest(ids, url)
    assert refused.value.reason == "too_large"
    assert not Asset.objects.filter(generation_id=ids[1]).exists()
    assert _stored_keys(*ids) == []


@pytest.mark.django_db
@pytest.mark.usefixtures("private_hosts_allowed")
def test_image_over_the_pixel_cap_is_refused(payload_server, ids, settings):
    """A small file that would decode into a huge bitmap is refused before decoding."""
    settings.INGEST_MAX_IMAGE_PIXELS = 100 * 100
    url = payload_server.serve("/wide.png", image_bytes("PNG", (400, 400)))
    with pytest.raises(api.IngestRefused) as refused:
        _ingest(ids, url)
    assert refused.value.reason == "too_large"


@pytest.mark.django_db
@pytest.mark.usefixtures("private_hosts_allowed")
@pytest.mark.parametrize(
    ("body", "content_type", "reason"),
    [
        (b"<!doctype html><script>alert(1)</script>", "image/png", "unsupported_type"),
        (b"just some text that claims to be a picture", "image/jpeg", "unsupported_type"),
        (b"%PDF-1.7\n", "video/mp4", "unsupported_type"),
        (b"\x89PNG\r\n\x1a\n" + b"not really a png after the magic", "image/png", "corrupt"),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic", "video/mp4", "unsupported_type"),
    ],
    ids=["html-as-png", "text", "pdf", "png-magic-then-garbage", "heic-container"],
)
def test_wrong_type_is_refused_whatever_the_content_type_header(
    payload_server, ids, body, content_type, reason
):
    """The Content-Type header is ignored: bytes that are not a whole supported file are refused."""
    url = payload_server.serve("/fake", body, headers={"Content-Type": content_type})
    with pytest.raises(api.IngestRefused) as refused:
        _ingest(ids, url)
    assert refused.value.reason == reason
    assert not Asset.objects.filter(generation_id=ids[1]).exists()
    assert _stored_keys(*ids) == []


@pytest.mark.django_db
@pytest.mark.usefixtures("private_hosts_refused")
@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_loopback_source_is_refused_without_the_development_switch(payload_server, ids, host):
    """With INGEST_ALLOW_PRIVATE_HOSTS off, an allow-listed loopback host is never contacted."""
    url = payload_server.serve("/secret.png", image_bytes("PNG")).replace("127.0.0.1", host)
    with pytest.raises(api.IngestRefused) as refused:
        _ingest(ids, url, allowed=[host])
    assert refused.value.reason == "private_address"
    assert payload_server.requests == []


@pytest.mark.django_db
@pytest.mark.usefixtures("private_hosts_refused")
def test_only_a_named_internal_host_may_be_private(payload_server, ids, settings):
    """INGEST_INTERNAL_HOSTS trusts the hosts it names (a team's own GPU box), nothing else."""
    settings.INGEST_INTERNAL_HOSTS = ["127.0.0.1"]
    url = payload_server.serve("/gpu.png", image_bytes("PNG"))
    _ingest(ids, url, allowed=["127.0.0.1", "localhost"])
    assert len(payload_server.requests) == 1
    with pytest.raises(api.IngestRefused) as refused:
        _ingest(
            ids, url.replace("127.0.0.1", "localhost"), allowed=["127.0.0.1", "localhost"], index=1
        )
    assert refused.value.reason == "private_address"
    assert len(payload_server.requests) == 1


@pytest.mark.django_db
@pytest.mark.usefixtures("private_hosts_allowed")
def test_host_outside_the_allow_list_is_refused_even_with_the_switch_on(payload_server, ids):
    """The allow-list applies in development too; nothing is fetched."""
    url = payload_server.serve("/a.png", image_bytes("PNG"))
    with pytest.raises(api.IngestRefused) as refused:
        _ingest(ids, url, allowed=["replicate.delivery", ".example.com"])
    assert refused.value.reason == "host_not_allowed"
    assert payload_server.requests == []


@pytest.mark.django_db
@pytest.mark.usefixtures("private_hosts_refused")
@pytest.mark.parametrize(
    "answer", [["10.1.2.3"], ["169.254.169.254"], [PUBLIC_IP, "127.0.0.1"], ["::ffff:127.0.0.1"]]
)
def test_name_resolving_to_a_private_address_is_refused(monkeypatch, payload_server, ids, answer):
    """A public-looking name whose DNS answer includes any private address is refused."""
    monkeypatch.setattr(fetch, "resolve_host", lambda host, port: answer)
    url = payload_server.serve("/a.png", image_bytes("PNG"))
    with pytest.raises(api.IngestRefused) as refused:
        _ingest(ids, url.replace("127.0.0.1", "cdn.example.test"), allowed=["cdn.example.test"])
    assert refused.value.reason == "private_address"
    assert payload_server.requests == []


@pytest.mark.django_db
@pytest.mark.usefixtures("private_hosts_refused")
def test_public_host_is_fetched_through_the_checked_address(public_network, payload_server, ids):
    """The connection goes to the address that was checked, under the original Host header."""
    png = image_bytes("PNG")
    payload_server.serve("/pub.png", png)
    url = payload_server.url("/pub.png", host="cdn.example.test")
    info = _ingest(ids, url, allowed=["cdn.example.test"])
    assert info.sha256 == hashlib.sha256(png).hexdigest()
    assert public_network.lookups == ["cdn.example.test"]
    assert public_network.seen == [PUBLIC_IP]
    assert payload_server.requests == [("/pub.png", f"cdn.example.test:{payload_server.port}")]


@pytest.mark.django_db
@pytest.mark.usefixtures("private_hosts_refused")
@pytest.mark.parametrize(
    "target",
    ["http://127.0.0.1:{port}/secret", "http://internal.example.test:{port}/secret"],
    ids=["loopback-literal", "name-resolving-private"],
)
def test_redirect_to_a_private_address_is_refused(public_network, payload_server, ids, target):
    """Each redirect hop is checked again: a public host cannot bounce ingest inward."""
    payload_server.serve("/secret", image_bytes("PNG"))
    payload_server.redirect("/hop", target.format(port=payload_server.port))
    url = payload_server.url("/hop", host="cdn.example.test")
    allowed = ["cdn.example.test", "internal.example.test", "127.0.0.1"]
    with pytest.raises(api.IngestRefused) as refused:
        _ingest(ids, url, allowed=allowed)
    assert refused.value.reason == "private_address"
    assert payload_server.hits("/hop") == 1
    assert payload_server.hits("/secret") == 0


@pytest.mark.django_db
@pytest.mark.usefixtures("private_hosts_allowed")
def test_redirect_to_an_unlisted_host_is_refused(payload_server, ids):
    """A redirect may not leave the provider's allow-list."""
    payload_server.redirect("/hop", f"http://localhost:{payload_server.port}/a.png")
    payload_server.serve("/a.png", image_bytes("PNG"))
    with pytest.raises(api.IngestRefused) as refused:
        _ingest(ids, payload_server.url("/hop"))
    assert refused.value.reason == "host_not_allowed"
    assert payload_server.hits("/a.png") == 0


@pytest.mark.django_db
@pytest.mark.usefixtures("private_hosts_allowed")
def test_allowed_redirects_are_followed_up_to_the_limit(payload_server, ids, settings):
    """Two hops are fine; a loop ends in a refusal instead of running forever."""
    settings.INGEST_MAX_REDIRECTS = 2
    payload_server.redirect("/one", "/two", status=301)
    payload_server.redirect("/two", "/a.png", status=307)
    payload_server.serve("/a.png", image_bytes("PNG"))
    assert _ingest(ids, payload_server.url("/one")).content_type == "image/png"
    payload_server.redirect("/loop", "/loop")
    with pytest.raises(api.IngestRefused) as refused:
        _ingest((ids[0], uuid.uuid4()), payload_server.url("/loop"))
    assert refused.value.reason == "too_many_redirects"
    assert payload_server.hits("/loop") == 3


@pytest.mark.django_db
@pytest.mark.usefixtures("private_hosts_allowed")
@pytest.mark.parametrize("url", ["ftp://127.0.0.1/a.png", "http://user:pw@127.0.0.1/a.png", "nope"])
def test_malformed_or_non_http_urls_are_refused(ids, url):
    """Only plain http(s) URLs without credentials are fetched."""
    with pytest.raises(api.IngestRefused) as refused:
        _ingest(ids, url)
    assert refused.value.reason in {"bad_url", "host_not_allowed"}


@pytest.mark.django_db
@pytest.mark.usefixtures("private_hosts_allowed")
@pytest.mark.parametrize("status", [404, 410])
def test_output_gone_is_a_permanent_refusal(payload_server, ids, status):
    """Expired provider output will never come back: refuse, do not retry."""
    url = payload_server.serve("/gone", b"gone", status=status)
    with pytest.raises(api.IngestRefused) as refused:
        _ingest(ids, url)
    assert refused.value.reason == "output_gone"


@pytest.mark.django_db
@pytest.mark.usefixtures("private_hosts_allowed")
@pytest.mark.parametrize("status", [500, 503, 429])
def test_server_errors_are_temporary(payload_server, ids, status):
    """A provider hiccup is retryable and stores nothing."""
    url = payload_server.serve("/flaky", b"busy", status=status)
    with pytest.raises(api.IngestTemporaryError):
        _ingest(ids, url)
    assert not Asset.objects.filter(generation_id=ids[1]).exists()


@pytest.mark.django_db
@pytest.mark.usefixtures("private_hosts_allowed")
def test_slow_server_is_a_temporary_error(payload_server, ids, settings):
    """A response slower than the read timeout is retryable."""
    settings.INGEST_READ_TIMEOUT_SECONDS = 0.3
    url = payload_server.serve("/slow", image_bytes("PNG"), delay=1.0)
    with pytest.raises(api.IngestTemporaryError):
        _ingest(ids, url)


@pytest.mark.django_db
@pytest.mark.usefixtures("private_hosts_allowed")
def test_unreachable_server_is_a_temporary_error(payload_server, ids):
    """Nothing listening is retryable."""
    url = payload_server.serve("/a.png", image_bytes("PNG"))
    payload_server.httpd.server_close()
    with pytest.raises(api.IngestTemporaryError):
        _ingest(ids, url)


def test_refusal_types_share_the_media_error_base():
    """Callers may catch MediaError for both, and read a stable reason code."""
    refused = api.IngestRefused("too_large", "over 5 bytes")
    assert isinstance(refused, api.MediaError)
    assert issubclass(api.IngestTemporaryError, api.MediaError)
    assert (refused.reason, str(refused)) == ("too_large", "too_large: over 5 bytes")


@pytest.mark.django_db
@pytest.mark.usefixtures("private_hosts_allowed")
def test_truncated_jpeg_is_refused(payload_server, ids):
    """A JPEG cut off mid-scan passes the header checks but cannot be decoded: refused."""
    jpeg = image_bytes("JPEG", (400, 300))
    url = payload_server.serve("/cut.jpg", jpeg[: len(jpeg) // 2])
    with pytest.raises(api.IngestRefused) as refused:
        _ingest(ids, url)
    assert refused.value.reason == "corrupt"
    assert _stored_keys(*ids) == []


@pytest.mark.django_db
@pytest.mark.usefixtures("private_hosts_allowed")
def test_storage_outage_is_temporary_and_records_nothing(payload_server, ids, settings):
    """When the bucket cannot take the upload the caller may retry; no row points at nothing."""
    url = payload_server.serve("/a.png", image_bytes("PNG"))
    settings.AWS_S3_ENDPOINT_URL = "http://127.0.0.1:9"  # nothing listens on the discard port
    with pytest.raises(api.IngestTemporaryError):
        _ingest(ids, url)
    assert not Asset.objects.filter(generation_id=ids[1]).exists()
