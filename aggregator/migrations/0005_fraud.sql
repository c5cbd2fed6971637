-- Fraud scoring: the score of every scored entity that scored above zero
-- (clicks) or was scored at all (registrations, first deposits), with the
-- signals behind it, and the operators' review decisions. Written by the
-- aggregator (src/quarantine.rs through src/store/fraud.rs); see
-- docs/fraud.md and docs/clickhouse.md.

-- One row per scored entity and scoring. A click with no signal (score 0)
-- has no row: absent means 0. An entity re-flagged later (a window signal
-- crossed its threshold after it arrived) gets a newer row with the same
-- key and `escalated_by` naming the entity that escalated it; read with
-- FINAL (or fraud_scores_latest) for the newest score per entity.
CREATE TABLE IF NOT EXISTS fraud_scores
(
    brand_id UUID,
    entity_kind Enum8('click' = 1, 'registration' = 2, 'first_deposit' = 3),
    entity_id String,
    brand_player_id String,
    affiliate_id Nullable(UUID),
    link_code String,
    occurred_at DateTime,
    occurred_at_ms UInt64,
    click_at_ms UInt64,
    ip String,
    device_fingerprint String,
    score UInt8,
    quarantined UInt8,
    policy_version String,
    signals String,
    escalated_by String,
    scored_at DateTime,
    scored_at_ms UInt64
)
ENGINE = ReplacingMergeTree(scored_at_ms)
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (brand_id, entity_kind, entity_id);

CREATE VIEW IF NOT EXISTS fraud_scores_latest AS SELECT * FROM fraud_scores FINAL;

-- Operators' decisions on quarantined entities; append-only. The first
-- decision per entity is binding (the API refuses a second one).
CREATE TABLE IF NOT EXISTS fraud_reviews
(
    review_id UUID,
    brand_id UUID,
    entity_kind Enum8('click' = 1, 'registration' = 2, 'first_deposit' = 3),
    entity_id String,
    brand_player_id String,
    decision Enum8('approved' = 1, 'rejected' = 2),
    reviewer String,
    credential String,
    note String,
    decided_at DateTime,
    decided_at_ms UInt64
)
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(decided_at)
ORDER BY (brand_id, entity_kind, entity_id, review_id);
