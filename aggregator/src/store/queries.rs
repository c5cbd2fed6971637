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
