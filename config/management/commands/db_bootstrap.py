from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from config.dbroles import RolePlan, bootstrap


def plan_from_settings() -> RolePlan:
    """Read role names and passwords from the runtime and owner database settings."""
    if "owner" not in settings.DATABASES:
        raise CommandError(
            "DATABASE_OWNER_URL is not set: the bootstrap needs the owner role's name."
        )
    app, owner = settings.DATABASES["default"], settings.DATABASES["owner"]
    return RolePlan(
        dbname=app["NAME"],
        prefix=settings.DATABASE_ROLE_PREFIX,
        owner=owner["USER"],
        owner_password=owner["PASSWORD"],
        app=app["USER"],
        app_password=app["PASSWORD"],
    )


class Command(BaseCommand):
    help = (
        "Create the database, its owner, runtime and reader roles, grants and default privileges "
        "with DATABASE_ADMIN_URL. Safe to run again; run it before the first migrate."
    )

    def handle(self, *args, **options) -> None:
        if not settings.DATABASE_ADMIN_URL:
            raise CommandError("DATABASE_ADMIN_URL is not set (a superuser or CREATEROLE role).")
        plan = plan_from_settings()
        done = bootstrap(settings.DATABASE_ADMIN_URL, plan)
        self.stdout.write(
            f"Database {plan.dbname}: owner {plan.owner}, runtime {plan.app}, readers "
            f"{plan.user_reader} and {plan.staff_reader}. "
            + ("; ".join(done) or "nothing to change")
        )
