-- Written by `make ledger-sql` from a freshly migrated database: today's definition, not a
-- migration. Change it with a new migration in ledger/migrations/sql/, then regenerate.

CREATE OR REPLACE FUNCTION public.ledger_grant(account uuid, amount bigint, key text, source text, memo text DEFAULT ''::text, OUT status text, OUT entry_id bigint, OUT available bigint)
 RETURNS record
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'public', 'pg_temp'
 SET lock_timeout TO '5s'
AS $function$
#variable_conflict use_column
DECLARE
    v_account uuid := account;
    v_amount bigint := amount;
    v_key text := key;
    v_source text := source;
    v_memo text := coalesce(memo, '');
    v_prior record;
BEGIN
    IF v_account IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'ledger: account is required';
    END IF;
    IF v_amount IS NULL OR v_amount < 1 OR v_amount > 1000000000000 THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = format('ledger: amount must be 1..1000000000000, got %s', v_amount);
    END IF;
    IF v_key IS NULL OR btrim(v_key) = '' OR length(v_key) > 200 THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'ledger: key must be 1..200 characters, not blank';
    END IF;
    IF v_source IS NULL OR btrim(v_source) = '' OR length(v_source) > 200 THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'ledger: source must be 1..200 characters, not blank';
    END IF;
    IF length(v_memo) > 1000 THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'ledger: memo must be at most 1000 characters';
    END IF;

    -- A retry of a committed grant is answered from the journal without touching the account.
    SELECT e.entry_id, e.kind, e.account_id, e.amount INTO v_prior
    FROM ledger_entry e WHERE e.idempotency_key = v_key;
    IF NOT FOUND THEN
        WITH acct AS (
            INSERT INTO ledger_account AS a (account_id, available, granted, version)
            VALUES (v_account, v_amount, v_amount, 1)
            ON CONFLICT (account_id) DO UPDATE
                SET available = a.available + excluded.available,
                    granted = a.granted + excluded.granted,
                    version = a.version + 1,
                    updated_at = now()
            RETURNING a.available, a.held, a.version
        )
        INSERT INTO ledger_entry AS e (account_id, account_version, kind, amount, available_delta,
                                       held_delta, available_after, held_after, idempotency_key,
                                       source, memo)
        SELECT v_account, acct.version, 'grant', v_amount, v_amount, 0, acct.available, acct.held,
               v_key, v_source, v_memo
        FROM acct
        ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
        RETURNING e.entry_id, e.available_after INTO entry_id, available;
        IF FOUND THEN
            status := 'granted';
            RETURN;
        END IF;
        -- A concurrent call committed the same key between the lookup and the insert (only
        -- possible under READ COMMITTED; other levels raise 40001 at the insert): undo the
        -- account change of this statement and answer from the committed entry.
        UPDATE ledger_account a
        SET available = a.available - v_amount, granted = a.granted - v_amount,
            version = a.version - 1
        WHERE a.account_id = v_account;
        SELECT e.entry_id, e.kind, e.account_id, e.amount INTO v_prior
        FROM ledger_entry e WHERE e.idempotency_key = v_key;
    END IF;

    IF v_prior.kind = 'grant' AND v_prior.account_id = v_account AND v_prior.amount = v_amount THEN
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

COMMENT ON FUNCTION ledger_grant(account uuid, amount bigint, key text, source text, memo text, OUT status text, OUT entry_id bigint, OUT available bigint) IS 'Add credits, keyed globally: granted | duplicate | conflict.';
