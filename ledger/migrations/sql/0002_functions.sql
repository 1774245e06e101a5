-- Ledger functions: the only way credits move.
--
-- Every function here returns one row with a status word (ledger_expire_due returns a count,
-- ledger_check/ledger_audit return violation rows) and follows the same rules:
--   * SECURITY DEFINER and owned by the owner role, so the runtime role needs EXECUTE only and
--     no write privilege on any ledger table (0003 revokes them).
--   * SET search_path = pg_catalog, public, pg_temp: pg_temp last, so a caller's temporary table
--     named like a ledger table can never shadow the real one (the hole measured in the
--     reference implementation, which left pg_temp out and so searched it first).
--   * SET lock_timeout: a call never queues forever behind a stuck lock; the caller sees
--     lock_not_available (55P03) and retries with the same arguments.
--   * Bad input (NULL, zero, negative or absurd amounts, blank or overlong keys, references,
--     sources, reasons, non-positive or absurd TTLs) raises invalid_parameter_value (22023)
--     before anything is written.
--   * No EXCEPTION blocks: idempotency uses INSERT ... ON CONFLICT DO NOTHING and FOUND.
--   * Lock order is always hold row, then account row(s) in account_id order; the balance
--     UPDATE is the last statement and feeds the journal INSERT in the same statement.
--   * Every settlement takes the hold row's lock with a guarded UPDATE or SELECT ... FOR UPDATE
--     before deciding anything, and every balance change UPDATEs the account row. Under READ
--     COMMITTED the second caller waits and re-reads the committed row; under REPEATABLE READ or
--     SERIALIZABLE it gets serialization_failure (40001) instead of acting on a stale snapshot,
--     so no interleaving can settle a hold twice.
--   * Parameters are copied into v_ variables first so SQL never confuses them with columns.
-- Limits: one amount <= 1e12 credits; keys/references 1..200 characters; TTL 1 second..30 days.

-- ledger_grant: add credits to an account (creating it), keyed globally.
-- Status: granted | duplicate (same key, account and amount: the first entry's id and the
-- current balance) | conflict (key used for another account, amount or kind; nothing written).
CREATE FUNCTION ledger_grant(account uuid, amount bigint, key text, source text, memo text DEFAULT '',
                             OUT status text, OUT entry_id bigint, OUT available bigint)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
SET lock_timeout = '5s'
AS $$
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
$$;

-- ledger_hold: reserve credits of an account for the job named by reference.
-- Status: held | insufficient (nothing written, so a later retry is a new attempt) |
-- duplicate (the reference exists for this account and amount: that hold's id, whatever its
-- status now; never a second deduction) | conflict (reference used by another account or with
-- another amount; no hold id). expires_at = now() + ttl on the database clock.
CREATE FUNCTION ledger_hold(account uuid, reference text, amount bigint, ttl interval,
                            OUT status text, OUT hold_id uuid, OUT available bigint)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
SET lock_timeout = '5s'
AS $$
#variable_conflict use_column
DECLARE
    v_account uuid := account;
    v_reference text := reference;
    v_amount bigint := amount;
    v_ttl interval := ttl;
    v_hold_id uuid;
    v_prior record;
