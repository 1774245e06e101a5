-- Written by `make ledger-sql` from a freshly migrated database: today's definition, not a
-- migration. Change it with a new migration in ledger/migrations/sql/, then regenerate.

CREATE OR REPLACE FUNCTION public.ledger_account_rules(r ledger_account)
 RETURNS boolean
 LANGUAGE plpgsql
 IMMUTABLE PARALLEL SAFE
AS $function$
BEGIN
    RETURN least(r.available, r.held, r.version, r.granted, r.clawed_back, r.captured,
                 r.late_charged) >= 0
       AND r.granted + r.adjusted - r.clawed_back
           = r.available + r.held + r.captured + r.late_charged;
END;
$function$;

COMMENT ON FUNCTION ledger_account_rules(r ledger_account) IS 'CHECK rule of ledger_account (the 0001 constraints, on the whole row).';
