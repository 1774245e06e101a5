from django.db import migrations

from ledger.migrations._sql import load

REVERSE = """
DO $$
DECLARE
    t text;
    p record;
BEGIN
    FOREACH t IN ARRAY ARRAY['ledger_account', 'ledger_hold', 'ledger_entry'] LOOP
        FOR p IN SELECT policyname FROM pg_policies WHERE tablename = t AND schemaname = 'public'
        LOOP
            EXECUTE format('DROP POLICY %I ON %I', p.policyname, t);
        END LOOP;
        EXECUTE format('ALTER TABLE %I NO FORCE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I DISABLE ROW LEVEL SECURITY', t);
    END LOOP;
END;
$$;
"""


class Migration(migrations.Migration):
    dependencies = [("ledger", "0002_functions")]

    operations = [migrations.RunSQL(load("0003_privileges_and_rls.sql"), reverse_sql=REVERSE)]
