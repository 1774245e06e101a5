-- Written by `make ledger-sql` from a freshly migrated database: today's definition, not a
-- migration. Change it with a new migration in ledger/migrations/sql/, then regenerate.

CREATE TYPE ledger_capture_result AS (
    status text,
    captured bigint,
    available bigint
);
COMMENT ON TYPE ledger_capture_result IS 'Result of ledger_capture().';

CREATE TYPE ledger_hold_result AS (
    status text,
    hold_id uuid,
    available bigint
);
COMMENT ON TYPE ledger_hold_result IS 'Result of ledger_hold().';

CREATE TYPE ledger_release_result AS (
    status text,
    released bigint,
    available bigint
);
COMMENT ON TYPE ledger_release_result IS 'Result of ledger_release().';
