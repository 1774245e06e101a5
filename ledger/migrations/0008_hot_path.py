from django.db import migrations

from ledger.migrations._sql import load

# The 0002 bodies of the three functions come back by replaying that file with OR REPLACE (it
# replaces all ten with their 0002 text, which is what they were before this migration); the
# attributes and grants are those 0002/0003 gave them, and CREATE OR REPLACE keeps the grants.
REVERSE = (
    load("0002_functions.sql").replace("CREATE FUNCTION ", "CREATE OR REPLACE FUNCTION ")
    + """
CREATE INDEX ledger_hold_account ON ledger_hold (account_id, created_at DESC);
ALTER TABLE ledger_hold ALTER COLUMN hold_id SET DEFAULT gen_random_uuid();
DROP SEQUENCE ledger_hold_id_seq;
"""
)


class Migration(migrations.Migration):
    dependencies = [("ledger", "0007_row_rules")]

    operations = [migrations.RunSQL(load("0007_hot_path.sql"), reverse_sql=REVERSE)]
