//! Reads and single-row writes: the catalogue (brands, affiliates, campaigns,
//! links) and click lookups. Catalogue writes are one INSERT each and return
//! only once ClickHouse has stored the row.

use std::collections::HashMap;

use clickhouse::Row;
use serde::Deserialize;
use uuid::Uuid;

use clickstitch_shared::ClickId;

use super::lookups::sql_string;

use super::rows::{AffiliateRow, ApiKeyRow, BrandRow, CampaignRow, CorruptRow, LinkRow};
use super::{Store, StoreError};
use crate::entities::catalog::{Affiliate, Brand, Campaign, Link};

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
    pub(super) async fn insert_one<R>(&self, table: &str, row: &R) -> Result<(), StoreError>
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
    pub async fn save_api_key(
        &self,
        key: &crate::entities::credentials::ApiKey,
    ) -> Result<(), StoreError> {
        self.insert_one("api_keys", &ApiKeyRow::from(key)).await
    }

    /// Stores a postback secret rotation.
    pub async fn save_postback_rotation(
        &self,
        rotation: &crate::entities::credentials::PostbackRotation,
    ) -> Result<(), StoreError> {
        self.insert_one(
            "postback_secret_rotations",
            &PostbackRotationRow {
                brand_id: rotation.brand.as_uuid(),
                generation: rotation.generation,
                rotated_at_ms: rotation.rotated_at_ms,
                previous_valid_until_ms: rotation.previous_valid_until_ms,
            },
        )
        .await
    }

    /// Every brand's latest postback secret rotation.
    pub async fn load_postback_rotations(
        &self,
    ) -> Result<Vec<crate::entities::credentials::PostbackRotation>, StoreError> {
        let rows: Vec<PostbackRotationRow> = self
            .client()
            .query(
                "SELECT brand_id, generation, rotated_at_ms, previous_valid_until_ms \
                 FROM postback_secret_rotations FINAL ORDER BY brand_id, generation DESC \
                 LIMIT 1 BY brand_id",
            )
            .fetch_all()
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| crate::entities::credentials::PostbackRotation {
                brand: clickstitch_shared::BrandId::from(r.brand_id),
                generation: r.generation,
                rotated_at_ms: r.rotated_at_ms,
                previous_valid_until_ms: r.previous_valid_until_ms,
            })
            .collect())
    }

    /// Loads every API key (latest versions).
    pub async fn load_api_keys(
        &self,
    ) -> Result<Vec<crate::entities::credentials::ApiKey>, StoreError> {
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
}

/// One fingerprint lookup (see [`Store::find_visitor_matches`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VisitorKey {
    /// Brand.
    pub brand_id: clickstitch_shared::BrandId,
    /// Visitor ids.
    pub visitors: Vec<clickstitch_shared::fingerprint::VisitorId>,
    /// From, Unix ms.
    pub from_ms: u64,
    /// To, Unix ms.
    pub to_ms: u64,
    /// At most this many clicks.
    pub limit: usize,
}

fn distinct(items: impl Iterator<Item = String>) -> String {
    let set: std::collections::BTreeSet<String> = items.collect();
    set.into_iter().collect::<Vec<_>>().join(",")
}

