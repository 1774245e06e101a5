-- Written by `make ledger-sql` from a freshly migrated database: today's definition, not a
-- migration. Change it with a new migration in ledger/migrations/sql/, then regenerate.

CREATE OR REPLACE FUNCTION public.ledger_entry_rules(r ledger_entry)
 RETURNS boolean
 LANGUAGE plpgsql
 IMMUTABLE PARALLEL SAFE
AS $function$
BEGIN
    IF NOT (least(r.account_version, r.amount) > 0 AND least(r.available_after, r.held_after) >= 0
            AND length(r.source) <= 200 AND length(r.memo) <= 1000) THEN
        RETURN false;
    END IF;
    CASE r.kind
    WHEN 'hold' THEN
        RETURN r.available_delta = -r.amount AND r.held_delta = r.amount
           AND r.hold_id IS NOT NULL AND r.idempotency_key IS NULL;
    WHEN 'capture' THEN
        RETURN r.held_delta < 0 AND r.available_delta = -r.held_delta - r.amount
           AND r.available_delta >= 0 AND r.hold_id IS NOT NULL AND r.idempotency_key IS NULL;
    WHEN 'release', 'expire' THEN
        RETURN r.available_delta = r.amount AND r.held_delta = -r.amount
           AND r.hold_id IS NOT NULL AND r.idempotency_key IS NULL;
    WHEN 'late_charge' THEN
        RETURN r.available_delta = -r.amount AND r.held_delta = 0
           AND r.hold_id IS NOT NULL AND r.idempotency_key IS NULL;
    WHEN 'grant' THEN
        RETURN r.available_delta = r.amount AND r.held_delta = 0 AND r.hold_id IS NULL
           AND r.idempotency_key IS NOT NULL AND length(r.idempotency_key) BETWEEN 1 AND 200;
    WHEN 'adjust' THEN
        RETURN r.available_delta IN (r.amount, -r.amount) AND r.held_delta = 0
           AND r.hold_id IS NULL
           AND r.idempotency_key IS NOT NULL AND length(r.idempotency_key) BETWEEN 1 AND 200;
    WHEN 'clawback' THEN
        RETURN r.available_delta BETWEEN -r.amount AND 0 AND r.held_delta = 0
           AND r.hold_id IS NULL
           AND r.idempotency_key IS NOT NULL AND length(r.idempotency_key) BETWEEN 1 AND 200;
    ELSE
        RETURN false;                               -- not one of the eight kinds
    END CASE;
END;
$function$;

COMMENT ON FUNCTION ledger_entry_rules(r ledger_entry) IS 'CHECK rule of ledger_entry (the 0001 constraints, on the whole row).';
