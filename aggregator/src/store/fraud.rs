//! Fraud storage: the `fraud_scores` and `fraud_reviews` rows and every
//! query behind quarantine, review, escalation and the window baselines.
//!
//! Owns SQL only; the decisions (what is held, what a review does) belong
//! to [`crate::services::fraud::quarantine`]. Values reaching SQL text are UUIDs, numbers,
//! enum names chosen here, or strings escaped by [`sql_string`]; queries
//! that splice strings run with `query_raw` (a `?` in an id is no
//! placeholder).

use std::collections::HashMap;

use clickhouse::Row;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::lookups::sql_string;
use super::{Store, StoreError};

/// `Enum8` names of `entity_kind`.
pub mod kind {
    /// A click.
    pub const CLICK: i8 = 1;
    /// A registration.
    pub const REGISTRATION: i8 = 2;
    /// A first deposit.
    pub const FIRST_DEPOSIT: i8 = 3;
}

/// The `Enum8` name of an `entity_kind` value (ClickHouse 18.16 does not
/// compare an Enum key column with a number).
pub(super) fn kind_name(code: i8) -> &'static str {
    match code {
        kind::CLICK => "click",
        kind::REGISTRATION => "registration",
        _ => "first_deposit",
    }
}

/// `fraud_scores` row.
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct FraudScoreRow {
    #[serde(with = "clickhouse::serde::uuid")]
    pub brand_id: Uuid,
    pub entity_kind: i8,
    pub entity_id: String,
    pub brand_player_id: String,
    #[serde(with = "clickhouse::serde::uuid::option")]
    pub affiliate_id: Option<Uuid>,
    pub link_code: String,
    pub occurred_at: u32,
    pub occurred_at_ms: u64,
    pub click_at_ms: u64,
    pub ip: String,
    pub device_fingerprint: String,
    /// The high-entropy device key the device signals used (hex), empty
    /// when none was known.
    pub device_key: String,
    pub score: u8,
    pub quarantined: u8,
    pub policy_version: String,
    /// JSON array of `{signal, points, detail}`.
    pub signals: String,
    pub escalated_by: String,
    pub scored_at: u32,
    pub scored_at_ms: u64,
}

/// `fraud_reviews` row.
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct FraudReviewRow {
    #[serde(with = "clickhouse::serde::uuid")]
    pub review_id: Uuid,
    #[serde(with = "clickhouse::serde::uuid")]
    pub brand_id: Uuid,
    pub entity_kind: i8,
    pub entity_id: String,
    pub brand_player_id: String,
    /// 1 approved, 2 rejected.
    pub decision: i8,
    pub reviewer: String,
    pub credential: String,
    pub note: String,
    pub decided_at: u32,
    pub decided_at_ms: u64,
}

/// A click that an escalation or a population sweep finding may cover.
#[derive(Debug, Clone, PartialEq, Eq, Row, Deserialize)]
pub struct ScopeClickRow {
    #[serde(with = "clickhouse::serde::uuid")]
    pub click_id: Uuid,
    pub clicked_at_ms: u64,
    #[serde(with = "clickhouse::serde::uuid")]
    pub affiliate_id: Uuid,
    pub ip: String,
    pub asn: u32,
}

/// Human clicks per (brand, link, IP, minute), for the click baseline.
#[derive(Debug, Clone, PartialEq, Eq, Row, Deserialize)]
pub struct ClickCountRow {
    #[serde(with = "clickhouse::serde::uuid")]
    pub brand_id: Uuid,
    pub link_code: String,
    pub ip: String,
    pub minute_ms: u64,
    pub clicks: u64,
}

pub(super) fn select_scores(filter: &str) -> String {
    format!(
        "SELECT brand_id, entity_kind, entity_id, brand_player_id, affiliate_id, link_code, \
         occurred_at, occurred_at_ms, click_at_ms, ip, device_fingerprint, device_key, score, quarantined, \
         policy_version, signals, escalated_by, scored_at, scored_at_ms \
         FROM fraud_scores FINAL WHERE {filter}"
    )
}

impl Store {
    /// Stores a review decision (one INSERT, durable when it returns).
    pub async fn save_review(&self, row: &FraudReviewRow) -> Result<(), StoreError> {
        self.insert_one("fraud_reviews", row).await
    }

    /// Stores score rows now (outside the event writer: escalations).
    pub async fn save_scores(&self, rows: &[FraudScoreRow]) -> Result<(), StoreError> {
        self.insert_all("fraud_scores", rows).await
    }

    /// Every quarantined entity's newest score (all brands).
    pub async fn quarantined_scores(&self) -> Result<Vec<FraudScoreRow>, StoreError> {
        Ok(self
            .client()
            .query(&select_scores("quarantined = 1"))
            .fetch_all()
            .await?)
    }

