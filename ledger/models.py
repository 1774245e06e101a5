"""Read-only models over the ledger tables, which SQL migrations create and functions write.

``managed = False`` keeps Django from creating, altering or flushing them, and there is no
foreign key to users: account ids are the users' UUIDs.
"""

from django.db import models


class HoldStatus(models.TextChoices):
    PENDING = "pending"
    CAPTURED = "captured"
    RELEASED = "released"
    EXPIRED = "expired"


class LateStatus(models.TextChoices):
    LATE_CHARGED = "late_charged"
    UNPAID = "unpaid"


class EntryKind(models.TextChoices):
    GRANT = "grant"
    HOLD = "hold"
    CAPTURE = "capture"
    RELEASE = "release"
    EXPIRE = "expire"
    LATE_CHARGE = "late_charge"
    ADJUST = "adjust"
    CLAWBACK = "clawback"


class AlertStatus(models.TextChoices):
    ARMED = "armed"
    FIRED = "fired"


class Account(models.Model):
    account_id = models.UUIDField(primary_key=True)
    available = models.BigIntegerField()
    held = models.BigIntegerField()
    version = models.BigIntegerField()
    granted = models.BigIntegerField()
    adjusted = models.BigIntegerField()
    clawed_back = models.BigIntegerField()
    captured = models.BigIntegerField()
    late_charged = models.BigIntegerField()
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        managed = False
        db_table = "ledger_account"
        verbose_name = "balance"
        ordering = ["-updated_at"]
        permissions = [
            ("adjust_account", "Can adjust a balance (admin correction with a reason)"),
            ("view_ledger_health", "Can view ledger health (invariants and totals)"),
        ]

    def __str__(self) -> str:
        return f"{self.account_id}: {self.available} available, {self.held} held"


class Hold(models.Model):
    hold_id = models.UUIDField(primary_key=True)
    reference = models.TextField(unique=True)
    account_id = models.UUIDField()
    amount = models.BigIntegerField()
    captured = models.BigIntegerField()
    released = models.BigIntegerField()
    status = models.TextField(choices=HoldStatus.choices)
    late = models.TextField(choices=LateStatus.choices, null=True)  # noqa: DJ001 (SQL NULL = none)
    late_amount = models.BigIntegerField()
    expires_at = models.DateTimeField()
    created_at = models.DateTimeField()
    settled_at = models.DateTimeField(null=True)
    updated_at = models.DateTimeField()

    class Meta:
        managed = False
        db_table = "ledger_hold"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.reference} ({self.status})"


class Entry(models.Model):
    entry_id = models.BigAutoField(primary_key=True)
    account_id = models.UUIDField()
    account_version = models.BigIntegerField()
    kind = models.TextField(choices=EntryKind.choices)
    amount = models.BigIntegerField()
    available_delta = models.BigIntegerField()
    held_delta = models.BigIntegerField()
    available_after = models.BigIntegerField()
    held_after = models.BigIntegerField()
    hold_id = models.UUIDField(null=True)
    idempotency_key = models.TextField(null=True, unique=True)  # noqa: DJ001 (NULL = unkeyed)
    source = models.TextField()
    memo = models.TextField()
    created_at = models.DateTimeField()

    class Meta:
        managed = False
        db_table = "ledger_entry"
        verbose_name_plural = "entries"
        ordering = ["-entry_id"]

    def __str__(self) -> str:
        return f"#{self.entry_id} {self.kind} {self.amount}"


class AlertState(models.Model):
    pk = models.CompositePrimaryKey("account_id", "threshold")
    account_id = models.UUIDField()
    threshold = models.BigIntegerField()
    state = models.TextField(choices=AlertStatus.choices)
    fired_at = models.DateTimeField(null=True)
    rearmed_at = models.DateTimeField(null=True)
    updated_at = models.DateTimeField()

    class Meta:
        managed = False
        db_table = "ledger_alert_state"

    def __str__(self) -> str:
        return f"{self.account_id} < {self.threshold}: {self.state}"
