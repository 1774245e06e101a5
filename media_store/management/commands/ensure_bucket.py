from django.core.management.base import BaseCommand

from media_store.backends import get_backend


class Command(BaseCommand):
    help = "Create the media bucket (or MEDIA_ROOT) if it is missing; safe to run on every start."

    def handle(self, *args, **options):
        created = get_backend().ensure_bucket()
        self.stdout.write("media storage created" if created else "media storage already exists")
