-- Row rules evaluated per kind: the journal and hold rule functions of 0006 branch on the row's
-- kind (journal) or status (hold) and evaluate only that branch's expressions.
--
-- Why: PL/pgSQL keeps each expression's plan for the session, but builds its executable state
-- again in every transaction, on first use (the simple-expression state is per transaction),
-- and every ledger call is its own transaction. 0006 wrote each rule as one RETURN expression,
-- so every call paid for initializing all eight journal shapes and all four hold shapes to
-- evaluate one. Now the common case of each call (a `hold` entry and a pending hold; a
-- `capture` entry and a captured hold; ...) initializes one small expression. Measured with one
-- client, server CPU per call (docs/ledger.md, Performance).
--
-- The rules are exactly those of 0001 and 0006, not one weaker: each branch returns the same
-- `rule IS NOT FALSE AND ...` for the rows it is taken for (the kind/status word is then known,
-- so the word check and the other kinds' shapes are TRUE and are left out; a rule is left out of
-- a branch only where another rule of that branch already fails whenever it would), and any row
-- whose word is NULL or unknown takes the 0006 expression whole. tests/ledger/test_row_rules.py
-- compares each function with the 0001 constraint text on random rows, NULLs included. Every
-- existing row is checked again below before the migration commits.
--
-- Attributes as in 0006: IMMUTABLE, no SET clause, owner-owned, EXECUTE revoked from PUBLIC
-- (only the owner's SECURITY DEFINER functions write these tables). CREATE OR REPLACE keeps the
-- owner and the CHECK constraints that call them. Runs as the owner role.

CREATE OR REPLACE FUNCTION ledger_hold_row_ok(reference text, amount bigint, captured bigint,
                                              released bigint, status text, late text,
                                              late_amount bigint, settled_at timestamptz)
RETURNS boolean
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
BEGIN
    IF status = 'pending' THEN
        -- The pending shape pins captured, released, late and late_amount, which implies their
        -- own range and word rules and the late shape.
        RETURN (length(reference) BETWEEN 1 AND 200) IS NOT FALSE
           AND (amount > 0) IS NOT FALSE
           AND (captured = 0 AND released = 0 AND late IS NULL AND late_amount = 0
                AND settled_at IS NULL) IS NOT FALSE;
    ELSIF status = 'captured' THEN
        RETURN (length(reference) BETWEEN 1 AND 200) IS NOT FALSE
           AND (amount > 0) IS NOT FALSE
           AND (released >= 0) IS NOT FALSE
           AND (captured > 0 AND captured + released = amount AND late IS NULL AND late_amount = 0
                AND settled_at IS NOT NULL) IS NOT FALSE;
    ELSIF status IN ('released', 'expired') THEN
        RETURN (length(reference) BETWEEN 1 AND 200) IS NOT FALSE
           AND (amount > 0) IS NOT FALSE
           AND (captured >= 0) IS NOT FALSE
           AND (released >= 0) IS NOT FALSE
           AND (late IN ('late_charged', 'unpaid')) IS NOT FALSE
           AND (late_amount >= 0) IS NOT FALSE
           AND (captured = 0 AND released = amount AND settled_at IS NOT NULL) IS NOT FALSE
           AND ((late IS NULL AND late_amount = 0)
                OR (late IS NOT NULL AND late_amount BETWEEN 1 AND amount)) IS NOT FALSE;
    END IF;
    -- NULL or unknown status: the 0006 expression whole.
    RETURN (length(reference) BETWEEN 1 AND 200) IS NOT FALSE
       AND (amount > 0) IS NOT FALSE
       AND (captured >= 0) IS NOT FALSE
       AND (released >= 0) IS NOT FALSE
       AND (status IN ('pending', 'captured', 'released', 'expired')) IS NOT FALSE
       AND (late IN ('late_charged', 'unpaid')) IS NOT FALSE
       AND (late_amount >= 0) IS NOT FALSE
       AND (status <> 'pending'
            OR (captured = 0 AND released = 0 AND late IS NULL AND late_amount = 0
                AND settled_at IS NULL)) IS NOT FALSE
       AND (status <> 'captured'
            OR (captured > 0 AND captured + released = amount AND late IS NULL AND late_amount = 0
                AND settled_at IS NOT NULL)) IS NOT FALSE
       AND (status NOT IN ('released', 'expired')
            OR (captured = 0 AND released = amount AND settled_at IS NOT NULL)) IS NOT FALSE
       AND ((late IS NULL AND late_amount = 0)
            OR (late IS NOT NULL AND late_amount BETWEEN 1 AND amount)) IS NOT FALSE;
END;
$$;

CREATE OR REPLACE FUNCTION ledger_entry_row_ok(account_version bigint, kind text, amount bigint,
                                               available_delta bigint, held_delta bigint,
                                               available_after bigint, held_after bigint,
                                               hold_id uuid, idempotency_key text, source text,
                                               memo text)
RETURNS boolean
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
BEGIN
    -- Hold-side kinds require idempotency_key IS NULL, so their key-length rule never decides.
    IF kind = 'hold' THEN
        RETURN (account_version > 0) IS NOT FALSE
           AND (amount > 0) IS NOT FALSE
           AND (available_after >= 0) IS NOT FALSE
           AND (held_after >= 0) IS NOT FALSE
           AND (length(source) <= 200) IS NOT FALSE
           AND (length(memo) <= 1000) IS NOT FALSE
           AND (available_delta = -amount AND held_delta = amount
                AND hold_id IS NOT NULL AND idempotency_key IS NULL) IS NOT FALSE;
    ELSIF kind = 'capture' THEN
        RETURN (account_version > 0) IS NOT FALSE
           AND (amount > 0) IS NOT FALSE
           AND (available_after >= 0) IS NOT FALSE
           AND (held_after >= 0) IS NOT FALSE
           AND (length(source) <= 200) IS NOT FALSE
           AND (length(memo) <= 1000) IS NOT FALSE
           AND (held_delta < 0 AND available_delta = -held_delta - amount
                AND available_delta >= 0 AND hold_id IS NOT NULL
                AND idempotency_key IS NULL) IS NOT FALSE;
    ELSIF kind IN ('release', 'expire') THEN
        RETURN (account_version > 0) IS NOT FALSE
           AND (amount > 0) IS NOT FALSE
           AND (available_after >= 0) IS NOT FALSE
           AND (held_after >= 0) IS NOT FALSE
           AND (length(source) <= 200) IS NOT FALSE
           AND (length(memo) <= 1000) IS NOT FALSE
           AND (available_delta = amount AND held_delta = -amount
                AND hold_id IS NOT NULL AND idempotency_key IS NULL) IS NOT FALSE;
    ELSIF kind = 'grant' THEN
        RETURN (account_version > 0) IS NOT FALSE
           AND (amount > 0) IS NOT FALSE
           AND (available_after >= 0) IS NOT FALSE
           AND (held_after >= 0) IS NOT FALSE
           AND (length(idempotency_key) BETWEEN 1 AND 200) IS NOT FALSE
           AND (length(source) <= 200) IS NOT FALSE
           AND (length(memo) <= 1000) IS NOT FALSE
           AND (available_delta = amount AND held_delta = 0
                AND idempotency_key IS NOT NULL AND hold_id IS NULL) IS NOT FALSE;
    END IF;
    -- late_charge, adjust, clawback (rare), and NULL or unknown kinds: the 0006 expression whole.
    RETURN (account_version > 0) IS NOT FALSE
       AND (kind IN ('grant', 'hold', 'capture', 'release', 'expire', 'late_charge', 'adjust',
                     'clawback')) IS NOT FALSE
       AND (amount > 0) IS NOT FALSE
       AND (available_after >= 0) IS NOT FALSE
       AND (held_after >= 0) IS NOT FALSE
       AND (length(idempotency_key) BETWEEN 1 AND 200) IS NOT FALSE
       AND (length(source) <= 200) IS NOT FALSE
       AND (length(memo) <= 1000) IS NOT FALSE
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

REVOKE ALL ON FUNCTION ledger_hold_row_ok(text, bigint, bigint, bigint, text, text, bigint, timestamptz)
    FROM PUBLIC;
REVOKE ALL ON FUNCTION ledger_entry_row_ok(bigint, text, bigint, bigint, bigint, bigint, bigint, uuid,
                                           text, text, text)
    FROM PUBLIC;

-- The rewritten rules must accept every stored row (they are the same rules; this proves it on
-- the data before the migration commits).
DO $$
BEGIN
    IF current_user <> current_setting('app.role_prefix') || '_owner' THEN
        RAISE EXCEPTION 'ledger migrations must run as %_owner, not %',
            current_setting('app.role_prefix'), current_user;
    END IF;
    IF EXISTS (SELECT FROM ledger_hold h
               WHERE NOT ledger_hold_row_ok(h.reference, h.amount, h.captured, h.released,
                                            h.status, h.late, h.late_amount, h.settled_at))
       OR EXISTS (SELECT FROM ledger_entry e
                  WHERE NOT ledger_entry_row_ok(e.account_version, e.kind, e.amount,
                                                e.available_delta, e.held_delta,
                                                e.available_after, e.held_after, e.hold_id,
                                                e.idempotency_key, e.source, e.memo)) THEN
        RAISE EXCEPTION 'ledger: a stored row fails the rewritten row rules';
    END IF;
END;
$$;
