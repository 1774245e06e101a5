-- Make the journal append-only for every role.
--
-- A row trigger refuses UPDATE and DELETE and a statement trigger refuses TRUNCATE, whoever
-- runs them (the functions only ever INSERT). The owner also gives up its own UPDATE, DELETE and
-- TRUNCATE privileges on the journal, so an accidental statement in a migration or a shell is
-- refused twice. Corrections are new entries (ledger_adjust), never edits.

-- ledger_entry_refuse_change: trigger function that raises insufficient_privilege (42501) for
-- any UPDATE, DELETE or TRUNCATE of ledger_entry. Not SECURITY DEFINER: it reads nothing.
CREATE FUNCTION ledger_entry_refuse_change()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION USING
        ERRCODE = '42501',
        MESSAGE = format('ledger_entry is append-only: %s refused', TG_OP),
        HINT = 'Correct a balance with ledger_adjust(); journal rows are never changed.';
END;
$$;

REVOKE ALL ON FUNCTION ledger_entry_refuse_change() FROM PUBLIC;

CREATE TRIGGER ledger_entry_no_update_delete
    BEFORE UPDATE OR DELETE ON ledger_entry
    FOR EACH ROW EXECUTE FUNCTION ledger_entry_refuse_change();

CREATE TRIGGER ledger_entry_no_truncate
    BEFORE TRUNCATE ON ledger_entry
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_entry_refuse_change();

DO $$
BEGIN
    EXECUTE format('REVOKE UPDATE, DELETE, TRUNCATE ON TABLE ledger_entry FROM %I', current_user);
END;
$$;

COMMENT ON TRIGGER ledger_entry_no_update_delete ON ledger_entry IS 'The journal is append-only.';
COMMENT ON TRIGGER ledger_entry_no_truncate ON ledger_entry IS 'The journal is append-only.';
