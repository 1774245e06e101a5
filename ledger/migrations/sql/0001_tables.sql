-- Ledger tables: balances, holds and the append-only journal.
--
-- Amounts are integer credits (bigint) everywhere. Nothing here grants privileges or enables
-- row-level security (0003) or guards the journal (0004); this file only shapes the data and
-- puts every rule that a single row can state into a CHECK constraint, so even the owner
-- cannot store a row that breaks it. Runs as the owner role, which therefore owns every
-- table, index and sequence created here.

-- ledger_account: one row per account (the user's id; no foreign key, so the test flush
-- never truncates it). `available` and `held` are the cached balance the functions gate on;
-- the running totals let ledger_check() verify conservation without reading the journal.
-- fillfactor leaves room on each page so the hot balance UPDATE stays a HOT update.
CREATE TABLE ledger_account (
    account_id   uuid        PRIMARY KEY,
    available    bigint      NOT NULL DEFAULT 0 CHECK (available >= 0),
    held         bigint      NOT NULL DEFAULT 0 CHECK (held >= 0),
    version      bigint      NOT NULL DEFAULT 0 CHECK (version >= 0),
    granted      bigint      NOT NULL DEFAULT 0 CHECK (granted >= 0),
    adjusted     bigint      NOT NULL DEFAULT 0,
    clawed_back  bigint      NOT NULL DEFAULT 0 CHECK (clawed_back >= 0),
    captured     bigint      NOT NULL DEFAULT 0 CHECK (captured >= 0),
    late_charged bigint      NOT NULL DEFAULT 0 CHECK (late_charged >= 0),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT ledger_account_conserved
        CHECK (granted + adjusted - clawed_back = available + held + captured + late_charged)
) WITH (fillfactor = 70);

COMMENT ON TABLE ledger_account IS
    'Cached balance per account; written only by the ledger_* functions, verified by ledger_check()/ledger_audit().';
COMMENT ON COLUMN ledger_account.account_id IS 'The user''s id (UUID); no foreign key by design.';
COMMENT ON COLUMN ledger_account.available IS 'Credits that can be held, charged or clawed back now.';
COMMENT ON COLUMN ledger_account.held IS 'Credits reserved by pending holds; equals the sum of the account''s pending holds.';
COMMENT ON COLUMN ledger_account.version IS 'Number of journal entries for the account; equals the latest entry''s account_version.';
COMMENT ON COLUMN ledger_account.granted IS 'Running total of grants.';
COMMENT ON COLUMN ledger_account.adjusted IS 'Running net total of admin adjustments (signed).';
COMMENT ON COLUMN ledger_account.clawed_back IS 'Running total actually taken by clawbacks.';
COMMENT ON COLUMN ledger_account.captured IS 'Running total of captured hold amounts.';
COMMENT ON COLUMN ledger_account.late_charged IS 'Running total of late charges (captures after release or expiry).';

-- ledger_hold: a reservation of credits for one job. The reference is the caller's job id and
-- is unique across all accounts. `status` leaves `pending` exactly once; `late` records what
-- happened to a capture that arrived after release or expiry. The CHECKs pin the amounts of
-- each status so a terminal row always balances (captured + released = amount).
CREATE TABLE ledger_hold (
    hold_id     uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    reference   text        NOT NULL CHECK (length(reference) BETWEEN 1 AND 200),
    account_id  uuid        NOT NULL,
    amount      bigint      NOT NULL CHECK (amount > 0),
    captured    bigint      NOT NULL DEFAULT 0 CHECK (captured >= 0),
    released    bigint      NOT NULL DEFAULT 0 CHECK (released >= 0),
    status      text        NOT NULL DEFAULT 'pending'
                            CHECK (status IN ('pending', 'captured', 'released', 'expired')),
    late        text        CHECK (late IN ('late_charged', 'unpaid')),
    late_amount bigint      NOT NULL DEFAULT 0 CHECK (late_amount >= 0),
    expires_at  timestamptz NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    settled_at  timestamptz,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT ledger_hold_reference_key UNIQUE (reference),
    CONSTRAINT ledger_hold_pending_shape CHECK (
        status <> 'pending'
        OR (captured = 0 AND released = 0 AND late IS NULL AND late_amount = 0 AND settled_at IS NULL)),
    CONSTRAINT ledger_hold_captured_shape CHECK (
        status <> 'captured'
        OR (captured > 0 AND captured + released = amount AND late IS NULL AND late_amount = 0
            AND settled_at IS NOT NULL)),
    CONSTRAINT ledger_hold_returned_shape CHECK (
        status NOT IN ('released', 'expired')
        OR (captured = 0 AND released = amount AND settled_at IS NOT NULL)),
    CONSTRAINT ledger_hold_late_shape CHECK (
        (late IS NULL AND late_amount = 0)
        OR (late IS NOT NULL AND late_amount BETWEEN 1 AND amount))
);

-- The sweeper and ledger_check() read pending holds only; this partial index keeps both off
-- full scans however many settled holds accumulate. INCLUDE lets check sum per account from
-- the index alone.
CREATE INDEX ledger_hold_pending_expiry ON ledger_hold (expires_at)
    INCLUDE (account_id, amount) WHERE status = 'pending';
-- Holds of one account, newest first (selectors, admin).
CREATE INDEX ledger_hold_account ON ledger_hold (account_id, created_at DESC);

COMMENT ON TABLE ledger_hold IS
    'Credit reservations: pending until captured, released or expired, exactly once.';
