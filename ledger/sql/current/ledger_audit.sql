-- Written by `make ledger-sql` from a freshly migrated database: today's definition, not a
-- migration. Change it with a new migration in ledger/migrations/sql/, then regenerate.

CREATE OR REPLACE FUNCTION public.ledger_audit()
 RETURNS TABLE(invariant text, detail text)
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'public', 'pg_temp'
AS $function$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH fold AS (
        SELECT e.account_id,
               sum(e.available_delta) AS available, sum(e.held_delta) AS held, count(*) AS version,
               coalesce(sum(e.amount) FILTER (WHERE e.kind = 'grant'), 0) AS granted,
               coalesce(sum(e.available_delta) FILTER (WHERE e.kind = 'adjust'), 0) AS adjusted,
               coalesce(-sum(e.available_delta) FILTER (WHERE e.kind = 'clawback'), 0) AS clawed_back,
               coalesce(sum(e.amount) FILTER (WHERE e.kind = 'capture'), 0) AS captured,
               coalesce(sum(e.amount) FILTER (WHERE e.kind = 'late_charge'), 0) AS late_charged
        FROM ledger_entry e GROUP BY e.account_id
    )
    SELECT 'account_fold'::text,
           format('account %s: cached (available %s, held %s, version %s, granted %s, adjusted %s, clawed_back %s, captured %s, late_charged %s) <> journal (%s, %s, %s, %s, %s, %s, %s, %s)',
                  coalesce(a.account_id, f.account_id),
                  a.available, a.held, a.version, a.granted, a.adjusted, a.clawed_back, a.captured, a.late_charged,
                  coalesce(f.available, 0), coalesce(f.held, 0), coalesce(f.version, 0),
                  coalesce(f.granted, 0), coalesce(f.adjusted, 0), coalesce(f.clawed_back, 0),
                  coalesce(f.captured, 0), coalesce(f.late_charged, 0))
    FROM ledger_account a FULL JOIN fold f ON f.account_id = a.account_id
    WHERE a.account_id IS NULL
       OR (a.available, a.held, a.version, a.granted, a.adjusted, a.clawed_back, a.captured, a.late_charged)
          IS DISTINCT FROM
          (coalesce(f.available, 0), coalesce(f.held, 0), coalesce(f.version, 0), coalesce(f.granted, 0),
           coalesce(f.adjusted, 0), coalesce(f.clawed_back, 0), coalesce(f.captured, 0),
           coalesce(f.late_charged, 0));

    RETURN QUERY
    SELECT 'entry_chain'::text,
           format('account %s: entry %s (version %s, after %s/%s) does not follow version %s (after %s/%s) with deltas %s/%s',
                  c.account_id, c.entry_id, c.account_version, c.available_after, c.held_after,
                  c.prev_version, c.prev_available, c.prev_held, c.available_delta, c.held_delta)
    FROM (SELECT e.account_id, e.entry_id, e.account_version, e.available_after, e.held_after,
                 e.available_delta, e.held_delta,
                 lag(e.account_version, 1, 0::bigint) OVER w AS prev_version,
                 lag(e.available_after, 1, 0::bigint) OVER w AS prev_available,
                 lag(e.held_after, 1, 0::bigint) OVER w AS prev_held
          FROM ledger_entry e
          WINDOW w AS (PARTITION BY e.account_id ORDER BY e.account_version)) c
    WHERE c.account_version <> c.prev_version + 1
       OR c.available_after <> c.prev_available + c.available_delta
       OR c.held_after <> c.prev_held + c.held_delta;

    RETURN QUERY
    WITH per_hold AS (
        SELECT e.hold_id,
               count(*) FILTER (WHERE e.kind = 'hold') AS holds,
               min(e.amount) FILTER (WHERE e.kind = 'hold') AS hold_amount,
               count(DISTINCT e.account_id) AS accounts, min(e.account_id::text) AS account_id,
               count(*) FILTER (WHERE e.kind = 'capture') AS captures,
               min(e.amount) FILTER (WHERE e.kind = 'capture') AS capture_amount,
               min(-e.held_delta) FILTER (WHERE e.kind = 'capture') AS capture_held,
               count(*) FILTER (WHERE e.kind = 'release') AS releases,
               count(*) FILTER (WHERE e.kind = 'expire') AS expires,
               min(e.amount) FILTER (WHERE e.kind IN ('release', 'expire')) AS returned_amount,
               count(*) FILTER (WHERE e.kind = 'late_charge') AS late_charges,
               min(e.amount) FILTER (WHERE e.kind = 'late_charge') AS late_amount
        FROM ledger_entry e WHERE e.hold_id IS NOT NULL GROUP BY e.hold_id
    )
    SELECT CASE WHEN h.hold_id IS NULL THEN 'orphan_entry' ELSE 'hold_entries' END,
           format('account %s: hold %s (%s, status %s, amount %s, captured %s, late %s %s): entries hold=%s/%s accounts=%s capture=%s/%s release=%s expire=%s returned=%s late_charge=%s/%s',
                  coalesce(h.account_id::text, p.account_id), coalesce(h.hold_id, p.hold_id),
                  coalesce(h.reference, '?'), h.status, h.amount,
                  h.captured, h.late, h.late_amount, coalesce(p.holds, 0), p.hold_amount,
                  coalesce(p.accounts, 0), coalesce(p.captures, 0), p.capture_amount,
                  coalesce(p.releases, 0), coalesce(p.expires, 0), p.returned_amount,
                  coalesce(p.late_charges, 0), p.late_amount)
    FROM ledger_hold h FULL JOIN per_hold p ON p.hold_id = h.hold_id
    WHERE h.hold_id IS NULL
       OR p.hold_id IS NULL
       OR p.holds <> 1 OR p.hold_amount <> h.amount
       OR p.accounts <> 1 OR p.account_id <> h.account_id::text
       OR (p.captures, p.releases, p.expires) <> (
              CASE h.status WHEN 'pending' THEN (0::bigint, 0::bigint, 0::bigint)
                            WHEN 'captured' THEN (1::bigint, 0::bigint, 0::bigint)
                            WHEN 'released' THEN (0::bigint, 1::bigint, 0::bigint)
                            ELSE (0::bigint, 0::bigint, 1::bigint) END)
       OR (h.status = 'captured' AND (p.capture_amount <> h.captured OR p.capture_held <> h.amount))
       OR (h.status IN ('released', 'expired') AND p.returned_amount <> h.amount)
       OR p.late_charges <> CASE WHEN h.late = 'late_charged' THEN 1 ELSE 0 END
       OR (h.late = 'late_charged' AND p.late_amount IS DISTINCT FROM h.late_amount);

    RETURN QUERY
    SELECT 'held_matches_pending_holds'::text,
           format('account %s: held=%s, pending holds sum to %s',
                  coalesce(a.account_id, p.account_id), coalesce(a.held, 0), coalesce(p.pending, 0))
    FROM (SELECT h.account_id, sum(h.amount) AS pending
          FROM ledger_hold h WHERE h.status = 'pending' GROUP BY h.account_id) p
    FULL JOIN ledger_account a ON a.account_id = p.account_id
    WHERE coalesce(a.held, 0) <> coalesce(p.pending, 0);

    RETURN QUERY
    SELECT 'global_conservation'::text,
           format('journal: granted %s + adjusted %s - clawed_back %s = %s; accounts and holds: available %s + held %s + captured %s + late_charged %s = %s',
                  j.granted, j.adjusted, j.clawed_back, j.granted + j.adjusted - j.clawed_back,
                  b.available, b.held, hs.captured, hs.late_charged,
                  b.available + b.held + hs.captured + hs.late_charged)
    FROM (SELECT coalesce(sum(e.amount) FILTER (WHERE e.kind = 'grant'), 0) AS granted,
                 coalesce(sum(e.available_delta) FILTER (WHERE e.kind = 'adjust'), 0) AS adjusted,
                 coalesce(-sum(e.available_delta) FILTER (WHERE e.kind = 'clawback'), 0) AS clawed_back
          FROM ledger_entry e) j,
         (SELECT coalesce(sum(a.available), 0) AS available, coalesce(sum(a.held), 0) AS held
          FROM ledger_account a) b,
         (SELECT coalesce(sum(h.captured), 0) AS captured,
                 coalesce(sum(h.late_amount) FILTER (WHERE h.late = 'late_charged'), 0) AS late_charged
          FROM ledger_hold h) hs
    WHERE j.granted + j.adjusted - j.clawed_back <> b.available + b.held + hs.captured + hs.late_charged;

    RETURN QUERY
    SELECT 'key_once'::text, format('key %s is used by %s entries', e.idempotency_key, count(*))
    FROM ledger_entry e WHERE e.idempotency_key IS NOT NULL
    GROUP BY e.idempotency_key HAVING count(*) > 1;
END;
$function$;

COMMENT ON FUNCTION ledger_audit() IS 'Full fold of the journal against accounts and holds; no rows when healthy.';
