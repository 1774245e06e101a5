"""Private objects in any S3-compatible store, handed out as short-lived presigned GETs."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO

from django.conf import settings


@dataclass(frozen=True)
class S3Settings:
    endpoint_url: str
    public_endpoint_url: str
    access_key: str
    secret_key: str
    region: str
    bucket: str


@functools.lru_cache(maxsize=8)
def _client(endpoint_url: str, access_key: str, secret_key: str, region: str, *, fast: bool):
    import boto3
    from botocore.config import Config

    # SigV4 and path-style for S3-compatible servers; boto3 >= 1.36 otherwise adds CRC
    # checksums that several of them reject.
    config = Config(
        signature_version="s3v4",
        s3={"addressing_style": "path"},
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        connect_timeout=2 if fast else 10,
        read_timeout=3 if fast else 60,
        retries={"max_attempts": 1 if fast else 3, "mode": "standard"},
    )
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint_url or None,
        aws_access_key_id=access_key or None,
        aws_secret_access_key=secret_key or None,
        region_name=region,
        config=config,
    )


class S3Backend:
    """Upload and delete through the internal endpoint; presign against the public one."""

    def __init__(self, conf: S3Settings) -> None:
        self.conf = conf

    @classmethod
    def from_settings(cls) -> S3Backend:
        return cls(
            S3Settings(
                endpoint_url=settings.AWS_S3_ENDPOINT_URL,
                public_endpoint_url=settings.AWS_S3_PUBLIC_ENDPOINT_URL
                or settings.AWS_S3_ENDPOINT_URL,
                access_key=settings.AWS_ACCESS_KEY_ID,
                secret_key=settings.AWS_SECRET_ACCESS_KEY,
                region=settings.AWS_S3_REGION_NAME,
                bucket=settings.AWS_STORAGE_BUCKET_NAME,
            )
        )

    def _internal(self, *, fast: bool = False):
        c = self.conf
        return _client(c.endpoint_url, c.access_key, c.secret_key, c.region, fast=fast)

    def _signer(self):
        # Signing is offline: this client never talks to the public endpoint, it only puts its
        # host into the URL, because SigV4 signs the Host header the browser will send.
        c = self.conf
        return _client(c.public_endpoint_url, c.access_key, c.secret_key, c.region, fast=True)

    def put(self, key: str, body: BinaryIO, *, content_type: str, size: int) -> None:
        self._internal().put_object(
            Bucket=self.conf.bucket,
            Key=key,
            Body=body,
            ContentLength=size,
            ContentType=content_type,
            ContentDisposition="inline",
            CacheControl="private, max-age=300",
        )

    def delete(self, key: str) -> None:
        self._internal().delete_object(Bucket=self.conf.bucket, Key=key)

    def open(self, key: str) -> BinaryIO:
        return self._internal().get_object(Bucket=self.conf.bucket, Key=key)["Body"]

    def keys(self, *, prefix: str, modified_before: datetime) -> Iterator[str]:
        """Yield the keys under ``prefix`` last written before ``modified_before`` (aware)."""
        pages = self._internal().get_paginator("list_objects_v2")
        for page in pages.paginate(Bucket=self.conf.bucket, Prefix=prefix):
            for item in page.get("Contents", ()):
                if item["LastModified"] < modified_before:
                    yield item["Key"]

    def signed_url(self, key: str, *, seconds: int, content_type: str) -> str:
        return self._signer().generate_presigned_url(
            "get_object",
            Params={"Bucket": self.conf.bucket, "Key": key},
            ExpiresIn=seconds,
        )

    def check(self) -> None:
        self._internal(fast=True).head_bucket(Bucket=self.conf.bucket)

    def warm_up(self) -> None:
        # Offline: builds the cached upload client (botocore loads its service model, ~0.3 s).
        self._internal()

    def ensure_bucket(self) -> bool:
        """Create the bucket unless it exists; return whether it was created."""
        from botocore.exceptions import ClientError

        client = self._internal(fast=True)
        try:
            client.head_bucket(Bucket=self.conf.bucket)
            return False
        except ClientError as error:
            status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if status != 404:
                raise
        kwargs: dict = {"Bucket": self.conf.bucket}
        if self.conf.region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": self.conf.region}
        try:
            client.create_bucket(**kwargs)
        except client.exceptions.BucketAlreadyOwnedByYou:
            return False
        return True
