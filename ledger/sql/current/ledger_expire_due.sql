-- Written by `make ledger-sql` from a freshly migrated database: today's definition, not a
-- migration. Change it with a new migration in ledger/migrations/sql/, then regenerate.

CREATE OR REPLACE FUNCTION public.ledger_expire_due(max_rows integer DEFAULT 1000)
 RETURNS integer
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'public', 'pg_temp'
 SET lock_timeout TO '5s'
AS $function$
#variable_conflict use_column
DECLARE
    v_max integer := max_rows;
    v_ids uuid[];
    v_accounts uuid[];
BEGIN
    IF v_max IS NULL OR v_max < 1 OR v_max > 10000 THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = format('ledger: max_rows must be 1..10000, got %s', v_max);
    END IF;

    SELECT array_agg(d.hold_id), array_agg(DISTINCT d.account_id) INTO v_ids, v_accounts
    FROM (SELECT h.hold_id, h.account_id FROM ledger_hold h
          WHERE h.status = 'pending' AND h.expires_at <= now()
          ORDER BY h.expires_at
          LIMIT v_max
          FOR UPDATE SKIP LOCKED) d;
    IF v_ids IS NULL THEN
        RETURN 0;
    END IF;

    -- Lock the accounts in account_id order so two sweepers never deadlock on each other.
    PERFORM 1 FROM ledger_account a WHERE a.account_id = ANY (v_accounts)
    ORDER BY a.account_id FOR UPDATE;

    -- One statement: mark the holds, journal each with running after-values per account, and
    -- move each account's total from held back to available.
    WITH expired AS (
        UPDATE ledger_hold h
        SET status = 'expired', released = h.amount, settled_at = now(), updated_at = now()
        WHERE h.hold_id = ANY (v_ids)
        RETURNING h.hold_id, h.account_id, h.amount
    ), steps AS (
        SELECT x.hold_id, x.account_id, x.amount,
               a.available + sum(x.amount) OVER w AS available_after,
               a.held - sum(x.amount) OVER w AS held_after,
               a.version + row_number() OVER w AS account_version
        FROM expired x JOIN ledger_account a ON a.account_id = x.account_id
        WINDOW w AS (PARTITION BY x.account_id ORDER BY x.hold_id
                     ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
    ), journal AS (
        INSERT INTO ledger_entry (account_id, account_version, kind, amount, available_delta,
                                  held_delta, available_after, held_after, hold_id)
        SELECT s.account_id, s.account_version, 'expire', s.amount, s.amount, -s.amount,
               s.available_after, s.held_after, s.hold_id
        FROM steps s
        ORDER BY s.account_id, s.account_version
    ), totals AS (
        SELECT s.account_id, sum(s.amount) AS total, count(*) AS n FROM steps s GROUP BY s.account_id
    )
    UPDATE ledger_account a
    SET available = a.available + t.total, held = a.held - t.total, version = a.version + t.n,
        updated_at = now()
    FROM totals t
    WHERE a.account_id = t.account_id;

    RETURN cardinality(v_ids);
END;
$function$;

COMMENT ON FUNCTION ledger_expire_due(max_rows integer) IS 'Expire due pending holds (SKIP LOCKED); returns how many.';
