-- Hot path, round 3: hold, capture and release return a composite type; hold validates its input
-- with one test; hold ids are drawn from the sequence alone.
--
-- What each bought, in instructions per call (callgrind on one backend, docs/ledger.md,
-- Performance, round 3), against 0007's definitions with 0010's row rules:
--   * RETURNS <composite type> instead of OUT parameters. For a function with OUT parameters the
--     caller's `SELECT * FROM f(...)` builds the result row type again from pg_proc on every call
--     (build_function_result_tupdesc_t); a named composite type comes from the type cache.
--     Callers see the same columns, names and types. About 14k instructions per call.
--   * ledger_hold tests all of its input in one expression and refers to its arguments as $1..$4
--     instead of copying them into locals (each PL/pgSQL expression is set up again in every
--     transaction); which message to raise is worked out only for bad input. About 6k.
--   * hold_id = a version 8 UUID whose low 48 bits are the next value of ledger_hold_id_seq (the
--     sequence stops at 2^48 - 1 instead of wrapping). 0007's default formatted a millisecond
--     prefix as hex text on every hold; the sequence alone already makes ids unique and ordered
--     (right-edge primary key inserts). About 15k. Ids are never secrets: holds are addressed by
--     reference.
-- Semantics, statuses, lock order and messages are those of 0007: the bodies are 0007's, with
-- `RETURN (status, ...)` where they returned OUT parameters.
-- Changing a function's result type needs DROP and CREATE; owner, EXECUTE grants and comments
-- are restated below. Runs as the owner role.

DO $$
BEGIN
    IF current_user <> current_setting('app.role_prefix') || '_owner' THEN
        RAISE EXCEPTION 'ledger migrations must run as %_owner, not %',
            current_setting('app.role_prefix'), current_user;
    END IF;
END;
$$;

CREATE TYPE ledger_hold_result AS (status text, hold_id uuid, available bigint);
CREATE TYPE ledger_capture_result AS (status text, captured bigint, available bigint);
CREATE TYPE ledger_release_result AS (status text, released bigint, available bigint);
COMMENT ON TYPE ledger_hold_result IS 'Result of ledger_hold().';
COMMENT ON TYPE ledger_capture_result IS 'Result of ledger_capture().';
COMMENT ON TYPE ledger_release_result IS 'Result of ledger_release().';

DROP FUNCTION ledger_hold(uuid, text, bigint, interval);
DROP FUNCTION ledger_capture(text, bigint);
DROP FUNCTION ledger_release(text);

-- ledger_hold: reserve credits of an account for the job named by reference.
-- Status: held | insufficient (nothing written, so a later retry is a new attempt) |
-- duplicate (the reference exists for this account and amount: that hold's id, whatever its
-- status now; never a second deduction) | conflict (reference used by another account or with
-- another amount; no hold id). expires_at = now() + ttl on the database clock.
CREATE FUNCTION ledger_hold(account uuid, reference text, amount bigint, ttl interval)
RETURNS ledger_hold_result
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
SET lock_timeout = '5s'
AS $$
#variable_conflict use_column
DECLARE
    v_hold_id uuid;
    v_available bigint;
    v_prior record;