BEGIN
    IF v_account IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'ledger: account is required';
    END IF;
    IF v_reference IS NULL OR btrim(v_reference) = '' OR length(v_reference) > 200 THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'ledger: reference must be 1..200 characters, not blank';
    END IF;
    IF v_amount IS NULL OR v_amount < 1 OR v_amount > 1000000000000 THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = format('ledger: amount must be 1..1000000000000, got %s', v_amount);
    END IF;
    IF v_ttl IS NULL OR v_ttl < interval '1 second' OR v_ttl > interval '30 days' THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = format('ledger: ttl must be 1 second..30 days, got %s', v_ttl);
    END IF;

    -- Claim the reference first: a concurrent hold of the same reference waits here on the
    -- unique index, before either touches the (possibly hot) account row.
    INSERT INTO ledger_hold AS h (reference, account_id, amount, expires_at)
    VALUES (v_reference, v_account, v_amount, now() + v_ttl)
    ON CONFLICT (reference) DO NOTHING
    RETURNING h.hold_id INTO v_hold_id;
    IF NOT FOUND THEN
        SELECT h.hold_id, h.account_id, h.amount INTO v_prior
        FROM ledger_hold h WHERE h.reference = v_reference;
        IF v_prior.account_id = v_account AND v_prior.amount = v_amount THEN
            status := 'duplicate';
            hold_id := v_prior.hold_id;
        ELSE
            status := 'conflict';
            hold_id := NULL;
        END IF;
        SELECT coalesce(max(a.available), 0) INTO available
        FROM ledger_account a WHERE a.account_id = v_account;
        RETURN;
    END IF;

    -- The guarded balance UPDATE is the last statement; the row lock it takes is held only
    -- for the journal insert and the commit.
    WITH acct AS (
        UPDATE ledger_account a
        SET available = a.available - v_amount, held = a.held + v_amount,
            version = a.version + 1, updated_at = now()
        WHERE a.account_id = v_account AND a.available >= v_amount
        RETURNING a.available, a.held, a.version
    )
    INSERT INTO ledger_entry AS e (account_id, account_version, kind, amount, available_delta,
                                   held_delta, available_after, held_after, hold_id)
    SELECT v_account, acct.version, 'hold', v_amount, -v_amount, v_amount, acct.available,
           acct.held, v_hold_id
    FROM acct
    RETURNING e.available_after INTO available;
    IF FOUND THEN
        status := 'held';
        hold_id := v_hold_id;
        RETURN;
    END IF;

    -- Not enough credits (or no account): take the claimed reference back, write nothing.
    DELETE FROM ledger_hold h WHERE h.hold_id = v_hold_id;
    status := 'insufficient';
    hold_id := NULL;
    SELECT coalesce(max(a.available), 0) INTO available
    FROM ledger_account a WHERE a.account_id = v_account;
END;
$$;

-- ledger_capture: charge a hold, fully (amount NULL) or partly (the rest goes back to available).
-- Status: captured | duplicate (already captured or late-charged with this amount; captured =
-- the amount charged then) | late_charged (the hold was released or expired: a one-time debit of
-- available) | unpaid (the same, but available does not cover it: recorded on the hold, nothing
-- debited; a later capture tries again) | not_found | conflict (amount above the hold, or not the
-- amount of the earlier capture; nothing written).
CREATE FUNCTION ledger_capture(reference text, amount bigint DEFAULT NULL,
                               OUT status text, OUT captured bigint, OUT available bigint)
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
BEGIN
    IF v_reference IS NULL OR btrim(v_reference) = '' OR length(v_reference) > 200 THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'ledger: reference must be 1..200 characters, not blank';
    END IF;
    IF v_amount IS NOT NULL AND (v_amount < 1 OR v_amount > 1000000000000) THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = format('ledger: amount must be NULL or 1..1000000000000, got %s', v_amount);
    END IF;

    LOOP
        -- Fast path: one guarded UPDATE settles a pending hold and locks it against release,
        -- extend and the sweeper.
        UPDATE ledger_hold h
        SET status = 'captured', captured = coalesce(v_amount, h.amount),
            released = h.amount - coalesce(v_amount, h.amount),
            settled_at = now(), updated_at = now()
        WHERE h.reference = v_reference AND h.status = 'pending'
          AND h.amount >= coalesce(v_amount, h.amount)
        RETURNING h.hold_id, h.account_id, h.amount, h.captured INTO v_hold;
        IF FOUND THEN
            WITH acct AS (
                UPDATE ledger_account a
                SET held = a.held - v_hold.amount,
                    available = a.available + (v_hold.amount - v_hold.captured),
                    captured = a.captured + v_hold.captured,
                    version = a.version + 1, updated_at = now()
                WHERE a.account_id = v_hold.account_id
                RETURNING a.available, a.held, a.version
            )
            INSERT INTO ledger_entry AS e (account_id, account_version, kind, amount, available_delta,
                                           held_delta, available_after, held_after, hold_id)
            SELECT v_hold.account_id, acct.version, 'capture', v_hold.captured,
                   v_hold.amount - v_hold.captured, -v_hold.amount, acct.available, acct.held,
                   v_hold.hold_id
            FROM acct
            RETURNING e.available_after INTO available;
            status := 'captured';
            captured := v_hold.captured;
            RETURN;
        END IF;

        -- Not a pending hold that fits: lock whatever is there and decide.
        SELECT h.hold_id, h.account_id, h.amount, h.captured, h.status, h.late, h.late_amount
        INTO v_hold
        FROM ledger_hold h WHERE h.reference = v_reference FOR UPDATE;
        IF NOT FOUND THEN
            status := 'not_found';
            captured := 0;
            available := NULL;
            RETURN;
        END IF;
        -- Created by a concurrent hold between the two statements: take the fast path again.
        EXIT WHEN v_hold.status <> 'pending' OR v_amount > v_hold.amount;
    END LOOP;

    SELECT coalesce(max(a.available), 0) INTO available
    FROM ledger_account a WHERE a.account_id = v_hold.account_id;
    captured := 0;

    IF v_hold.status = 'pending' THEN
        status := 'conflict';                       -- more than the hold
        RETURN;
    END IF;
    IF v_hold.status = 'captured' OR v_hold.late = 'late_charged' THEN
        v_take := CASE WHEN v_hold.status = 'captured' THEN v_hold.captured ELSE v_hold.late_amount END;
        IF v_amount IS NULL OR v_amount = v_take THEN
            status := 'duplicate';
            captured := v_take;
        ELSE
            status := 'conflict';
        END IF;
        RETURN;
    END IF;

    -- Released or expired, maybe already unpaid: charge late, once.
    v_take := CASE WHEN v_hold.late = 'unpaid' THEN v_hold.late_amount
                   ELSE coalesce(v_amount, v_hold.amount) END;
    IF v_take > v_hold.amount OR (v_amount IS NOT NULL AND v_amount <> v_take) THEN
        status := 'conflict';
        RETURN;
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
        RETURN;
    END IF;
    IF v_hold.late IS NULL THEN
        UPDATE ledger_hold h SET late = 'unpaid', late_amount = v_take, updated_at = now()
        WHERE h.hold_id = v_hold.hold_id;
    END IF;
    status := 'unpaid';
    SELECT coalesce(max(a.available), 0) INTO available
    FROM ledger_account a WHERE a.account_id = v_hold.account_id;
