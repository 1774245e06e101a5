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


class Plan(models.Model):
    """A subscription: credits granted on every paid invoice, sold through one recurring Price."""

    class Interval(models.TextChoices):
        MONTH = "month", "Monthly"
        YEAR = "year", "Yearly"

    name = models.CharField(max_length=80)
    slug = models.SlugField(max_length=64, unique=True)
    credits_per_period = models.PositiveIntegerField()
    price_amount = models.PositiveIntegerField(help_text="Price per period in minor units.")
    currency = models.CharField(max_length=3, default="usd", help_text="ISO code, lower case.")
    interval = models.CharField(max_length=8, choices=Interval.choices, default=Interval.MONTH)
    stripe_price_id = models.CharField(
        max_length=255, blank=True, help_text="price_...; takes precedence over the lookup key."
    )
    stripe_lookup_key = models.CharField(
        max_length=200, blank=True, help_text="Resolved to an active recurring Price when no id."
    )
    active = models.BooleanField(default=True)
    order = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["order", "price_amount"]
        constraints = [
            models.CheckConstraint(
                condition=Q(credits_per_period__gt=0), name="billing_plan_credits_pos"
            ),
            models.CheckConstraint(condition=Q(price_amount__gt=0), name="billing_plan_amount_pos"),
            models.CheckConstraint(
                condition=~Q(stripe_price_id="") | ~Q(stripe_lookup_key=""),
                name="billing_plan_has_price_ref",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def credits(self) -> int:
        return self.credits_per_period


class CheckoutSession(models.Model):
    """One purchase attempt: our record of a Stripe Checkout Session and the pack (or plan) sold."""

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
    pack = models.ForeignKey(
        CreditPack, on_delete=models.PROTECT, related_name="sessions", null=True, blank=True
    )
    # A subscription-mode session: no grant of its own, invoice.paid grants each period.
    plan = models.ForeignKey(
        Plan, on_delete=models.PROTECT, related_name="sessions", null=True, blank=True
    )
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
    stripe_subscription_id = models.CharField(max_length=255, blank=True)
    # The buy form's one-time key: a second POST of the same form opens this checkout again.
    submission_key = models.CharField(max_length=64, null=True, blank=True)  # noqa: DJ001

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
            models.CheckConstraint(
                condition=Q(pack__isnull=False, plan__isnull=True)
                | Q(pack__isnull=True, plan__isnull=False),
                name="billing_session_pack_or_plan",
            ),
            models.UniqueConstraint(
                fields=["user", "submission_key"], name="billing_session_unique_submission"
            ),
        ]

    def __str__(self) -> str:
        return self.stripe_session_id or str(self.id)

    @property
    def product_name(self) -> str:
        product = self.plan if self.plan_id else self.pack
        return product.name if product else ""

    @property
    def is_subscription(self) -> bool:
        return self.plan_id is not None

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
        permissions = [
            ("reprocess_event", "Can process stored Stripe events again"),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.stripe_event_id}"


class Subscription(models.Model):
    """Our copy of one Stripe Subscription, kept in sync by its events."""

    ACTIVE_STATUSES = ("trialing", "active", "past_due")

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="subscriptions"
    )
    mode = models.CharField(max_length=8, choices=StripeMode.choices)
    plan = models.ForeignKey(
        Plan, on_delete=models.PROTECT, null=True, blank=True, related_name="subscriptions"
    )
    stripe_subscription_id = models.CharField(max_length=255, unique=True)
    stripe_customer_id = models.CharField(max_length=255, blank=True)
    # Stripe's words: incomplete, incomplete_expired, trialing, active, past_due, canceled,
    # unpaid, paused.
    status = models.CharField(max_length=32)
    current_period_end = models.DateTimeField(null=True, blank=True)
    cancel_at_period_end = models.BooleanField(default=False)
    canceled_at = models.DateTimeField(null=True, blank=True)
    # The newest event applied (Stripe's ``created``): an older delivery never overwrites it.
    synced_event_created = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["user", "status"], name="billing_sub_user_status")]

    def __str__(self) -> str:
        return self.stripe_subscription_id

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE_STATUSES