BEGIN
    -- $1..$4 are account, reference, amount and ttl (their names are also column names). One
    -- test covers every bad input; only a bad call pays for finding which message to raise.
    IF $1 IS NULL OR $2 IS NULL OR btrim($2) = '' OR length($2) > 200
       OR $3 IS NULL OR $3 < 1 OR $3 > 1000000000000
       OR $4 IS NULL OR $4 < interval '1 second' OR $4 > interval '30 days' THEN
        IF $1 IS NULL THEN
            RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'ledger: account is required';
        ELSIF $2 IS NULL OR btrim($2) = '' OR length($2) > 200 THEN
            RAISE EXCEPTION USING ERRCODE = '22023',
                MESSAGE = 'ledger: reference must be 1..200 characters, not blank';
        ELSIF $3 IS NULL OR $3 < 1 OR $3 > 1000000000000 THEN
            RAISE EXCEPTION USING ERRCODE = '22023',
                MESSAGE = format('ledger: amount must be 1..1000000000000, got %s', $3);
        END IF;
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = format('ledger: ttl must be 1 second..30 days, got %s', $4);
    END IF;

    -- One statement, as in 0007: `claim` takes the reference first (a concurrent hold of the
    -- same reference waits there, before either touches the account row); `acct` reads `claim`,
    -- so the guarded balance UPDATE runs only after the claim succeeded.
    WITH claim AS (
        INSERT INTO ledger_hold AS h (reference, account_id, amount, expires_at)
        VALUES ($2, $1, $3, now() + $4)
        ON CONFLICT (reference) DO NOTHING
        RETURNING h.hold_id
    ), acct AS (
        UPDATE ledger_account a
        SET available = a.available - $3, held = a.held + $3,
            version = a.version + 1, updated_at = now()
        WHERE a.account_id = $1 AND a.available >= $3
          AND EXISTS (SELECT FROM claim)
        RETURNING a.available, a.held, a.version
    ), journal AS (
        INSERT INTO ledger_entry AS e (account_id, account_version, kind, amount, available_delta,
                                       held_delta, available_after, held_after, hold_id)
        SELECT $1, acct.version, 'hold', $3, -$3, $3, acct.available, acct.held, claim.hold_id
        FROM acct, claim
        RETURNING e.available_after
    )
    SELECT claim.hold_id, journal.available_after INTO v_hold_id, v_available
    FROM claim LEFT JOIN journal ON true;
    IF v_available IS NOT NULL THEN
        RETURN ('held'::text, v_hold_id, v_available);
    END IF;

    IF v_hold_id IS NOT NULL THEN
        -- Not enough credits (or no account): take the claimed reference back, write nothing.
        DELETE FROM ledger_hold h WHERE h.hold_id = v_hold_id;
        RETURN ('insufficient'::text, NULL::uuid,
                (SELECT coalesce(max(a.available), 0) FROM ledger_account a
                 WHERE a.account_id = $1));
    END IF;
    -- The reference existed (committed, or committed while this call waited on it).
    SELECT h.hold_id, h.account_id, h.amount INTO v_prior
    FROM ledger_hold h WHERE h.reference = $2;
    RETURN (CASE WHEN v_prior.account_id = $1 AND v_prior.amount = $3 THEN 'duplicate'
                 ELSE 'conflict' END,
            CASE WHEN v_prior.account_id = $1 AND v_prior.amount = $3 THEN v_prior.hold_id END,
            (SELECT coalesce(max(a.available), 0) FROM ledger_account a WHERE a.account_id = $1));
END;
$$;


-- ledger_capture: charge a hold, fully (amount NULL) or partly (the rest goes back to available).
-- Status: captured | duplicate | late_charged | unpaid | not_found | conflict (as in 0007).
CREATE FUNCTION ledger_capture(reference text, amount bigint DEFAULT NULL)
RETURNS ledger_capture_result
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
SET lock_timeout = '5s'
AS $$
#variable_conflict use_column
DECLARE
    v_reference text := reference;
    v_amount bigint := amount;
    v_hold record;
    v_take bigint;
    status text;
    captured bigint;
    available bigint;
