"""Stripe's own API through one StripeClient pinned to ``STRIPE_API_VERSION``."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import stripe
from django.conf import settings

from billing.exceptions import GatewayError, PriceMismatch, SessionNotFound
from billing.gateways.base import PAID_STATUSES, Price
from billing.models import CreditPack, Plan, StripeMode

HTTP_TIMEOUT_SECONDS = 20


def stripe_client() -> stripe.StripeClient:
    """Return the process's StripeClient, built on first use with the pinned API version."""
    return _client(
        settings.STRIPE_SECRET_KEY, settings.STRIPE_API_VERSION, settings.STRIPE_MAX_NETWORK_RETRIES
    )


def build_http_client() -> stripe.HTTPClient:
    """Return the HTTP client stripe-python sends through (tests replace this one function)."""
    return stripe.HTTPXClient(timeout=HTTP_TIMEOUT_SECONDS, allow_sync_methods=True)


@functools.lru_cache(maxsize=4)
def _client(api_key: str, api_version: str, retries: int) -> stripe.StripeClient:
    return stripe.StripeClient(
        api_key,
        stripe_version=api_version,
        max_network_retries=retries,
        http_client=build_http_client(),
        base_addresses={"api": settings.STRIPE_API_BASE_URL},
    )


class StripeGateway:
    """Stripe's API through one StripeClient; errors become ``GatewayError``."""

    def __init__(self, client: stripe.StripeClient, *, mode: StripeMode) -> None:
        self.client = client
        self.mode = mode

    def create_customer(self, *, user_id: str, email: str, idempotency_key: str) -> str:
        params = {"email": email, "metadata": {"user_id": user_id}}
        with _translated_errors():
            customer = self.client.v1.customers.create(
                params=params, options={"idempotency_key": idempotency_key}
            )
        return customer.id

    def resolve_price(self, product: CreditPack | Plan) -> Price:
        """Return the product's active Price: one-off for a pack, recurring for a plan."""
        with _translated_errors():
            if product.stripe_price_id:
                price = self.client.v1.prices.retrieve(product.stripe_price_id)
            else:
                key = product.stripe_lookup_key
                found = self.client.v1.prices.list(
                    params={"lookup_keys": [key], "active": True, "limit": 2}
                ).data
                if len(found) != 1:
                    raise PriceMismatch(f"{len(found)} active prices have lookup key {key!r}.")
                price = found[0]
        wanted = "recurring" if isinstance(product, Plan) else "one_time"
        if not price.active or price.type != wanted:
            raise PriceMismatch(f"Price {price.id} is inactive or not {wanted}.")
        if isinstance(product, Plan):
            recurring = getattr(price, "recurring", None)
            interval = getattr(recurring, "interval", None)
            if interval != product.interval:
                raise PriceMismatch(
                    f"Price {price.id} renews every {interval}, not every {product.interval}."
                )
        if price.currency != product.currency or price.unit_amount != product.price_amount:
            raise PriceMismatch(
                f"Price {price.id} is {price.unit_amount} {price.currency}, {product} says "
                f"{product.price_amount} {product.currency}."
            )
        return Price(id=price.id, unit_amount=price.unit_amount, currency=price.currency)

    def create_checkout_session(self, params: dict, *, idempotency_key: str) -> dict:
        with _translated_errors():
            session = self.client.v1.checkout.sessions.create(
                params=params, options={"idempotency_key": idempotency_key}
            )
        return session.to_dict()

    def retrieve_checkout_session(self, session_id: str) -> dict:
        with _translated_errors(missing=SessionNotFound):
            session = self.client.v1.checkout.sessions.retrieve(
                session_id, params={"expand": ["line_items"]}
            )
        return session.to_dict()

    def list_paid_checkout_sessions(self, *, created_since: datetime) -> Iterator[dict]:
        params: Any = {
            "created": {"gte": int(created_since.timestamp())},
            "status": "complete",
            "limit": 100,
        }
        with _translated_errors():
            for session in self.client.v1.checkout.sessions.list(params=params).auto_paging_iter():
                if session.payment_status in PAID_STATUSES:
                    yield session.to_dict()

    def create_portal_session(self, *, customer_id: str, return_url: str) -> str:
        with _translated_errors():
            portal = self.client.v1.billing_portal.sessions.create(
                params={"customer": customer_id, "return_url": return_url}
            )
        return portal.url

    def list_paid_invoices(self, *, created_since: datetime) -> Iterator[dict]:
        params: Any = {
            "created": {"gte": int(created_since.timestamp())},
            "status": "paid",
            "limit": 100,
        }
        with _translated_errors():
            for invoice in self.client.v1.invoices.list(params=params).auto_paging_iter():
                yield invoice.to_dict()

    def invoice_paid_by(self, payment_intent: str) -> str:
        # Since API version 2025-03-31 an invoice names its PaymentIntent only in `payments`,
        # which webhook payloads never include; the InvoicePayments list is the way back.
        params: Any = {
            "payment": {"type": "payment_intent", "payment_intent": payment_intent},
            "limit": 1,
        }
        with _translated_errors():
            found = self.client.v1.invoice_payments.list(params=params).data
        if not found:
            return ""
        invoice = found[0].invoice
        return invoice if isinstance(invoice, str) else invoice.id

    def list_refunded_charges(self, *, created_since: datetime) -> Iterator[dict]:
        # A Refund names its charge; the charge carries the cumulative amount refunded, which
        # is what ``charge.refunded`` delivers.
        params: Any = {"created": {"gte": int(created_since.timestamp())}, "limit": 100}
        seen: set[str] = set()
        with _translated_errors():
            for refund in self.client.v1.refunds.list(params=params).auto_paging_iter():
                charge = refund.charge if isinstance(refund.charge, str) else refund.charge.id
                if charge and charge not in seen:
                    seen.add(charge)
                    yield self.client.v1.charges.retrieve(charge).to_dict()

    def list_disputes(self, *, created_since: datetime) -> Iterator[dict]:
        params: Any = {"created": {"gte": int(created_since.timestamp())}, "limit": 100}
        with _translated_errors():
            for dispute in self.client.v1.disputes.list(params=params).auto_paging_iter():
                yield dispute.to_dict()

    def cancel_subscription(self, subscription_id: str) -> dict:
        with _translated_errors():
            return self.client.v1.subscriptions.cancel(subscription_id).to_dict()


@contextlib.contextmanager
def _translated_errors(missing: type[GatewayError] = GatewayError) -> Iterator[None]:
    """Turn stripe-python's errors into billing's, keeping the original as the cause."""
    try:
        yield
    except stripe.InvalidRequestError as error:
        kind = missing if error.code == "resource_missing" else GatewayError
        raise kind(str(error.user_message or error)) from error
    except stripe.StripeError as error:
        raise GatewayError(str(error.user_message or error)) from error
