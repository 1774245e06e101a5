from django.core.management.base import BaseCommand

from media_store import services


class Command(BaseCommand):
    help = (
        "Delete stored media objects that no asset row names (left by a crash between upload "
        "and insert), older than MEDIA_ORPHAN_GRACE_SECONDS. Beat runs this daily."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--dry-run", action="store_true", help="list the orphans, delete nothing"
        )

    def handle(self, *args, dry_run: bool = False, **options):
        sweep = services.sweep_orphans(dry_run=dry_run)
        for key in sweep.orphans:
            self.stdout.write(key)
        verb = "would delete" if dry_run else "deleted"
        self.stdout.write(
            f"{sweep.scanned} objects checked, {len(sweep.orphans)} without an asset row, "
            f"{verb} {len(sweep.orphans)}"
        )
