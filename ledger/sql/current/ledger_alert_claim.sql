-- Written by `make ledger-sql` from a freshly migrated database: today's definition, not a
-- migration. Change it with a new migration in ledger/migrations/sql/, then regenerate.

CREATE OR REPLACE FUNCTION public.ledger_alert_claim(account uuid, threshold bigint, OUT status text, OUT available bigint)
 RETURNS record
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'public', 'pg_temp'
 SET lock_timeout TO '5s'
AS $function$
#variable_conflict use_column
DECLARE
    v_account uuid := account;
    v_threshold bigint := threshold;
BEGIN
    IF v_account IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'ledger: account is required';
    END IF;
    IF v_threshold IS NULL OR v_threshold < 1 OR v_threshold > 1000000000000 THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = format('ledger: threshold must be 1..1000000000000, got %s', v_threshold);
    END IF;

    SELECT coalesce(max(a.available), 0) INTO available
    FROM ledger_account a WHERE a.account_id = v_account;
    IF available < v_threshold THEN
        INSERT INTO ledger_alert_state AS s (account_id, threshold, state, fired_at)
        VALUES (v_account, v_threshold, 'fired', now())
        ON CONFLICT (account_id, threshold) DO UPDATE
            SET state = 'fired', fired_at = now(), updated_at = now()
            WHERE s.state = 'armed';
        status := CASE WHEN FOUND THEN 'fire' ELSE 'fired' END;
    ELSE
        UPDATE ledger_alert_state s
        SET state = 'armed', rearmed_at = now(), updated_at = now()
        WHERE s.account_id = v_account AND s.threshold = v_threshold AND s.state = 'fired';
        status := 'armed';
    END IF;
END;
$function$;

COMMENT ON FUNCTION ledger_alert_claim(account uuid, threshold bigint, OUT status text, OUT available bigint) IS 'Low-balance notice once per descent: fire | fired | armed.';
