"""What billing needs from Stripe, and the shapes both gateways answer in.

Kept apart from ``billing.gateways`` (which picks an adapter) so the adapters import it without
importing the module that imports them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from billing.models import CreditPack, Plan, StripeMode

PAID_STATUSES = frozenset({"paid", "no_payment_required"})


@dataclass(frozen=True)
class Price:
    """The Stripe Price a pack sells through, as checked at checkout time."""

    id: str
    unit_amount: int
    currency: str


class Gateway(Protocol):
    """What billing needs from Stripe."""

    mode: StripeMode

    def create_customer(self, *, user_id: str, email: str, idempotency_key: str) -> str: ...

    def resolve_price(self, product: CreditPack | Plan) -> Price: ...

    def create_checkout_session(self, params: dict, *, idempotency_key: str) -> dict: ...

    def retrieve_checkout_session(self, session_id: str) -> dict: ...

    def list_paid_checkout_sessions(self, *, created_since: datetime) -> Iterator[dict]: ...

    def create_portal_session(self, *, customer_id: str, return_url: str) -> str: ...

    def list_paid_invoices(self, *, created_since: datetime) -> Iterator[dict]: ...

    def invoice_paid_by(self, payment_intent: str) -> str:
        """Return the id of the invoice ``payment_intent`` paid, or "" when it paid none."""
        ...

    def list_refunded_charges(self, *, created_since: datetime) -> Iterator[dict]:
        """Yield each charge refunded since then, with its cumulative ``amount_refunded``."""
        ...

    def list_disputes(self, *, created_since: datetime) -> Iterator[dict]:
        """Yield each dispute opened since then, in its current state."""
        ...

    def cancel_subscription(self, subscription_id: str) -> dict:
        """Cancel the subscription now (no further invoices); return it as Stripe now has it."""
        ...
