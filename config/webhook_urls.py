"""Signed, CSRF-exempt endpoints for Stripe and media providers, grouped under /webhooks/."""

from django.urls import path

from billing.webhooks import stripe_webhook
from generation.webhooks import provider_callback

urlpatterns: list = [
    path("stripe/", stripe_webhook, name="stripe-webhook"),
    path("providers/<slug:provider>/", provider_callback, name="provider-callback"),
]
