"""Reads for the billing pages: packs, a user's purchases, balances and the balance chart."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from uuid import UUID

from django.db.models import QuerySet
from django.utils import timezone

from billing import statement
from billing.gateways import current_mode
from billing.models import CheckoutSession, CreditPack, Plan, Subscription
from ledger import api as ledger

CHART_WIDTH = 640
CHART_HEIGHT = 180
CHART_PADDING = 8


@dataclass(frozen=True)
class BalanceChart:
    """A step line of the end-of-day available balance, in SVG user units."""

    points: str
    area: str
    width: int
    height: int
    start: date
    end: date
    peak: int
    latest: int
    changes: int


def packs_for_sale() -> QuerySet[CreditPack]:
    """Return the active packs in display order."""
    return CreditPack.objects.filter(active=True).order_by("order", "price_amount")


def plans_for_sale() -> QuerySet[Plan]:
    """Return the active subscription plans in display order."""
    return Plan.objects.filter(active=True).order_by("order", "price_amount")


def current_subscription(user: Any) -> Subscription | None:
    """Return the user's subscription in the current mode that still matters, newest first.

    An active (trialing, active, past due) one wins; else the latest, so a lapsed one shows.
    """
    rows = Subscription.objects.filter(user=user, mode=current_mode()).select_related("plan")
    active = rows.filter(status__in=Subscription.ACTIVE_STATUSES).order_by("-created_at").first()
    return active or rows.exclude(status="incomplete").order_by("-created_at").first()


def purchase_for_user(user: Any, *, stripe_session_id: str = "", pk: Any = None) -> Any:
    """Return the user's purchase by Stripe session id or our id, or None (never another's)."""
    rows = CheckoutSession.objects.filter(user=user).select_related("pack")
    if stripe_session_id:
        return rows.filter(stripe_session_id=stripe_session_id).first()
    if pk:
        try:
            return rows.filter(pk=UUID(str(pk))).first()
        except ValueError:
            return None
    return None


def balance(user: Any) -> Any:
    """Return the user's available and held credits."""
    return ledger.balance(user.pk)


def journal_rows(user: Any) -> Iterator[Any]:
    """Yield all of the user's entries newest first, one short read transaction per page."""
    before = None
    while True:
        page = ledger.journal_page(user.pk, before=before, limit=200)
        yield from page.entries
        if page.next_before is None:
            return
        before = page.next_before


def ledger_csv_rows(user: Any) -> Iterator[list]:
    """Yield the ledger CSV's header, then one row per entry (the download and the data export).

    In the customer's words, with generation ids; no staff source or note.
    """
    return statement.csv_rows(user, journal_rows(user))


def balance_chart(user: Any, *, days: int = 30) -> BalanceChart | None:
    """Return the chart of the user's end-of-day available balance, or None with no history."""
    end = timezone.localdate()
    start = end - timedelta(days=days - 1)
    since = timezone.make_aware(datetime.combine(start, datetime.min.time()))
    history = ledger.balance_history(user.pk, since=since)
    if not history.days and history.opening is None:
        return None
    closing = dict(history.days)
    values = []
    level = history.opening or 0
    for offset in range(days):
        level = closing.get(start + timedelta(days=offset), level)
        values.append(level)
    # The peak is the highest balance at any moment, not only at the end of a day.
    highest = max([*values, *(high for _, high in history.highs)])
    peak = max(highest, 1)
    inner_w = CHART_WIDTH - 2 * CHART_PADDING
    inner_h = CHART_HEIGHT - 2 * CHART_PADDING
    step = inner_w / days
    coords = []
    for index, value in enumerate(values):
        y = CHART_PADDING + inner_h * (1 - value / peak)
        coords += [(CHART_PADDING + index * step, y), (CHART_PADDING + (index + 1) * step, y)]
    points = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
    baseline = CHART_PADDING + inner_h
    area = f"{CHART_PADDING:.1f},{baseline:.1f} {points} {coords[-1][0]:.1f},{baseline:.1f}"
    return BalanceChart(
        points=points,
        area=area,
        width=CHART_WIDTH,
        height=CHART_HEIGHT,
        start=start,
        end=end,
        peak=highest,
        latest=values[-1],
        changes=history.changes,
    )


def has_active_subscription(user: Any, mode: str) -> bool:
    """Return whether the user has a trialing, active or past-due subscription in ``mode``."""
    return Subscription.objects.filter(
        user=user, mode=mode, status__in=Subscription.ACTIVE_STATUSES
    ).exists()
