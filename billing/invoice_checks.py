"""Paid subscription invoices are checked like pack purchases before they grant.

An invoice grants its plan's credits only when its one line is the plan's price, once, in the
currency and for the amount the plan was sold at, and what was paid is that amount less any
discount the settings allow. Anything else (a coupon while promotion codes are off, a price we
do not sell, an amount that differs) goes to review with the reason instead of a grant.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

from billing.models import CheckoutSession, Plan


def plan_for_price(price_id: str) -> Plan | None:
    """Return the plan sold through this Stripe price, or None."""
    if not price_id:
        return None
    plan = Plan.objects.filter(stripe_price_id=price_id).first()
    if plan is not None:
        return plan
    # A plan sold by lookup key: the price id was snapshotted on its checkout row.
    checkout = (
        CheckoutSession.objects.filter(plan__isnull=False, stripe_price_id=price_id)
        .select_related("plan")
        .first()
    )
    return checkout.plan if checkout else None


def invoice_plan(invoice: dict) -> tuple[Plan | None, str]:
    """Return the plan the invoice's first line sells and that line's price id.

    No fallback to the subscription's earlier plan: a switch to a price we do not sell maps to
    no plan, so the invoice goes to review.
    """
    lines = _lines(invoice)
    price_id = _line_price(lines[0]) if lines else ""
    return plan_for_price(price_id), price_id


def invoice_problem(invoice: dict, plan: Plan, price_id: str) -> str | None:
    """Return why this paid invoice must not grant ``plan``'s credits automatically, or None."""
    amount, currency = _sold_at(plan, price_id)
    lines = _lines(invoice)
    seen = {
        "line items": len(lines),
        "quantity": (lines[0] if lines else {}).get("quantity"),
        "currency": invoice.get("currency"),
        "subtotal": invoice.get("subtotal"),
    }
    expected = {"line items": 1, "quantity": 1, "currency": currency, "subtotal": amount}
    differences = [f"{k} {seen[k]!r} (sold {v!r})" for k, v in expected.items() if seen[k] != v]
    if differences:
        return "; ".join(differences)
    discount = sum(_amount(d.get("amount")) for d in _list(invoice.get("total_discount_amounts")))
    paid = _amount(invoice.get("amount_paid"))
    if discount and not settings.BILLING_ALLOW_PROMOTION_CODES:
        return f"a discount of {discount} while promotion codes are off (paid {paid})"
    if paid < amount - discount:
        return f"paid {paid}, below the price {amount} less the discount {discount}"
    return None


def _sold_at(plan: Plan, price_id: str) -> tuple[int, str]:
    """Return the amount and currency the plan was sold at through this price (its snapshot)."""
    snapshot = (
        CheckoutSession.objects.filter(plan=plan, stripe_price_id=price_id)
        .order_by("-created_at")
        .values_list("amount", "currency")
        .first()
    )
    return snapshot or (plan.price_amount, plan.currency)


def _lines(invoice: dict) -> list[dict]:
    return [line for line in _list((invoice.get("lines") or {}).get("data")) if line]


def _line_price(line: dict) -> str:
    pricing = (line.get("pricing") or {}).get("price_details") or {}
    return _id(pricing.get("price")) or _id(line.get("price"))


def _list(value: Any) -> list:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _amount(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _id(value: Any) -> str:
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) else ""
