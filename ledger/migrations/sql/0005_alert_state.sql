-- Low-balance alert state: one notice per descent below a threshold.
--
-- A row per (account, threshold) is `fired` once a notice went out for the current descent and
-- `armed` again once the balance is back at or above the threshold. ledger_alert_claim() makes
-- the transition atomically, so ten holds crossing the threshold at once (ten notice tasks)
-- produce exactly one `fire`. The hold path never calls it: the notice task does, after commit.

-- ledger_alert_state: per account and threshold, armed or fired. Not money, but account data,
-- so it gets the same privileges and policies as the other ledger tables.
CREATE TABLE ledger_alert_state (
    account_id uuid        NOT NULL,
    threshold  bigint      NOT NULL CHECK (threshold > 0 AND threshold <= 1000000000000),
    state      text        NOT NULL CHECK (state IN ('armed', 'fired')),
    fired_at   timestamptz,
    rearmed_at timestamptz,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, threshold)
);

COMMENT ON TABLE ledger_alert_state IS
    'Low-balance notice state per account and threshold: fired once per descent, re-armed above it.';
COMMENT ON COLUMN ledger_alert_state.state IS 'armed (next descent notifies) | fired (notice sent for this descent)';
COMMENT ON COLUMN ledger_alert_state.fired_at IS 'When the last notice was claimed.';
COMMENT ON COLUMN ledger_alert_state.rearmed_at IS 'When the balance was last seen back above the threshold.';

-- ledger_alert_claim: compare the account's available balance with threshold and move the
-- alert state. Status: fire (below, was armed: the caller sends one notice) | fired (below,
-- already notified this descent) | armed (at or above: re-armed if it had fired). The ON
-- CONFLICT ... WHERE state = 'armed' upsert lets exactly one concurrent caller win `fire`.
-- SECURITY DEFINER with pg_temp last in search_path, like every ledger function.
CREATE FUNCTION ledger_alert_claim(account uuid, threshold bigint,
                                   OUT status text, OUT available bigint)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
SET lock_timeout = '5s'
AS $$
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
$$;

COMMENT ON FUNCTION ledger_alert_claim(uuid, bigint) IS
    'Low-balance notice once per descent: fire | fired | armed.';

DO $$
DECLARE
    prefix text := current_setting('app.role_prefix');
    owner_role text := prefix || '_owner';
    app_role text := prefix || '_app';
    user_reader text := prefix || '_user_reader';
    staff_reader text := prefix || '_staff_reader';
BEGIN
    IF current_user <> owner_role THEN
        RAISE EXCEPTION 'ledger migrations must run as %, not %', owner_role, current_user;
    END IF;
    REVOKE ALL ON TABLE ledger_alert_state FROM PUBLIC;
    EXECUTE format('REVOKE ALL ON TABLE ledger_alert_state FROM %I', app_role);
    EXECUTE format('GRANT SELECT ON TABLE ledger_alert_state TO %I, %I, %I',
                   app_role, user_reader, staff_reader);
    ALTER TABLE ledger_alert_state ENABLE ROW LEVEL SECURITY;
    ALTER TABLE ledger_alert_state FORCE ROW LEVEL SECURITY;
    EXECUTE format('CREATE POLICY ledger_alert_state_owner ON ledger_alert_state TO %I '
                   'USING (true) WITH CHECK (true)', owner_role);
    EXECUTE format('CREATE POLICY ledger_alert_state_user_reader ON ledger_alert_state FOR SELECT '
                   'TO %I USING (current_user = %L AND '
                   'account_id = NULLIF(current_setting(''app.account_id'', true), '''')::uuid)',
                   user_reader, user_reader);
    EXECUTE format('CREATE POLICY ledger_alert_state_staff_reader ON ledger_alert_state FOR SELECT '
                   'TO %I USING (current_user = %L)', staff_reader, staff_reader);
    REVOKE ALL ON FUNCTION ledger_alert_claim(uuid, bigint) FROM PUBLIC;
    EXECUTE format('GRANT EXECUTE ON FUNCTION ledger_alert_claim(uuid, bigint) TO %I', app_role);
END;
$$;
