"""Signals billing sends; apps above it listen instead of billing importing them."""

from django.dispatch import Signal

from config.signals import announce

# Sent each time a paid checkout or subscription invoice is granted, including a repeat that
# finds the grant already made, and before the payment is marked paid (so a crash between the
# grant and the mark is announced again by the next attempt). ``key`` is the grant's ledger key,
# the same for every repeat, so a receiver keyed on it records one receipt; ``receipt`` is what a
# receipt shows: product, credits, price (formatted) and whether it is a renewal.
payment_received = Signal()


def announce_payment(
    user_id: object,
    *,
    key: str,
    product: str,
    credits: int,
    amount: int | None,
    currency: str,
    renewal: bool = False,
) -> None:
    """Send ``payment_received`` for a granted payment (not inside a transaction holding locks)."""
    from billing.templatetags.billing_tags import money

    announce(
        payment_received,
        announce_payment,
        user_id=user_id,
        key=key,
        receipt={
            "product": product,
            "credits": credits,
            "price": money(amount, currency),
            "renewal": renewal,
        },
    )
