"""Notifications and the user's choices about them."""

from django.conf import settings
from django.db import models


class Kind(models.TextChoices):
    RECEIPT = "receipt"
    GENERATION_SUCCEEDED = "generation_succeeded"
    GENERATION_FAILED = "generation_failed"
    OUTPUT_WITHHELD = "output_withheld"
    LOW_BALANCE = "low_balance"
    EXPORT_READY = "export_ready"


# Kinds a user may turn off, by the preference that governs them. The rest (receipts, withheld
# output, exports) are about money or data the user asked for and are always sent.
OPTIONAL = {
    Kind.GENERATION_SUCCEEDED: "generation_updates",
    Kind.GENERATION_FAILED: "generation_updates",
    Kind.LOW_BALANCE: "balance_reminders",
}


class Notification(models.Model):
    """One email for one event. The unique ``key`` names the event, so it is recorded once."""

    class Status(models.TextChoices):
        PENDING = "pending"
        SENT = "sent"
        SKIPPED = "skipped"

    key = models.CharField(max_length=200, unique=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications"
    )
    kind = models.CharField(max_length=32, choices=Kind.choices)
    context = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    # Set by the task that is sending; a claim older than NOTIFY_CLAIM_TIMEOUT_SECONDS is dead.
    claimed_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    error = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(
                fields=["created_at"],
                name="notification_pending",
                condition=models.Q(status="pending"),
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} to {self.user_id} ({self.status})"


class Preferences(models.Model):
    """Which optional emails a user wants; a user without a row gets them all."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="notification_preferences",
    )
    generation_updates = models.BooleanField(
        "Generation finished or failed",
        default=True,
        help_text="When a generation ends while you are not watching its page.",
    )
    balance_reminders = models.BooleanField(
        "Low balance",
        default=True,
        help_text="Once each time your balance drops below the reminder level.",
    )

    def __str__(self) -> str:
        return f"preferences of {self.user_id}"
