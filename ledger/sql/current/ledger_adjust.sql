-- Written by `make ledger-sql` from a freshly migrated database: today's definition, not a
-- migration. Change it with a new migration in ledger/migrations/sql/, then regenerate.

CREATE OR REPLACE FUNCTION public.ledger_adjust(account uuid, delta bigint, key text, actor text, reason text, OUT status text, OUT entry_id bigint, OUT available bigint)
 RETURNS record
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'public', 'pg_temp'
 SET lock_timeout TO '5s'
AS $function$
#variable_conflict use_column
DECLARE
    v_account uuid := account;
    v_delta bigint := delta;
    v_key text := key;
    v_actor text := actor;
    v_reason text := reason;
    v_prior record;
    v_moved boolean;
BEGIN
    IF v_account IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'ledger: account is required';
    END IF;
    IF v_delta IS NULL OR v_delta = 0 OR abs(v_delta) > 1000000000000 THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = format('ledger: delta must be non-zero and at most 1000000000000 in size, got %s', v_delta);
    END IF;
    IF v_key IS NULL OR btrim(v_key) = '' OR length(v_key) > 200 THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'ledger: key must be 1..200 characters, not blank';
    END IF;
    IF v_actor IS NULL OR btrim(v_actor) = '' OR length(v_actor) > 200 THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'ledger: actor must be 1..200 characters, not blank';
    END IF;
    IF v_reason IS NULL OR btrim(v_reason) = '' OR length(v_reason) > 1000 THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'ledger: reason must be 1..1000 characters, not blank';
    END IF;

    SELECT e.entry_id, e.kind, e.account_id, e.available_delta INTO v_prior
    FROM ledger_entry e WHERE e.idempotency_key = v_key;
    IF NOT FOUND THEN
        IF v_delta > 0 THEN
            WITH acct AS (
                INSERT INTO ledger_account AS a (account_id, available, adjusted, version)
                VALUES (v_account, v_delta, v_delta, 1)
                ON CONFLICT (account_id) DO UPDATE
                    SET available = a.available + excluded.available,
                        adjusted = a.adjusted + excluded.adjusted,
                        version = a.version + 1, updated_at = now()
                RETURNING a.available, a.held, a.version
            ), journal AS (
                INSERT INTO ledger_entry AS e (account_id, account_version, kind, amount,
                                               available_delta, held_delta, available_after,
                                               held_after, idempotency_key, source, memo)
                SELECT v_account, acct.version, 'adjust', v_delta, v_delta, 0, acct.available,
                       acct.held, v_key, v_actor, v_reason
                FROM acct
                ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
                RETURNING e.entry_id, e.available_after
            )
            SELECT (SELECT count(*) FROM acct) > 0, j.entry_id, j.available_after
            INTO v_moved, entry_id, available
            FROM (SELECT 1) one LEFT JOIN journal j ON true;
        ELSE
            WITH acct AS (
                UPDATE ledger_account a
                SET available = a.available + v_delta, adjusted = a.adjusted + v_delta,
                    version = a.version + 1, updated_at = now()
                WHERE a.account_id = v_account AND a.available >= -v_delta
                RETURNING a.available, a.held, a.version
            ), journal AS (
                INSERT INTO ledger_entry AS e (account_id, account_version, kind, amount,
                                               available_delta, held_delta, available_after,
                                               held_after, idempotency_key, source, memo)
                SELECT v_account, acct.version, 'adjust', -v_delta, v_delta, 0, acct.available,
                       acct.held, v_key, v_actor, v_reason
                FROM acct
                ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
                RETURNING e.entry_id, e.available_after
            )
            SELECT (SELECT count(*) FROM acct) > 0, j.entry_id, j.available_after
            INTO v_moved, entry_id, available
            FROM (SELECT 1) one LEFT JOIN journal j ON true;
        END IF;
        IF entry_id IS NOT NULL THEN
            status := 'adjusted';
            RETURN;
        END IF;
        IF v_moved THEN
            -- Lost a READ COMMITTED race for the key: undo this statement's account change.
            UPDATE ledger_account a
            SET available = a.available - v_delta, adjusted = a.adjusted - v_delta,
                version = a.version - 1
            WHERE a.account_id = v_account;
        END IF;
        SELECT e.entry_id, e.kind, e.account_id, e.available_delta INTO v_prior
        FROM ledger_entry e WHERE e.idempotency_key = v_key;
        IF NOT FOUND THEN
            status := 'insufficient';
            SELECT coalesce(max(a.available), 0) INTO available
            FROM ledger_account a WHERE a.account_id = v_account;
            RETURN;
        END IF;
    END IF;

    IF v_prior.kind = 'adjust' AND v_prior.account_id = v_account AND v_prior.available_delta = v_delta THEN
        status := 'duplicate';
        entry_id := v_prior.entry_id;
    ELSE
        status := 'conflict';
        entry_id := NULL;
    END IF;
    SELECT coalesce(max(a.available), 0) INTO available
    FROM ledger_account a WHERE a.account_id = v_account;
END;
$function$;

COMMENT ON FUNCTION ledger_adjust(account uuid, delta bigint, key text, actor text, reason text, OUT status text, OUT entry_id bigint, OUT available bigint) IS 'Admin correction with actor and reason: adjusted | insufficient | duplicate | conflict.';
