-- Catalogue: brands, affiliates, campaigns and short links, as created through
-- the admin API. Each change inserts a new row with a higher `version`;
-- ReplacingMergeTree keeps the latest. Read with FINAL (or argMax by version).

CREATE TABLE IF NOT EXISTS brands
(
    brand_id UUID,
    name String,
    jurisdiction_name String,
    restricted_countries Array(FixedString(2)),
    block_unknown_country UInt8,
    ip_storage Enum8('full' = 1, 'truncated' = 2),
    created_at DateTime,
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY brand_id;

CREATE TABLE IF NOT EXISTS affiliates
(
    affiliate_id UUID,
    name String,
    parent_affiliate_id Nullable(UUID),
    traffic_types Array(String),
    created_at DateTime,
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY affiliate_id;

CREATE TABLE IF NOT EXISTS campaigns
(
    campaign_id UUID,
    brand_id UUID,
    name String,
    created_at DateTime,
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY campaign_id;

CREATE TABLE IF NOT EXISTS links
(
    link_code String,
    brand_id UUID,
    owner_affiliate_id UUID,
    campaign_id UUID,
    destination_template String,
    allowed_countries Array(FixedString(2)),
    blocked_countries Array(FixedString(2)),
    is_active UInt8,
    created_at DateTime,
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY link_code;
