"""Signed, CSRF-exempt endpoints for Stripe and media providers, grouped under /webhooks/."""

urlpatterns: list = []
