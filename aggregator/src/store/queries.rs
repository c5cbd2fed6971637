//! Reads and single-row writes: the catalogue (brands, affiliates, campaigns,
//! links) and click lookups. Catalogue writes are one INSERT each and return
//! only once ClickHouse has stored the row.

use clickstitch_shared::ClickId;

use super::rows::{AffiliateRow, ApiKeyRow, BrandRow, CampaignRow, ClickRow, CorruptRow, LinkRow};
use super::{Store, StoreError};
use crate::catalog::{Affiliate, Brand, Campaign, Link};

/// Everything in the catalogue, latest version of each entity.
#[derive(Debug, Default)]
pub struct CatalogueSnapshot {
    /// Brands.
    pub brands: Vec<Brand>,
    /// Affiliates.
    pub affiliates: Vec<Affiliate>,
    /// Campaigns.
    pub campaigns: Vec<Campaign>,
    /// Links.
    pub links: Vec<Link>,
}

fn keep_valid<R, T: TryFrom<R, Error = CorruptRow>>(rows: Vec<R>) -> Vec<T> {
    rows.into_iter()
        .filter_map(|r| {
            T::try_from(r)
                .map_err(|e| tracing::error!(error = %e, "skipping corrupt catalogue row"))
                .ok()
        })
        .collect()
}

impl Store {
    async fn insert_one<R>(&self, table: &str, row: &R) -> Result<(), StoreError>
    where
        R: clickhouse::RowOwned + clickhouse::RowWrite,
    {
        let t = Some(self.timeout());
        let mut insert = self.client().insert::<R>(table).await?.with_timeouts(t, t);
        insert.write(row).await?;
        insert.end().await?;
        Ok(())
    }

    /// Stores a brand (new or a new version).
    pub async fn save_brand(&self, brand: &Brand) -> Result<(), StoreError> {
        self.insert_one("brands", &BrandRow::from(brand)).await
    }

    /// Stores an affiliate.
    pub async fn save_affiliate(&self, affiliate: &Affiliate) -> Result<(), StoreError> {
        self.insert_one("affiliates", &AffiliateRow::from(affiliate))
            .await
    }

    /// Stores a campaign.
    pub async fn save_campaign(&self, campaign: &Campaign) -> Result<(), StoreError> {
        self.insert_one("campaigns", &CampaignRow::from(campaign))
            .await
    }

    /// Stores a link.
    pub async fn save_link(&self, link: &Link) -> Result<(), StoreError> {
        self.insert_one("links", &LinkRow::from(link)).await
    }

    /// Stores an API key (new, or a new version when revoked).
    pub async fn save_api_key(&self, key: &crate::keys::ApiKey) -> Result<(), StoreError> {
        self.insert_one("api_keys", &ApiKeyRow::from(key)).await
    }

    /// Loads every API key (latest versions).
    pub async fn load_api_keys(&self) -> Result<Vec<crate::keys::ApiKey>, StoreError> {
        let rows: Vec<ApiKeyRow> = self
            .client()
            .query("SELECT ?fields FROM api_keys FINAL")
            .fetch_all()
            .await?;
        Ok(keep_valid(rows))
    }

    /// Loads the whole catalogue (latest versions).
    pub async fn load_catalogue(&self) -> Result<CatalogueSnapshot, StoreError> {
        let c = self.client();
        let brands: Vec<BrandRow> = c
            .query("SELECT ?fields FROM brands FINAL")
            .fetch_all()
            .await?;
        let affiliates: Vec<AffiliateRow> = c
            .query("SELECT ?fields FROM affiliates FINAL")
            .fetch_all()
            .await?;
        let campaigns: Vec<CampaignRow> = c
            .query("SELECT ?fields FROM campaigns FINAL")
            .fetch_all()
            .await?;
        let links: Vec<LinkRow> = c
            .query("SELECT ?fields FROM links FINAL")
            .fetch_all()
            .await?;
        Ok(CatalogueSnapshot {
            brands: keep_valid(brands),
            affiliates: keep_valid(affiliates),
            campaigns: keep_valid(campaigns),
            links: keep_valid(links),
        })
    }

    /// Looks up one stored click (deduplicated) by id, using the timestamp in
    /// the id to hit one partition and one granule range.
    pub async fn find_click(&self, id: ClickId) -> Result<Option<ClickRow>, StoreError> {
        let secs = id.timestamp_ms() / 1000;
        let row = self
            .client()
            .query(
                "SELECT ?fields FROM clicks FINAL \
                 WHERE clicked_at = toDateTime(?) AND click_id = toUUID(?) LIMIT 1",
            )
            .bind(secs)
            .bind(id.to_string())
            .fetch_optional::<ClickRow>()
            .await?;
        Ok(row)
    }
}

