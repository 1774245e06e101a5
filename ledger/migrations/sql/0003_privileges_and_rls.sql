-- Privileges and row-level security for the ledger tables and functions.
--
-- Role names come from the database setting app.role_prefix, written by the bootstrap
-- (manage.py db_bootstrap) before any migration runs: <prefix>_owner runs this file and owns
-- everything, <prefix>_app is the runtime role, <prefix>_user_reader and <prefix>_staff_reader
-- are NOLOGIN roles the runtime role switches to with SET LOCAL ROLE for scoped reads.
--
-- After this file:
--   * the runtime role holds SELECT only on ledger tables (the bootstrap's default privileges
--     also gave it INSERT/UPDATE/DELETE, revoked here) and EXECUTE on the ledger functions;
--     every change goes through a function;
--   * RLS is enabled and forced, so even the owner sees rows only through its own policy (the
--     SECURITY DEFINER functions run as the owner and see everything);
--   * the runtime role itself matches no policy and sees no ledger rows;
--   * <prefix>_user_reader sees the rows of app.account_id only, <prefix>_staff_reader all rows.
--     Both reader policies also require current_user to be the reader role itself: a member that
--     inherits the reader's privileges (GRANT ... WITH INHERIT TRUE, the default) would otherwise
--     match the policy without SET ROLE, because policies apply to members too.
DO $$
DECLARE
    prefix text := current_setting('app.role_prefix');
    owner_role text := prefix || '_owner';
    app_role text := prefix || '_app';
    user_reader text := prefix || '_user_reader';
    staff_reader text := prefix || '_staff_reader';
    t text;
    f regprocedure;
BEGIN
    IF current_user <> owner_role THEN
        RAISE EXCEPTION 'ledger migrations must run as %, not %', owner_role, current_user;
    END IF;

    FOREACH t IN ARRAY ARRAY['ledger_account', 'ledger_hold', 'ledger_entry'] LOOP
        EXECUTE format('REVOKE ALL ON TABLE %I FROM PUBLIC', t);
        EXECUTE format('REVOKE ALL ON TABLE %I FROM %I', t, app_role);
        EXECUTE format('GRANT SELECT ON TABLE %I TO %I, %I, %I', t, app_role, user_reader, staff_reader);
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY %I ON %I TO %I USING (true) WITH CHECK (true)',
                       t || '_owner', t, owner_role);
        EXECUTE format('CREATE POLICY %I ON %I FOR SELECT TO %I USING (current_user = %L AND '
                       'account_id = NULLIF(current_setting(''app.account_id'', true), '''')::uuid)',
                       t || '_user_reader', t, user_reader, user_reader);
        EXECUTE format('CREATE POLICY %I ON %I FOR SELECT TO %I USING (current_user = %L)',
                       t || '_staff_reader', t, staff_reader, staff_reader);
    END LOOP;
    EXECUTE format('REVOKE ALL ON SEQUENCE ledger_entry_entry_id_seq FROM PUBLIC, %I', app_role);

    FOREACH f IN ARRAY ARRAY[
        'ledger_grant(uuid, bigint, text, text, text)',
        'ledger_hold(uuid, text, bigint, interval)',
        'ledger_capture(text, bigint)',
        'ledger_release(text)',
        'ledger_extend(text, interval)',
        'ledger_expire_due(integer)',
        'ledger_adjust(uuid, bigint, text, text, text)',
        'ledger_clawback(uuid, bigint, text, text, text)',
        'ledger_check()',
        'ledger_audit()'
    ]::regprocedure[] LOOP
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %I', f, app_role);
    END LOOP;
END;
$$;

COMMENT ON FUNCTION ledger_grant(uuid, bigint, text, text, text) IS
    'Add credits, keyed globally: granted | duplicate | conflict.';
COMMENT ON FUNCTION ledger_hold(uuid, text, bigint, interval) IS
    'Reserve credits for a job reference: held | insufficient | duplicate | conflict.';
COMMENT ON FUNCTION ledger_capture(text, bigint) IS
    'Charge a hold (partly or fully): captured | duplicate | late_charged | unpaid | not_found | conflict.';
COMMENT ON FUNCTION ledger_release(text) IS
    'Return a pending hold''s credits: released | duplicate | already_captured | not_found.';
COMMENT ON FUNCTION ledger_extend(text, interval) IS
    'Keep a pending hold alive: extended | not_pending | not_found.';
COMMENT ON FUNCTION ledger_expire_due(integer) IS
    'Expire due pending holds (SKIP LOCKED); returns how many.';
COMMENT ON FUNCTION ledger_adjust(uuid, bigint, text, text, text) IS
    'Admin correction with actor and reason: adjusted | insufficient | duplicate | conflict.';
COMMENT ON FUNCTION ledger_clawback(uuid, bigint, text, text, text) IS
    'Take back credits, never below zero: clawed_back | partial | duplicate | conflict.';
COMMENT ON FUNCTION ledger_check() IS
    'Invariants checkable without reading the journal; no rows when healthy.';
COMMENT ON FUNCTION ledger_audit() IS
    'Full fold of the journal against accounts and holds; no rows when healthy.';
