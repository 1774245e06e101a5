"""The "Ledger operator" group: who may read the ledger admin, adjust a balance and see health.

Kept in step after every ``migrate`` (and every test flush) by a post_migrate receiver, so the
group exists wherever the ledger does. Superusers have every permission anyway; view-only staff
get only the ``view_*`` permissions.
"""

from django.apps import AppConfig

OPERATOR_GROUP = "Ledger operator"
OPERATOR_CODENAMES = (
    "view_entry",
    "view_hold",
    "view_account",
    "adjust_account",
    "view_ledger_health",
)


def ensure_operator_group(sender: AppConfig, using: str = "default", **kwargs: object) -> None:
    """Create the group with its permissions if missing (idempotent)."""
    from django.contrib.auth.management import create_permissions
    from django.contrib.auth.models import Group, Permission

    # The auth app's own receiver may run after this one: make the permissions first.
    create_permissions(sender, verbosity=0, using=using)
    group, _ = Group.objects.using(using).get_or_create(name=OPERATOR_GROUP)
    group.permissions.add(
        *Permission.objects.using(using).filter(
            content_type__app_label="ledger", codename__in=OPERATOR_CODENAMES
        )
    )
