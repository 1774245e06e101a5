"""Public face of media storage; other apps import only this module."""

from django.conf import settings

__all__ = ["check_storage"]


def check_storage() -> None:
    """Raise when the configured storage cannot be reached (used by /healthz)."""
    if settings.MEDIA_BACKEND == "filesystem":
        settings.MEDIA_ROOT.mkdir(parents=True, exist_ok=True)
        return
    import boto3
    from botocore.config import Config

    client = boto3.client(
        "s3",
        endpoint_url=settings.AWS_S3_ENDPOINT_URL or None,
        aws_access_key_id=settings.AWS_ACCESS_KEY_ID or None,
        aws_secret_access_key=settings.AWS_SECRET_ACCESS_KEY or None,
        region_name=settings.AWS_S3_REGION_NAME,
        config=Config(
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            connect_timeout=2,
            read_timeout=3,
            retries={"max_attempts": 1},
        ),
    )
    client.head_bucket(Bucket=settings.AWS_STORAGE_BUCKET_NAME)