BEGIN
    IF v_reference IS NULL OR btrim(v_reference) = '' OR length(v_reference) > 200 THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'ledger: reference must be 1..200 characters, not blank';
    END IF;
    IF v_amount IS NOT NULL AND (v_amount < 1 OR v_amount > 1000000000000) THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = format('ledger: amount must be NULL or 1..1000000000000, got %s', v_amount);
    END IF;

    LOOP
        -- Fast path, one statement: the guarded UPDATE settles a pending hold and locks it
        -- against release, extend and the sweeper; the account UPDATE joins its RETURNING, so
        -- the account row is locked after the hold row; the journal insert consumes both.
        WITH settle AS (
            UPDATE ledger_hold h
            SET status = 'captured', captured = coalesce(v_amount, h.amount),
                released = h.amount - coalesce(v_amount, h.amount),
                settled_at = now(), updated_at = now()
            WHERE h.reference = v_reference AND h.status = 'pending'
              AND h.amount >= coalesce(v_amount, h.amount)
            RETURNING h.hold_id, h.account_id, h.amount, h.captured
        ), acct AS (
            UPDATE ledger_account a
            SET held = a.held - s.amount,
                available = a.available + (s.amount - s.captured),
                captured = a.captured + s.captured,
                version = a.version + 1, updated_at = now()
            FROM settle s
            WHERE a.account_id = s.account_id
            RETURNING a.account_id, a.available, a.held, a.version, s.hold_id, s.amount,
                      s.captured
        )
        INSERT INTO ledger_entry AS e (account_id, account_version, kind, amount, available_delta,
                                       held_delta, available_after, held_after, hold_id)
        SELECT acct.account_id, acct.version, 'capture', acct.captured,
               acct.amount - acct.captured, -acct.amount, acct.available, acct.held, acct.hold_id
        FROM acct
        RETURNING e.amount, e.available_after INTO captured, available;
        IF FOUND THEN
            status := 'captured';
            RETURN (status, captured, available);
        END IF;

        -- Not a pending hold that fits: lock whatever is there and decide.
        SELECT h.hold_id, h.account_id, h.amount, h.captured, h.status, h.late, h.late_amount
        INTO v_hold
        FROM ledger_hold h WHERE h.reference = v_reference FOR UPDATE;
        IF NOT FOUND THEN
            status := 'not_found';
            captured := 0;
            available := NULL;
            RETURN (status, captured, available);
        END IF;
        -- Created by a concurrent hold between the two statements: take the fast path again.
        EXIT WHEN v_hold.status <> 'pending' OR v_amount > v_hold.amount;
    END LOOP;

    SELECT coalesce(max(a.available), 0) INTO available
    FROM ledger_account a WHERE a.account_id = v_hold.account_id;
    captured := 0;

    IF v_hold.status = 'pending' THEN
        status := 'conflict';                       -- more than the hold
        RETURN (status, captured, available);
    END IF;
    IF v_hold.status = 'captured' OR v_hold.late = 'late_charged' THEN
        v_take := CASE WHEN v_hold.status = 'captured' THEN v_hold.captured ELSE v_hold.late_amount END;
        IF v_amount IS NULL OR v_amount = v_take THEN
            status := 'duplicate';
            captured := v_take;
        ELSE
            status := 'conflict';
        END IF;
        RETURN (status, captured, available);
    END IF;

    -- Released or expired, maybe already unpaid: charge late, once.
    v_take := CASE WHEN v_hold.late = 'unpaid' THEN v_hold.late_amount
                   ELSE coalesce(v_amount, v_hold.amount) END;
    IF v_take > v_hold.amount OR (v_amount IS NOT NULL AND v_amount <> v_take) THEN
        status := 'conflict';
        RETURN (status, captured, available);
    END IF;
    WITH acct AS (
        UPDATE ledger_account a
        SET available = a.available - v_take, late_charged = a.late_charged + v_take,
            version = a.version + 1, updated_at = now()
        WHERE a.account_id = v_hold.account_id AND a.available >= v_take
        RETURNING a.available, a.held, a.version
    )
    INSERT INTO ledger_entry AS e (account_id, account_version, kind, amount, available_delta,
                                   held_delta, available_after, held_after, hold_id)
    SELECT v_hold.account_id, acct.version, 'late_charge', v_take, -v_take, 0, acct.available,
           acct.held, v_hold.hold_id
    FROM acct
    RETURNING e.available_after INTO available;
    IF FOUND THEN
        UPDATE ledger_hold h SET late = 'late_charged', late_amount = v_take, updated_at = now()
        WHERE h.hold_id = v_hold.hold_id;
        status := 'late_charged';
        captured := v_take;
        RETURN (status, captured, available);
    END IF;
    IF v_hold.late IS NULL THEN
        UPDATE ledger_hold h SET late = 'unpaid', late_amount = v_take, updated_at = now()
        WHERE h.hold_id = v_hold.hold_id;
    END IF;
    status := 'unpaid';
    SELECT coalesce(max(a.available), 0) INTO available
    FROM ledger_account a WHERE a.account_id = v_hold.account_id;
    RETURN (status, captured, available);
