"""The billing page and CSV in the customer's words.

The ledger journal records how credits moved (a hold, then its capture or release) and, for
staff, who moved them and why (``source`` and ``memo``). A customer reads something else: one
row per generation, purchase, renewal, refund or correction, described from the entry's kind
and what it refers to (its hold or its key). ``source`` and ``memo`` never leave this module:
staff emails and internal notes stay in the admin.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from django.utils import timezone

from billing.models import CheckoutSession, ReversalStep, SubscriptionInvoice
from generation import api as generation
from ledger import api as ledger

SIGNUP_PREFIX = "signup:"
REVIEW_PREFIX = "review:"
CHECKOUT_PREFIX = "checkout:"
INVOICE_PREFIX = "invoice:"
# Stripe expires an unpaid Checkout Session after 24 hours unless told otherwise.
CHECKOUT_LIFETIME = timedelta(hours=24)
_HOLD_SETTLEMENTS = {
    ledger.EntryKind.CAPTURE,
    ledger.EntryKind.RELEASE,
    ledger.EntryKind.EXPIRE,
    ledger.EntryKind.LATE_CHARGE,
}


@dataclass(frozen=True)
class Row:
    """One line of the customer's statement."""

    when: datetime
    description: str
    credits: int  # the net change to spendable credits, signed
    status: str  # "", "In progress", "Not charged", a purchase's status...
    generation_id: UUID | None  # set for a generation's row
    linked: bool  # the generation still exists, so the row links to it


@dataclass(frozen=True)
class StatementPage:
    rows: list[Row]
    next_before: int | None


def purchase_status(checkout: CheckoutSession, *, now: datetime | None = None) -> str:
    """Return the purchase's true status: Paid, Refunded, Partially refunded, Disputed, Expired...

    A paid purchase reads its reversal account (every refund and dispute of its payment).
    """
    status = checkout.status
    if status == CheckoutSession.Status.PAID:
        account = getattr(checkout, "reversal_account", None)
        if account is not None and account.disputed:
            return "Disputed"
        if account is not None and account.refunded:
            if account.refunded >= (account.amount_paid or checkout.amount_total or 1):
                return "Refunded"
            return "Partially refunded"
        return "Paid"
    if status == CheckoutSession.Status.OPEN:
        expires = checkout.expires_at or checkout.created_at + CHECKOUT_LIFETIME
        if (now or timezone.now()) > expires:
            return "Expired"
        return "Not completed"
    return {
        CheckoutSession.Status.EXPIRED: "Expired",
        CheckoutSession.Status.FAILED: "Payment failed",
        CheckoutSession.Status.REVIEW: "Processing",
    }.get(status, "Processing")


def recent_purchases(user: Any, *, limit: int = 10) -> list[tuple[CheckoutSession, str]]:
    """Return the user's latest purchases, each with its true status."""
    rows = (
        CheckoutSession.objects.filter(user=user)
        .select_related("pack", "plan", "reversal_account")
        .order_by("-created_at")[:limit]
    )
    now = timezone.now()
    return [(row, purchase_status(row, now=now)) for row in rows]


