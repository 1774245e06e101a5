-- Row rules as one compiled function per table instead of many CHECK expressions.
--
-- Why: PostgreSQL rebuilds every CHECK constraint of a table from its stored text for each
-- INSERT or UPDATE statement (the expressions are read back with stringToNode, constant-folded
-- and compiled per executor run; nothing is cached across statements). The hot path runs single
-- row statements, so the 0001 constraints (about 37 kB of stored expression text over the three
-- tables, 16 kB of it the journal's shape CASE) cost more CPU than the rows themselves: a hold
-- paid ~100 us of its ~260 us server time rebuilding them. A PL/pgSQL function is compiled once
-- per session and its expressions keep cached plans, so a CHECK that calls it costs one function
-- call per row.
--
-- The rules are exactly those of 0001, not one weaker: each function returns
-- `rule IS NOT FALSE AND ...` over the same expressions, which is how PostgreSQL judges a CHECK
-- (NULL passes, only FALSE fails). The old constraints are dropped only after the new ones are
-- added and validated against every existing row, in the same transaction.
--
-- The functions are IMMUTABLE (they read only their arguments), have no SET clause (a GUC
-- save/restore per row would give back part of the gain) and EXECUTE is revoked from PUBLIC:
-- only the owner (whose SECURITY DEFINER functions do every write) and superusers run them, so
-- no caller can get one compiled under a search_path of its choosing. Every write reaches them
-- from a ledger function whose search_path starts with pg_catalog, so every operator they use
-- resolves to the built-in one. Runs as the owner role, which therefore owns the functions.

-- ledger_account_row_ok: the 0001 CHECKs of ledger_account (non-negative balances and totals,
-- version >= 0, and the conservation identity).
CREATE FUNCTION ledger_account_row_ok(available bigint, held bigint, version bigint, granted bigint,
                                      adjusted bigint, clawed_back bigint, captured bigint,
                                      late_charged bigint)
RETURNS boolean
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
BEGIN
    RETURN (available >= 0) IS NOT FALSE
       AND (held >= 0) IS NOT FALSE
       AND (version >= 0) IS NOT FALSE
       AND (granted >= 0) IS NOT FALSE
       AND (clawed_back >= 0) IS NOT FALSE
       AND (captured >= 0) IS NOT FALSE
       AND (late_charged >= 0) IS NOT FALSE
       AND (granted + adjusted - clawed_back = available + held + captured + late_charged) IS NOT FALSE;
END;
$$;

-- ledger_hold_row_ok: the 0001 CHECKs of ledger_hold (reference length, amounts, the status and
-- late words, and the shape each status pins).
CREATE FUNCTION ledger_hold_row_ok(reference text, amount bigint, captured bigint, released bigint,
                                   status text, late text, late_amount bigint,
                                   settled_at timestamptz)
RETURNS boolean
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
BEGIN
    RETURN (length(reference) BETWEEN 1 AND 200) IS NOT FALSE
       AND (amount > 0) IS NOT FALSE
       AND (captured >= 0) IS NOT FALSE
       AND (released >= 0) IS NOT FALSE
       AND (status IN ('pending', 'captured', 'released', 'expired')) IS NOT FALSE
       AND (late IN ('late_charged', 'unpaid')) IS NOT FALSE
       AND (late_amount >= 0) IS NOT FALSE
       -- ledger_hold_pending_shape
       AND (status <> 'pending'
            OR (captured = 0 AND released = 0 AND late IS NULL AND late_amount = 0
                AND settled_at IS NULL)) IS NOT FALSE
       -- ledger_hold_captured_shape
       AND (status <> 'captured'
            OR (captured > 0 AND captured + released = amount AND late IS NULL AND late_amount = 0
                AND settled_at IS NOT NULL)) IS NOT FALSE
       -- ledger_hold_returned_shape
       AND (status NOT IN ('released', 'expired')
            OR (captured = 0 AND released = amount AND settled_at IS NOT NULL)) IS NOT FALSE
       -- ledger_hold_late_shape
       AND ((late IS NULL AND late_amount = 0)
            OR (late IS NOT NULL AND late_amount BETWEEN 1 AND amount)) IS NOT FALSE;
END;
$$;

-- ledger_entry_row_ok: the 0001 CHECKs of ledger_entry (version, kind word, amounts, after-values,
-- key/source/memo lengths, and the shape of each kind: which deltas, key and hold it carries).
CREATE FUNCTION ledger_entry_row_ok(account_version bigint, kind text, amount bigint,
                                    available_delta bigint, held_delta bigint,
                                    available_after bigint, held_after bigint, hold_id uuid,
                                    idempotency_key text, source text, memo text)
RETURNS boolean
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
BEGIN
    RETURN (account_version > 0) IS NOT FALSE
       AND (kind IN ('grant', 'hold', 'capture', 'release', 'expire', 'late_charge', 'adjust',
                     'clawback')) IS NOT FALSE
       AND (amount > 0) IS NOT FALSE
       AND (available_after >= 0) IS NOT FALSE
       AND (held_after >= 0) IS NOT FALSE
       AND (length(idempotency_key) BETWEEN 1 AND 200) IS NOT FALSE
       AND (length(source) <= 200) IS NOT FALSE
       AND (length(memo) <= 1000) IS NOT FALSE
       -- ledger_entry_shape
       AND (CASE kind
            WHEN 'grant' THEN available_delta = amount AND held_delta = 0
                              AND idempotency_key IS NOT NULL AND hold_id IS NULL
            WHEN 'adjust' THEN available_delta IN (amount, -amount) AND held_delta = 0
                              AND idempotency_key IS NOT NULL AND hold_id IS NULL
            WHEN 'clawback' THEN available_delta BETWEEN -amount AND 0 AND held_delta = 0
                              AND idempotency_key IS NOT NULL AND hold_id IS NULL
            WHEN 'hold' THEN available_delta = -amount AND held_delta = amount
                              AND hold_id IS NOT NULL AND idempotency_key IS NULL
            WHEN 'capture' THEN held_delta < 0 AND available_delta = -held_delta - amount
                              AND available_delta >= 0 AND hold_id IS NOT NULL
                              AND idempotency_key IS NULL
            WHEN 'release' THEN available_delta = amount AND held_delta = -amount
                              AND hold_id IS NOT NULL AND idempotency_key IS NULL
            WHEN 'expire' THEN available_delta = amount AND held_delta = -amount
                              AND hold_id IS NOT NULL AND idempotency_key IS NULL
            WHEN 'late_charge' THEN available_delta = -amount AND held_delta = 0
                              AND hold_id IS NOT NULL AND idempotency_key IS NULL
            END) IS NOT FALSE;
END;
$$;

REVOKE ALL ON FUNCTION ledger_account_row_ok(bigint, bigint, bigint, bigint, bigint, bigint, bigint, bigint)
    FROM PUBLIC;
REVOKE ALL ON FUNCTION ledger_hold_row_ok(text, bigint, bigint, bigint, text, text, bigint, timestamptz)
    FROM PUBLIC;
REVOKE ALL ON FUNCTION ledger_entry_row_ok(bigint, text, bigint, bigint, bigint, bigint, bigint, uuid,
                                           text, text, text)
    FROM PUBLIC;

COMMENT ON FUNCTION ledger_account_row_ok(bigint, bigint, bigint, bigint, bigint, bigint, bigint, bigint) IS
    'CHECK rule of ledger_account (the 0001 constraints, compiled once per session).';
COMMENT ON FUNCTION ledger_hold_row_ok(text, bigint, bigint, bigint, text, text, bigint, timestamptz) IS
    'CHECK rule of ledger_hold (the 0001 constraints, compiled once per session).';
COMMENT ON FUNCTION ledger_entry_row_ok(bigint, text, bigint, bigint, bigint, bigint, bigint, uuid, text, text, text) IS
    'CHECK rule of ledger_entry (the 0001 constraints, compiled once per session).';

-- Add the new rules (each validated against every existing row), then drop the old ones.
ALTER TABLE ledger_account ADD CONSTRAINT ledger_account_row_ok CHECK (
    ledger_account_row_ok(available, held, version, granted, adjusted, clawed_back, captured,
                          late_charged));
ALTER TABLE ledger_hold ADD CONSTRAINT ledger_hold_row_ok CHECK (
    ledger_hold_row_ok(reference, amount, captured, released, status, late, late_amount, settled_at));
ALTER TABLE ledger_entry ADD CONSTRAINT ledger_entry_row_ok CHECK (
    ledger_entry_row_ok(account_version, kind, amount, available_delta, held_delta, available_after,
                        held_after, hold_id, idempotency_key, source, memo));

ALTER TABLE ledger_account
    DROP CONSTRAINT ledger_account_available_check,
    DROP CONSTRAINT ledger_account_held_check,
    DROP CONSTRAINT ledger_account_version_check,
    DROP CONSTRAINT ledger_account_granted_check,
    DROP CONSTRAINT ledger_account_clawed_back_check,
    DROP CONSTRAINT ledger_account_captured_check,
    DROP CONSTRAINT ledger_account_late_charged_check,
    DROP CONSTRAINT ledger_account_conserved;
ALTER TABLE ledger_hold
    DROP CONSTRAINT ledger_hold_reference_check,
    DROP CONSTRAINT ledger_hold_amount_check,
    DROP CONSTRAINT ledger_hold_captured_check,
    DROP CONSTRAINT ledger_hold_released_check,
    DROP CONSTRAINT ledger_hold_status_check,
    DROP CONSTRAINT ledger_hold_late_check,
    DROP CONSTRAINT ledger_hold_late_amount_check,
    DROP CONSTRAINT ledger_hold_pending_shape,
    DROP CONSTRAINT ledger_hold_captured_shape,
    DROP CONSTRAINT ledger_hold_returned_shape,
    DROP CONSTRAINT ledger_hold_late_shape;
ALTER TABLE ledger_entry
    DROP CONSTRAINT ledger_entry_account_version_check,
    DROP CONSTRAINT ledger_entry_kind_check,
    DROP CONSTRAINT ledger_entry_amount_check,
    DROP CONSTRAINT ledger_entry_available_after_check,
    DROP CONSTRAINT ledger_entry_held_after_check,
    DROP CONSTRAINT ledger_entry_idempotency_key_check,
    DROP CONSTRAINT ledger_entry_source_check,
    DROP CONSTRAINT ledger_entry_memo_check,
    DROP CONSTRAINT ledger_entry_shape;
