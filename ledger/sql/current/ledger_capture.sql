-- Written by `make ledger-sql` from a freshly migrated database: today's definition, not a
-- migration. Change it with a new migration in ledger/migrations/sql/, then regenerate.

CREATE OR REPLACE FUNCTION public.ledger_capture(reference text, amount bigint DEFAULT NULL::bigint)
 RETURNS ledger_capture_result
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'public', 'pg_temp'
 SET lock_timeout TO '5s'
AS $function$
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
$function$;

COMMENT ON FUNCTION ledger_capture(reference text, amount bigint) IS 'Charge a hold (partly or fully): captured | duplicate | late_charged | unpaid | not_found | conflict.';
