-- Written by `make ledger-sql` from a freshly migrated database: today's definition, not a
-- migration. Change it with a new migration in ledger/migrations/sql/, then regenerate.

CREATE OR REPLACE FUNCTION public.ledger_hold_rules(r ledger_hold)
 RETURNS boolean
 LANGUAGE plpgsql
 IMMUTABLE PARALLEL SAFE
AS $function$
BEGIN
    IF r.status = 'pending' THEN
        RETURN length(r.reference) BETWEEN 1 AND 200 AND r.amount > 0
           AND r.captured = 0 AND r.released = 0 AND r.late_amount = 0
           AND r.late IS NULL AND r.settled_at IS NULL;
    ELSIF r.status = 'captured' THEN
        RETURN length(r.reference) BETWEEN 1 AND 200 AND r.amount > 0
           AND r.captured > 0 AND r.released >= 0 AND r.captured + r.released = r.amount
           AND r.late_amount = 0 AND r.late IS NULL AND r.settled_at IS NOT NULL;
    ELSIF r.status IN ('released', 'expired') THEN
        RETURN length(r.reference) BETWEEN 1 AND 200 AND r.amount > 0
           AND r.captured = 0 AND r.released = r.amount AND r.settled_at IS NOT NULL
           AND CASE WHEN r.late IS NULL THEN r.late_amount = 0
                    ELSE r.late IN ('late_charged', 'unpaid')
                         AND r.late_amount BETWEEN 1 AND r.amount
               END;
    END IF;
    RETURN false;                                   -- not one of the four statuses
END;
$function$;

COMMENT ON FUNCTION ledger_hold_rules(r ledger_hold) IS 'CHECK rule of ledger_hold (the 0001 constraints, on the whole row).';
