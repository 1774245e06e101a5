"""Production refuses to start with a development convenience or an unsafe role model.

These run as Django system checks (``manage.py check``, ``runserver``, ``migrate``) and again at
start-up of every long-running process, none of which runs system checks itself: in
``config.wsgi`` before gunicorn serves a request, and in ``config.celery`` when a worker or beat
starts. Web, worker and beat hold only the runtime role (``DATABASE_URL``); the role is judged
from its own connection, so a URL that names another role is caught whatever it is called.
"""

from urllib.parse import urlsplit

from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured

DEV_SWITCHES = (
    "BILLING_STANDIN_ENABLED",
    "LOCAL_PROVIDER_ENABLED",
    "INGEST_ALLOW_PRIVATE_HOSTS",
    "SIGNUP_BONUS_CREDITS",
)
DEV_SECRET_MARKERS = ("dev-", "whsec_dev", "django-insecure")
LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")


@checks.register(checks.Tags.security)
def check_production_settings(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """Refuse development switches and development secrets."""
    if not settings.PRODUCTION:
        return []
    errors = []
    for name in DEV_SWITCHES:
        if getattr(settings, name):
            errors.append(
                checks.Error(
                    f"{name} is a development switch and must be off in production.",
                    id="config.E001",
                )
            )
    stripe_api = urlsplit(settings.STRIPE_API_BASE_URL)
    if stripe_api.scheme != "https" and stripe_api.hostname not in LOOPBACK_HOSTS:
        errors.append(
            checks.Error(
                "STRIPE_API_BASE_URL must be https (plain http only to a loopback address).",
                id="config.E005",
            )
        )
    if urlsplit(settings.SITE_URL).scheme != "https":
        # Emails, Stripe's return URLs and provider callbacks are built from SITE_URL; the
        # default (http://127.0.0.1:8000) would send customers and providers nowhere.
        errors.append(
            checks.Error(
                "SITE_URL must be the site's public https address (e.g. https://app.example.com).",
                id="config.E006",
            )
        )
    for name in ("SECRET_KEY", "STRIPE_WEBHOOK_SECRET", "PROVIDER_WEBHOOK_SECRET"):
        value = getattr(settings, name, "") or ""
        if any(marker in value for marker in DEV_SECRET_MARKERS):
            errors.append(
                checks.Error(
                    f"{name} is a development secret; generate a real one.", id="config.E002"
                )
            )
    return errors


@checks.register(checks.Tags.security)
def check_callback_secrets(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """Refuse an enabled provider whose signed callbacks could not be verified."""
    babysea = settings.LOCAL_PROVIDER_ENABLED or bool(settings.BABYSEA_API_KEY)
    enabled = {
        "PROVIDER_WEBHOOK_SECRET": babysea,
        "REPLICATE_WEBHOOK_SECRET": bool(settings.REPLICATE_API_TOKEN),
        "STRIPE_WEBHOOK_SECRET": settings.BILLING_STANDIN_ENABLED,
    }
    return [
        checks.Error(
            f"{name} is not set, but the provider it verifies is enabled.",
            hint="Copy the provider's signing secret; `make dev` generates its own into .dev/env.",
            id="config.E004",
        )
        for name, on in enabled.items()
        if on and not getattr(settings, name)
    ]


@checks.register(checks.Tags.database)
def check_runtime_role(app_configs=None, databases=None, **kwargs) -> list[checks.CheckMessage]:
    """Refuse a superuser, RLS-bypassing, owning or ledger-writing runtime role, or a demo user.

    Like Django's own database checks it runs only when asked for the ``default`` database
    (``check --database default``, start-up), so ``db_bootstrap`` can run before the role exists.
    """
    if not settings.PRODUCTION or "default" not in (databases or ()):
        return []
    from django.contrib.auth import get_user_model
    from django.db import connection

    from config.dbroles import role_report

    try:
        connection.ensure_connection()
        report = role_report(connection.connection)
        demo_present = get_user_model().objects.filter(email=settings.DEMO_USER_EMAIL).exists()
    except Exception as error:
        return [
            checks.Error(f"Cannot inspect the runtime database role: {error}", id="config.E010")
        ]
    errors = []
    if report["superuser"] or report["bypassrls"]:
        errors.append(
            checks.Error(
                f"The runtime role {report['user']} is a superuser or bypasses RLS.",
                id="config.E011",
            )
        )
    if report["owned_objects"]:
        errors.append(
            checks.Error(
                f"The runtime role {report['user']} owns {report['owned_objects']} objects; "
                "it must own nothing (run migrations as the owner role).",
                id="config.E012",
            )
        )
    if report["writable_ledger_tables"]:
        errors.append(
            checks.Error(
                f"The runtime role {report['user']} may write "
                f"{', '.join(report['writable_ledger_tables'])} directly; it must change the "
                "ledger only through its SQL functions (docs/deploying.md, 'Database roles').",
                id="config.E014",
            )
        )
    if demo_present:
        errors.append(
            checks.Error(
                f"The demo user {settings.DEMO_USER_EMAIL} exists in production.", id="config.E013"
            )
        )
    return errors


def refuse_unsafe_production() -> None:
    """Raise before serving when a production check fails (called from the WSGI module)."""
    if not settings.PRODUCTION:
        return
    problems = check_production_settings() + check_callback_secrets()
    problems += check_runtime_role(databases=["default"])
    if problems:
        raise ImproperlyConfigured("; ".join(message.msg for message in problems))
