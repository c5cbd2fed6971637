-- Commissions: the append-only commission ledger, the NGR statements behind
-- it, period closes, the commission configuration (deals, NGR formulas, FX
-- rates, each versioned) and the commission job's run log. Written only by
-- the commission job and the commission admin API (src/commission_job.rs
-- through src/store/ledger.rs); see docs/commissions.md and
-- docs/clickhouse.md.

-- One row per ledger entry; never updated, never deleted. Every column is a
-- function of the entry (no insert time, no run id), so a replayed write is
-- byte for byte the same row. The sorting key ends with the SHA-256 of the
-- entry's JSON: identical replays share the key and collapse, while two
-- different rows claiming one entry_id (two writers racing on a stale
-- ledger) keep distinct keys, never collapse, and make the next run fail
-- loudly instead of silently keeping one of them. Not partitioned, so one
-- INSERT of a run's entries is one part: appended whole or not at all.
CREATE TABLE IF NOT EXISTS commission_ledger
(
    entry_id UUID,
    kind Enum8('accrual' = 1, 'adjustment' = 2, 'reversal' = 3, 'payout' = 4),
    affiliate_id UUID,
    slot_type Enum8('cpa' = 1, 'cpa_clawback' = 2, 'rev_share' = 3, 'rev_share_clawback' = 4, 'override' = 5, 'payout' = 6),
    slot String,
    revision UInt32,
    amount_minor Int64,
    currency FixedString(3),
    slot_total_minor Int64,
    gate Enum8('final' = 1, 'awaiting_kyc' = 2),
    activity_month Date,
    booked_in Date,
    hold_days UInt32,
    deal_version Nullable(UInt32),
    player_id Nullable(UUID),
    brand_ids Array(UUID),
    rules_versions Array(String),
    formula_brand_ids Array(UUID),
    formula_versions Array(UInt32),
    fx_versions Array(UInt32),
    event_brand_ids Array(UUID),
    event_ids Array(String),
    statement_ids Array(UUID),
    reference_ids Array(UUID),
    reason String,
    reason_json String,
    detail String,
    entry_json String,
    entry_sha256 String
)
ENGINE = ReplacingMergeTree()
ORDER BY (affiliate_id, entry_id, entry_sha256);

-- The ledger with identical replays collapsed (what BI should read).
CREATE VIEW IF NOT EXISTS commission_ledger_unique AS SELECT * FROM commission_ledger FINAL;

-- NGR statements: how one player's NGR at one brand in one month was
-- reached, line by line. Immutable: statement_id is a UUIDv5 of the
-- content, so a late event or a new formula version gives a new statement
-- (the old one stays). RevShare ledger rows name the statements behind them
-- (commission_ledger.statement_ids).
CREATE TABLE IF NOT EXISTS ngr_statements
(
    statement_id UUID,
    player_id UUID,
    brand_id UUID,
    month Date,
    formula_version UInt32,
    currency FixedString(3),
    deposits_minor Int64,
    ggr_minor Int64,
    stakes_minor Int64,
    wins_minor Int64,
    bonus_cost_minor Int64,
    chargebacks_minor Int64,
    payment_fee_minor Int64,
    payment_fee_bps UInt32,
    tax_levy_minor Int64,
    tax_bps UInt32,
    net_before_admin_fee_minor Int64,
    admin_fee_minor Int64,
    admin_fee_bps UInt32,
    ngr_minor Int64,
    event_ids Array(String),
    lines String,
    statement_json String,
    computed_at DateTime,
    computed_at_ms UInt64
)
ENGINE = ReplacingMergeTree()
ORDER BY (brand_id, player_id, month, statement_id);

-- Period closes: a month is closed once, in order; the first recorded close
-- of a month is the one that counts.
CREATE TABLE IF NOT EXISTS commission_period_closes
(
    month Date,
    closed_at DateTime,
    closed_at_ms UInt64,
    recorded_at DateTime,
    recorded_at_ms UInt64
)
ENGINE = MergeTree()
ORDER BY (month, recorded_at_ms);

-- Deals, one JSON document per affiliate (docs/commissions.md "Deals").
-- Versions are append-only: each stored document keeps every earlier
-- version unchanged, so the row with the highest latest_version is the
-- affiliate's deal and the older rows are its history.
CREATE TABLE IF NOT EXISTS commission_deals
(
    affiliate_id UUID,
    latest_version UInt32,
    currency FixedString(3),
    deal_json String,
    stored_at DateTime,
    stored_at_ms UInt64
)
ENGINE = ReplacingMergeTree()
ORDER BY (affiliate_id, latest_version);

-- NGR formulas, one JSON document per brand, versioned like deals.
CREATE TABLE IF NOT EXISTS commission_ngr_formulas
(
    brand_id UUID,
    latest_version UInt32,
    formula_json String,
    stored_at DateTime,
    stored_at_ms UInt64
)
ENGINE = ReplacingMergeTree()
ORDER BY (brand_id, latest_version);

-- FX tables: per month, versioned; one row per rate. The highest version of
-- a month is the table that converts that month's amounts: 1 unit of
-- from_currency = numerator / denominator units of to_currency.
CREATE TABLE IF NOT EXISTS commission_fx_rates
(
    month Date,
    version UInt32,
    from_currency FixedString(3),
    to_currency FixedString(3),
    numerator Int64,
    denominator Int64,
    stored_at DateTime,
    stored_at_ms UInt64
)
ENGINE = ReplacingMergeTree()
ORDER BY (month, version, from_currency, to_currency);

-- One row per commission job run and payout run: what it appended (or why
-- it failed).
CREATE TABLE IF NOT EXISTS commission_runs
(
    run_id UUID,
    kind Enum8('job' = 1, 'payout' = 2),
    started_at DateTime,
    started_at_ms UInt64,
    finished_at_ms UInt64,
    now_ms UInt64,
    players UInt32,
    skipped_players UInt32,
    prior_entries UInt32,
    entries_appended UInt32,
    statements_appended UInt32,
    entry_ids Array(UUID),
    error String
)
ENGINE = MergeTree()
PARTITION BY toYYYYMM(started_at)
ORDER BY (started_at_ms, run_id);
