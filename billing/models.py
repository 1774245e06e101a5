import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q


class StripeMode(models.TextChoices):
    """Which Stripe a row belongs to; the stand-in keeps its rows apart from real test mode."""

    LIVE = "live", "Live"
    TEST = "test", "Test"
    STANDIN = "standin", "Stand-in"


class CreditPack(models.Model):
    """A one-off purchase of credits, sold through one Stripe Price."""

    name = models.CharField(max_length=80)
    slug = models.SlugField(max_length=64, unique=True)
    credits = models.PositiveIntegerField()
    price_amount = models.PositiveIntegerField(help_text="Price in the currency's minor unit.")
    currency = models.CharField(max_length=3, default="usd", help_text="ISO code, lower case.")
    stripe_price_id = models.CharField(
        max_length=255, blank=True, help_text="price_...; takes precedence over the lookup key."
    )
    stripe_lookup_key = models.CharField(
        max_length=200, blank=True, help_text="Resolved to an active Price when no id is set."
    )
    active = models.BooleanField(default=True)
    order = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["order", "price_amount"]
        constraints = [
            models.CheckConstraint(condition=Q(credits__gt=0), name="billing_pack_credits_pos"),
            models.CheckConstraint(condition=Q(price_amount__gt=0), name="billing_pack_amount_pos"),
            models.CheckConstraint(
                condition=Q(currency__regex=r"^[a-z]{3}$"), name="billing_pack_currency_iso"
            ),
            models.CheckConstraint(
                condition=~Q(stripe_price_id="") | ~Q(stripe_lookup_key=""),
                name="billing_pack_has_price_ref",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class StripeCustomer(models.Model):
    """The Stripe Customer of one user in one mode; created once with an idempotency key."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="stripe_customers"
    )
    mode = models.CharField(max_length=8, choices=StripeMode.choices)
    stripe_customer_id = models.CharField(max_length=255, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "mode"], name="billing_customer_user_mode")
        ]

    def __str__(self) -> str:
        return self.stripe_customer_id


class CheckoutSession(models.Model):
    """One purchase attempt: our record of a Stripe Checkout Session and the pack as sold."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        PAID = "paid", "Paid"
        FAILED = "failed", "Failed"
        EXPIRED = "expired", "Expired"
        REVIEW = "review", "In review"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="checkout_sessions"
    )
    pack = models.ForeignKey(CreditPack, on_delete=models.PROTECT, related_name="sessions")
    mode = models.CharField(max_length=8, choices=StripeMode.choices)
    # The snapshot: fulfilment grants exactly this, whatever happens to the pack later.
    credits = models.PositiveIntegerField()
    stripe_price_id = models.CharField(max_length=255)
    amount = models.PositiveIntegerField(help_text="Pack price in minor units (before tax).")
    currency = models.CharField(max_length=3)
    stripe_session_id = models.CharField(max_length=255, unique=True, null=True, blank=True)
    stripe_customer_id = models.CharField(max_length=255, blank=True)
    # Refunds and disputes arrive naming the payment intent, not the session.
    stripe_payment_intent_id = models.CharField(max_length=255, blank=True, db_index=True)
    url = models.URLField(max_length=2000, blank=True)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.OPEN)
    payment_status = models.CharField(max_length=32, blank=True)
    amount_total = models.PositiveIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    fulfilled_at = models.DateTimeField(null=True, blank=True)
    ledger_entry_id = models.BigIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["user", "-created_at"], name="billing_session_user_recent"),
            models.Index(
                fields=["created_at"],
                condition=Q(status="open"),
                name="billing_session_open",
            ),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(credits__gt=0), name="billing_session_credits_pos"),
            models.CheckConstraint(
                condition=~Q(status="paid") | Q(fulfilled_at__isnull=False),
                name="billing_session_paid_has_time",
            ),
        ]

    def __str__(self) -> str:
        return self.stripe_session_id or str(self.id)

    @property
    def grant_key(self) -> str:
        return f"checkout:{self.stripe_session_id}"


class StripeEvent(models.Model):
    """Every verified event Stripe delivered, stored before it is processed."""

    stripe_event_id = models.CharField(max_length=255, unique=True)
    type = models.CharField(max_length=100, db_index=True)
    livemode = models.BooleanField()
    api_version = models.CharField(max_length=64, blank=True)
    object_id = models.CharField(max_length=255, blank=True, db_index=True)
    payload = models.JSONField()
    received_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=1, help_text="Deliveries and reprocessings.")
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-received_at"]
        indexes = [
            models.Index(
                fields=["received_at"],
                condition=Q(processed_at__isnull=True),
                name="billing_event_unprocessed",
            )
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.stripe_event_id}"


class ReviewItem(models.Model):
    """Money that moved without credits following it automatically: a human decides."""

    class Reason(models.TextChoices):
        SNAPSHOT_MISMATCH = "snapshot_mismatch", "Line item differs from the pack sold"
        OWNER_MISMATCH = "owner_mismatch", "Session, metadata and customer name different users"
        USER_INELIGIBLE = "user_ineligible", "User is no longer eligible"
        DISCOUNT_NOT_ALLOWED = "discount_not_allowed", "Discount while promotion codes are off"
        UNKNOWN_SESSION = "unknown_session", "Paid session with no purchase of ours"
        GRANT_CONFLICT = "grant_conflict", "The ledger refused the grant key"

    class Resolution(models.TextChoices):
        GRANTED = "granted", "Credits granted"
        DISMISSED = "dismissed", "Dismissed, no credits"

    # One item per subject and reason, however many times the webhook, the success page and
    # reconciliation rediscover the same problem.
    key = models.CharField(max_length=300, unique=True)
    reason = models.CharField(max_length=32, choices=Reason.choices)
    detail = models.TextField()
    checkout_session = models.ForeignKey(
        CheckoutSession, on_delete=models.PROTECT, null=True, blank=True, related_name="reviews"
    )
    event = models.ForeignKey(
        StripeEvent, on_delete=models.PROTECT, null=True, blank=True, related_name="reviews"
    )
    stripe_object_id = models.CharField(max_length=255, blank=True, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    resolution = models.CharField(max_length=16, choices=Resolution.choices, blank=True)
    note = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(resolved_at__isnull=True, resolution="")
                | Q(resolved_at__isnull=False) & ~Q(resolution=""),
                name="billing_review_resolved_shape",
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_reason_display()} ({self.stripe_object_id})"

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None
