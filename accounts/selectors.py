from dataclasses import dataclass

from generation import api as generation
from ledger import api as ledger


@dataclass(frozen=True)
class Dashboard:
    balance: ledger.Balance
    recent: list
    cheapest_price: int | None


def dashboard_for(user) -> Dashboard:
    """Gather what the dashboard shows: balances, recent generations, the cheapest model."""
    prices = [generation.price(spec.key) for spec in generation.catalogue_models()]
    return Dashboard(
        balance=ledger.balance(user.id),
        recent=generation.recent_generations(user, limit=6),
        cheapest_price=min(prices) if prices else None,
    )