    /// The newest scores of these entities of one brand and kind.
    pub async fn scores_of(
        &self,
        brand: Uuid,
        entity_kind: i8,
        ids: &[String],
    ) -> Result<Vec<FraudScoreRow>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let list = ids
            .iter()
            .map(|i| sql_string(i))
            .collect::<Vec<_>>()
            .join(",");
        let filter = format!(
            "brand_id = toUUID('{brand}') AND entity_kind = '{}' AND entity_id IN ({list})",
            kind_name(entity_kind)
        );
        Ok(self
            .client()
            .query(&select_scores(&filter))
            .fetch_all()
            .await?)
    }

    /// Scored registrations / first deposits of one brand in a time range
    /// (escalations and baselines).
    pub async fn scored_between(
        &self,
        brand: Option<Uuid>,
        entity_kind: i8,
        from_ms: u64,
        to_ms: u64,
    ) -> Result<Vec<FraudScoreRow>, StoreError> {
        let brand = brand
            .map(|b| format!("brand_id = toUUID('{b}') AND "))
            .unwrap_or_default();
        let filter = format!(
            "{brand}entity_kind = '{}' AND occurred_at BETWEEN toDateTime({}) AND toDateTime({}) \
             AND occurred_at_ms BETWEEN {from_ms} AND {to_ms}",
            kind_name(entity_kind),
            from_ms / 1000,
            to_ms / 1000 + 1
        );
        Ok(self
            .client()
            .query(&select_scores(&filter))
            .fetch_all()
            .await?)
    }

    /// Every review decision, oldest first.
    pub async fn reviews(&self) -> Result<Vec<FraudReviewRow>, StoreError> {
        Ok(self
            .client()
            .query(
                "SELECT review_id, brand_id, entity_kind, entity_id, brand_player_id, decision, \
                 reviewer, credential, note, decided_at, decided_at_ms FROM fraud_reviews FINAL \
                 ORDER BY decided_at_ms",
            )
            .fetch_all()
            .await?)
    }

    /// The decisions on one entity.
    pub async fn reviews_of(
        &self,
        brand: Uuid,
        entity_kind: i8,
        entity_id: &str,
    ) -> Result<Vec<FraudReviewRow>, StoreError> {
        let sql = format!(
            "SELECT review_id, brand_id, entity_kind, entity_id, brand_player_id, decision, \
             reviewer, credential, note, decided_at, decided_at_ms FROM fraud_reviews FINAL \
             WHERE brand_id = toUUID('{brand}') AND entity_kind = '{}' AND entity_id = {} \
             ORDER BY decided_at_ms",
            kind_name(entity_kind),
            sql_string(entity_id)
        );
        Ok(self.client().query(&sql).fetch_all().await?)
    }

    /// Human clicks of a brand's link between two times (escalation scope;
    /// the caller filters by network).
    pub async fn link_clicks_between(
        &self,
        brand: Uuid,
        link_code: &str,
        from_ms: u64,
        to_ms: u64,
    ) -> Result<Vec<ScopeClickRow>, StoreError> {
        let sql = format!(
            "SELECT click_id, clicked_at_ms, affiliate_id, ip, asn FROM clicks \
             WHERE brand_id = toUUID('{brand}') AND clicked_at BETWEEN toDateTime({}) AND toDateTime({}) \
             AND clicked_at_ms BETWEEN {from_ms} AND {to_ms} AND link_code = {} AND is_bot = 0 \
             LIMIT 1 BY click_id",
            from_ms / 1000,
            to_ms / 1000 + 1,
            sql_string(link_code)
        );
        Ok(self.client().query(&sql).fetch_all().await?)
    }

    /// Human clicks per (brand, link, IP, minute) in `[from_ms, to_ms)`.
    pub async fn click_counts_between(
        &self,
        from_ms: u64,
        to_ms: u64,
    ) -> Result<Vec<ClickCountRow>, StoreError> {
        let sql = format!(
            "SELECT brand_id, link_code, ip, toUInt64(toStartOfMinute(clicked_at)) * 1000 AS minute_ms, \
             count() AS clicks FROM (SELECT brand_id, link_code, ip, clicked_at FROM clicks \
             WHERE clicked_at >= toDateTime({}) AND clicked_at < toDateTime({}) \
             AND clicked_at_ms >= {from_ms} AND clicked_at_ms < {to_ms} AND is_bot = 0 AND ip != '' \
             LIMIT 1 BY click_id) GROUP BY brand_id, link_code, ip, minute_ms",
            from_ms / 1000,
            to_ms.div_ceil(1000)
        );
        Ok(self.client().query(&sql).fetch_all().await?)
    }

    /// Whether a brand's player has a stored deposit other than `except`.
    pub async fn has_other_deposit(
        &self,
        brand: Uuid,
        brand_player_id: &str,
        except: &str,
    ) -> Result<bool, StoreError> {
        let sql = format!(
            "SELECT count() FROM player_events WHERE brand_id = toUUID('{brand}') \
             AND brand_player_id = {} AND event_type = 'deposit' AND event_id != {}",
            sql_string(brand_player_id),
            sql_string(except)
        );
        let n: u64 = self.client().query(&sql).fetch_one().await?;
        Ok(n > 0)
    }

    /// Streams every (brand, player) with a stored deposit.
    pub async fn each_depositor(
        &self,
        mut visit: impl FnMut(Uuid, String),
    ) -> Result<u64, StoreError> {
        #[derive(Row, Deserialize)]
        struct Depositor {
            #[serde(with = "clickhouse::serde::uuid")]
            brand_id: Uuid,
            brand_player_id: String,
        }
        let mut cursor = self
            .client()
            .query(
                "SELECT DISTINCT brand_id, brand_player_id FROM player_events WHERE event_type = 'deposit'",
            )
            .fetch::<Depositor>()?;
        let mut n = 0;
        while let Some(d) = cursor.next().await? {
            visit(d.brand_id, d.brand_player_id);
            n += 1;
        }
        Ok(n)
    }
}

/// Reviews by entity, the first decision per entity only.
pub fn first_decisions(rows: Vec<FraudReviewRow>) -> HashMap<(Uuid, i8, String), FraudReviewRow> {
    let mut out = HashMap::new();
    for r in rows {
        out.entry((r.brand_id, r.entity_kind, r.entity_id.clone()))
            .or_insert(r);
    }
    out
}
