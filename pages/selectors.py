"""Reads for the pages that gather other apps: the landing page and the dashboard."""

from dataclasses import dataclass

from django.conf import settings

from billing import api as billing
from generation import api as generation
from ledger import api as ledger


@dataclass(frozen=True)
class Dashboard:
    balance: ledger.Balance
    recent: list
    cheapest_price: int | None
    welcome_credits: int | None = None


def dashboard_for(user) -> Dashboard:
    """Gather what the dashboard shows: balances, recent generations, the cheapest model."""
    prices = [generation.price(spec.key) for spec in generation.catalogue_models()]
    recent = generation.recent_generations(user, limit=6)
    return Dashboard(
        balance=ledger.balance(user.id),
        recent=recent,
        cheapest_price=min(prices) if prices else None,
        welcome_credits=None if recent else welcome_credits(user),
    )


def welcome_credits(user) -> int | None:
    """Return the sign-up bonus the user received, if any (a new user's first entries)."""
    key = f"signup:{user.id}"
    entries = ledger.journal_page(user.id, limit=20).entries
    return next((entry.amount for entry in entries if entry.idempotency_key == key), None)


def landing_offer() -> dict:
    """Gather the landing page's live prices, packs and how many images each pack buys."""
    # Prices come from the same function that charges, so the page can never disagree with a bill.
    models = [(spec, generation.price(spec.key)) for spec in generation.catalogue_models()]
    cheapest = min((cost for _, cost in models), default=0)
    packs = [
        (pack, pack.credits // cheapest if cheapest else None) for pack in billing.active_packs()
    ]
    return {
        "models": models,
        "packs": packs,
        "cheapest": cheapest,
        "signup_bonus": settings.SIGNUP_BONUS_CREDITS,
    }
