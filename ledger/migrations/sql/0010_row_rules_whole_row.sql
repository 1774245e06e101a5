-- Row rules take the whole row and state each rule once per status or kind.
--
-- Why: measured in instructions (callgrind on one backend, the same hold statement against
-- copies of the tables; docs/ledger.md, Performance, round 3), the 0006/0009 rules were 43 % of
-- a hold's executor work. Two things in them cost more than the rules themselves:
--   * PostgreSQL reads every CHECK expression back from its stored text for each statement.
--     0006's calls passed 8 to 11 columns, and parsing those Var nodes was 17 % of a hold. A
--     whole-row argument is a single Var.
--   * PL/pgSQL builds each expression's executable state again in every transaction (every ledger
--     call is one), and every operator in it costs an EXECUTE permission check there. The bodies
--     below use fewer operators: least(...) instead of one comparison per column, no
--     `IS NOT FALSE` wrappers, and each status or kind states only its own shape.
-- Together: 545k -> 441k instructions per hold statement (the rules themselves: 236k -> 132k).
--
-- The rules are exactly those of 0001, on every row a table can hold. NOT NULL is checked before
-- any CHECK constraint, so the NOT NULL columns are never NULL here; that is what lets
-- `least(a, b) > 0` stand for `a > 0 AND b > 0` and the `IS NOT FALSE` wrappers go. The nullable
-- columns (late, settled_at, hold_id, idempotency_key) are tested with IS [NOT] NULL wherever a
-- NULL could otherwise turn FALSE into NULL (which a CHECK lets pass).
-- tests/ledger/test_row_rules.py compares each function with the 0001 constraint text on random
-- rows and on every combination of each column's boundary values; every stored row is checked
-- again when the new constraints are added below (ADD CONSTRAINT validates), before the old
-- ones are dropped, in the same transaction.
--
-- Attributes as in 0006: IMMUTABLE, no SET clause (a GUC save/restore per row), owner-owned,
-- EXECUTE revoked from PUBLIC (only the owner's SECURITY DEFINER functions write these tables).
-- Runs as the owner role.

DO $$
BEGIN
    IF current_user <> current_setting('app.role_prefix') || '_owner' THEN
        RAISE EXCEPTION 'ledger migrations must run as %_owner, not %',
            current_setting('app.role_prefix'), current_user;
    END IF;
END;
$$;

-- ledger_account_rules: non-negative balances and running totals, version >= 0, conservation.
CREATE FUNCTION ledger_account_rules(r ledger_account)
RETURNS boolean
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
BEGIN
    RETURN least(r.available, r.held, r.version, r.granted, r.clawed_back, r.captured,
                 r.late_charged) >= 0
       AND r.granted + r.adjusted - r.clawed_back
           = r.available + r.held + r.captured + r.late_charged;
END;
$$;

-- ledger_hold_rules: reference length, a positive amount, and the shape each status pins
-- (pending: nothing settled; captured: captured + released = amount; released/expired: all of
-- it returned, and a late outcome with its amount or neither).
CREATE FUNCTION ledger_hold_rules(r ledger_hold)
RETURNS boolean
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
BEGIN
    IF r.status = 'pending' THEN
        RETURN length(r.reference) BETWEEN 1 AND 200 AND r.amount > 0
           AND r.captured = 0 AND r.released = 0 AND r.late_amount = 0
           AND r.late IS NULL AND r.settled_at IS NULL;
    ELSIF r.status = 'captured' THEN
        RETURN length(r.reference) BETWEEN 1 AND 200 AND r.amount > 0
           AND r.captured > 0 AND r.released >= 0 AND r.captured + r.released = r.amount
           AND r.late_amount = 0 AND r.late IS NULL AND r.settled_at IS NOT NULL;
    ELSIF r.status IN ('released', 'expired') THEN
        RETURN length(r.reference) BETWEEN 1 AND 200 AND r.amount > 0
           AND r.captured = 0 AND r.released = r.amount AND r.settled_at IS NOT NULL
           AND CASE WHEN r.late IS NULL THEN r.late_amount = 0
                    ELSE r.late IN ('late_charged', 'unpaid')
                         AND r.late_amount BETWEEN 1 AND r.amount
               END;
    END IF;
    RETURN false;                                   -- not one of the four statuses
END;
$$;

-- ledger_entry_rules: the bounds every entry obeys, then the deltas, hold id and key its kind
-- pins (hold-side kinds carry a hold id and no key; grants, adjustments and clawbacks the
-- reverse).
CREATE FUNCTION ledger_entry_rules(r ledger_entry)
RETURNS boolean
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
BEGIN
    IF NOT (least(r.account_version, r.amount) > 0 AND least(r.available_after, r.held_after) >= 0
            AND length(r.source) <= 200 AND length(r.memo) <= 1000) THEN
        RETURN false;
    END IF;
    CASE r.kind
    WHEN 'hold' THEN
        RETURN r.available_delta = -r.amount AND r.held_delta = r.amount
           AND r.hold_id IS NOT NULL AND r.idempotency_key IS NULL;
    WHEN 'capture' THEN
        RETURN r.held_delta < 0 AND r.available_delta = -r.held_delta - r.amount
           AND r.available_delta >= 0 AND r.hold_id IS NOT NULL AND r.idempotency_key IS NULL;
    WHEN 'release', 'expire' THEN
        RETURN r.available_delta = r.amount AND r.held_delta = -r.amount
           AND r.hold_id IS NOT NULL AND r.idempotency_key IS NULL;
    WHEN 'late_charge' THEN
        RETURN r.available_delta = -r.amount AND r.held_delta = 0
           AND r.hold_id IS NOT NULL AND r.idempotency_key IS NULL;
    WHEN 'grant' THEN
        RETURN r.available_delta = r.amount AND r.held_delta = 0 AND r.hold_id IS NULL
           AND r.idempotency_key IS NOT NULL AND length(r.idempotency_key) BETWEEN 1 AND 200;
    WHEN 'adjust' THEN
        RETURN r.available_delta IN (r.amount, -r.amount) AND r.held_delta = 0
           AND r.hold_id IS NULL
           AND r.idempotency_key IS NOT NULL AND length(r.idempotency_key) BETWEEN 1 AND 200;
    WHEN 'clawback' THEN
        RETURN r.available_delta BETWEEN -r.amount AND 0 AND r.held_delta = 0
           AND r.hold_id IS NULL
           AND r.idempotency_key IS NOT NULL AND length(r.idempotency_key) BETWEEN 1 AND 200;
    ELSE
        RETURN false;                               -- not one of the eight kinds
    END CASE;
END;
$$;

REVOKE ALL ON FUNCTION ledger_account_rules(ledger_account) FROM PUBLIC;
REVOKE ALL ON FUNCTION ledger_hold_rules(ledger_hold) FROM PUBLIC;
REVOKE ALL ON FUNCTION ledger_entry_rules(ledger_entry) FROM PUBLIC;
COMMENT ON FUNCTION ledger_account_rules(ledger_account) IS
    'CHECK rule of ledger_account (the 0001 constraints, on the whole row).';
COMMENT ON FUNCTION ledger_hold_rules(ledger_hold) IS
    'CHECK rule of ledger_hold (the 0001 constraints, on the whole row).';
COMMENT ON FUNCTION ledger_entry_rules(ledger_entry) IS
    'CHECK rule of ledger_entry (the 0001 constraints, on the whole row).';

-- Add the new constraints (each validated against every stored row), then drop the old ones
-- and their functions.
ALTER TABLE ledger_account
    ADD CONSTRAINT ledger_account_rules CHECK (ledger_account_rules(ledger_account)),
    DROP CONSTRAINT ledger_account_row_ok;
ALTER TABLE ledger_hold
    ADD CONSTRAINT ledger_hold_rules CHECK (ledger_hold_rules(ledger_hold)),
    DROP CONSTRAINT ledger_hold_row_ok;
ALTER TABLE ledger_entry
    ADD CONSTRAINT ledger_entry_rules CHECK (ledger_entry_rules(ledger_entry)),
    DROP CONSTRAINT ledger_entry_row_ok;

DROP FUNCTION ledger_account_row_ok(bigint, bigint, bigint, bigint, bigint, bigint, bigint, bigint);
DROP FUNCTION ledger_hold_row_ok(text, bigint, bigint, bigint, text, text, bigint, timestamptz);
DROP FUNCTION ledger_entry_row_ok(bigint, text, bigint, bigint, bigint, bigint, bigint, uuid, text,
                                  text, text);