END;
$$;

-- ledger_release: give a pending hold's credits back to available.
-- Status: released | duplicate (already released or expired; released = what came back then) |
-- already_captured (nothing changes) | not_found.
CREATE FUNCTION ledger_release(reference text,
                               OUT status text, OUT released bigint, OUT available bigint)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
SET lock_timeout = '5s'
AS $$
#variable_conflict use_column
DECLARE
    v_reference text := reference;
    v_hold record;
BEGIN
    IF v_reference IS NULL OR btrim(v_reference) = '' OR length(v_reference) > 200 THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'ledger: reference must be 1..200 characters, not blank';
    END IF;

    LOOP
        UPDATE ledger_hold h
        SET status = 'released', released = h.amount, settled_at = now(), updated_at = now()
        WHERE h.reference = v_reference AND h.status = 'pending'
        RETURNING h.hold_id, h.account_id, h.amount INTO v_hold;
        IF FOUND THEN
            WITH acct AS (
                UPDATE ledger_account a
                SET held = a.held - v_hold.amount, available = a.available + v_hold.amount,
                    version = a.version + 1, updated_at = now()
                WHERE a.account_id = v_hold.account_id
                RETURNING a.available, a.held, a.version
            )
            INSERT INTO ledger_entry AS e (account_id, account_version, kind, amount, available_delta,
                                           held_delta, available_after, held_after, hold_id)
            SELECT v_hold.account_id, acct.version, 'release', v_hold.amount, v_hold.amount,
                   -v_hold.amount, acct.available, acct.held, v_hold.hold_id
            FROM acct
            RETURNING e.available_after INTO available;
            status := 'released';
            released := v_hold.amount;
            RETURN;
        END IF;

        SELECT h.hold_id, h.account_id, h.status, h.released INTO v_hold
        FROM ledger_hold h WHERE h.reference = v_reference FOR UPDATE;
        IF NOT FOUND THEN
            status := 'not_found';
            released := 0;
            available := NULL;
            RETURN;
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
END;
$$;

