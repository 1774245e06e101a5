"""Generations, their timeline and the provider callbacks that drive them."""

import uuid

from django.conf import settings
from django.db import models


class Status(models.TextChoices):
    QUEUED = "queued"
    RESERVED = "reserved"
    DISPATCHED = "dispatched"
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REJECTED = "rejected"
    CANCELED = "canceled"
    EXPIRED = "expired"
    UNPAID = "unpaid"


class PendingAction(models.TextChoices):
    """Ledger work claimed by a transition and not yet confirmed by ``ledger.api``."""

    CAPTURE = "capture"
    RELEASE = "release"


# States the user sees as still running; the progress fragment keeps polling only for these.
ACTIVE = (Status.QUEUED, Status.RESERVED, Status.DISPATCHED, Status.PROCESSING)
AT_PROVIDER = (Status.DISPATCHED, Status.PROCESSING)
CANCELABLE = (Status.RESERVED, Status.DISPATCHED, Status.PROCESSING)
# A success reported in these states is still captured (late, for failed and expired).
CAPTURABLE = (Status.DISPATCHED, Status.PROCESSING, Status.FAILED, Status.EXPIRED)


class Generation(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="generations"
    )
    model_key = models.CharField(max_length=64)
    kind = models.CharField(max_length=16)
    prompt = models.TextField()
    params = models.JSONField(default=dict)
    cost = models.PositiveIntegerField(help_text="Credits, fixed from the catalogue at submit.")
    provider = models.CharField(max_length=32)
    # NULL until dispatched: many rows without a job id must not collide in the unique constraint.
    provider_job_id = models.CharField(max_length=128, null=True, blank=True)  # noqa: DJ001
    provider_options = models.JSONField(
        default=dict, blank=True, help_text="Extra request fields (local provider fault knobs)."
    )
    hold_ttl_seconds = models.PositiveIntegerField()
    # The form's one-time key: a second POST of the same form finds this row instead of another.
    submission_key = models.CharField(max_length=64, null=True, blank=True)  # noqa: DJ001
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    pending_action = models.CharField(  # noqa: DJ001 - NULL means no ledger work is claimed
        max_length=16, choices=PendingAction.choices, null=True, blank=True
    )
    progress = models.PositiveSmallIntegerField(default=0)
    error_message = models.CharField(max_length=300, blank=True)
    error_detail = models.TextField(blank=True)
    dispatch_attempts = models.PositiveIntegerField(default=0)
    dispatch_attempted_at = models.DateTimeField(null=True, blank=True)
    next_check_at = models.DateTimeField(null=True, blank=True)
    redrive_attempts = models.PositiveIntegerField(default=0)
    alerted_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # The live page polls while the generation runs; a stale value means nobody is watching.
    last_viewed_at = models.DateTimeField(null=True, blank=True)
    # Set when the owner deleted it: outputs removed, prompt and parameters cleared.
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["provider", "provider_job_id"], name="generation_unique_provider_job"
            ),
            models.UniqueConstraint(
                fields=["user", "submission_key"], name="generation_unique_submission"
            ),
            models.CheckConstraint(
                condition=models.Q(progress__lte=100), name="generation_progress_le_100"
            ),
            models.CheckConstraint(condition=models.Q(cost__gt=0), name="generation_cost_gt_0"),
        ]
        indexes = [
            models.Index(fields=["user", "-created_at"], name="generation_user_recent"),
            models.Index(
                fields=["next_check_at"],
                name="generation_due",
                condition=models.Q(next_check_at__isnull=False),
            ),
        ]
        permissions = [
            ("redrive_generation", "Can re-drive stuck generations"),
        ]

    def __str__(self) -> str:
        return f"{self.model_key} {self.id} ({self.status})"

    @property
    def hold_reference(self) -> str:
        return f"gen:{self.id}"

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE

    @property
    def is_cancelable(self) -> bool:
        return self.status in CANCELABLE and self.pending_action is None


class GenerationEvent(models.Model):
    """One row per transition: the generation's timeline."""

    generation = models.ForeignKey(Generation, on_delete=models.PROTECT, related_name="events")
    name = models.CharField(max_length=48)
    from_status = models.CharField(max_length=16, blank=True)
    to_status = models.CharField(max_length=16, blank=True)
    message = models.CharField(max_length=300, blank=True)
    detail = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.name}: {self.from_status} -> {self.to_status}"


class ProviderCallback(models.Model):
    """A verified callback delivery, stored before it is settled (unique per delivery id)."""

    provider = models.CharField(max_length=32)
    delivery_id = models.CharField(max_length=200)
    provider_job_id = models.CharField(max_length=128)
    event = models.CharField(max_length=64, blank=True)
    reported_status = models.CharField(max_length=32, blank=True)
    payload = models.JSONField()
    report = models.JSONField(default=dict, help_text="The parsed JobReport.")
    generation_hint = models.CharField(
        max_length=64, blank=True, help_text="Our generation id from the callback URL, if any."
    )
    generation = models.ForeignKey(
        Generation, on_delete=models.PROTECT, null=True, blank=True, related_name="callbacks"
    )
    received_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=200, blank=True)
    attempts = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-received_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["provider", "delivery_id"], name="provider_callback_unique_delivery"
            )
        ]
        indexes = [
            models.Index(
                fields=["received_at"],
                name="provider_callback_unsettled",
                condition=models.Q(processed_at__isnull=True),
            )
        ]

    def __str__(self) -> str:
        return f"{self.provider} {self.delivery_id} ({self.reported_status})"
