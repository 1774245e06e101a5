from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = (
        "Bootstrap the database roles, migrate as the owner and reset the demo user, in one "
        "process: what `make dev` runs before serving. Refused in production."
    )

    def handle(self, *args, **options) -> None:
        if settings.PRODUCTION:
            raise CommandError("prepare_development is for development only.")
        # One process instead of three: each `manage.py` start costs a Django boot.
        call_command("db_bootstrap", stdout=self.stdout)
        call_command("migrate", database="owner", interactive=False, verbosity=1)
        call_command("create_demo_user", stdout=self.stdout)