class _Context:
    """What a batch of entries refers to, fetched with one query per kind of reference."""

    def __init__(self, user: Any, entries: list[Any]) -> None:
        keys = [e.idempotency_key for e in entries if e.idempotency_key]
        hold_ids = list({e.hold_id for e in entries if e.hold_id})
        self.holds = ledger.holds_by_id(user.pk, hold_ids)
        self.generations = generation.for_hold_references(
            user, [hold.reference for hold in self.holds.values()]
        )
        self.checkouts = {
            row.grant_key: row
            for row in CheckoutSession.objects.filter(
                user=user,
                stripe_session_id__in=[k.removeprefix(CHECKOUT_PREFIX) for k in keys],
            ).select_related("pack", "plan", "reversal_account")
        }
        self.invoices = {
            row.grant_key: row
            for row in SubscriptionInvoice.objects.filter(
                user=user, stripe_invoice_id__in=[k.removeprefix(INVOICE_PREFIX) for k in keys]
            ).select_related("plan")
        }
        self.steps = {
            row.key: row
            for row in ReversalStep.objects.filter(key__in=keys, payment__user=user).select_related(
                "payment__checkout_session__pack",
                "payment__checkout_session__plan",
                "payment__invoice__plan",
            )
        }

    def generation_for(self, entry: Any) -> Any:
        hold = self.holds.get(entry.hold_id)
        return self.generations.get(hold.reference) if hold else None

    def describe(self, entry: Any) -> str:
        """Say what the entry was for, from its kind and what it refers to."""
        if entry.hold_id:
            found = self.generation_for(entry)
            hold = self.holds.get(entry.hold_id)
            cost = hold.amount if hold else entry.amount
            if found is None or found.deleted_at:
                return f"Deleted generation · {cost} credits"
            return f"{generation.model_name(found.model_key)} · {cost} credits"
        key = entry.idempotency_key or ""
        if key in self.checkouts:
            checkout = self.checkouts[key]
            noun = "Subscription" if checkout.is_subscription else "Purchase"
            return f"{noun} · {checkout.product_name}"
        if key in self.invoices:
            invoice = self.invoices[key]
            plan = invoice.plan.name if invoice.plan else "Subscription"
            noun = "Subscription" if invoice.billing_reason == "subscription_create" else "Renewal"
            return f"{noun} · {plan}"
        if key in self.steps:
            product = _payment_product(self.steps[key].payment)
            if entry.kind == ledger.EntryKind.CLAWBACK:
                return f"Refund · {product}"
            return f"Credits restored · {product}"
        if key.startswith(SIGNUP_PREFIX):
            return "Welcome credits"
        if entry.kind == ledger.EntryKind.ADJUST:
            return "Balance correction by support"
        if key.startswith(REVIEW_PREFIX):
            if entry.kind == ledger.EntryKind.CLAWBACK:
                return "Credits taken back by support"
            return "Credits added by support"
        return ledger.ENTRY_WORDS.get(entry.kind, "Balance change")

    def row(self, entry: Any) -> Row:
        """Return the entry's statement row (a hold's row sums its whole settlement)."""
        if not entry.hold_id:
            checkout = self.checkouts.get(entry.idempotency_key or "")
            status = purchase_status(checkout) if checkout else ""
            return Row(
                entry.created_at, self.describe(entry), entry.available_delta, status, None, False
            )
        hold = self.holds.get(entry.hold_id)
        found = self.generation_for(entry)
        credits, status = _hold_outcome(hold, entry)
        return Row(
            entry.created_at,
            self.describe(entry),
            credits,
            status,
            found.pk if found else None,
            bool(found and not found.deleted_at),
        )


def _hold_outcome(hold: Any, entry: Any) -> tuple[int, str]:
    """Return what a generation cost the customer so far, and its status word."""
    if hold is None:
        return entry.available_delta, ""
    if hold.status == ledger.HoldStatus.PENDING:
        return -hold.amount, "In progress"
    charged = hold.captured + (hold.late_amount or 0)
    if hold.late == ledger.LateStatus.UNPAID:
        return -charged, "Unpaid"
    if charged:
        return -charged, "Charged"
    return 0, "Not charged"


def _payment_product(payment: Any) -> str:
    if payment.checkout_session_id and payment.checkout_session:
        return payment.checkout_session.product_name or "purchase"
    if payment.invoice_id and payment.invoice and payment.invoice.plan:
        return payment.invoice.plan.name
    return "purchase"


def statement_page(user: Any, *, before: int | None, limit: int = 25) -> StatementPage:
    """Return one page of the customer's statement, newest first.

    A generation is one row, at its start: the entries that settle its hold fold into it.
    """
    page = ledger.journal_page(user.pk, before=before, limit=limit)
    context = _Context(user, page.entries)
    rows = [context.row(e) for e in page.entries if e.kind not in _HOLD_SETTLEMENTS]
    return StatementPage(rows, page.next_before)


CSV_HEADER = [
    "entry_id",
    "time",
    "description",
    "what_happened",
    "credits",
    "reserved_change",
    "available_after",
    "reserved_after",
    "generation_id",
]


def csv_rows(user: Any, entries: Iterable[Any]) -> Iterator[list]:
    """Yield the CSV's header, then one row per journal entry in the customer's words."""
    yield CSV_HEADER
    batch: list[Any] = []
    for entry in entries:
        batch.append(entry)
        if len(batch) == 200:
            yield from _csv_batch(user, batch)
            batch = []
    yield from _csv_batch(user, batch)


def _csv_batch(user: Any, entries: list[Any]) -> Iterator[list]:
    if not entries:
        return
    context = _Context(user, entries)
    for entry in entries:
        found = context.generation_for(entry) if entry.hold_id else None
        yield [
            entry.entry_id,
            entry.created_at.isoformat(),
            _csv_text(context.describe(entry)),
            ledger.ENTRY_WORDS.get(entry.kind, ""),
            entry.available_delta,
            entry.held_delta,
            entry.available_after,
            entry.held_after,
            str(found.pk) if found else "",
        ]


def _csv_text(value: str) -> str:
    # Spreadsheets run cells starting with these as formulas.
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value