-- ledger_extend: keep a pending hold alive until at least now() + ttl (never shortens it).
-- Status: extended | not_pending | not_found. Moves no credits, writes no journal entry.
CREATE FUNCTION ledger_extend(reference text, ttl interval,
                              OUT status text, OUT expires_at timestamptz)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
SET lock_timeout = '5s'
AS $$
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
$$;

-- ledger_expire_due: expire up to max_rows pending holds whose expires_at has passed, oldest
-- first, returning how many it expired. Holds locked by a concurrent capture/release/extend are
-- skipped (FOR UPDATE SKIP LOCKED) and left to that caller or the next sweep. Reads the partial
-- index on pending holds, so its cost follows the number of due holds, not the table size.
CREATE FUNCTION ledger_expire_due(max_rows integer DEFAULT 1000)
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
SET lock_timeout = '5s'
AS $$
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
$$;

-- ledger_adjust: an admin correction of available by a signed delta, with the acting admin and
-- a required reason, keyed globally.
-- Status: adjusted | insufficient (a debit larger than available, or no account; nothing
-- written) | duplicate (same key, account and delta) | conflict.
CREATE FUNCTION ledger_adjust(account uuid, delta bigint, key text, actor text, reason text,
                              OUT status text, OUT entry_id bigint, OUT available bigint)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
SET lock_timeout = '5s'
AS $$
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
$$;

-- ledger_clawback: take back up to amount credits from available (a refund or dispute of a
-- purchase), keyed globally. Never drives a balance negative and never touches held credits
-- (they belong to running jobs): what cannot be taken is the shortfall, recorded on the entry
-- (amount - taken) for review.
-- Status: clawed_back (all of it) | partial (taken < amount, including an account that does not
-- exist: nothing written then) | duplicate (same key, account and amount: the first result) |
-- conflict.
CREATE FUNCTION ledger_clawback(account uuid, amount bigint, key text, source text, memo text DEFAULT '',
                                OUT status text, OUT taken bigint, OUT shortfall bigint)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
SET lock_timeout = '5s'
AS $$
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
$$;

