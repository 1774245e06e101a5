-- Written by `make ledger-sql` from a freshly migrated database: today's definition, not a
-- migration. Change it with a new migration in ledger/migrations/sql/, then regenerate.

CREATE OR REPLACE FUNCTION public.ledger_clawback(account uuid, amount bigint, key text, source text, memo text DEFAULT ''::text, OUT status text, OUT taken bigint, OUT shortfall bigint)
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
    v_available bigint;
    v_take bigint;
    v_entry bigint;
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

    SELECT e.entry_id, e.kind, e.account_id, e.amount, e.available_delta INTO v_prior
    FROM ledger_entry e WHERE e.idempotency_key = v_key;
    IF NOT FOUND THEN
        -- Lock the account first: how much can be taken depends on its current balance.
        SELECT a.available INTO v_available
        FROM ledger_account a WHERE a.account_id = v_account FOR UPDATE;
        IF NOT FOUND THEN
            status := 'partial';
            taken := 0;
            shortfall := v_amount;
            RETURN;
        END IF;
        v_take := least(v_available, v_amount);
        WITH acct AS (
            UPDATE ledger_account a
            SET available = a.available - v_take, clawed_back = a.clawed_back + v_take,
                version = a.version + 1, updated_at = now()
            WHERE a.account_id = v_account
            RETURNING a.available, a.held, a.version
        )
        INSERT INTO ledger_entry AS e (account_id, account_version, kind, amount, available_delta,
                                       held_delta, available_after, held_after, idempotency_key,
                                       source, memo)
        SELECT v_account, acct.version, 'clawback', v_amount, -v_take, 0, acct.available,
               acct.held, v_key, v_source, v_memo
        FROM acct
        ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
        RETURNING e.entry_id INTO v_entry;
        IF FOUND THEN
            status := CASE WHEN v_take = v_amount THEN 'clawed_back' ELSE 'partial' END;
            taken := v_take;
            shortfall := v_amount - v_take;
            RETURN;
        END IF;
        -- Lost a READ COMMITTED race for the key: undo this statement's account change.
        UPDATE ledger_account a
        SET available = a.available + v_take, clawed_back = a.clawed_back - v_take,
            version = a.version - 1
        WHERE a.account_id = v_account;
        SELECT e.entry_id, e.kind, e.account_id, e.amount, e.available_delta INTO v_prior
        FROM ledger_entry e WHERE e.idempotency_key = v_key;
    END IF;

    IF v_prior.kind = 'clawback' AND v_prior.account_id = v_account AND v_prior.amount = v_amount THEN
        status := 'duplicate';
        taken := -v_prior.available_delta;
        shortfall := v_prior.amount + v_prior.available_delta;
    ELSE
        status := 'conflict';
        taken := 0;
        shortfall := 0;
    END IF;
END;
$function$;

COMMENT ON FUNCTION ledger_clawback(account uuid, amount bigint, key text, source text, memo text, OUT status text, OUT taken bigint, OUT shortfall bigint) IS 'Take back credits, never below zero: clawed_back | partial | duplicate | conflict.';
