"""manage.py ledger check | audit | adjust | dump_sql: the ledger's checks, corrections and SQL."""

import getpass
import uuid

import psycopg
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from config.dbroles import drop_database, prepare_database, url_for_database
from ledger import api, current_sql
from ledger.exceptions import LedgerError


class Command(BaseCommand):
    help = (
        "Run ledger_check() (cheap, any time) or ledger_audit() (full journal fold, off-peak) and "
        "exit 1 listing violations; adjust a user's balance with a reason (kept in the journal); "
        "or write today's SQL of each ledger function to ledger/sql/current/."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        sub.add_parser("check", help="Invariants that do not read the journal.")
        sub.add_parser("audit", help="The full fold of the journal.")
        adjust = sub.add_parser("adjust", help="Add or remove credits with a reason.")
        adjust.add_argument("--email", required=True)
        adjust.add_argument("--delta", required=True, type=int)
        adjust.add_argument("--reason", required=True)
        adjust.add_argument("--key", help="Idempotency key (default: a fresh one).")
        sub.add_parser(
            "dump_sql",
            help="Migrate a scratch database (needs DATABASE_ADMIN_URL) and write each ledger "
            "function's definition to ledger/sql/current/.",
        )

    def handle(self, *args: object, **options: object) -> None:
        action = options["action"]
        if action in ("check", "audit"):
            violations = api.check() if action == "check" else api.audit()
            for violation in violations:
                self.stdout.write(f"{violation.invariant}: {violation.detail}")
            if violations:
                raise CommandError(f"ledger {action}: {len(violations)} violation(s)", returncode=1)
            self.stdout.write(f"ledger {action}: no violations")
            return
        if action == "dump_sql":
            self.dump_sql()
            return
        user = get_user_model().objects.filter(email__iexact=options["email"]).first()
        if user is None:
            raise CommandError(f"no user with email {options['email']}")
        try:
            result = api.adjust(
                user.pk,
                options["delta"],
                key=options["key"] or f"cli-adjust:{uuid.uuid4()}",
                actor=f"cli:{getpass.getuser()}",
                reason=options["reason"],
            )
        except LedgerError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"{result.status}: entry {result.entry_id}, available {result.available}")
        if result.status not in (api.AdjustOutcome.ADJUSTED, api.AdjustOutcome.DUPLICATE):
            raise CommandError(f"adjustment {result.status}", returncode=1)

    def dump_sql(self) -> None:
        """Write ledger/sql/current/ from a freshly migrated scratch database, then drop it."""
        admin_url = settings.DATABASE_ADMIN_URL
        if not admin_url:
            raise CommandError(
                "dump_sql migrates a scratch database and needs DATABASE_ADMIN_URL; "
                f"`{current_sql.REGENERATE}` provides one"
            )
        dbname = f"{settings.DATABASE_NAME}_current_sql"
        try:
            prepare_database(admin_url, dbname)
            with psycopg.connect(url_for_database(admin_url, dbname)) as connection:
                files = current_sql.read_database(connection.cursor())
        finally:
            drop_database(admin_url, dbname)
        before = current_sql.read_files()
        current_sql.write_files(files)
        changed = current_sql.differences(files, before)
        for line in changed:
            self.stdout.write(line)
        self.stdout.write(
            f"ledger/sql/current/: {len(files)} files, {len(changed)} changed by this run"
        )
