from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from ledger import api as ledger


def balance(request: HttpRequest) -> dict:
    """Offer the signed-in user's balance to the header; read only if a template uses it."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {"header_balance": SimpleLazyObject(lambda: ledger.request_balance(request))}
