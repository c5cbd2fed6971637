//! The reads of an incremental commission run: which brand players changed
//! since a watermark (new or replayed events, attribution decisions, fraud
//! scores and reviews, voids), and the facts and ledger rows of exactly
//! those players and affiliates.
//!
//! Owns that SQL. Must not decide what an incremental run recomputes (the
//! commission job and [`crate::commission::incremental`] do). Every id list
//! is spliced in as escaped literals; callers bound their size (a large
//! change set is a full run instead).

use std::collections::BTreeSet;

use clickhouse::Row;
use serde::Deserialize;
use uuid::Uuid;

use crate::commission::LedgerEntry;

use super::ledger::{FactEventRow, LedgerStoreError};
use super::lookups::sql_string;
use super::rows::AttributionRow;
use super::{Store, StoreError};

/// The columns of [`FactEventRow`], in its field order.
const FACT_COLUMNS: &str = "brand_id, event_id, event_type, occurred_at_ms, received_at, \
    brand_player_id, country, kyc_status, amount_minor, currency, stakes_minor, wins_minor, \
    rg_flag, rg_active, reference_event_id";

/// `(brand, brand player id)` pairs as a SQL tuple list.
fn pairs_sql(pairs: &BTreeSet<(Uuid, String)>) -> String {
    pairs
        .iter()
        .map(|(b, p)| format!("(toUUID('{b}'), {})", sql_string(p)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// UUIDs as a SQL list.
fn uuids_sql<'a>(ids: impl IntoIterator<Item = &'a Uuid>) -> String {
    ids.into_iter()
        .map(|u| format!("toUUID('{u}')"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Store {
    /// Brand players with anything new at or after `since_ms`: events
    /// stored, attribution rows written, fraud scores (escalations
    /// included) and reviews, voids.
    pub async fn changed_brand_players(
        &self,
        since_ms: u64,
    ) -> Result<BTreeSet<(Uuid, String)>, StoreError> {
        #[derive(Row, Deserialize)]
        struct Changed {
            #[serde(with = "clickhouse::serde::uuid")]
            brand_id: Uuid,
            brand_player_id: String,
        }
        let secs = since_ms / 1000;
        let sql = format!(
            "SELECT DISTINCT brand_id, brand_player_id FROM ( \
             SELECT brand_id, brand_player_id FROM player_events WHERE received_at >= toDateTime({secs}) \
             UNION ALL SELECT brand_id, brand_player_id FROM attributions WHERE version >= {since_ms} \
             UNION ALL SELECT brand_id, brand_player_id FROM fraud_scores WHERE scored_at_ms >= {since_ms} \
             UNION ALL SELECT brand_id, brand_player_id FROM fraud_reviews WHERE decided_at_ms >= {since_ms} \
             UNION ALL SELECT brand_id, brand_player_id FROM event_voids WHERE voided_at_ms >= {since_ms})"
        );
        let rows: Vec<Changed> = self.client().query(&sql).fetch_all().await?;
        Ok(rows
            .into_iter()
            .filter(|r| !r.brand_player_id.is_empty())
            .map(|r| (r.brand_id, r.brand_player_id))
            .collect())
    }

    /// The global player ids of brand players (from their attributions).
    pub async fn player_ids_of(
        &self,
        pairs: &BTreeSet<(Uuid, String)>,
    ) -> Result<BTreeSet<Uuid>, StoreError> {
        #[derive(Row, Deserialize)]
        struct Id {
            #[serde(with = "clickhouse::serde::uuid")]
            player_id: Uuid,
        }
        if pairs.is_empty() {
            return Ok(BTreeSet::new());
        }
        let sql = format!(
            "SELECT DISTINCT player_id FROM attributions \
             WHERE (brand_id, brand_player_id) IN ({})",
            pairs_sql(pairs)
        );
        // Spliced string literals: raw, so a `?` in an id is not a bind.
        let rows: Vec<Id> = self.client().query_raw(&sql).fetch_all().await?;
        Ok(rows.into_iter().map(|r| r.player_id).collect())
    }

    /// Every attribution row (latest version) of the global players
    /// `players`, at every brand.
    pub async fn attributions_of_players(
        &self,
        players: &BTreeSet<Uuid>,
    ) -> Result<Vec<AttributionRow>, StoreError> {
        if players.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT ?fields FROM attributions FINAL WHERE player_id IN ({})",
            uuids_sql(players)
        );
        Ok(self.client().query(&sql).fetch_all().await?)
    }

    /// The stored events of brand players that the commission facts need.
    /// Read without `FINAL` (which would merge the whole table): a row
    /// stored twice is the same event with the same content, and the
    /// engine's facts count an identical event once.
    pub async fn fact_events_of(
        &self,
        pairs: &BTreeSet<(Uuid, String)>,
    ) -> Result<Vec<FactEventRow>, StoreError> {
        if pairs.is_empty() {
            return Ok(Vec::new());
        }
        let brands: BTreeSet<Uuid> = pairs.iter().map(|(b, _)| *b).collect();
        let sql = format!(
            "SELECT {FACT_COLUMNS} FROM player_events WHERE brand_id IN ({}) \
             AND (brand_id, brand_player_id) IN ({}) AND event_type != 'withdrawal'",
            uuids_sql(&brands),
            pairs_sql(pairs)
        );
        Ok(self.client().query_raw(&sql).fetch_all().await?)
    }

    /// The ledger rows about `players` (their CPA slots and the overrides
    /// on them) or owned by `affiliates`, checked like
    /// [`Store::load_ledger`]. The caller keeps the slots in its scope.
    pub async fn load_ledger_of(
        &self,
        players: &BTreeSet<Uuid>,
        affiliates: &BTreeSet<Uuid>,
    ) -> Result<Vec<LedgerEntry>, LedgerStoreError> {
        let mut conditions = Vec::new();
        // As text: 18.16 does not compare a Nullable(UUID) with UUID
        // constants in IN.
        let texts = |ids: &BTreeSet<Uuid>| {
            ids.iter()
                .map(|u| format!("'{u}'"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        if !players.is_empty() {
            conditions.push(format!("toString(player_id) IN ({})", texts(players)));
        }
        if !affiliates.is_empty() {
            conditions.push(format!("toString(affiliate_id) IN ({})", texts(affiliates)));
        }
        if conditions.is_empty() {
            return Ok(Vec::new());
        }
        self.load_ledger_where(&format!(
            "kind != 'payout' AND ({})",
            conditions.join(" OR ")
        ))
        .await
    }

    /// How many distinct ledger entries other than payouts are stored (a
    /// guard: the job compares it with what it appended itself; replayed
    /// identical rows count once).
    pub async fn ledger_rows(&self) -> Result<u64, StoreError> {
        Ok(self
            .client()
            .query("SELECT uniqExact(entry_id) FROM commission_ledger WHERE kind != 'payout'")
            .fetch_one()
            .await?)
    }

    /// Which of `ids` are stored NGR statements.
    pub async fn stored_statements_among(
        &self,
        ids: &BTreeSet<Uuid>,
    ) -> Result<BTreeSet<Uuid>, StoreError> {
        #[derive(Row, Deserialize)]
        struct Id {
            #[serde(with = "clickhouse::serde::uuid")]
            statement_id: Uuid,
        }
        if ids.is_empty() {
            return Ok(BTreeSet::new());
        }
        let sql = format!(
            "SELECT DISTINCT statement_id FROM ngr_statements WHERE statement_id IN ({})",
            uuids_sql(ids)
        );
        let rows: Vec<Id> = self.client().query(&sql).fetch_all().await?;
        Ok(rows.into_iter().map(|r| r.statement_id).collect())
    }
}
