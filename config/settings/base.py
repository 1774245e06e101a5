"""Django, the database, Redis and Celery, sign-in, email, static files, security and logging.

Each app's own variables (billing, generation, media, notifications) are in their own modules;
``config.settings`` reads them all in order.
"""

import sys
from pathlib import Path

from dotenv import load_dotenv

from config.env import (
    database_config,
    database_role_urls,
    env_bool,
    env_choice,
    env_int,
    env_list,
    env_networks,
    env_str,
)
from config.logging import logging_config

BASE_DIR = Path(__file__).resolve().parent.parent.parent
load_dotenv(BASE_DIR / ".env", override=False)

# Never inferred: `make dev` writes development, `make test` and pytest mean test, and anything
# else must say which it is, so a forgotten variable cannot quietly skip production's checks.
RUNNING_TESTS = "pytest" in sys.modules
DJANGO_ENV = env_choice(
    "DJANGO_ENV", ("development", "test", "production"), "test" if RUNNING_TESTS else ""
)
PRODUCTION = DJANGO_ENV == "production"
DEBUG = env_bool("DEBUG", False) and not PRODUCTION

# Secrets: a development key is allowed only while DEBUG is on or under test.
if DEBUG or DJANGO_ENV == "test":
    SECRET_KEY = env_str("DJANGO_SECRET_KEY", "dev-insecure-only-for-debug-and-tests")
else:
    SECRET_KEY = env_str("DJANGO_SECRET_KEY")

ALLOWED_HOSTS = env_list(
    "DJANGO_ALLOWED_HOSTS", [] if PRODUCTION else ["localhost", "127.0.0.1", "[::1]", "testserver"]
)
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])
SITE_URL = env_str("SITE_URL", "http://127.0.0.1:8000").rstrip("/")
# Emails name the site and link to SITE_URL, never to whatever host a request came in on.
SITE_NAME = env_str("SITE_NAME", "Genmedia")

INSTALLED_APPS = [
    "config",
    "accounts",
    "ledger",
    "billing",
    "generation",
    "media_store",
    "pages",
    "notifications",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "allauth",
    "allauth.account",
    "allauth.mfa",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "config.admin_access.StaffMFAMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ADMIN_URL = env_str("DJANGO_ADMIN_URL", "admin/").strip("/") + "/"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "config.context_processors.site",
                "pages.context_processors.balance",
            ],
        },
    },
]

# Database: three roles (docs/design.md §3). The app connects as the runtime role; migrations run
# as the owner; only `manage.py db_bootstrap` uses the admin URL. With only DATABASE_ADMIN_URL set
# (the embedded server, a fresh CI database) the two role URLs derive from it, never in production.
DATABASE_ADMIN_URL = env_str("DATABASE_ADMIN_URL", "")
DATABASE_NAME = env_str("DATABASE_NAME", "genmedia")
_database_url, _owner_url = database_role_urls(
    production=PRODUCTION, admin_url=DATABASE_ADMIN_URL, name=DATABASE_NAME
)
DATABASES = {"default": database_config(_database_url, variable="DATABASE_URL")}
DATABASES["default"].update(
    CONN_MAX_AGE=env_int("DATABASE_CONN_MAX_AGE", 0, minimum=0),
    CONN_HEALTH_CHECKS=True,
)
if _owner_url:
    DATABASES["owner"] = database_config(_owner_url, variable="DATABASE_OWNER_URL")
DATABASE_ROLE_PREFIX = env_str("DATABASE_ROLE_PREFIX", DATABASES["default"]["NAME"])
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Redis: Celery's broker (db 0) and the cache behind rate limits (db 1).
REDIS_URL = env_str("REDIS_URL", "redis://127.0.0.1:6379/0")
# The cache holds only what may be lost (rate-limit counters, short throttles), so it fails
# open (config/cache.py); short socket timeouts keep an unreachable Redis from stalling requests.
CACHES = {
    "default": {
        "BACKEND": "config.cache.FailOpenRedisCache",
        "LOCATION": env_str("CACHE_URL", REDIS_URL.rsplit("/", 1)[0] + "/1"),
        "KEY_PREFIX": DATABASE_ROLE_PREFIX,
        "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 1.0},
    }
}

AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
if DJANGO_ENV == "test":
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "pages:dashboard"

# allauth: email login, mandatory verification, its rate limits on (they use the cache).
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_EMAIL_VERIFICATION = "mandatory"
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = True
ACCOUNT_CONFIRM_EMAIL_ON_GET = False
ACCOUNT_LOGOUT_ON_PASSWORD_CHANGE = False
ACCOUNT_ADAPTER = "accounts.adapters.AccountAdapter"
ACCOUNT_FORMS = {"login": "accounts.forms.LoginForm"}
ACCOUNT_ALLOW_REGISTRATION = env_bool("ACCOUNT_ALLOW_REGISTRATION", True)
ACCOUNT_EMAIL_SUBJECT_PREFIX = env_str("EMAIL_SUBJECT_PREFIX", "[Genmedia] ")

# Two-factor sign-in (allauth.mfa): an authenticator app plus recovery codes. Optional for
# customers (account settings); staff must have it to open the admin in production, where it
# cannot be turned off, and anywhere ADMIN_REQUIRE_MFA is on.
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
MFA_TOTP_ISSUER = env_str("MFA_TOTP_ISSUER", "Genmedia")
ADMIN_REQUIRE_MFA = PRODUCTION or env_bool("ADMIN_REQUIRE_MFA", False)

# Email: console in development, SMTP when EMAIL_HOST is set (Mailpit in compose).
EMAIL_HOST = env_str("EMAIL_HOST", "")
if EMAIL_HOST:
    EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    EMAIL_PORT = env_int("EMAIL_PORT", 587)
    EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
    EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
    EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", EMAIL_PORT == 587)
else:
    EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
# Seconds; mail is sent inside requests and tasks, so a hung server must not hold them.
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10, minimum=1)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Genmedia <noreply@localhost>")
SERVER_EMAIL = env_str("SERVER_EMAIL", DEFAULT_FROM_EMAIL)
ADMINS = [("Operators", address) for address in env_list("DJANGO_ADMINS", [])]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
# Outside production WhiteNoise serves straight from the app folders, no collectstatic needed.
WHITENOISE_USE_FINDERS = not PRODUCTION
WHITENOISE_AUTOREFRESH = not PRODUCTION
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# S3-compatible private media (the embedded SeaweedFS in development and tests).
AWS_S3_ENDPOINT_URL = env_str("AWS_S3_ENDPOINT_URL", "")
AWS_S3_PUBLIC_ENDPOINT_URL = env_str("AWS_S3_PUBLIC_ENDPOINT_URL", AWS_S3_ENDPOINT_URL)
AWS_ACCESS_KEY_ID = env_str("AWS_ACCESS_KEY_ID", "")
AWS_SECRET_ACCESS_KEY = env_str("AWS_SECRET_ACCESS_KEY", "")
AWS_S3_REGION_NAME = env_str("AWS_S3_REGION_NAME", "us-east-1")
AWS_STORAGE_BUCKET_NAME = env_str("AWS_STORAGE_BUCKET_NAME", "media")
MEDIA_BACKEND = env_choice("MEDIA_BACKEND", ("s3", "filesystem"), "s3")
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(BASE_DIR / ".dev" / "media")))
MEDIA_SIGNED_URL_SECONDS = env_int("MEDIA_SIGNED_URL_SECONDS", 300, minimum=1)

