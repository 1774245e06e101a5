from django.db import migrations

from ledger.migrations._sql import load

REVERSE = """
DROP TRIGGER ledger_entry_no_truncate ON ledger_entry;
DROP TRIGGER ledger_entry_no_update_delete ON ledger_entry;
DROP FUNCTION ledger_entry_refuse_change();
DO $$ BEGIN
    EXECUTE format('GRANT UPDATE, DELETE, TRUNCATE ON TABLE ledger_entry TO %I', current_user);
END $$;
"""


class Migration(migrations.Migration):
    dependencies = [("ledger", "0003_privileges_and_rls")]

    operations = [migrations.RunSQL(load("0004_immutable_journal.sql"), reverse_sql=REVERSE)]
