"""manage.py ensure_bucket makes storage ready and can run on every start."""

import io
import uuid

import pytest
from django.core.management import call_command

from media_store.backends import get_backend


def test_ensure_bucket_creates_a_missing_bucket_then_leaves_it(settings):
    """First run creates the bucket, the second reports it already exists."""
    settings.MEDIA_BACKEND = "s3"
    settings.AWS_STORAGE_BUCKET_NAME = f"cmd-{uuid.uuid4().hex[:12]}"
    outputs = []
    try:
        for _ in range(2):
            out = io.StringIO()
            call_command("ensure_bucket", stdout=out)
            outputs.append(out.getvalue().strip())
        get_backend().check()
    finally:
        get_backend()._internal().delete_bucket(Bucket=settings.AWS_STORAGE_BUCKET_NAME)
    assert outputs == ["media storage created", "media storage already exists"]


def test_ensure_bucket_reports_unreachable_storage(settings):
    """A storage server that is down is an error, not a silent success."""
    settings.MEDIA_BACKEND = "s3"
    settings.AWS_S3_ENDPOINT_URL = "http://127.0.0.1:9"
    with pytest.raises(Exception):  # noqa: B017 - botocore's connection error
        call_command("ensure_bucket", stdout=io.StringIO())
