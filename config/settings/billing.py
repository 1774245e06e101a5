"""Billing settings: Stripe, Checkout, refunds and subscriptions (billing/, docs/stripe.md)."""

from config.env import env_bool, env_choice, env_int, env_str

STRIPE_SECRET_KEY = env_str("STRIPE_SECRET_KEY", "")
STRIPE_WEBHOOK_SECRET = env_str("STRIPE_WEBHOOK_SECRET", "")
# Pinned: payload shapes are read against this version, and the webhook endpoint is created
# with it (docs/stripe.md). It is stripe-python 16.1's own version; upgrade the two together.
STRIPE_API_VERSION = "2026-10-28.endive"
STRIPE_LIVEMODE = STRIPE_SECRET_KEY.startswith(("sk_live_", "rk_live_"))
STRIPE_MAX_NETWORK_RETRIES = env_int("STRIPE_MAX_NETWORK_RETRIES", 2, minimum=0)
# Where stripe-python sends API calls. Production requires https; plain http is accepted only
# for a loopback address, which is how `make prod-check` points it at a local fake Stripe.
STRIPE_API_BASE_URL = env_str("STRIPE_API_BASE_URL", "https://api.stripe.com").rstrip("/")
STRIPE_WEBHOOK_TOLERANCE_SECONDS = 300
# Stripe accepts 30 minutes to 24 hours.
BILLING_CHECKOUT_EXPIRY_MINUTES = env_int("BILLING_CHECKOUT_EXPIRY_MINUTES", 30, minimum=30)
BILLING_ALLOW_PROMOTION_CODES = env_bool("BILLING_ALLOW_PROMOTION_CODES", False)
BILLING_ELIGIBILITY_CHECK = env_str(
    "BILLING_ELIGIBILITY_CHECK", "billing.fulfilment.user_is_eligible"
)
BILLING_RECONCILE_LOOKBACK_HOURS = env_int("BILLING_RECONCILE_LOOKBACK_HOURS", 72, minimum=1)
# Refunds and disputes always open a review item; clawback_unspent also takes the refunded
# share of the purchase's credits back at once (never below zero). docs/stripe.md explains both.
BILLING_REFUND_POLICY = env_choice(
    "BILLING_REFUND_POLICY", ("review_only", "clawback_unspent"), "clawback_unspent"
)
# On: only users with an active subscription may buy packs (checked again when payment lands).
BILLING_PACKS_REQUIRE_SUBSCRIPTION = env_bool("BILLING_PACKS_REQUIRE_SUBSCRIPTION", False)