const CLICK_SUMMARY: &str = "click_id, clicked_at_ms, brand_id, affiliate_id, sub_affiliate_id, \
    campaign_id, link_code, country, device_fingerprint, is_bot, is_duplicate";

fn uuid_list(ids: &[ClickId]) -> String {
    ids.iter()
        .map(|id| format!("toUUID('{id}')"))
        .collect::<Vec<_>>()
        .join(",")
}

fn second_list(ids: &[ClickId]) -> String {
    let mut secs: Vec<u64> = ids.iter().map(|id| id.timestamp_ms() / 1000).collect();
    secs.sort_unstable();
    secs.dedup();
    secs.iter()
        .map(|s| format!("toDateTime({s})"))
        .collect::<Vec<_>>()
        .join(",")
}

impl Store {
    /// The clicks with these ids, whatever their brand. Ids and times come
    /// from parsed `ClickId`s (no user text reaches the SQL); the times carried
    /// in the ids select the partitions and key ranges.
    pub async fn find_clicks(
        &self,
        brand: Option<clickstitch_shared::BrandId>,
        ids: &[ClickId],
    ) -> Result<Vec<super::rows::ClickSummaryRow>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let brand_filter = brand
            .map(|b| format!("brand_id = toUUID('{b}') AND "))
            .unwrap_or_default();
        let sql = format!(
            "SELECT {CLICK_SUMMARY} FROM clicks FINAL WHERE {brand_filter}clicked_at IN ({}) AND click_id IN ({})",
            second_list(ids),
            uuid_list(ids)
        );
        Ok(self.client().query_raw(&sql).fetch_all().await?)
    }

    /// Human clicks on `brand` with one of `fingerprints` between the two
    /// times (inclusive), via the `clicks_by_fingerprint` index.
    pub async fn find_clicks_by_fingerprint(
        &self,
        brand: clickstitch_shared::BrandId,
        fingerprints: &[clickstitch_shared::fingerprint::Hash128],
        from_ms: u64,
        to_ms: u64,
        limit: usize,
    ) -> Result<Vec<super::rows::ClickSummaryRow>, StoreError> {
        if fingerprints.is_empty() {
            return Ok(Vec::new());
        }
        let fps = fingerprints
            .iter()
            .map(|f| format!("'{f}'"))
            .collect::<Vec<_>>()
            .join(",");
        let sql = format!(
            "SELECT {CLICK_SUMMARY} FROM clicks FINAL WHERE brand_id = toUUID('{brand}') \
             AND (clicked_at, click_id) IN (\
                SELECT clicked_at, click_id FROM clicks_by_fingerprint \
                WHERE brand_id = toUUID('{brand}') AND device_fingerprint IN ({fps}) \
                AND clicked_at BETWEEN toDateTime({}) AND toDateTime({}) \
                AND clicked_at_ms BETWEEN {from_ms} AND {to_ms}) LIMIT {limit}",
            from_ms / 1000,
            to_ms / 1000,
        );
        Ok(self.client().query_raw(&sql).fetch_all().await?)
    }

    /// The stored hash and response of a brand's event id, if any.
    pub async fn find_event(
        &self,
        brand: clickstitch_shared::BrandId,
        event_id: &str,
    ) -> Result<Option<super::rows::StoredEventRow>, StoreError> {
        Ok(self
            .client()
            .query("SELECT payload_sha256, response FROM player_events FINAL WHERE brand_id = toUUID(?) AND event_id = ? LIMIT 1")
            .bind(brand.to_string())
            .bind(event_id)
            .fetch_optional()
            .await?)
    }

    /// The global id of a brand's player, if the player registered.
    pub async fn find_player(
        &self,
        brand: clickstitch_shared::BrandId,
        brand_player_id: &str,
    ) -> Result<Option<uuid::Uuid>, StoreError> {
        #[derive(clickhouse::Row, serde::Deserialize)]
        struct Id {
            #[serde(with = "clickhouse::serde::uuid")]
            player_id: uuid::Uuid,
        }
        Ok(self
            .client()
            .query("SELECT player_id FROM players FINAL WHERE brand_id = toUUID(?) AND brand_player_id = ? LIMIT 1")
            .bind(brand.to_string())
            .bind(brand_player_id)
            .fetch_optional::<Id>()
            .await?
            .map(|r| r.player_id))
    }

    /// The latest attribution of a player, if any.
    pub async fn find_attribution(
        &self,
        brand: clickstitch_shared::BrandId,
        player: uuid::Uuid,
    ) -> Result<Option<super::rows::AttributionRow>, StoreError> {
        Ok(self
            .client()
            .query("SELECT ?fields FROM attributions FINAL WHERE brand_id = toUUID(?) AND player_id = toUUID(?) LIMIT 1")
            .bind(brand.to_string())
            .bind(player.to_string())
            .fetch_optional()
            .await?)
    }
}
