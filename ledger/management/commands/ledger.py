"""manage.py ledger check | audit | adjust: operator access to the ledger's own checks."""

import getpass
import uuid

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from ledger import api
from ledger.exceptions import LedgerError


class Command(BaseCommand):
    help = (
        "Run ledger_check() (cheap, any time) or ledger_audit() (full journal fold, off-peak) and "
        "exit 1 listing violations; or adjust a user's balance with a reason (kept in the journal)."
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
        if result.status not in ("adjusted", "duplicate"):
            raise CommandError(f"adjustment {result.status}", returncode=1)
