-- Written by `make ledger-sql` from a freshly migrated database: today's definition, not a
-- migration. Change it with a new migration in ledger/migrations/sql/, then regenerate.

CREATE OR REPLACE FUNCTION public.ledger_hold(account uuid, reference text, amount bigint, ttl interval)
 RETURNS ledger_hold_result
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'public', 'pg_temp'
 SET lock_timeout TO '5s'
AS $function$
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
$function$;

COMMENT ON FUNCTION ledger_hold(account uuid, reference text, amount bigint, ttl interval) IS 'Reserve credits for a job reference: held | insufficient | duplicate | conflict.';