END;
$$;

-- ledger_release: give a pending hold's credits back to available.
-- Status: released | duplicate | already_captured | not_found (as in 0007).
CREATE FUNCTION ledger_release(reference text)
RETURNS ledger_release_result
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
SET lock_timeout = '5s'
AS $$
#variable_conflict use_column
DECLARE
    v_reference text := reference;
    v_hold record;
    status text;
    released bigint;
    available bigint;
BEGIN
    IF v_reference IS NULL OR btrim(v_reference) = '' OR length(v_reference) > 200 THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'ledger: reference must be 1..200 characters, not blank';
    END IF;

    LOOP
        -- Fast path, one statement, hold row locked before the account row (as in capture).
        WITH settle AS (
            UPDATE ledger_hold h
            SET status = 'released', released = h.amount, settled_at = now(), updated_at = now()
            WHERE h.reference = v_reference AND h.status = 'pending'
            RETURNING h.hold_id, h.account_id, h.amount
        ), acct AS (
            UPDATE ledger_account a
            SET held = a.held - s.amount, available = a.available + s.amount,
                version = a.version + 1, updated_at = now()
            FROM settle s
            WHERE a.account_id = s.account_id
            RETURNING a.account_id, a.available, a.held, a.version, s.hold_id, s.amount
        )
        INSERT INTO ledger_entry AS e (account_id, account_version, kind, amount, available_delta,
                                       held_delta, available_after, held_after, hold_id)
        SELECT acct.account_id, acct.version, 'release', acct.amount, acct.amount, -acct.amount,
               acct.available, acct.held, acct.hold_id
        FROM acct
        RETURNING e.amount, e.available_after INTO released, available;
        IF FOUND THEN
            status := 'released';
            RETURN (status, released, available);
        END IF;

        SELECT h.hold_id, h.account_id, h.status, h.released INTO v_hold
        FROM ledger_hold h WHERE h.reference = v_reference FOR UPDATE;
        IF NOT FOUND THEN
            status := 'not_found';
            released := 0;
            available := NULL;
            RETURN (status, released, available);
        END IF;
        EXIT WHEN v_hold.status <> 'pending';
    END LOOP;

    IF v_hold.status = 'captured' THEN
        status := 'already_captured';
        released := 0;
    ELSE
        status := 'duplicate';
        released := v_hold.released;
    END IF;
    SELECT coalesce(max(a.available), 0) INTO available
    FROM ledger_account a WHERE a.account_id = v_hold.account_id;
    RETURN (status, released, available);
END;
$$;

ALTER SEQUENCE ledger_hold_id_seq MAXVALUE 281474976710655;
ALTER TABLE ledger_hold ALTER COLUMN hold_id SET DEFAULT
    ('00000000-0000-8000-8000-' || lpad(to_hex(nextval('ledger_hold_id_seq')), 12, '0'))::uuid;

COMMENT ON FUNCTION ledger_hold(uuid, text, bigint, interval) IS
    'Reserve credits for a job reference: held | insufficient | duplicate | conflict.';
COMMENT ON FUNCTION ledger_capture(text, bigint) IS
    'Charge a hold (partly or fully): captured | duplicate | late_charged | unpaid | not_found | conflict.';
COMMENT ON FUNCTION ledger_release(text) IS
    'Return a pending hold''s credits: released | duplicate | already_captured | not_found.';

-- Owner-owned, EXECUTE for the runtime role only.
DO $$
DECLARE
    prefix text := current_setting('app.role_prefix');
    f regprocedure;
BEGIN
    FOREACH f IN ARRAY ARRAY[
        'ledger_hold(uuid, text, bigint, interval)',
        'ledger_capture(text, bigint)',
        'ledger_release(text)'
    ]::regprocedure[] LOOP
        EXECUTE format('ALTER FUNCTION %s OWNER TO %I', f, prefix || '_owner');
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %I', f, prefix || '_app');
    END LOOP;
END;
$$;
