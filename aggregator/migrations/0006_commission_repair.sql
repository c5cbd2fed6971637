-- What each commission job run could not compute, and what it held back
-- (docs/commissions.md, "Problems"). Every successful run appends one row
-- per problem it met; a problem is "still failing" when the latest
-- successful job run (commission_runs) has a row for it. Append-only.
CREATE TABLE IF NOT EXISTS commission_problems
(
    run_id UUID,
    run_at DateTime,
    run_at_ms UInt64,
    problem_key String,
    kind String,
    held String,
    player_id String,
    brand_id String,
    affiliate_id String,
    events Array(String),
    message String
)
ENGINE = MergeTree()
PARTITION BY toYYYYMM(run_at)
ORDER BY (problem_key, run_at_ms);

-- A brand voids or corrects one of its events (docs/commissions.md,
-- "Repairing an event"): the void itself is a `player_events` row of type
-- 'void' naming the original in `reference_event_id`; a correction is an
-- ordinary event of the original's type. Either way one row here says which
-- event no longer counts and which event took it out. The original stays
-- stored; the commission job leaves it out from then on. One void per
-- original (the intake refuses a second).
ALTER TABLE player_events MODIFY COLUMN event_type Enum8('registration' = 1, 'kyc' = 2, 'deposit' = 3, 'withdrawal' = 4, 'game_activity' = 5, 'bonus' = 6, 'chargeback' = 7, 'responsible_gaming' = 8, 'void' = 9);

CREATE TABLE IF NOT EXISTS event_voids
(
    brand_id UUID,
    voided_event_id String,
    by_event_id String,
    kind Enum8('void' = 1, 'correction' = 2),
    brand_player_id String,
    voided_at DateTime,
    voided_at_ms UInt64,
    reason String
)
ENGINE = ReplacingMergeTree()
ORDER BY (brand_id, voided_event_id);
