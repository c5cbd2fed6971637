-- Clicks (human and bot) and geo-blocked requests, as sent by the edge.
-- Idempotent by id: a replayed batch inserts identical rows with the same
-- sorting key, which ReplacingMergeTree collapses; read through the
-- `*_unique` views (FINAL) for exact counts before background merges run.

CREATE TABLE IF NOT EXISTS clicks
(
    click_id UUID,
    clicked_at DateTime,
    clicked_at_ms UInt64,
    received_at DateTime,
    brand_id UUID,
    affiliate_id UUID,
    sub_affiliate_id Nullable(UUID),
    campaign_id UUID,
    link_code String,
    sub1 String,
    sub2 String,
    sub3 String,
    sub4 String,
    sub5 String,
    country FixedString(2),
    region String,
    city String,
    asn UInt32,
    colo String,
    ip String,
    user_agent String,
    referrer String,
    accept_language String,
    device_fingerprint String,
    identity_hash String,
    is_bot UInt8,
    bot_reason Enum8('none' = 0, 'known_bot' = 1, 'head_request' = 2, 'empty_user_agent' = 3, 'link_preview' = 4),
    is_duplicate UInt8
)
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(clicked_at)
ORDER BY (brand_id, clicked_at, click_id)
SETTINGS index_granularity = 8192;

CREATE TABLE IF NOT EXISTS geo_blocked_clicks
(
    event_id UUID,
    blocked_at DateTime,
    blocked_at_ms UInt64,
    received_at DateTime,
    brand_id UUID,
    affiliate_id UUID,
    campaign_id UUID,
    link_code String,
    country FixedString(2),
    reason Enum8('jurisdiction_restricted' = 1, 'link_blocked' = 2, 'not_in_link_allow_list' = 3, 'unknown_country' = 4)
)
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(blocked_at)
ORDER BY (brand_id, blocked_at, event_id)
SETTINGS index_granularity = 8192;

CREATE VIEW IF NOT EXISTS clicks_unique AS SELECT * FROM clicks FINAL;

CREATE VIEW IF NOT EXISTS geo_blocked_clicks_unique AS SELECT * FROM geo_blocked_clicks FINAL;