COMMENT ON COLUMN ledger_hold.reference IS 'Caller''s job id; globally unique, the idempotency key of a hold.';
COMMENT ON COLUMN ledger_hold.amount IS 'Credits reserved when the hold was placed.';
COMMENT ON COLUMN ledger_hold.captured IS 'Credits charged by the capture (<= amount).';
COMMENT ON COLUMN ledger_hold.released IS 'Credits returned to available by capture remainder, release or expiry.';
COMMENT ON COLUMN ledger_hold.status IS 'pending | captured | released | expired; leaves pending once, never changes again.';
COMMENT ON COLUMN ledger_hold.late IS 'late_charged | unpaid | null: outcome of a capture after release or expiry.';
COMMENT ON COLUMN ledger_hold.late_amount IS 'Credits charged (late_charged) or owed (unpaid) by a late capture.';
COMMENT ON COLUMN ledger_hold.expires_at IS 'Database clock instant after which the sweeper may expire a pending hold.';

-- ledger_entry: the journal. Append-only (0004 refuses UPDATE, DELETE and TRUNCATE). Every
-- balance change is one row with signed deltas and the balance after it, so the journal folds
-- to the cached balance and each row chains onto the previous one of the same account
-- (account_version 1, 2, 3, ... with no gaps). Idempotency keys of grants, adjustments and
-- clawbacks are unique across all accounts.
CREATE TABLE ledger_entry (
    entry_id        bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id      uuid        NOT NULL,
    account_version bigint      NOT NULL CHECK (account_version > 0),
    kind            text        NOT NULL CHECK (kind IN ('grant', 'hold', 'capture', 'release', 'expire',
                                                         'late_charge', 'adjust', 'clawback')),
    amount          bigint      NOT NULL CHECK (amount > 0),
    available_delta bigint      NOT NULL,
    held_delta      bigint      NOT NULL,
    available_after bigint      NOT NULL CHECK (available_after >= 0),
    held_after      bigint      NOT NULL CHECK (held_after >= 0),
    hold_id         uuid,
    idempotency_key text        CHECK (length(idempotency_key) BETWEEN 1 AND 200),
    source          text        NOT NULL DEFAULT '' CHECK (length(source) <= 200),
    memo            text        NOT NULL DEFAULT '' CHECK (length(memo) <= 1000),
    created_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT ledger_entry_shape CHECK (CASE kind
        WHEN 'grant' THEN available_delta = amount AND held_delta = 0
                          AND idempotency_key IS NOT NULL AND hold_id IS NULL
        WHEN 'adjust' THEN available_delta IN (amount, -amount) AND held_delta = 0
                          AND idempotency_key IS NOT NULL AND hold_id IS NULL
        WHEN 'clawback' THEN available_delta BETWEEN -amount AND 0 AND held_delta = 0
                          AND idempotency_key IS NOT NULL AND hold_id IS NULL
        WHEN 'hold' THEN available_delta = -amount AND held_delta = amount
                          AND hold_id IS NOT NULL AND idempotency_key IS NULL
        WHEN 'capture' THEN held_delta < 0 AND available_delta = -held_delta - amount
                          AND available_delta >= 0 AND hold_id IS NOT NULL AND idempotency_key IS NULL
        WHEN 'release' THEN available_delta = amount AND held_delta = -amount
                          AND hold_id IS NOT NULL AND idempotency_key IS NULL
        WHEN 'expire' THEN available_delta = amount AND held_delta = -amount
                          AND hold_id IS NOT NULL AND idempotency_key IS NULL
        WHEN 'late_charge' THEN available_delta = -amount AND held_delta = 0
                          AND hold_id IS NOT NULL AND idempotency_key IS NULL
    END)
);

-- One entry per (account, version): the chain cannot fork, and the newest entry of an account
-- is one index probe away (ledger_check(), the user's journal page).
CREATE UNIQUE INDEX ledger_entry_account_version ON ledger_entry (account_id, account_version);
-- Every key is credited at most once, whatever the account.
CREATE UNIQUE INDEX ledger_entry_idempotency_key ON ledger_entry (idempotency_key)
    WHERE idempotency_key IS NOT NULL;

COMMENT ON TABLE ledger_entry IS
    'Append-only journal of every balance change; folds to ledger_account (see ledger_audit()).';
COMMENT ON COLUMN ledger_entry.account_version IS 'Position of the entry in its account''s chain: 1, 2, 3, ...';
COMMENT ON COLUMN ledger_entry.kind IS 'grant | hold | capture | release | expire | late_charge | adjust | clawback';
COMMENT ON COLUMN ledger_entry.amount IS
    'Credits the entry is about: granted, held, captured, released, charged, |adjust delta|, or clawback requested.';
COMMENT ON COLUMN ledger_entry.available_delta IS 'Signed change of available.';
COMMENT ON COLUMN ledger_entry.held_delta IS 'Signed change of held.';
COMMENT ON COLUMN ledger_entry.available_after IS 'available after this entry.';
COMMENT ON COLUMN ledger_entry.held_after IS 'held after this entry.';
COMMENT ON COLUMN ledger_entry.hold_id IS 'The hold a hold/capture/release/expire/late_charge entry belongs to.';
COMMENT ON COLUMN ledger_entry.idempotency_key IS 'Caller key of a grant, adjust or clawback; globally unique.';
COMMENT ON COLUMN ledger_entry.source IS 'Where credits came from (grant, clawback) or the acting admin (adjust).';
COMMENT ON COLUMN ledger_entry.memo IS 'Free text; the required reason of an adjustment.';
