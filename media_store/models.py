import uuid

from django.db import models


class Asset(models.Model):
    """One stored generation output: a private object plus its optional thumbnail."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # Plain UUIDs rather than foreign keys keep media_store free of imports from other apps.
    owner_id = models.UUIDField()
    generation_id = models.UUIDField()
    index = models.PositiveSmallIntegerField(default=0)
    key = models.CharField(max_length=300, unique=True)
    thumbnail_key = models.CharField(max_length=300, blank=True, default="")
    content_type = models.CharField(max_length=40)
    size = models.BigIntegerField()
    sha256 = models.CharField(max_length=64)
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    source_host = models.CharField(max_length=255, blank=True, default="")
    # Set while the generation is unpaid (docs/design.md §5): the owner sees a "withheld" page.
    withheld = models.BooleanField(default=False, db_default=False)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["generation_id", "index"], name="media_asset_one_per_output"
            ),
            models.CheckConstraint(condition=models.Q(size__gte=0), name="media_asset_size_gte_0"),
        ]
        indexes = [models.Index(fields=["owner_id", "-created"], name="media_asset_owner_recent")]

    def __str__(self) -> str:
        return f"{self.content_type} {self.id}"
