from django.db import migrations

from ledger.migrations._sql import load

# Put back the 0001 CHECK constraints (validated against every row), then drop the functions'
# constraints and the functions.
REVERSE = """
ALTER TABLE ledger_account
    ADD CONSTRAINT ledger_account_available_check CHECK (available >= 0),
    ADD CONSTRAINT ledger_account_held_check CHECK (held >= 0),
    ADD CONSTRAINT ledger_account_version_check CHECK (version >= 0),
    ADD CONSTRAINT ledger_account_granted_check CHECK (granted >= 0),
    ADD CONSTRAINT ledger_account_clawed_back_check CHECK (clawed_back >= 0),
    ADD CONSTRAINT ledger_account_captured_check CHECK (captured >= 0),
    ADD CONSTRAINT ledger_account_late_charged_check CHECK (late_charged >= 0),
    ADD CONSTRAINT ledger_account_conserved
        CHECK (granted + adjusted - clawed_back = available + held + captured + late_charged),
    DROP CONSTRAINT ledger_account_row_ok;
ALTER TABLE ledger_hold
    ADD CONSTRAINT ledger_hold_reference_check CHECK (length(reference) BETWEEN 1 AND 200),
    ADD CONSTRAINT ledger_hold_amount_check CHECK (amount > 0),
    ADD CONSTRAINT ledger_hold_captured_check CHECK (captured >= 0),
    ADD CONSTRAINT ledger_hold_released_check CHECK (released >= 0),
    ADD CONSTRAINT ledger_hold_status_check
        CHECK (status IN ('pending', 'captured', 'released', 'expired')),
    ADD CONSTRAINT ledger_hold_late_check CHECK (late IN ('late_charged', 'unpaid')),
    ADD CONSTRAINT ledger_hold_late_amount_check CHECK (late_amount >= 0),
    ADD CONSTRAINT ledger_hold_pending_shape CHECK (
        status <> 'pending'
        OR (captured = 0 AND released = 0 AND late IS NULL AND late_amount = 0 AND settled_at IS NULL)),
    ADD CONSTRAINT ledger_hold_captured_shape CHECK (
        status <> 'captured'
        OR (captured > 0 AND captured + released = amount AND late IS NULL AND late_amount = 0
            AND settled_at IS NOT NULL)),
    ADD CONSTRAINT ledger_hold_returned_shape CHECK (
        status NOT IN ('released', 'expired')
        OR (captured = 0 AND released = amount AND settled_at IS NOT NULL)),
    ADD CONSTRAINT ledger_hold_late_shape CHECK (
        (late IS NULL AND late_amount = 0)
        OR (late IS NOT NULL AND late_amount BETWEEN 1 AND amount)),
    DROP CONSTRAINT ledger_hold_row_ok;
ALTER TABLE ledger_entry
    ADD CONSTRAINT ledger_entry_account_version_check CHECK (account_version > 0),
    ADD CONSTRAINT ledger_entry_kind_check CHECK (kind IN ('grant', 'hold', 'capture', 'release',
        'expire', 'late_charge', 'adjust', 'clawback')),
    ADD CONSTRAINT ledger_entry_amount_check CHECK (amount > 0),
    ADD CONSTRAINT ledger_entry_available_after_check CHECK (available_after >= 0),
    ADD CONSTRAINT ledger_entry_held_after_check CHECK (held_after >= 0),
    ADD CONSTRAINT ledger_entry_idempotency_key_check
        CHECK (length(idempotency_key) BETWEEN 1 AND 200),
    ADD CONSTRAINT ledger_entry_source_check CHECK (length(source) <= 200),
    ADD CONSTRAINT ledger_entry_memo_check CHECK (length(memo) <= 1000),
    ADD CONSTRAINT ledger_entry_shape CHECK (CASE kind
        WHEN 'grant' THEN available_delta = amount AND held_delta = 0
                          AND idempotency_key IS NOT NULL AND hold_id IS NULL
        WHEN 'adjust' THEN available_delta IN (amount, -amount) AND held_delta = 0
                          AND idempotency_key IS NOT NULL AND hold_id IS NULL
        WHEN 'clawback' THEN available_delta BETWEEN -amount AND 0 AND held_delta = 0
                          AND idempotency_key IS NOT NULL AND hold_id IS NULL
        WHEN 'hold' THEN available_delta = -amount AND held_delta = amount
                          AND hold_id IS NOT NULL AND idempotency_key IS NULL
        WHEN 'capture' THEN held_delta < 0 AND available_delta = -held_delta - amount
                          AND available_delta >= 0 AND hold_id IS NOT NULL AND idempotency_key IS NULL
        WHEN 'release' THEN available_delta = amount AND held_delta = -amount
                          AND hold_id IS NOT NULL AND idempotency_key IS NULL
        WHEN 'expire' THEN available_delta = amount AND held_delta = -amount
                          AND hold_id IS NOT NULL AND idempotency_key IS NULL
        WHEN 'late_charge' THEN available_delta = -amount AND held_delta = 0
                          AND hold_id IS NOT NULL AND idempotency_key IS NULL
    END),
    DROP CONSTRAINT ledger_entry_row_ok;
DROP FUNCTION ledger_account_row_ok(bigint, bigint, bigint, bigint, bigint, bigint, bigint, bigint);
DROP FUNCTION ledger_hold_row_ok(text, bigint, bigint, bigint, text, text, bigint, timestamptz);
DROP FUNCTION ledger_entry_row_ok(bigint, text, bigint, bigint, bigint, bigint, bigint, uuid, text,
                                  text, text);
"""


class Migration(migrations.Migration):
    dependencies = [("ledger", "0006_models")]

    operations = [migrations.RunSQL(load("0006_row_rules.sql"), reverse_sql=REVERSE)]
