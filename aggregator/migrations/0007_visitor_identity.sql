-- High-entropy device identity (docs/fraud.md, "Which identity each rule
-- uses"; docs/attribution.md). The edge keeps a random first-party visitor
-- cookie per browser; brands may turn it off (consent) with
-- `brands.visitor_cookie = 0`. Clicks carry the cookie's value; stitching
-- finds a player's other clicks by it (clicks_by_visitor), and fraud scoring
-- keys multi-accounting on it or on the brand's own device id, recorded per
-- scored entity in `fraud_scores.device_key` (empty: no high-entropy
-- identity was known). The header fingerprint stays a weak signal only.
ALTER TABLE brands ADD COLUMN visitor_cookie UInt8 DEFAULT 1;

ALTER TABLE clicks ADD COLUMN visitor_id String DEFAULT '';

ALTER TABLE fraud_scores ADD COLUMN device_key String DEFAULT '';

-- Human clicks by visitor id, for finding a player's other clicks on the
-- same brand from the same browser (multi-touch attribution). Only clicks
-- that carry a visitor id.
CREATE MATERIALIZED VIEW IF NOT EXISTS clicks_by_visitor
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(clicked_at)
ORDER BY (brand_id, visitor_id, clicked_at, click_id)
AS SELECT brand_id, visitor_id, clicked_at, clicked_at_ms, click_id,
    device_fingerprint, affiliate_id, sub_affiliate_id, campaign_id, link_code, country, is_bot, is_duplicate
FROM clicks
WHERE is_bot = 0 AND visitor_id != '';

-- The `*_unique` views list the columns their table had when they were
-- created (ClickHouse 18.16 expands `*` then): recreated so that
-- `clicks_unique` has `visitor_id`. Views hold no data.
DROP TABLE IF EXISTS clicks_unique;

CREATE VIEW IF NOT EXISTS clicks_unique AS SELECT * FROM clicks FINAL;