-- ledger_check: the invariants that can be verified without reading the journal; no rows when
-- healthy. Cost follows the number of accounts (two index probes each) and of pending holds,
-- never the journal size, so it can run every few minutes forever. Each query reads one
-- snapshot, so concurrent calls never show a half-applied operation. Invariants:
--   account_matches_latest_entry  available/held/version equal the newest entry's after-values
--   latest_entry_chains           the newest entry = the previous one's after-values + its deltas
--   held_matches_pending_holds    held equals the sum of the account's pending holds
--   account_conserved             granted + adjusted - clawed_back = available + held + captured + late_charged
--   non_negative                  no negative balance
--   global_conservation           the same identity summed over all accounts
-- SECURITY DEFINER so it reads every row through the owner's policy.
CREATE FUNCTION ledger_check()
RETURNS TABLE (invariant text, detail text)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH state AS (
        SELECT a.account_id, a.available, a.held, a.version,
               a.granted, a.adjusted, a.clawed_back, a.captured, a.late_charged,
               last.entry_id AS last_id, last.account_version AS last_version,
               last.available_after AS last_available, last.held_after AS last_held,
               last.available_delta AS last_available_delta, last.held_delta AS last_held_delta,
               prev.entry_id AS prev_id, prev.available_after AS prev_available,
               prev.held_after AS prev_held
        FROM ledger_account a
        LEFT JOIN LATERAL (
            SELECT e.entry_id, e.account_version, e.available_after, e.held_after,
                   e.available_delta, e.held_delta
            FROM ledger_entry e WHERE e.account_id = a.account_id
            ORDER BY e.account_version DESC LIMIT 1
        ) last ON true
        LEFT JOIN LATERAL (
            SELECT e.entry_id, e.available_after, e.held_after
            FROM ledger_entry e
            WHERE e.account_id = a.account_id AND e.account_version = last.account_version - 1
        ) prev ON true
    )
    SELECT 'account_matches_latest_entry'::text,
           format('account %s: available=%s held=%s version=%s; latest entry %s: version=%s available_after=%s held_after=%s',
                  s.account_id, s.available, s.held, s.version, coalesce(s.last_id::text, 'none'),
                  s.last_version, s.last_available, s.last_held)
    FROM state s
    WHERE (s.last_id IS NULL AND (s.version, s.available, s.held) <> (0, 0, 0))
       OR (s.last_id IS NOT NULL
           AND (s.last_version, s.last_available, s.last_held) <> (s.version, s.available, s.held))
    UNION ALL
    SELECT 'latest_entry_chains',
           format('account %s: entry %s (version %s) does not follow entry %s: %s + (%s), %s + (%s) gives %s, %s',
                  s.account_id, s.last_id, s.last_version, coalesce(s.prev_id::text, 'none'),
                  coalesce(s.prev_available, 0), s.last_available_delta, coalesce(s.prev_held, 0),
                  s.last_held_delta, s.last_available, s.last_held)
    FROM state s
    WHERE s.last_id IS NOT NULL
      AND ((s.last_version > 1 AND s.prev_id IS NULL)
           OR coalesce(s.prev_available, 0) + s.last_available_delta <> s.last_available
           OR coalesce(s.prev_held, 0) + s.last_held_delta <> s.last_held)
    UNION ALL
    SELECT 'account_conserved',
           format('account %s: granted %s + adjusted %s - clawed_back %s <> available %s + held %s + captured %s + late_charged %s',
                  s.account_id, s.granted, s.adjusted, s.clawed_back, s.available, s.held,
                  s.captured, s.late_charged)
    FROM state s
    WHERE s.granted + s.adjusted - s.clawed_back <> s.available + s.held + s.captured + s.late_charged
    UNION ALL
    SELECT 'non_negative',
           format('account %s: available=%s held=%s', s.account_id, s.available, s.held)
    FROM state s
    WHERE s.available < 0 OR s.held < 0;

    RETURN QUERY
    SELECT 'held_matches_pending_holds'::text,
           format('account %s: held=%s, pending holds sum to %s',
                  coalesce(a.account_id, p.account_id), coalesce(a.held, 0), coalesce(p.pending, 0))
    FROM (SELECT h.account_id, sum(h.amount) AS pending
          FROM ledger_hold h WHERE h.status = 'pending' GROUP BY h.account_id) p
    FULL JOIN (SELECT a.account_id, a.held FROM ledger_account a WHERE a.held <> 0) a
           ON a.account_id = p.account_id
    WHERE coalesce(a.held, 0) <> coalesce(p.pending, 0);

    RETURN QUERY
    SELECT 'global_conservation'::text,
           format('granted %s + adjusted %s - clawed_back %s <> available %s + held %s + captured %s + late_charged %s',
                  t.granted, t.adjusted, t.clawed_back, t.available, t.held, t.captured, t.late_charged)
    FROM (SELECT coalesce(sum(a.granted), 0) AS granted, coalesce(sum(a.adjusted), 0) AS adjusted,
                 coalesce(sum(a.clawed_back), 0) AS clawed_back,
                 coalesce(sum(a.available), 0) AS available, coalesce(sum(a.held), 0) AS held,
                 coalesce(sum(a.captured), 0) AS captured,
                 coalesce(sum(a.late_charged), 0) AS late_charged
          FROM ledger_account a) t
    WHERE t.granted + t.adjusted - t.clawed_back <> t.available + t.held + t.captured + t.late_charged;
END;
$$;

