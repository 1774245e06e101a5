-- Written by `make ledger-sql` from a freshly migrated database: today's definition, not a
-- migration. Change it with a new migration in ledger/migrations/sql/, then regenerate.

CREATE OR REPLACE FUNCTION public.ledger_check()
 RETURNS TABLE(invariant text, detail text)
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'public', 'pg_temp'
AS $function$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH probe AS (
        SELECT a.account_id, a.available, a.held, a.version,
               a.granted, a.adjusted, a.clawed_back, a.captured, a.late_charged,
               full_scan.last_id IS NOT NULL AS unbounded,
               near.last_id AS n_last_id, near.last_version AS n_last_version,
               near.last_available AS n_last_available, near.last_held AS n_last_held,
               near.last_available_delta AS n_last_available_delta,
               near.last_held_delta AS n_last_held_delta, near.prev_id AS n_prev_id,
               near.prev_version AS n_prev_version, near.prev_available AS n_prev_available,
               near.prev_held AS n_prev_held,
               full_scan.last_id AS f_last_id, full_scan.last_version AS f_last_version,
               full_scan.last_available AS f_last_available, full_scan.last_held AS f_last_held,
               full_scan.last_available_delta AS f_last_available_delta,
               full_scan.last_held_delta AS f_last_held_delta, full_scan.prev_id AS f_prev_id,
               full_scan.prev_version AS f_prev_version, full_scan.prev_available AS f_prev_available,
               full_scan.prev_held AS f_prev_held
        FROM ledger_account a
        -- The newest two entries of each account, read by one backward scan of
        -- (account_id, account_version) bounded below by the cached version: a consistent
        -- account has exactly versions `version` and `version - 1` there, so the scan stops
        -- after them however long the account's history is. Under LIMIT the planner cannot
        -- flatten the lookup into a join (0002's previous-entry lookup had no LIMIT and became
        -- a hash join over the whole journal).
        LEFT JOIN LATERAL (
            SELECT max(t.entry_id) FILTER (WHERE t.n = 1) AS last_id,
                   max(t.account_version) FILTER (WHERE t.n = 1) AS last_version,
                   max(t.available_after) FILTER (WHERE t.n = 1) AS last_available,
                   max(t.held_after) FILTER (WHERE t.n = 1) AS last_held,
                   max(t.available_delta) FILTER (WHERE t.n = 1) AS last_available_delta,
                   max(t.held_delta) FILTER (WHERE t.n = 1) AS last_held_delta,
                   max(t.entry_id) FILTER (WHERE t.n = 2) AS prev_id,
                   max(t.account_version) FILTER (WHERE t.n = 2) AS prev_version,
                   max(t.available_after) FILTER (WHERE t.n = 2) AS prev_available,
                   max(t.held_after) FILTER (WHERE t.n = 2) AS prev_held
            FROM (SELECT e.entry_id, e.account_version, e.available_after, e.held_after,
                         e.available_delta, e.held_delta,
                         row_number() OVER (ORDER BY e.account_version DESC) AS n
                  FROM ledger_entry e WHERE e.account_id = a.account_id
                    AND e.account_version >= a.version - 1
                  ORDER BY e.account_version DESC LIMIT 2) t
        ) near ON true
        -- Only when that does not look consistent (a deleted or forged entry, a tampered
        -- version), the same two-entry read without the bound finds the account's real newest
        -- entries; the condition is on the outer row alone, so a healthy account never runs it.
        LEFT JOIN LATERAL (
            SELECT max(t.entry_id) FILTER (WHERE t.n = 1) AS last_id,
                   max(t.account_version) FILTER (WHERE t.n = 1) AS last_version,
                   max(t.available_after) FILTER (WHERE t.n = 1) AS last_available,
                   max(t.held_after) FILTER (WHERE t.n = 1) AS last_held,
                   max(t.available_delta) FILTER (WHERE t.n = 1) AS last_available_delta,
                   max(t.held_delta) FILTER (WHERE t.n = 1) AS last_held_delta,
                   max(t.entry_id) FILTER (WHERE t.n = 2) AS prev_id,
                   max(t.account_version) FILTER (WHERE t.n = 2) AS prev_version,
                   max(t.available_after) FILTER (WHERE t.n = 2) AS prev_available,
                   max(t.held_after) FILTER (WHERE t.n = 2) AS prev_held
            FROM (SELECT e.entry_id, e.account_version, e.available_after, e.held_after,
                         e.available_delta, e.held_delta,
                         row_number() OVER (ORDER BY e.account_version DESC) AS n
                  FROM ledger_entry e WHERE e.account_id = a.account_id
                    AND (near.last_version IS DISTINCT FROM a.version
                         OR (a.version > 1 AND near.prev_version IS DISTINCT FROM a.version - 1))
                  ORDER BY e.account_version DESC LIMIT 2) t
        ) full_scan ON true
    ), two AS (
        SELECT p.account_id, p.available, p.held, p.version,
               p.granted, p.adjusted, p.clawed_back, p.captured, p.late_charged,
               CASE WHEN p.unbounded THEN p.f_last_id ELSE p.n_last_id END AS last_id,
               CASE WHEN p.unbounded THEN p.f_last_version ELSE p.n_last_version END AS last_version,
               CASE WHEN p.unbounded THEN p.f_last_available ELSE p.n_last_available END
                   AS last_available,
               CASE WHEN p.unbounded THEN p.f_last_held ELSE p.n_last_held END AS last_held,
               CASE WHEN p.unbounded THEN p.f_last_available_delta ELSE p.n_last_available_delta END
                   AS last_available_delta,
               CASE WHEN p.unbounded THEN p.f_last_held_delta ELSE p.n_last_held_delta END
                   AS last_held_delta,
               CASE WHEN p.unbounded THEN p.f_prev_id ELSE p.n_prev_id END AS prev_id,
               CASE WHEN p.unbounded THEN p.f_prev_version ELSE p.n_prev_version END AS prev_version,
               CASE WHEN p.unbounded THEN p.f_prev_available ELSE p.n_prev_available END
                   AS prev_available,
               CASE WHEN p.unbounded THEN p.f_prev_held ELSE p.n_prev_held END AS prev_held
        FROM probe p
    ), state AS (
        SELECT t.account_id, t.available, t.held, t.version,
               t.granted, t.adjusted, t.clawed_back, t.captured, t.late_charged,
               t.last_id, t.last_version, t.last_available, t.last_held,
               t.last_available_delta, t.last_held_delta,
               -- The entry before the newest must be version newest - 1; any other is a gap.
               CASE WHEN t.prev_version = t.last_version - 1 THEN t.prev_id END AS prev_id,
               CASE WHEN t.prev_version = t.last_version - 1 THEN t.prev_available END
                   AS prev_available,
               CASE WHEN t.prev_version = t.last_version - 1 THEN t.prev_held END AS prev_held
        FROM two t
    )
    SELECT 'account_matches_latest_entry'::text,
           format('account %s: available=%s held=%s version=%s; latest entry %s: version=%s available_after=%s held_after=%s',
                  s.account_id, s.available, s.held, s.version, coalesce(s.last_id::text, 'none'),
                  s.last_version, s.last_available, s.last_held)
    FROM state s
    WHERE (s.last_id IS NULL AND (s.version, s.available, s.held) <> (0, 0, 0))
       OR (s.last_id IS NOT NULL
           AND (s.last_version, s.last_available, s.last_held) <> (s.version, s.available, s.held))
    UNION ALL
    SELECT 'latest_entry_chains',
           format('account %s: entry %s (version %s) does not follow entry %s: %s + (%s), %s + (%s) gives %s, %s',
                  s.account_id, s.last_id, s.last_version, coalesce(s.prev_id::text, 'none'),
                  coalesce(s.prev_available, 0), s.last_available_delta, coalesce(s.prev_held, 0),
                  s.last_held_delta, s.last_available, s.last_held)
    FROM state s
    WHERE s.last_id IS NOT NULL
      AND ((s.last_version > 1 AND s.prev_id IS NULL)
           OR coalesce(s.prev_available, 0) + s.last_available_delta <> s.last_available
           OR coalesce(s.prev_held, 0) + s.last_held_delta <> s.last_held)
    UNION ALL
    SELECT 'account_conserved',
           format('account %s: granted %s + adjusted %s - clawed_back %s <> available %s + held %s + captured %s + late_charged %s',
                  s.account_id, s.granted, s.adjusted, s.clawed_back, s.available, s.held,
                  s.captured, s.late_charged)
    FROM state s
    WHERE s.granted + s.adjusted - s.clawed_back <> s.available + s.held + s.captured + s.late_charged
    UNION ALL
    SELECT 'non_negative',
           format('account %s: available=%s held=%s', s.account_id, s.available, s.held)
    FROM state s
    WHERE s.available < 0 OR s.held < 0;

    RETURN QUERY
    SELECT 'held_matches_pending_holds'::text,
           format('account %s: held=%s, pending holds sum to %s',
                  coalesce(a.account_id, p.account_id), coalesce(a.held, 0), coalesce(p.pending, 0))
    FROM (SELECT h.account_id, sum(h.amount) AS pending
          FROM ledger_hold h WHERE h.status = 'pending' GROUP BY h.account_id) p
    FULL JOIN (SELECT a.account_id, a.held FROM ledger_account a WHERE a.held <> 0) a
           ON a.account_id = p.account_id
    WHERE coalesce(a.held, 0) <> coalesce(p.pending, 0);

    RETURN QUERY
    SELECT 'global_conservation'::text,
           format('granted %s + adjusted %s - clawed_back %s <> available %s + held %s + captured %s + late_charged %s',
                  t.granted, t.adjusted, t.clawed_back, t.available, t.held, t.captured, t.late_charged)
    FROM (SELECT coalesce(sum(a.granted), 0) AS granted, coalesce(sum(a.adjusted), 0) AS adjusted,
                 coalesce(sum(a.clawed_back), 0) AS clawed_back,
                 coalesce(sum(a.available), 0) AS available, coalesce(sum(a.held), 0) AS held,
                 coalesce(sum(a.captured), 0) AS captured,
                 coalesce(sum(a.late_charged), 0) AS late_charged
          FROM ledger_account a) t
    WHERE t.granted + t.adjusted - t.clawed_back <> t.available + t.held + t.captured + t.late_charged;
END;
$function$;

COMMENT ON FUNCTION ledger_check() IS 'Invariants checkable without reading the journal; no rows when healthy.';
