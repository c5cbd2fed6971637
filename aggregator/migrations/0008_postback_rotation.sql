-- Postback secret rotations (docs/clickhouse.md). A brand's postback secret
-- is derived from the server's postback key, the brand id and a
-- generation (0 until the first rotation). A rotation starts the next
-- generation; the previous one is still accepted until
-- `previous_valid_until_ms` (the overlap the operator chose), so brands can
-- switch their URLs without losing postbacks. Nothing secret is stored.
CREATE TABLE IF NOT EXISTS postback_secret_rotations
(
    brand_id UUID,
    generation UInt32,
    rotated_at_ms UInt64,
    previous_valid_until_ms UInt64
)
ENGINE = ReplacingMergeTree()
ORDER BY (brand_id, generation);
