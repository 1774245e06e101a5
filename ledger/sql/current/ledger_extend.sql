-- Written by `make ledger-sql` from a freshly migrated database: today's definition, not a
-- migration. Change it with a new migration in ledger/migrations/sql/, then regenerate.

CREATE OR REPLACE FUNCTION public.ledger_extend(reference text, ttl interval, OUT status text, OUT expires_at timestamp with time zone)
 RETURNS record
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'public', 'pg_temp'
 SET lock_timeout TO '5s'
AS $function$
#variable_conflict use_column
DECLARE
    v_reference text := reference;
    v_ttl interval := ttl;
    v_status text;
BEGIN
    IF v_reference IS NULL OR btrim(v_reference) = '' OR length(v_reference) > 200 THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'ledger: reference must be 1..200 characters, not blank';
    END IF;
    IF v_ttl IS NULL OR v_ttl < interval '1 second' OR v_ttl > interval '30 days' THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = format('ledger: ttl must be 1 second..30 days, got %s', v_ttl);
    END IF;

    LOOP
        UPDATE ledger_hold h
        SET expires_at = greatest(h.expires_at, now() + v_ttl), updated_at = now()
        WHERE h.reference = v_reference AND h.status = 'pending'
        RETURNING h.expires_at INTO expires_at;
        IF FOUND THEN
            status := 'extended';
            RETURN;
        END IF;
        SELECT h.status INTO v_status
        FROM ledger_hold h WHERE h.reference = v_reference FOR UPDATE;
        IF NOT FOUND THEN
            status := 'not_found';
            expires_at := NULL;
            RETURN;
        END IF;
        EXIT WHEN v_status <> 'pending';
    END LOOP;
    status := 'not_pending';
    expires_at := NULL;
END;
$function$;

COMMENT ON FUNCTION ledger_extend(reference text, ttl interval, OUT status text, OUT expires_at timestamp with time zone) IS 'Keep a pending hold alive: extended | not_pending | not_found.';