class SubscriptionInvoice(models.Model):
    """One paid subscription invoice and what it granted (key ``invoice:<id>``)."""

    class Status(models.TextChoices):
        GRANTED = "granted", "Credits granted"
        RECORDED = "recorded", "Recorded, no credits"
        REVIEW = "review", "In review"

    stripe_invoice_id = models.CharField(max_length=255, unique=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="subscription_invoices",
    )
    plan = models.ForeignKey(
        Plan, on_delete=models.PROTECT, null=True, blank=True, related_name="invoices"
    )
    stripe_subscription_id = models.CharField(max_length=255, blank=True, db_index=True)
    stripe_customer_id = models.CharField(max_length=255, blank=True)
    # The intent that paid it: invoice events do not name it, so it is learned from Stripe when
    # a refund or dispute of that intent first arrives (billing.reversals).
    stripe_payment_intent_id = models.CharField(max_length=255, blank=True, db_index=True)
    billing_reason = models.CharField(max_length=64, blank=True)
    amount_paid = models.PositiveIntegerField(default=0)
    currency = models.CharField(max_length=3, blank=True)
    credits = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=8, choices=Status.choices)
    ledger_entry_id = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.stripe_invoice_id

    @property
    def grant_key(self) -> str:
        return f"invoice:{self.stripe_invoice_id}"


class PaymentReversal(models.Model):
    """The reversal account of one payment: every refund and dispute of any of its charges.

    One row per payment intent, created by the first refund or dispute (even before the grant
    lands) and row-locked whenever an event applies. The credits to take back are derived from
    the money lost, never from one event: ``credits_target`` is the share of ``credits_granted``
    that ``min(amount_paid, refunded + disputed)`` bought, and clawback or grant-back steps move
    ``credits_taken`` (net) plus ``credits_short`` (not there to take) towards it.
    """

    stripe_payment_intent_id = models.CharField(max_length=255, unique=True)
    # Learned from Stripe for an invoice's payment, so a grant that lands later finds the row.
    stripe_invoice_id = models.CharField(max_length=255, blank=True, db_index=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    checkout_session = models.OneToOneField(
        CheckoutSession,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="reversal_account",
    )
    invoice = models.OneToOneField(
        SubscriptionInvoice,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="reversal_account",
    )
    credits_granted = models.PositiveIntegerField(default=0, help_text="0 until the grant lands.")
    amount_paid = models.PositiveIntegerField(default=0, help_text="Minor units actually paid.")
    currency = models.CharField(max_length=3, blank=True)
    refunded = models.PositiveIntegerField(default=0, help_text="Summed over the charges.")
    disputed = models.PositiveIntegerField(default=0, help_text="Disputes open or lost.")
    credits_target = models.PositiveIntegerField(default=0)
    credits_taken = models.PositiveIntegerField(default=0, help_text="Taken back, net.")
    credits_short = models.PositiveIntegerField(
        default=0, help_text="Owed back but already spent or held when asked."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(credits_taken__lte=models.F("credits_granted")),
                name="billing_payrev_taken_le_granted",
            ),
        ]

    def __str__(self) -> str:
        return f"Payment {self.stripe_payment_intent_id}"

    @property
    def money_lost(self) -> int:
        """Refunded plus disputed, counted once: never more than was paid."""
        return min(self.amount_paid, self.refunded + self.disputed)


class Reversal(models.Model):
    """Stripe's latest word on one subject of a payment's account: a charge's refunds, or one
    dispute. ``stripe_amount`` only grows; a dispute's ``outcome`` is final once set."""

    class Kind(models.TextChoices):
        REFUND = "refund", "Refund"
        DISPUTE = "dispute", "Dispute"

    class Outcome(models.TextChoices):
        OPEN = "", "Open"
        WON = "won", "Won (funds returned to us)"
        LOST = "lost", "Lost"

    payment = models.ForeignKey(PaymentReversal, on_delete=models.PROTECT, related_name="subjects")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    stripe_id = models.CharField(max_length=255, help_text="Charge id (refunds), dispute id.")
    # Refund: the largest cumulative amount_refunded seen. Dispute: the disputed amount.
    stripe_amount = models.PositiveIntegerField(default=0)
    stripe_status = models.CharField(max_length=32, blank=True)
    outcome = models.CharField(max_length=8, choices=Outcome.choices, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["kind", "stripe_id"], name="billing_reversal_subject")
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.stripe_id}"


