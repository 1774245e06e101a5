"""The review queue: a case for a human, opened once per subject and reason.

Every path that must not grant or take credits automatically ends here; operators are alerted
the first time a case opens. ``billing.reviews`` resolves the cases.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction

from billing.models import CheckoutSession, ReviewItem, StripeEvent
from config.ops import ops_alert


def open_review(
    reason: str,
    detail: str,
    *,
    checkout: CheckoutSession | None = None,
    event: StripeEvent | None = None,
    stripe_object_id: str = "",
    **fields: Any,
) -> ReviewItem:
    """Queue a case for a human, once per subject and reason, alerting operators the first time.

    ``fields`` sets the item's ``user``, ``step``, ``credits``, ``taken`` or ``shortfall``. The
    alert is sent after the surrounding transaction commits (at once in autocommit).
    """
    subject = stripe_object_id or (checkout.stripe_session_id if checkout else "") or ""
    if checkout is not None and "user" not in fields:
        fields["user_id"] = checkout.user_id
    item, created = ReviewItem.objects.get_or_create(
        key=f"{reason}:{subject}"[:300],
        defaults={
            "reason": reason,
            "detail": detail,
            "checkout_session": checkout,
            "event": event,
            "stripe_object_id": subject[:255],
            **fields,
        },
    )
    if created:
        title = f"Billing review: {item.get_reason_display()}"
        transaction.on_commit(
            lambda: ops_alert(title, detail, review_item=item.pk, stripe_object=subject)
        )
    return item