# Celery: at-least-once delivery; every task is idempotent (docs/design.md §5).
CELERY_BROKER_URL = REDIS_URL
CELERY_TASK_IGNORE_RESULT = True
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_TIME_LIMIT = 300
CELERY_TASK_SOFT_TIME_LIMIT = 240
# Above the longest task plus its longest retry delay, so an unacked task is redelivered only
# after its worker is really gone.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 900}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Celery's Django fixup closes every database connection after each task unless this is set,
# which costs a new PostgreSQL backend per task. With it, config/celery.py applies Django's
# request rule to tasks instead (DATABASE_CONN_MAX_AGE, health checks); this forces a reconnect
# every that many tasks on top.
CELERY_DB_REUSE_MAX = 1000
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BEAT_SCHEDULE = {
    # Every 30 s: a due hold keeps a user's credits locked until swept, so lag stays under a minute.
    "ledger-expire-due-holds": {"task": "ledger.tasks.expire_due_holds", "schedule": 30.0},
    # Every 5 min: ledger_check() costs milliseconds (no journal scan), so run it often.
    "ledger-check": {"task": "ledger.tasks.check_ledger", "schedule": 300.0},
    # Nightly: ledger_audit() folds the whole journal, so once a day off-peak.
    "ledger-audit": {"task": "ledger.tasks.audit_ledger", "schedule": 24 * 60 * 60.0},
    # Every 15 min: Stripe retries webhooks for three days; this catches deliveries that never
    # come (endpoint down or misconfigured) at the cost of one list call per run.
    "billing-reconcile-checkouts": {
        "task": "billing.tasks.reconcile_checkouts",
        "schedule": 15 * 60.0,
    },
    "billing-reconcile-invoices": {
        "task": "billing.tasks.reconcile_invoices",
        "schedule": 15 * 60.0,
    },
    # Every 15 min, like the others: a refund or dispute whose event never came would leave its
    # credits with the customer; one list call each for refunds and disputes per run.
    "billing-reconcile-reversals": {
        "task": "billing.tasks.reconcile_reversals",
        "schedule": 15 * 60.0,
    },
    # Every 30 s: the re-drive is the recovery path when the broker lost messages or a worker
    # died; 30 s bounds how long such work waits, at the cost of one indexed query per run.
    "generation-redrive": {"task": "generation.tasks.redrive_generations", "schedule": 30.0},
    # Every minute: a running job's hold must not lapse between its signs of life; holds live
    # at least GENERATION_HOLD_MIN_SECONDS (300 s), so a minute leaves four chances to extend.
    "generation-keep-holds-alive": {
        "task": "generation.tasks.keep_running_holds_alive",
        "schedule": 60.0,
    },
    # Daily: objects a crashed ingest left without an asset row (MEDIA_ORPHAN_GRACE_SECONDS old).
    "media-sweep-orphans": {
        "task": "media_store.tasks.sweep_orphan_objects",
        "schedule": 24 * 60 * 60.0,
    },
    # Every 5 min: queues notifications whose task the broker lost or whose sender died (an
    # indexed scan of a handful of pending rows).
    "notifications-redrive": {
        "task": "notifications.tasks.redrive_notifications",
        "schedule": 5 * 60.0,
    },
    # Hourly: deletes data exports past their download window.
    "accounts-expire-exports": {"task": "accounts.tasks.expire_exports", "schedule": 60 * 60.0},
}
# `start` has its own queue so a busy settle queue never delays the insufficient-credits answer.
# Workers must consume both: `celery -A config worker -Q default,start,settle`.
CELERY_TASK_ROUTES = {
    "generation.tasks.start_generation": {"queue": "start"},
    "generation.tasks.*": {"queue": "settle"},
}
# Below this many available credits a user gets one notice per descent (ledger/tasks.py).
LEDGER_LOW_BALANCE_THRESHOLD = env_int("LEDGER_LOW_BALANCE_THRESHOLD", 100, minimum=1)