-- ledger_audit: the full fold of the journal against accounts and holds; no rows when healthy.
-- Reads every entry, so it runs nightly and on demand, never on a request path. Invariants:
--   account_fold         available/held/version and the running totals equal the fold of the
--                        account's entries
--   entry_chain          versions run 1, 2, 3, ... and each entry's after-values are the
--                        previous entry's plus its deltas
--   hold_entries         each hold has exactly one hold entry of its amount and account, the one
--                        settlement entry its status implies (capture of `captured` with the rest
--                        released, release or expire of the amount), and a late_charge entry iff
--                        late = 'late_charged'
--   orphan_entry         hold entries whose hold does not exist
--   held_matches_pending_holds, global_conservation (from the journal and the holds)
--   key_once             every idempotency key at most once
-- SECURITY DEFINER so it reads every row through the owner's policy.
CREATE FUNCTION ledger_audit()
RETURNS TABLE (invariant text, detail text)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH fold AS (
        SELECT e.account_id,
               sum(e.available_delta) AS available, sum(e.held_delta) AS held, count(*) AS version,
               coalesce(sum(e.amount) FILTER (WHERE e.kind = 'grant'), 0) AS granted,
               coalesce(sum(e.available_delta) FILTER (WHERE e.kind = 'adjust'), 0) AS adjusted,
               coalesce(-sum(e.available_delta) FILTER (WHERE e.kind = 'clawback'), 0) AS clawed_back,
               coalesce(sum(e.amount) FILTER (WHERE e.kind = 'capture'), 0) AS captured,
               coalesce(sum(e.amount) FILTER (WHERE e.kind = 'late_charge'), 0) AS late_charged
        FROM ledger_entry e GROUP BY e.account_id
    )
    SELECT 'account_fold'::text,
           format('account %s: cached (available %s, held %s, version %s, granted %s, adjusted %s, clawed_back %s, captured %s, late_charged %s) <> journal (%s, %s, %s, %s, %s, %s, %s, %s)',
                  coalesce(a.account_id, f.account_id),
                  a.available, a.held, a.version, a.granted, a.adjusted, a.clawed_back, a.captured, a.late_charged,
                  coalesce(f.available, 0), coalesce(f.held, 0), coalesce(f.version, 0),
                  coalesce(f.granted, 0), coalesce(f.adjusted, 0), coalesce(f.clawed_back, 0),
                  coalesce(f.captured, 0), coalesce(f.late_charged, 0))
    FROM ledger_account a FULL JOIN fold f ON f.account_id = a.account_id
    WHERE a.account_id IS NULL
       OR (a.available, a.held, a.version, a.granted, a.adjusted, a.clawed_back, a.captured, a.late_charged)
          IS DISTINCT FROM
          (coalesce(f.available, 0), coalesce(f.held, 0), coalesce(f.version, 0), coalesce(f.granted, 0),
           coalesce(f.adjusted, 0), coalesce(f.clawed_back, 0), coalesce(f.captured, 0),
           coalesce(f.late_charged, 0));

    RETURN QUERY
    SELECT 'entry_chain'::text,
           format('account %s: entry %s (version %s, after %s/%s) does not follow version %s (after %s/%s) with deltas %s/%s',
                  c.account_id, c.entry_id, c.account_version, c.available_after, c.held_after,
                  c.prev_version, c.prev_available, c.prev_held, c.available_delta, c.held_delta)
    FROM (SELECT e.account_id, e.entry_id, e.account_version, e.available_after, e.held_after,
                 e.available_delta, e.held_delta,
                 lag(e.account_version, 1, 0::bigint) OVER w AS prev_version,
                 lag(e.available_after, 1, 0::bigint) OVER w AS prev_available,
                 lag(e.held_after, 1, 0::bigint) OVER w AS prev_held
          FROM ledger_entry e
          WINDOW w AS (PARTITION BY e.account_id ORDER BY e.account_version)) c
    WHERE c.account_version <> c.prev_version + 1
       OR c.available_after <> c.prev_available + c.available_delta
       OR c.held_after <> c.prev_held + c.held_delta;

    RETURN QUERY
    WITH per_hold AS (
        SELECT e.hold_id,
               count(*) FILTER (WHERE e.kind = 'hold') AS holds,
               min(e.amount) FILTER (WHERE e.kind = 'hold') AS hold_amount,
               count(DISTINCT e.account_id) AS accounts, min(e.account_id::text) AS account_id,
               count(*) FILTER (WHERE e.kind = 'capture') AS captures,
               min(e.amount) FILTER (WHERE e.kind = 'capture') AS capture_amount,
               min(-e.held_delta) FILTER (WHERE e.kind = 'capture') AS capture_held,
               count(*) FILTER (WHERE e.kind = 'release') AS releases,
               count(*) FILTER (WHERE e.kind = 'expire') AS expires,
               min(e.amount) FILTER (WHERE e.kind IN ('release', 'expire')) AS returned_amount,
               count(*) FILTER (WHERE e.kind = 'late_charge') AS late_charges,
               min(e.amount) FILTER (WHERE e.kind = 'late_charge') AS late_amount
        FROM ledger_entry e WHERE e.hold_id IS NOT NULL GROUP BY e.hold_id
    )
    SELECT CASE WHEN h.hold_id IS NULL THEN 'orphan_entry' ELSE 'hold_entries' END,
           format('account %s: hold %s (%s, status %s, amount %s, captured %s, late %s %s): entries hold=%s/%s accounts=%s capture=%s/%s release=%s expire=%s returned=%s late_charge=%s/%s',
                  coalesce(h.account_id::text, p.account_id), coalesce(h.hold_id, p.hold_id),
                  coalesce(h.reference, '?'), h.status, h.amount,
                  h.captured, h.late, h.late_amount, coalesce(p.holds, 0), p.hold_amount,
                  coalesce(p.accounts, 0), coalesce(p.captures, 0), p.capture_amount,
                  coalesce(p.releases, 0), coalesce(p.expires, 0), p.returned_amount,
                  coalesce(p.late_charges, 0), p.late_amount)
    FROM ledger_hold h FULL JOIN per_hold p ON p.hold_id = h.hold_id
    WHERE h.hold_id IS NULL
       OR p.hold_id IS NULL
       OR p.holds <> 1 OR p.hold_amount <> h.amount
       OR p.accounts <> 1 OR p.account_id <> h.account_id::text
       OR (p.captures, p.releases, p.expires) <> (
              CASE h.status WHEN 'pending' THEN (0::bigint, 0::bigint, 0::bigint)
                            WHEN 'captured' THEN (1::bigint, 0::bigint, 0::bigint)
                            WHEN 'released' THEN (0::bigint, 1::bigint, 0::bigint)
                            ELSE (0::bigint, 0::bigint, 1::bigint) END)
       OR (h.status = 'captured' AND (p.capture_amount <> h.captured OR p.capture_held <> h.amount))
       OR (h.status IN ('released', 'expired') AND p.returned_amount <> h.amount)
       OR p.late_charges <> CASE WHEN h.late = 'late_charged' THEN 1 ELSE 0 END
       OR (h.late = 'late_charged' AND p.late_amount IS DISTINCT FROM h.late_amount);

    RETURN QUERY
    SELECT 'held_matches_pending_holds'::text,
           format('account %s: held=%s, pending holds sum to %s',
                  coalesce(a.account_id, p.account_id), coalesce(a.held, 0), coalesce(p.pending, 0))
    FROM (SELECT h.account_id, sum(h.amount) AS pending
          FROM ledger_hold h WHERE h.status = 'pending' GROUP BY h.account_id) p
    FULL JOIN ledger_account a ON a.account_id = p.account_id
    WHERE coalesce(a.held, 0) <> coalesce(p.pending, 0);

    RETURN QUERY
    SELECT 'global_conservation'::text,
           format('journal: granted %s + adjusted %s - clawed_back %s = %s; accounts and holds: available %s + held %s + captured %s + late_charged %s = %s',
                  j.granted, j.adjusted, j.clawed_back, j.granted + j.adjusted - j.clawed_back,
                  b.available, b.held, hs.captured, hs.late_charged,
                  b.available + b.held + hs.captured + hs.late_charged)
    FROM (SELECT coalesce(sum(e.amount) FILTER (WHERE e.kind = 'grant'), 0) AS granted,
                 coalesce(sum(e.available_delta) FILTER (WHERE e.kind = 'adjust'), 0) AS adjusted,
                 coalesce(-sum(e.available_delta) FILTER (WHERE e.kind = 'clawback'), 0) AS clawed_back
          FROM ledger_entry e) j,
         (SELECT coalesce(sum(a.available), 0) AS available, coalesce(sum(a.held), 0) AS held
          FROM ledger_account a) b,
         (SELECT coalesce(sum(h.captured), 0) AS captured,
                 coalesce(sum(h.late_amount) FILTER (WHERE h.late = 'late_charged'), 0) AS late_charged
          FROM ledger_hold h) hs
    WHERE j.granted + j.adjusted - j.clawed_back <> b.available + b.held + hs.captured + hs.late_charged;

    RETURN QUERY
    SELECT 'key_once'::text, format('key %s is used by %s entries', e.idempotency_key, count(*))
    FROM ledger_entry e WHERE e.idempotency_key IS NOT NULL
    GROUP BY e.idempotency_key HAVING count(*) > 1;
END;
$$;
