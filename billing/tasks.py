"""Celery entry points for billing: reconciliation and the sign-up bonus."""

from datetime import timedelta

from celery import shared_task
from django.conf import settings

from billing import fulfilment, grants, reversals, subscriptions
from billing.exceptions import PaymentsNotConfigured


@shared_task
def reconcile_checkouts() -> dict[str, int]:
    """Fulfil recent paid Checkout Sessions whose webhook never arrived (a beat task)."""
    try:
        return fulfilment.reconcile_checkouts(
            lookback=timedelta(hours=settings.BILLING_RECONCILE_LOOKBACK_HOURS)
        )
    except PaymentsNotConfigured:
        return {}


@shared_task
def reconcile_invoices() -> dict[str, int]:
    """Grant recent paid subscription invoices whose webhook never arrived (a beat task)."""
    try:
        return subscriptions.reconcile_invoices(
            lookback=timedelta(hours=settings.BILLING_RECONCILE_LOOKBACK_HOURS)
        )
    except PaymentsNotConfigured:
        return {}


@shared_task
def reconcile_reversals() -> dict[str, int]:
    """Apply recent refunds and disputes whose webhook never arrived (a beat task)."""
    try:
        return reversals.reconcile_reversals(
            lookback=timedelta(hours=settings.BILLING_RECONCILE_LOOKBACK_HOURS)
        )
    except PaymentsNotConfigured:
        return {}


@shared_task(autoretry_for=(Exception,), retry_backoff=True, max_retries=8)
def grant_signup_bonus(user_id: str) -> str:
    """Grant the sign-up bonus; retried with backoff, the ledger key makes retries harmless."""
    return grants.grant_signup_bonus(user_id)
