from django import template

from config import submission

register = template.Library()

# Stripe's zero-decimal currencies: amounts are already in whole units.
ZERO_DECIMAL = frozenset(
    [
        "bif",
        "clp",
        "djf",
        "gnf",
        "jpy",
        "kmf",
        "krw",
        "mga",
        "pyg",
        "rwf",
        "ugx",
        "vnd",
        "vuv",
        "xaf",
        "xof",
        "xpf",
    ]
)
SYMBOLS = {"usd": "$", "eur": "€", "gbp": "£"}


@register.filter
def money(amount: int | None, currency: str) -> str:
    """Format an amount in minor units: ``money:"usd"`` turns 1000 into $10.00."""
    if amount is None:
        return ""
    currency = (currency or "").lower()
    value = f"{amount:,}" if currency in ZERO_DECIMAL else f"{amount / 100:,.2f}"
    symbol = SYMBOLS.get(currency)
    return f"{symbol}{value}" if symbol else f"{value} {currency.upper()}"


@register.simple_tag
def submission_key() -> str:
    """Return a fresh one-time key for the form being rendered (``config.submission``)."""
    return submission.new_key()
