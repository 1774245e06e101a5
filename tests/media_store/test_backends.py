"""One contract for every storage backend: private objects behind short-lived signed URLs."""

import io
import time
import uuid
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import pytest
from django.conf import settings

from media_store.backends import get_backend
from tests.media_store.conftest import wait_for_second_start

pytestmark = pytest.mark.usefixtures("backend_name")


def _put(body: bytes = b"\x89PNG\r\n\x1a\n-payload") -> str:
    key = f"contract/{uuid.uuid4()}.png"
    get_backend().put(key, io.BytesIO(body), content_type="image/png", size=len(body))
    return key


def _tamper(url: str) -> str:
    """Flip the last character of the signature, wherever the backend keeps it."""
    parts = urlsplit(url)
    if parts.query:
        query = dict(parse_qsl(parts.query))
        signature = query["X-Amz-Signature"]
        query["X-Amz-Signature"] = signature[:-1] + ("0" if signature[-1] != "0" else "1")
        return urlunsplit(parts._replace(query=urlencode(query)))
    path = parts.path.rstrip("/")
    flipped = path[:-1] + ("A" if path[-1] != "A" else "B")
    return urlunsplit(parts._replace(path=flipped + "/"))


def test_signed_url_serves_the_object_before_expiry(fetch_signed):
    """A freshly signed URL returns exactly the stored bytes."""
    key = _put(b"\x89PNG\r\n\x1a\nhello")
    status, body = fetch_signed(get_backend().signed_url(key, seconds=60, content_type="image/png"))
    assert (status, body) == (200, b"\x89PNG\r\n\x1a\nhello")


def test_signed_url_is_refused_after_expiry(fetch_signed):
    """A one-second URL works at once and is refused once its second has passed."""
    key = _put()
    wait_for_second_start()
    url = get_backend().signed_url(key, seconds=1, content_type="image/png")
    assert fetch_signed(url)[0] == 200
    time.sleep(2.1)
    status, body = fetch_signed(url)
    assert status == 403
    assert b"payload" not in body


def test_tampered_signature_is_refused(fetch_signed):
    """Changing one character of the signature gets a refusal, not the object."""
    key = _put()
    url = get_backend().signed_url(key, seconds=60, content_type="image/png")
    status, body = fetch_signed(_tamper(url))
    assert status == 403
    assert b"payload" not in body


def test_deleted_object_is_no_longer_served(fetch_signed):
    """After delete, even a URL signed before it gets no bytes; deleting twice is fine."""
    key = _put()
    url = get_backend().signed_url(key, seconds=60, content_type="image/png")
    get_backend().delete(key)
    get_backend().delete(key)
    status, body = fetch_signed(url)
    assert status == 404
    assert b"payload" not in body


def test_ensure_bucket_creates_once_then_reports_existing(settings, tmp_path, backend_name):
    """The first call creates the storage, later calls leave it as it is."""
    settings.MEDIA_ROOT = tmp_path / "fresh-root"
    settings.AWS_STORAGE_BUCKET_NAME = f"contract-{uuid.uuid4().hex[:12]}"
    backend = get_backend()
    try:
        assert backend.ensure_bucket() is True
        assert backend.ensure_bucket() is False
        backend.check()
    finally:
        if backend_name == "s3":
            backend._internal().delete_bucket(Bucket=settings.AWS_STORAGE_BUCKET_NAME)


def test_check_fails_when_storage_is_unreachable(settings, tmp_path, backend_name):
    """The health check raises when the backend cannot store anything."""
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("x")
    settings.MEDIA_ROOT = blocker / "media"
    settings.AWS_STORAGE_BUCKET_NAME = f"missing-{uuid.uuid4().hex[:12]}"
    with pytest.raises(Exception):  # noqa: B017 - each backend raises its own error type
        get_backend().check()


@pytest.mark.parametrize("backend_name", ["s3"], indirect=True)
def test_s3_object_is_private_without_a_signature():
    """A plain GET of the object's path is refused: the bucket is not public."""
    key = _put()
    url = f"{settings.AWS_S3_ENDPOINT_URL}/{settings.AWS_STORAGE_BUCKET_NAME}/{key}"
    response = httpx.get(url, timeout=5, trust_env=False)
    assert response.status_code == 403
    assert b"payload" not in response.content


@pytest.mark.parametrize("backend_name", ["s3"], indirect=True)
def test_s3_urls_are_signed_sigv4_path_style_against_the_public_endpoint(settings, fetch_signed):
    """The browser-facing host goes into a SigV4 signature, and the server accepts it."""
    port = urlsplit(settings.AWS_S3_ENDPOINT_URL).port
    settings.AWS_S3_PUBLIC_ENDPOINT_URL = f"http://localhost:{port}"
    key = _put(b"\x89PNG\r\n\x1a\npublic")
    url = get_backend().signed_url(key, seconds=30, content_type="image/png")
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    assert parts.netloc == f"localhost:{port}"
    assert parts.path == f"/{settings.AWS_STORAGE_BUCKET_NAME}/{key}"
    assert query["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
    assert query["X-Amz-Expires"] == "30"
    assert fetch_signed(url) == (200, b"\x89PNG\r\n\x1a\npublic")
