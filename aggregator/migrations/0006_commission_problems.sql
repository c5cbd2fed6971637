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