class ReversalStep(models.Model):
    """One ledger call a payment's account needs, planned under its lock, run after commit.

    Its ``key`` is the ledger key, so running a step again (a replay, a crash, an admin) is a
    ``duplicate`` with the first result.
    """

    class Action(models.TextChoices):
        CLAWBACK = "clawback", "Claw back"
        GRANT = "grant", "Grant back"

    class Status(models.TextChoices):
        PLANNED = "planned", "Planned"
        REVIEW = "review", "Waiting for an admin (review_only)"
        DONE = "done", "Done"
        CANCELED = "canceled", "Canceled"
        FAILED = "failed", "Failed"

    payment = models.ForeignKey(PaymentReversal, on_delete=models.PROTECT, related_name="steps")
    key = models.CharField(max_length=200, unique=True)
    action = models.CharField(max_length=8, choices=Action.choices)
    credits = models.PositiveIntegerField()
    status = models.CharField(max_length=8, choices=Status.choices)
    ledger_status = models.CharField(max_length=16, blank=True)
    taken = models.PositiveIntegerField(default=0)
    shortfall = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    executed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["pk"]
        constraints = [
            models.CheckConstraint(condition=Q(credits__gt=0), name="billing_step_credits_pos"),
        ]

    def __str__(self) -> str:
        return self.key


class ReviewItem(models.Model):
    """Money that moved without credits following it automatically: a human decides."""

    class Reason(models.TextChoices):
        SNAPSHOT_MISMATCH = "snapshot_mismatch", "Line item differs from the pack sold"
        OWNER_MISMATCH = "owner_mismatch", "Session, metadata and customer name different users"
        USER_INELIGIBLE = "user_ineligible", "User is no longer eligible"
        DISCOUNT_NOT_ALLOWED = "discount_not_allowed", "Discount while promotion codes are off"
        UNKNOWN_SESSION = "unknown_session", "Paid session with no purchase of ours"
        GRANT_CONFLICT = "grant_conflict", "The ledger refused the grant key"
        NOT_SUBSCRIBED = "not_subscribed", "Pack paid after the subscription lapsed"
        REFUND = "refund", "Refunded"
        DISPUTE = "dispute", "Dispute opened"
        DISPUTE_CLOSED = "dispute_closed", "Dispute closed"
        UNKNOWN_PAYMENT = "unknown_payment", "Refund or dispute of a payment we cannot map"
        INVOICE_PROBLEM = "invoice_problem", "Paid invoice we cannot grant automatically"

    class Resolution(models.TextChoices):
        GRANTED = "granted", "Credits granted"
        CLAWED_BACK = "clawed_back", "Credits clawed back"
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
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="billing_reviews",
    )
    step = models.ForeignKey(
        ReversalStep, on_delete=models.PROTECT, null=True, blank=True, related_name="reviews"
    )
    credits = models.PositiveIntegerField(null=True, blank=True, help_text="Credits in question.")
    taken = models.PositiveIntegerField(default=0, help_text="Clawed back automatically.")
    shortfall = models.PositiveIntegerField(
        default=0, help_text="Could not be clawed back: already spent or held."
    )
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
    note = models.TextField(blank=True, help_text="The resolving admin's reason.")
    resolution_credits = models.PositiveIntegerField(null=True, blank=True)
    resolution_detail = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(resolved_at__isnull=True, resolution="")
                | Q(resolved_at__isnull=False) & ~Q(resolution=""),
                name="billing_review_resolved_shape",
            )
        ]
        permissions = [
            ("resolve_review", "Can resolve review items (moves credits)"),
        ]

    def __str__(self) -> str:
        return f"{self.get_reason_display()} ({self.stripe_object_id})"

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None
