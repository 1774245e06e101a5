from django.conf import settings
from django.core.management.base import CommandError
from django.core.management.commands.migrate import Command as DjangoMigrate


class Command(DjangoMigrate):
    """Django's migrate, as the owner role by default: the runtime role may not create tables."""

    def add_arguments(self, parser) -> None:
        super().add_arguments(parser)
        if "owner" in settings.DATABASES:
            parser.set_defaults(database="owner")

    def handle(self, *args, **options) -> None:
        # Outside production the owner URL derives from the admin URL; in production it is the
        # one process that gets it, so say so instead of failing on the runtime role's privileges.
        if settings.PRODUCTION and "owner" not in settings.DATABASES:
            raise CommandError(
                "migrate needs DATABASE_OWNER_URL (the owner role); web, worker and beat do not."
            )
        super().handle(*args, **options)
