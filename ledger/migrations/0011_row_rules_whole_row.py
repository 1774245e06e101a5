from django.db import migrations

from ledger.migrations._sql import function, load


def _previous_rules() -> str:
    """The rules as 0009 left them: 0006's account function, 0009's hold and journal ones."""
    return "\n".join(
        [
            function("0006_row_rules.sql", "ledger_account_row_ok"),
            function("0009_row_rules_by_kind.sql", "ledger_hold_row_ok"),
            function("0009_row_rules_by_kind.sql", "ledger_entry_row_ok"),
            """
REVOKE ALL ON FUNCTION ledger_account_row_ok(bigint, bigint, bigint, bigint, bigint, bigint,
                                             bigint, bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION ledger_hold_row_ok(text, bigint, bigint, bigint, text, text, bigint,
                                          timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION ledger_entry_row_ok(bigint, text, bigint, bigint, bigint, bigint, bigint,
                                           uuid, text, text, text) FROM PUBLIC;
ALTER TABLE ledger_account
    ADD CONSTRAINT ledger_account_row_ok CHECK (
        ledger_account_row_ok(available, held, version, granted, adjusted, clawed_back,
                              captured, late_charged)),
    DROP CONSTRAINT ledger_account_rules;
ALTER TABLE ledger_hold
    ADD CONSTRAINT ledger_hold_row_ok CHECK (
        ledger_hold_row_ok(reference, amount, captured, released, status, late, late_amount,
                           settled_at)),
    DROP CONSTRAINT ledger_hold_rules;
ALTER TABLE ledger_entry
    ADD CONSTRAINT ledger_entry_row_ok CHECK (
        ledger_entry_row_ok(account_version, kind, amount, available_delta, held_delta,
                            available_after, held_after, hold_id, idempotency_key, source, memo)),
    DROP CONSTRAINT ledger_entry_rules;
DROP FUNCTION ledger_account_rules(ledger_account);
DROP FUNCTION ledger_hold_rules(ledger_hold);
DROP FUNCTION ledger_entry_rules(ledger_entry);
""",
        ]
    )


class Migration(migrations.Migration):
    dependencies = [("ledger", "0010_row_rules_by_kind")]

    operations = [
        migrations.RunSQL(load("0010_row_rules_whole_row.sql"), reverse_sql=_previous_rules())
    ]
