-- Written by `make ledger-sql` from a freshly migrated database: today's definition, not a
-- migration. Change it with a new migration in ledger/migrations/sql/, then regenerate.

CREATE OR REPLACE FUNCTION public.ledger_release(reference text)
 RETURNS ledger_release_result
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'public', 'pg_temp'
 SET lock_timeout TO '5s'
AS $function$
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
$function$;

COMMENT ON FUNCTION ledger_release(reference text) IS 'Return a pending hold''s credits: released | duplicate | already_captured | not_found.';
