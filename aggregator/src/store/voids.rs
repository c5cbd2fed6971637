//! Event repair: the rows of `event_voids` (migration 0006) and the
//! lookups a void or correction needs (the original event's type and
//! player, an earlier void of it).
//!
//! Owns that SQL. Must not decide whether a repair is allowed (the
//! conversion service does) nor what a void means for commissions (the
//! commission job leaves voided events out).

use std::collections::BTreeSet;

use clickhouse::Row;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Store, StoreError};

/// One `event_voids` row: `voided_event_id` no longer counts because of
/// `by_event_id`.
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct VoidRow {
    /// The brand.
    #[serde(with = "clickhouse::serde::uuid")]
    pub brand_id: Uuid,
    /// The event taken out.
    pub voided_event_id: String,
    /// The void or correction that took it out.
    pub by_event_id: String,
    /// 1 void, 2 correction.
    pub kind: i8,
    /// The brand's player.
    pub brand_player_id: String,
    /// When the void arrived (seconds).
    pub voided_at: u32,
    /// When the void arrived (Unix ms).
    pub voided_at_ms: u64,
    /// The brand's reason (voids).
    pub reason: String,
}

/// What a repair needs to know about the event it names.
#[derive(Debug, Clone, PartialEq, Eq, Row, Deserialize)]
pub struct StoredEventMeta {
    /// `player_events.event_type` as text (`deposit`, …).
    pub event_type: String,
    /// The brand's player.
    pub brand_player_id: String,
}

impl Store {
    /// The type and player of a stored event, if it exists.
    pub async fn find_event_meta(
        &self,
        brand: Uuid,
        event_id: &str,
    ) -> Result<Option<StoredEventMeta>, StoreError> {
        Ok(self
            .client()
            .query(
                "SELECT toString(event_type) AS event_type, brand_player_id FROM player_events \
                 WHERE brand_id = toUUID(?) AND event_id = ? LIMIT 1",
            )
            .bind(brand.to_string())
            .bind(event_id)
            .fetch_optional()
            .await?)
    }

    /// The event that voided or corrected `event_id`, if any.
    pub async fn find_void(
        &self,
        brand: Uuid,
        event_id: &str,
    ) -> Result<Option<String>, StoreError> {
        Ok(self
            .client()
            .query(
                "SELECT by_event_id FROM event_voids FINAL \
                 WHERE brand_id = toUUID(?) AND voided_event_id = ? LIMIT 1",
            )
            .bind(brand.to_string())
            .bind(event_id)
            .fetch_optional()
            .await?)
    }

    /// Stores a void (durable when this returns).
    pub async fn save_void(&self, row: &VoidRow) -> Result<(), StoreError> {
        self.insert_all("event_voids", std::slice::from_ref(row))
            .await
    }

    /// Every voided or corrected event, as (brand, event id).
    pub async fn load_voided(&self) -> Result<BTreeSet<(Uuid, String)>, StoreError> {
        #[derive(Row, Deserialize)]
        struct Voided {
            #[serde(with = "clickhouse::serde::uuid")]
            brand_id: Uuid,
            voided_event_id: String,
        }
        let rows: Vec<Voided> = self
            .client()
            .query("SELECT brand_id, voided_event_id FROM event_voids FINAL")
            .fetch_all()
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| (r.brand_id, r.voided_event_id))
            .collect())
    }
}
