-- Brand events (registrations, KYC, deposits, …), players, attributions and
-- API keys. Every table is keyed so that a replayed write collapses into the
-- same row; read with FINAL (or the *_latest views) for exact results.

-- API keys: only a SHA-256 of each token is stored; the token is shown once.
CREATE TABLE IF NOT EXISTS api_keys
(
    key_id String,
    token_sha256 String,
    scope Enum8('brand' = 1, 'affiliate' = 2),
    subject_id UUID,
    created_at DateTime,
    revoked UInt8,
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY key_id;

-- Every event a brand reported, one row per (brand, brand event id). The
-- typed columns are filled for the event types they belong to (0 / '' else);
-- `payload` keeps the event as received (canonical JSON) and
-- `payload_sha256` decides whether a replay is identical.
CREATE TABLE IF NOT EXISTS player_events
(
    brand_id UUID,
    event_id String,
    event_type Enum8('registration' = 1, 'kyc' = 2, 'deposit' = 3, 'withdrawal' = 4, 'game_activity' = 5, 'bonus' = 6, 'chargeback' = 7, 'responsible_gaming' = 8),
    occurred_at DateTime,
    occurred_at_ms UInt64,
    received_at DateTime,
    source Enum8('api' = 1, 'postback' = 2),
    player_id UUID,
    brand_player_id String,
    country FixedString(2),
    click_ids Array(UUID),
    kyc_status String,
    amount_minor Int64,
    currency FixedString(3),
    stakes_minor Int64,
    wins_minor Int64,
    game String,
    provider String,
    activity_day Date,
    rg_flag String,
    rg_active UInt8,
    reference_event_id String,
    payload_sha256 String,
    payload String,
    response String
)
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (brand_id, event_id);

-- Brand player ids and the global player id they map to.
CREATE TABLE IF NOT EXISTS players
(
    player_id UUID,
    brand_id UUID,
    brand_player_id String,
    player_ref_sha256 String,
    registered_at DateTime,
    country FixedString(2),
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (brand_id, brand_player_id);

-- The attribution of each registered player: who gets credit, by which
-- model and rules version, and whether it is final (KYC).
CREATE TABLE IF NOT EXISTS attributions
(
    brand_id UUID,
    player_id UUID,
    brand_player_id String,
    registration_event_id String,
    status Enum8('pending_kyc' = 1, 'final' = 2, 'rejected' = 3, 'unattributed' = 4),
    reason String,
    model String,
    rules_version String,
    window_days UInt32,
    credit_affiliate_ids Array(UUID),
    credit_sub_affiliate_ids Array(String),
    credit_campaign_ids Array(UUID),
    credit_click_ids Array(UUID),
    credit_bps Array(UInt32),
    decision String,
    decided_at DateTime,
    decided_at_ms UInt64,
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (brand_id, player_id);

-- Human clicks by device fingerprint, for finding a player's other clicks
-- on the same brand from the same device (multi-touch attribution). It
-- carries what stitching reads, so the lookup is one primary-key range.
CREATE MATERIALIZED VIEW IF NOT EXISTS clicks_by_fingerprint
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(clicked_at)
ORDER BY (brand_id, device_fingerprint, clicked_at, click_id)
AS SELECT brand_id, device_fingerprint, clicked_at, clicked_at_ms, click_id,
    affiliate_id, sub_affiliate_id, campaign_id, link_code, country, is_bot, is_duplicate
FROM clicks
WHERE is_bot = 0;
