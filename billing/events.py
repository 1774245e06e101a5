"""Signals billing sends; apps above it listen instead of billing importing them."""

from django.dispatch import Signal

# Sent each time a paid checkout or subscription invoice is recorded as granted, including a
# repeat that finds the grant already made (so a crash between the grant and the first send is
# covered). ``key`` is the grant's ledger key, the same for every repeat; ``receipt`` is what a
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
    """Send ``payment_received``; call it in the transaction that records the payment as paid."""
    from billing.templatetags.billing_tags import money

    payment_received.send(
        sender=announce_payment,
        user_id=user_id,
        key=key,
        receipt={
            "product": product,
            "credits": credits,
            "price": money(amount, currency),
            "renewal": renewal,
        },
    )