const CLICK_SUMMARY: &str = "click_id, clicked_at_ms, brand_id, affiliate_id, sub_affiliate_id, \
    campaign_id, link_code, country, device_fingerprint, visitor_id, is_bot, is_duplicate";

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
    /// The clicks with these ids, whatever their brand (to tell "another
    /// brand's click" from "no such click"). Ids and times come from parsed
    /// `ClickId`s (no user text reaches the SQL); the times carried in the
    /// ids select the partitions.
    pub async fn find_clicks_anywhere(
        &self,
        ids: &[ClickId],
    ) -> Result<Vec<super::rows::ClickSummaryRow>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT {CLICK_SUMMARY} FROM clicks WHERE clicked_at IN ({}) AND click_id IN ({}) LIMIT 1 BY click_id",
            second_list(ids),
            uuid_list(ids)
        );
        Ok(self.client().query_raw(&sql).fetch_all().await?)
    }

    /// For each query: the human clicks on its brand with one of its
    /// fingerprints between its two times (inclusive), at most `limit`, via
    /// the `clicks_by_fingerprint` index. One ClickHouse query for all.
    pub async fn find_visitor_matches(
        &self,
        queries: &[VisitorKey],
    ) -> Result<HashMap<VisitorKey, Vec<super::rows::ClickSummaryRow>>, StoreError> {
        let (Some(from), Some(to)) = (
            queries.iter().map(|q| q.from_ms).min(),
            queries.iter().map(|q| q.to_ms).max(),
        ) else {
            return Ok(HashMap::new());
        };
        let brands = distinct(queries.iter().map(|q| format!("toUUID('{}')", q.brand_id)));
        let fps = distinct(
            queries
                .iter()
                .flat_map(|q| q.visitors.iter().map(|f| format!("'{f}'"))),
        );
        let limit = queries.iter().map(|q| q.limit).max().unwrap_or(1);
        let sql = format!(
            "SELECT {CLICK_SUMMARY} FROM clicks_by_visitor \
             WHERE brand_id IN ({brands}) AND visitor_id IN ({fps}) \
             AND clicked_at BETWEEN toDateTime({}) AND toDateTime({}) \
             ORDER BY clicked_at_ms \
             LIMIT {} BY brand_id, visitor_id",
            from / 1000,
            to / 1000,
            limit + 1,
        );
        let rows: Vec<super::rows::ClickSummaryRow> =
            self.client().query_raw(&sql).fetch_all().await?;
        Ok(queries
            .iter()
            .map(|q| {
                let brand = q.brand_id.as_uuid();
                let mut hits: Vec<_> = rows
                    .iter()
                    .filter(|r| {
                        r.brand_id == brand
                            && (q.from_ms..=q.to_ms).contains(&r.clicked_at_ms)
                            && q.visitors.iter().any(|f| f.to_string() == r.visitor_id)
                    })
                    .cloned()
                    .collect();
                hits.truncate(q.limit);
                (q.clone(), hits)
            })
            .collect())
    }

    /// The stored hash and response of each `(brand, event id)` that exists.
    pub async fn find_events(
        &self,
        keys: &[(clickstitch_shared::BrandId, String)],
    ) -> Result<
        HashMap<(clickstitch_shared::BrandId, String), super::rows::StoredEventRow>,
        StoreError,
    > {
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        let brands = distinct(keys.iter().map(|(b, _)| format!("toUUID('{b}')")));
        let ids = distinct(keys.iter().map(|(_, e)| sql_string(e)));
        let sql = format!(
            "SELECT brand_id, event_id, payload_sha256, response FROM player_events \
             WHERE brand_id IN ({brands}) AND event_id IN ({ids}) LIMIT 1 BY brand_id, event_id"
        );
        let rows: Vec<super::rows::EventKeyRow> = self.client().query_raw(&sql).fetch_all().await?;
        let wanted: std::collections::HashSet<_> = keys.iter().collect();
        Ok(rows
            .into_iter()
            .map(|r| {
                let key = (clickstitch_shared::BrandId::from(r.brand_id), r.event_id);
                (
                    key,
                    super::rows::StoredEventRow {
                        payload_sha256: r.payload_sha256,
                        response: r.response,
                    },
                )
            })
            .filter(|(k, _)| wanted.contains(k))
            .collect())
    }

    /// The wallet currency of each `(brand, brand player id)` that has a
    /// stored money event: the currency of its earliest one (by
    /// `occurred_at_ms`, then event id).
    pub async fn find_wallets(
        &self,
        keys: &[(clickstitch_shared::BrandId, String)],
    ) -> Result<HashMap<(clickstitch_shared::BrandId, String), crate::money::Currency>, StoreError>
    {
        #[derive(Row, Deserialize)]
        struct WalletRow {
            #[serde(with = "clickhouse::serde::uuid")]
            brand_id: Uuid,
            brand_player_id: String,
            currency: [u8; 3],
        }
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        let brands = distinct(keys.iter().map(|(b, _)| format!("toUUID('{b}')")));
        let players = distinct(keys.iter().map(|(_, p)| sql_string(p)));
        let sql = format!(
            "SELECT brand_id, brand_player_id, currency FROM player_events \
             WHERE brand_id IN ({brands}) AND brand_player_id IN ({players}) \
             AND event_type IN ('deposit', 'withdrawal', 'game_activity', 'bonus', 'chargeback') \
             AND (brand_id, event_id) NOT IN (SELECT brand_id, voided_event_id FROM event_voids) \
             ORDER BY occurred_at_ms, event_id LIMIT 1 BY brand_id, brand_player_id"
        );
        let rows: Vec<WalletRow> = self.client().query_raw(&sql).fetch_all().await?;
        let wanted: std::collections::HashSet<_> = keys.iter().collect();
        Ok(rows
            .into_iter()
            .filter_map(|r| {
                let key = (
                    clickstitch_shared::BrandId::from(r.brand_id),
                    r.brand_player_id,
                );
                let currency = std::str::from_utf8(&r.currency)
                    .ok()
                    .and_then(|c| crate::money::Currency::parse(c).ok())?;
                wanted.contains(&key).then_some((key, currency))
            })
            .collect())
    }

    /// The clicks of each `(brand, click id)` that exists on that brand.
    pub async fn find_brand_clicks(
        &self,
        keys: &[(clickstitch_shared::BrandId, ClickId)],
    ) -> Result<
        HashMap<(clickstitch_shared::BrandId, ClickId), super::rows::ClickSummaryRow>,
        StoreError,
    > {
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        let ids: Vec<ClickId> = keys.iter().map(|(_, id)| *id).collect();
        let brands = distinct(keys.iter().map(|(b, _)| format!("toUUID('{b}')")));
        let sql = format!(
            "SELECT {CLICK_SUMMARY} FROM clicks WHERE brand_id IN ({brands}) AND clicked_at IN ({}) \
             AND click_id IN ({}) LIMIT 1 BY click_id",
            second_list(&ids),
            uuid_list(&ids)
        );
        let rows: Vec<super::rows::ClickSummaryRow> =
            self.client().query_raw(&sql).fetch_all().await?;
        let wanted: std::collections::HashSet<_> = keys.iter().collect();
        Ok(rows
            .into_iter()
            .filter_map(|r| {
                let key = (
                    clickstitch_shared::BrandId::from(r.brand_id),
                    ClickId::try_from(r.click_id).ok()?,
                );
                wanted.contains(&key).then_some((key, r))
            })
            .collect())
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

/// One device's number of stored human clicks on a brand (warm-up).
#[derive(Debug, Clone, clickhouse::Row, serde::Deserialize)]
pub struct VisitorClicksRow {
    /// Brand.
    #[serde(with = "clickhouse::serde::uuid")]
    pub brand_id: uuid::Uuid,
    /// Visitor id (hex).
    pub visitor_id: String,
    /// Human clicks since the requested time.
    pub clicks: u64,
}

/// A stored event's key (warm-up).
#[derive(Debug, Clone, clickhouse::Row, serde::Deserialize)]
pub struct EventKey {
    /// Brand.
    #[serde(with = "clickhouse::serde::uuid")]
    pub brand_id: uuid::Uuid,
    /// The brand's event id.
    pub event_id: String,
}

impl Store {
    /// Streams, per brand and device, the number of human clicks since
    /// `from_ms` (for warming the in-memory device filter).
    pub async fn each_visitor_click_count(
        &self,
        from_ms: u64,
        mut visit: impl FnMut(VisitorClicksRow),
    ) -> Result<u64, StoreError> {
        let sql = format!(
            "SELECT brand_id, visitor_id, count() AS clicks FROM clicks_by_visitor \
             WHERE clicked_at >= toDateTime({}) GROUP BY brand_id, visitor_id",
            from_ms / 1000
        );
        let mut cursor = self.client().query(&sql).fetch::<VisitorClicksRow>()?;
        let mut n = 0;
        while let Some(row) = cursor.next().await? {
            visit(row);
            n += 1;
        }
        Ok(n)
    }

    /// Streams the key of every stored brand event (for warming the
    /// in-memory event-id filter).
    pub async fn each_event_key(&self, mut visit: impl FnMut(EventKey)) -> Result<u64, StoreError> {
        let mut cursor = self
            .client()
            .query("SELECT brand_id, event_id FROM player_events")
            .fetch::<EventKey>()?;
        let mut n = 0;
        while let Some(row) = cursor.next().await? {
            visit(row);
            n += 1;
        }
        Ok(n)
    }
}

/// `postback_secret_rotations` row.
#[derive(Debug, Clone, clickhouse::Row, serde::Serialize, serde::Deserialize)]
struct PostbackRotationRow {
    #[serde(with = "clickhouse::serde::uuid")]
    brand_id: uuid::Uuid,
    generation: u32,
    rotated_at_ms: u64,
    previous_valid_until_ms: u64,
}