# Development switches (docs/design.md §8): explicit, never inferred from DEBUG.
BILLING_STANDIN_ENABLED = env_bool("BILLING_STANDIN_ENABLED", False)
LOCAL_PROVIDER_ENABLED = env_bool("LOCAL_PROVIDER_ENABLED", False)
INGEST_ALLOW_PRIVATE_HOSTS = env_bool("INGEST_ALLOW_PRIVATE_HOSTS", False)
SIGNUP_BONUS_CREDITS = env_int("SIGNUP_BONUS_CREDITS", 0, minimum=0)
DEMO_USER_EMAIL = "demo@example.com"

# Security headers. Production forces HTTPS; development serves plain HTTP on loopback.
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
if PRODUCTION:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", True)
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^livez$"]
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("DJANGO_SECURE_HSTS_SECONDS", 60 * 60 * 24 * 365, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("DJANGO_SECURE_HSTS_PRELOAD", True)

# Rate limits (config/ratelimit.py; counted in the Redis cache, 0 turns one off). Sign-in uses
# allauth's own limits. Webhooks count only deliveries whose signature failed, per address.
BILLING_BUY_RATE_LIMIT_COUNT = env_int("BILLING_BUY_RATE_LIMIT_COUNT", 10, minimum=0)
BILLING_BUY_RATE_LIMIT_WINDOW_SECONDS = env_int(
    "BILLING_BUY_RATE_LIMIT_WINDOW_SECONDS", 60, minimum=1
)
WEBHOOK_RATE_LIMIT_COUNT = env_int("WEBHOOK_RATE_LIMIT_COUNT", 1200, minimum=0)
WEBHOOK_RATE_LIMIT_WINDOW_SECONDS = env_int("WEBHOOK_RATE_LIMIT_WINDOW_SECONDS", 60, minimum=1)
# Largest body either webhook (Stripe's events, provider callbacks) reads; larger gets 413.
WEBHOOK_MAX_BYTES = env_int("WEBHOOK_MAX_BYTES", 1024 * 1024, minimum=1024)
# Proxies in front of the app (load balancer, CDN): the client address every rate limit counts
# by is read from X-Forwarded-For through these only. CIDRs win over a count; neither set means
# REMOTE_ADDR is the client.
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0, minimum=0)
TRUSTED_PROXY_NETWORKS = env_networks("TRUSTED_PROXY_CIDRS")
ALLAUTH_TRUSTED_PROXY_COUNT = TRUSTED_PROXY_COUNT

# Content-Security-Policy: no inline scripts anywhere; htmx is vendored and self-hosted.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:", "blob:", *env_list("CSP_MEDIA_ORIGINS", [])],
        "media-src": ["'self'", "blob:", *env_list("CSP_MEDIA_ORIGINS", [])],
        "connect-src": ["'self'"],
        "font-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        # Checkout and the customer portal are Stripe-hosted pages our forms redirect to.
        "form-action": ["'self'", "https://checkout.stripe.com", "https://billing.stripe.com"],
        "frame-ancestors": ["'none'"],
    }
}
# <img> and <video> follow /media/<id>/ to the signed URL, so CSP must allow that origin too.
if MEDIA_BACKEND == "s3":
    _media_origin = AWS_S3_PUBLIC_ENDPOINT_URL or (
        "https://s3.amazonaws.com"
        if AWS_S3_REGION_NAME == "us-east-1"
        else f"https://s3.{AWS_S3_REGION_NAME}.amazonaws.com"
    )
    for _directive in ("img-src", "media-src"):
        CONTENT_SECURITY_POLICY["DIRECTIVES"][_directive].append(_media_origin.rstrip("/"))

# Logging: one JSON object per line on stdout, for any log shipper.
LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()
LOGGING = logging_config(LOG_LEVEL)

SENTRY_DSN = env_str("SENTRY_DSN", "")
if SENTRY_DSN:
    from config.sentry import init_sentry

    init_sentry(
        SENTRY_DSN,
        environment=DJANGO_ENV,
        traces_sample_rate=env_int("SENTRY_TRACES_PERCENT", 0, minimum=0) / 100,
    )
