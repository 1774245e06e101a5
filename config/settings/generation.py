"""Generation settings: providers, rate limits, holds and re-drive deadlines (generation/)."""

from config.env import env_int, env_list, env_str

# The local provider (a BabySea stand-in, generation/local_provider/) is a development switch.
LOCAL_PROVIDER_URL = env_str("LOCAL_PROVIDER_URL", "http://127.0.0.1:8010").rstrip("/")
# Signs BabySea (and local provider) callbacks; required whenever either is enabled
# (config.checks). `make dev` generates one into .dev/env.
PROVIDER_WEBHOOK_SECRET = env_str("PROVIDER_WEBHOOK_SECRET", "")
BABYSEA_API_KEY = env_str("BABYSEA_API_KEY", "")
BABYSEA_API_BASE_URL = env_str("BABYSEA_API_BASE_URL", "https://api.us.babysea.ai")
BABYSEA_OUTPUT_HOSTS = env_list(
    "BABYSEA_OUTPUT_HOSTS", ["app.us.babysea.ai", "app.eu.babysea.ai", "app.jp.babysea.ai"]
)
REPLICATE_API_TOKEN = env_str("REPLICATE_API_TOKEN", "")
REPLICATE_API_BASE_URL = env_str("REPLICATE_API_BASE_URL", "https://api.replicate.com/v1")
REPLICATE_WEBHOOK_SECRET = env_str("REPLICATE_WEBHOOK_SECRET", "")
REPLICATE_OUTPUT_HOSTS = env_list(
    "REPLICATE_OUTPUT_HOSTS", ["replicate.delivery", "pbxt.replicate.delivery"]
)
# Per-user submissions per window (Redis-backed through the cache); 0 turns the limit off.
GENERATION_RATE_LIMIT_COUNT = env_int("GENERATION_RATE_LIMIT_COUNT", 10, minimum=0)
GENERATION_RATE_LIMIT_WINDOW_SECONDS = env_int(
    "GENERATION_RATE_LIMIT_WINDOW_SECONDS", 60, minimum=1
)
# Hold TTL = the model's expected duration x this factor, never below the floor.
GENERATION_HOLD_SAFETY_FACTOR = env_int("GENERATION_HOLD_SAFETY_FACTOR", 5, minimum=1)
GENERATION_HOLD_MIN_SECONDS = env_int("GENERATION_HOLD_MIN_SECONDS", 300, minimum=1)
# Deadlines after which the re-drive acts on a row with no progress.
GENERATION_START_GRACE_SECONDS = env_int("GENERATION_START_GRACE_SECONDS", 30, minimum=0)
GENERATION_DISPATCH_GRACE_SECONDS = env_int("GENERATION_DISPATCH_GRACE_SECONDS", 60, minimum=0)
GENERATION_SETTLE_GRACE_SECONDS = env_int("GENERATION_SETTLE_GRACE_SECONDS", 30, minimum=0)
GENERATION_RECONCILE_GRACE_SECONDS = env_int("GENERATION_RECONCILE_GRACE_SECONDS", 30, minimum=0)
GENERATION_RECONCILE_INTERVAL_SECONDS = env_int(
    "GENERATION_RECONCILE_INTERVAL_SECONDS", 60, minimum=1
)
GENERATION_COLLECT_INTERVAL_SECONDS = env_int("GENERATION_COLLECT_INTERVAL_SECONDS", 300, minimum=1)
GENERATION_REDRIVE_BACKOFF_SECONDS = env_int("GENERATION_REDRIVE_BACKOFF_SECONDS", 30, minimum=0)
GENERATION_REDRIVE_MAX_ATTEMPTS = env_int("GENERATION_REDRIVE_MAX_ATTEMPTS", 8, minimum=1)
