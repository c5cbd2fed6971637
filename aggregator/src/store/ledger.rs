//! Commission storage: the rows of migration 0004 (`commission_ledger`,
//! `ngr_statements`, `commission_period_closes`, `commission_deals`,
//! `commission_ngr_formulas`, `commission_fx_rates`, `commission_runs`),
//! their mapping from and to the commission engine's types, and the queries
//! the commission job and the commission API run — including the reads of
//! `player_events` and `attributions` that feed the engine.
//!
//! Owns the SQL and the row layouts of those tables; nothing else. Never
//! issues `ALTER … UPDATE/DELETE`: the ledger and the statements are only
//! ever appended to. Must not decide anything about commissions (the
//! engine in [`crate::commission`] does) nor serialise writers (the job in
//! [`crate::services::commission::job`] holds the single-writer lock around every
//! append).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use clickhouse::Row;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use clickstitch_shared::{AffiliateId, BrandId};

use crate::commission::ledger::Detail;
use crate::commission::revenue::LineKind;
use crate::commission::{
    Deal, EntryKind, FxBook, Gate, LedgerEntry, Month, NgrFormula, NgrStatement, PeriodCalendar,
    Slot, Timestamp,
};
use crate::money::{Currency, FxTable, Rate};
use crate::support::clock::secs;
use clickstitch_domain::units::DAY_MS;

use super::rows::AttributionRow;
use super::{Store, StoreError};

/// Why a commission read or write failed.
#[derive(Debug, thiserror::Error)]
pub enum LedgerStoreError {
    /// ClickHouse failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored row does not parse, or contradicts another row.
    #[error("stored {table} row {key} is invalid: {message}")]
    Corrupt {
        /// The table.
        table: &'static str,
        /// The row's key.
        key: String,
        /// What is wrong.
        message: String,
    },
}

impl LedgerStoreError {
    /// Whether retrying later may help (ClickHouse unavailable).
    pub fn is_retryable(&self) -> bool {
        matches!(self, LedgerStoreError::Store(e) if e.is_retryable())
    }
}

impl From<clickhouse::error::Error> for LedgerStoreError {
    fn from(e: clickhouse::error::Error) -> Self {
        LedgerStoreError::Store(e.into())
    }
}

#[allow(clippy::needless_pass_by_value)] // called with temporaries (errors, ids) of any type
fn corrupt(table: &'static str, key: impl ToString, message: impl ToString) -> LedgerStoreError {
    LedgerStoreError::Corrupt {
        table,
        key: key.to_string(),
        message: message.to_string(),
    }
}

/// A month as a ClickHouse `Date` (its first day, days since 1970).
pub fn month_to_date(m: Month) -> u16 {
    u16::try_from(m.start().unix_ms() / DAY_MS).unwrap_or(u16::MAX)
}

/// The month of a ClickHouse `Date`.
pub fn date_to_month(days: u16) -> Month {
    Timestamp::from_unix_ms(u64::from(days) * DAY_MS).month()
}

fn currency_bytes(c: Currency) -> [u8; 3] {
    let b = c.as_str().as_bytes();
    [b[0], b[1], b[2]]
}

fn parse_currency(b: &[u8; 3]) -> Result<Currency, String> {
    std::str::from_utf8(b)
        .map_err(|e| e.to_string())
        .and_then(|s| Currency::parse(s).map_err(|e| e.to_string()))
}

fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|e| unreachable!("commission types serialise: {e}"))
}

/// The brands an entry is about: the brand of a CPA slot (or of an
/// override's source), the brands of its events, of its NGR formulas and of
/// its RevShare lines. Empty for payouts (they span every brand). A brand
/// API key sees an entry only when this is exactly its brand.
pub fn brands_of(entry: &LedgerEntry) -> BTreeSet<BrandId> {
    fn slot_brands(slot: &Slot, out: &mut BTreeSet<BrandId>) {
        match slot {
            Slot::Cpa { brand, .. } | Slot::CpaClawback { brand, .. } => {
                out.insert(*brand);
            }
            Slot::Override { source, .. } => slot_brands(source, out),
            Slot::RevShare { .. } | Slot::RevShareClawback { .. } | Slot::Payout { .. } => {}
        }
    }
    let mut out = BTreeSet::new();
    slot_brands(&entry.slot, &mut out);
    out.extend(entry.events.iter().map(|e| e.brand));
    out.extend(entry.formula_versions.iter().map(|f| f.brand));
    match &entry.detail {
        Some(Detail::RevShare(m)) => out.extend(m.brands.iter().map(|b| b.brand)),
        Some(Detail::Difference(d)) => {
            out.extend(d.with.brands.iter().map(|b| b.brand));
            out.extend(d.without.brands.iter().map(|b| b.brand));
            out.extend(d.players.iter().map(|p| p.brand));
        }
        _ => {}
    }
    out
}

fn slot_type(slot: &Slot) -> i8 {
    match slot {
        Slot::Cpa { .. } => 1,
        Slot::CpaClawback { .. } => 2,
        Slot::RevShare { .. } => 3,
        Slot::RevShareClawback { .. } => 4,
        Slot::Override { .. } => 5,
        Slot::Payout { .. } => 6,
    }
}

/// `commission_ledger` row: the entry's JSON (the exact record, read back
/// by the job) plus flat columns for BI. Every column is a function of the
/// entry.
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct LedgerRow {
    #[serde(with = "clickhouse::serde::uuid")]
    pub entry_id: Uuid,
    pub kind: i8,
    #[serde(with = "clickhouse::serde::uuid")]
    pub affiliate_id: Uuid,
    pub slot_type: i8,
    pub slot: String,
    pub revision: u32,
    pub amount_minor: i64,
    pub currency: [u8; 3],
    pub slot_total_minor: i64,
    pub gate: i8,
    pub activity_month: u16,
    pub booked_in: u16,
    pub hold_days: u32,
    pub deal_version: Option<u32>,
    #[serde(with = "clickhouse::serde::uuid::option")]
    pub player_id: Option<Uuid>,
    #[serde(with = "clickhouse::serde::uuid_vec")]
    pub brand_ids: Vec<Uuid>,
    pub rules_versions: Vec<String>,
    #[serde(with = "clickhouse::serde::uuid_vec")]
    pub formula_brand_ids: Vec<Uuid>,
    pub formula_versions: Vec<u32>,
    pub fx_versions: Vec<u32>,
    #[serde(with = "clickhouse::serde::uuid_vec")]
    pub event_brand_ids: Vec<Uuid>,
    pub event_ids: Vec<String>,
    #[serde(with = "clickhouse::serde::uuid_vec")]
    pub statement_ids: Vec<Uuid>,
    #[serde(with = "clickhouse::serde::uuid_vec")]
    pub reference_ids: Vec<Uuid>,
    pub reason: String,
    pub reason_json: String,
    pub detail: String,
    pub entry_json: String,
    pub entry_sha256: String,
}

impl From<&LedgerEntry> for LedgerRow {
    fn from(e: &LedgerEntry) -> Self {
        let entry_json = to_json(e);
        let reason_json = to_json(&e.reason);
        let reason = serde_json::from_str::<serde_json::Value>(&reason_json)
            .ok()
            .and_then(|v| v.get("code").and_then(|c| c.as_str()).map(str::to_owned))
            .unwrap_or_default();
        LedgerRow {
            entry_id: e.id,
            kind: match e.kind {
                EntryKind::Accrual => 1,
                EntryKind::Adjustment => 2,
                EntryKind::Reversal => 3,
                EntryKind::Payout => 4,
            },
            affiliate_id: e.affiliate.as_uuid(),
            slot_type: slot_type(&e.slot),
            slot: to_json(&e.slot),
            revision: e.revision,
            amount_minor: e.amount.minor(),
            currency: currency_bytes(e.amount.currency()),
            slot_total_minor: e.slot_total.minor(),
            gate: match e.gate {
                Gate::Final => 1,
                Gate::AwaitingKyc => 2,
            },
            activity_month: month_to_date(e.activity_month),
            booked_in: month_to_date(e.booked_in),
            hold_days: e.hold_days,
            deal_version: e.deal_version,
            player_id: e.slot.player().map(|p| p.as_uuid()),
            brand_ids: brands_of(e).into_iter().map(|b| b.as_uuid()).collect(),
            rules_versions: e.rules_versions.clone(),
            formula_brand_ids: e
                .formula_versions
                .iter()
                .map(|f| f.brand.as_uuid())
                .collect(),
            formula_versions: e.formula_versions.iter().map(|f| f.version).collect(),
            fx_versions: e.fx_versions.clone(),
            event_brand_ids: e.events.iter().map(|r| r.brand.as_uuid()).collect(),
            event_ids: e
                .events
                .iter()
                .map(|r| r.event.as_str().to_owned())
                .collect(),
            statement_ids: e.statements.clone(),
            reference_ids: e.references.clone(),
            reason,
            reason_json,
            detail: e.detail.as_ref().map(to_json).unwrap_or_default(),
            entry_sha256: crate::events::hex_sha256(entry_json.as_bytes()),
            entry_json,
        }
    }
}

/// What the job reads back of a ledger row.
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
struct StoredEntryRow {
    #[serde(with = "clickhouse::serde::uuid")]
    entry_id: Uuid,
    entry_sha256: String,
    entry_json: String,
}

/// `ngr_statements` row.
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct StatementRow {
    #[serde(with = "clickhouse::serde::uuid")]
    pub statement_id: Uuid,
    #[serde(with = "clickhouse::serde::uuid")]
    pub player_id: Uuid,
    #[serde(with = "clickhouse::serde::uuid")]
    pub brand_id: Uuid,
    pub month: u16,
    pub formula_version: u32,
    pub currency: [u8; 3],
    pub deposits_minor: i64,
    pub ggr_minor: i64,
    pub stakes_minor: i64,
    pub wins_minor: i64,
    pub bonus_cost_minor: i64,
    pub chargebacks_minor: i64,
    pub payment_fee_minor: i64,
    pub payment_fee_bps: u32,
    pub tax_levy_minor: i64,
    pub tax_bps: u32,
    pub net_before_admin_fee_minor: i64,
    pub admin_fee_minor: i64,
    pub admin_fee_bps: u32,
    pub ngr_minor: i64,
    pub event_ids: Vec<String>,
    pub lines: String,
    pub statement_json: String,
    pub computed_at: u32,
    pub computed_at_ms: u64,
}

impl StatementRow {
    /// Maps a statement first stored by the run at `computed_at_ms`.
    pub fn from_statement(s: &NgrStatement, computed_at_ms: u64) -> Self {
        let line = |kind: LineKind| s.lines.iter().find(|l| l.kind == kind);
        let amount = |kind| line(kind).map_or(0, |l| l.amount.minor());
        let rate = |kind| {
            line(kind)
                .and_then(|l| l.rate)
                .map_or(0, |r| u32::try_from(r.get()).unwrap_or(0))
        };
        let events: BTreeSet<String> = s
            .lines
            .iter()
            .flat_map(|l| l.events.iter().map(|e| e.as_str().to_owned()))
            .collect();
        StatementRow {
            statement_id: s.id,
            player_id: s.player.as_uuid(),
            brand_id: s.brand.as_uuid(),
            month: month_to_date(s.month),
            formula_version: s.formula_version,
            currency: currency_bytes(s.currency),
            deposits_minor: s.deposits.minor(),
            ggr_minor: s.ggr.minor(),
            stakes_minor: amount(LineKind::Stakes),
            wins_minor: amount(LineKind::Wins),
            bonus_cost_minor: amount(LineKind::BonusCost),
            chargebacks_minor: amount(LineKind::Chargebacks),
            payment_fee_minor: amount(LineKind::PaymentFee),
            payment_fee_bps: rate(LineKind::PaymentFee),
            tax_levy_minor: amount(LineKind::TaxLevy),
            tax_bps: rate(LineKind::TaxLevy),
            net_before_admin_fee_minor: line(LineKind::AdminFee)
                .and_then(|l| l.base)
                .map_or(0, |b| b.minor()),
            admin_fee_minor: amount(LineKind::AdminFee),
            admin_fee_bps: rate(LineKind::AdminFee),
            ngr_minor: s.ngr.minor(),
            event_ids: events.into_iter().collect(),
            lines: to_json(&s.lines),
            statement_json: to_json(s),
            computed_at: secs(computed_at_ms),
            computed_at_ms,
        }
    }
}

/// `commission_period_closes` row.
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
struct PeriodCloseRow {
    month: u16,
    closed_at: u32,
    closed_at_ms: u64,
    recorded_at: u32,
    recorded_at_ms: u64,
    actor: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
struct CloseRead {
    month: u16,
    closed_at_ms: u64,
}

/// `commission_deals` row.
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
struct DealRow {
    #[serde(with = "clickhouse::serde::uuid")]
    affiliate_id: Uuid,
    latest_version: u32,
    currency: [u8; 3],
    deal_json: String,
    stored_at: u32,
    stored_at_ms: u64,
}

/// `commission_ngr_formulas` row.
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
struct FormulaRow {
    #[serde(with = "clickhouse::serde::uuid")]
    brand_id: Uuid,
    latest_version: u32,
    formula_json: String,
    stored_at: u32,
    stored_at_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
struct JsonRead {
    #[serde(with = "clickhouse::serde::uuid")]
    id: Uuid,
    json: String,
}

/// One rate of an FX table (`commission_fx_rates` row).
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct FxRateRow {
    /// The month the table converts (`Date`, first day).
    pub month: u16,
    /// The table version.
    pub version: u32,
    /// From.
    pub from_currency: [u8; 3],
    /// To.
    pub to_currency: [u8; 3],
    /// 1 `from` = numerator / denominator `to`.
    pub numerator: i64,
    /// See `numerator`.
    pub denominator: i64,
    /// When stored (s).
    pub stored_at: u32,
    /// When stored (ms).
    pub stored_at_ms: u64,
}

/// One FX table as stored: its month, version and rates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredFxTable {
    /// The month it converts.
    pub month: Month,
    /// The version.
    pub version: u32,
    /// `(from, to) → rate`.
    pub rates: BTreeMap<(Currency, Currency), Rate>,
}

impl StoredFxTable {
    /// The engine's table.
    pub fn table(&self) -> FxTable {
        self.rates
            .iter()
            .fold(FxTable::new(self.version), |t, ((from, to), rate)| {
                t.with_rate(*from, *to, *rate)
            })
    }
}

/// `commission_runs` row.
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct RunRow {
    #[serde(with = "clickhouse::serde::uuid")]
    pub run_id: Uuid,
    /// 1 job, 2 payout.
    pub kind: i8,
    pub started_at: u32,
    pub started_at_ms: u64,
    pub finished_at_ms: u64,
    pub now_ms: u64,
    pub players: u32,
    pub skipped_players: u32,
    pub prior_entries: u32,
    pub entries_appended: u32,
    pub statements_appended: u32,
    #[serde(with = "clickhouse::serde::uuid_vec")]
    pub entry_ids: Vec<Uuid>,
    pub error: String,
    /// Who ran it: `job` for commission runs, the operator credential's
    /// owner (or `bootstrap`) for payout runs.
    pub actor: String,
}

/// A stored brand event, as the commission job reads it (the columns of
/// `player_events` the engine's facts need).
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct FactEventRow {
    #[serde(with = "clickhouse::serde::uuid")]
    pub brand_id: Uuid,
    pub event_id: String,
    /// `player_events.event_type` (1 registration … 8 responsible_gaming).
    pub event_type: i8,
    pub occurred_at_ms: u64,
    /// When the aggregator stored it (its clock, Unix seconds).
    pub received_at: u32,
    pub brand_player_id: String,
    pub country: [u8; 2],
    pub kyc_status: String,
    pub amount_minor: i64,
    pub currency: [u8; 3],
    pub stakes_minor: i64,
    pub wins_minor: i64,
    pub rg_flag: String,
    pub rg_active: u8,
    pub reference_event_id: String,
}

/// Which ledger rows to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LedgerScope {
    /// Every row (the job, payouts, the operator).
    All,
    /// One affiliate's rows (complete for that affiliate).
    Affiliate(AffiliateId),
    /// Every row of the slots that have a row naming the brand, plus every
    /// payout (the caller filters).
    Brand(BrandId),
    /// The rows about one player (CPA, clawbacks and overrides on them).
    Player(Uuid),
}

impl Store {
    pub(super) async fn insert_all<R>(&self, table: &str, rows: &[R]) -> Result<(), StoreError>
    where
        R: clickhouse::RowOwned + clickhouse::RowWrite,
    {
        if rows.is_empty() {
            return Ok(());
        }
        // One INSERT: one block, one part (the tables are not partitioned
        // by time), so it is stored whole or not at all below
        // max_insert_block_size rows.
        let t = Some(self.timeout().max(Duration::from_secs(60)));
        let mut insert = self.client().insert::<R>(table).await?.with_timeouts(t, t);
        for row in rows {
            insert.write(row).await?;
        }
        insert.end().await?;
        Ok(())
    }

    /// Reads the ledger (every entry in `scope`), identical replayed rows
    /// counted once. Two different rows with one entry id are refused.
    pub async fn load_ledger(
        &self,
        scope: LedgerScope,
    ) -> Result<Vec<LedgerEntry>, LedgerStoreError> {
        const COLUMNS: &str = "SELECT entry_id, entry_sha256, entry_json FROM commission_ledger";
        let query = match scope {
            LedgerScope::All => self.client().query(COLUMNS),
            LedgerScope::Affiliate(a) => self
                .client()
                .query(&format!("{COLUMNS} WHERE affiliate_id = toUUID(?)"))
                .bind(a.to_string()),
            LedgerScope::Brand(b) => self
                .client()
                .query(&format!(
                    "{COLUMNS} WHERE slot IN (SELECT slot FROM commission_ledger \
                     WHERE has(brand_ids, toUUID(?))) OR kind = 'payout'"
                ))
                .bind(b.to_string()),
            LedgerScope::Player(p) => self
                .client()
                .query(&format!("{COLUMNS} WHERE player_id = toUUID(?)"))
                .bind(p.to_string()),
        };
        entries_of(query.fetch_all().await?)
    }

    /// The ledger rows a `WHERE` clause selects (`sql` after `WHERE`, with
    /// its binds already spliced in as literals), checked like
    /// [`Self::load_ledger`].
    pub(super) async fn load_ledger_where(
        &self,
        condition: &str,
    ) -> Result<Vec<LedgerEntry>, LedgerStoreError> {
        let sql = format!(
            "SELECT entry_id, entry_sha256, entry_json FROM commission_ledger WHERE {condition}"
        );
        entries_of(self.client().query(&sql).fetch_all().await?)
    }

    /// Appends ledger entries in one INSERT.
    pub async fn append_ledger(&self, entries: &[LedgerEntry]) -> Result<(), StoreError> {
        let rows: Vec<LedgerRow> = entries.iter().map(LedgerRow::from).collect();
        self.insert_all("commission_ledger", &rows).await
    }

    /// Ids of every stored NGR statement.
    pub async fn load_statement_ids(&self) -> Result<BTreeSet<Uuid>, StoreError> {
        #[derive(Row, Deserialize)]
        struct Id {
            #[serde(with = "clickhouse::serde::uuid")]
            statement_id: Uuid,
        }
        let rows: Vec<Id> = self
            .client()
            .query("SELECT statement_id FROM ngr_statements")
            .fetch_all()
            .await?;
        Ok(rows.into_iter().map(|r| r.statement_id).collect())
    }

    /// Appends NGR statements (first stored by the run at `computed_at_ms`).
    pub async fn append_statements(
        &self,
        statements: &[NgrStatement],
        computed_at_ms: u64,
    ) -> Result<(), StoreError> {
        let rows: Vec<StatementRow> = statements
            .iter()
            .map(|s| StatementRow::from_statement(s, computed_at_ms))
            .collect();
        self.insert_all("ngr_statements", &rows).await
    }

    /// One NGR statement.
    pub async fn load_statement(&self, id: Uuid) -> Result<Option<NgrStatement>, LedgerStoreError> {
        #[derive(Row, Deserialize)]
        struct Json {
            statement_json: String,
        }
        let row: Option<Json> = self
            .client()
            .query(
                "SELECT statement_json FROM ngr_statements WHERE statement_id = toUUID(?) LIMIT 1",
            )
            .bind(id.to_string())
            .fetch_optional()
            .await?;
        row.map(|r| {
            serde_json::from_str(&r.statement_json).map_err(|e| corrupt("ngr_statements", id, e))
        })
        .transpose()
    }

    /// Whether one of `affiliate`'s ledger entries names the statement.
    pub async fn statement_behind(
        &self,
        affiliate: AffiliateId,
        statement: Uuid,
    ) -> Result<bool, StoreError> {
        let n: u64 = self
            .client()
            .query(
                "SELECT count() FROM commission_ledger \
                 WHERE affiliate_id = toUUID(?) AND has(statement_ids, toUUID(?))",
            )
            .bind(affiliate.to_string())
            .bind(statement.to_string())
            .fetch_one()
            .await?;
        Ok(n > 0)
    }

    /// The period calendar (first recorded close of each month).
    pub async fn load_calendar(&self) -> Result<PeriodCalendar, LedgerStoreError> {
        let rows: Vec<CloseRead> = self
            .client()
            .query(
                "SELECT month, argMin(closed_at_ms, recorded_at_ms) AS closed_at_ms \
                 FROM commission_period_closes GROUP BY month ORDER BY month",
            )
            .fetch_all()
            .await?;
        PeriodCalendar::new(rows.into_iter().map(|r| {
            (
                date_to_month(r.month),
                Timestamp::from_unix_ms(r.closed_at_ms),
            )
        }))
        .map_err(|e| corrupt("commission_period_closes", "calendar", e))
    }

    /// Records the close of `month` at `closed_at_ms` by `actor`.
    pub async fn save_period_close(
        &self,
        month: Month,
        closed_at_ms: u64,
        recorded_at_ms: u64,
        actor: &str,
    ) -> Result<(), StoreError> {
        let row = PeriodCloseRow {
            month: month_to_date(month),
            closed_at: secs(closed_at_ms),
            closed_at_ms,
            recorded_at: secs(recorded_at_ms),
            recorded_at_ms,
            actor: actor.to_owned(),
        };
        self.insert_all("commission_period_closes", &[row]).await
    }

    /// Every affiliate's current deal (the stored document with the highest
    /// version).
    pub async fn load_deals(&self) -> Result<Vec<Deal>, LedgerStoreError> {
        let rows: Vec<JsonRead> = self
            .client()
            .query(
                "SELECT affiliate_id AS id, argMax(deal_json, latest_version) AS json \
                 FROM commission_deals FINAL GROUP BY affiliate_id",
            )
            .fetch_all()
            .await?;
        rows.into_iter()
            .map(|r| Deal::from_json(&r.json).map_err(|e| corrupt("commission_deals", r.id, e)))
            .collect()
    }

    /// One affiliate's current deal.
    pub async fn load_deal(
        &self,
        affiliate: AffiliateId,
    ) -> Result<Option<Deal>, LedgerStoreError> {
        let row: Option<JsonRead> = self
            .client()
            .query(
                "SELECT affiliate_id AS id, argMax(deal_json, latest_version) AS json \
                 FROM commission_deals FINAL WHERE affiliate_id = toUUID(?) GROUP BY affiliate_id",
            )
            .bind(affiliate.to_string())
            .fetch_optional()
            .await?;
        row.map(|r| Deal::from_json(&r.json).map_err(|e| corrupt("commission_deals", r.id, e)))
            .transpose()
    }

    /// Stores a deal document whose newest version is `latest_version`.
    pub async fn save_deal(
        &self,
        deal: &Deal,
        latest_version: u32,
        stored_at_ms: u64,
    ) -> Result<(), StoreError> {
        let row = DealRow {
            affiliate_id: deal.affiliate().as_uuid(),
            latest_version,
            currency: currency_bytes(deal.currency()),
            deal_json: to_json(deal),
            stored_at: secs(stored_at_ms),
            stored_at_ms,
        };
        self.insert_all("commission_deals", &[row]).await
    }

    /// Every brand's current NGR formula.
    pub async fn load_formulas(&self) -> Result<Vec<NgrFormula>, LedgerStoreError> {
        let rows: Vec<JsonRead> = self
            .client()
            .query(
                "SELECT brand_id AS id, argMax(formula_json, latest_version) AS json \
                 FROM commission_ngr_formulas FINAL GROUP BY brand_id",
            )
            .fetch_all()
            .await?;
        rows.into_iter()
            .map(|r| {
                NgrFormula::from_json(&r.json)
                    .map_err(|e| corrupt("commission_ngr_formulas", r.id, e))
            })
            .collect()
    }

    /// One brand's current NGR formula.
    pub async fn load_formula(
        &self,
        brand: BrandId,
    ) -> Result<Option<NgrFormula>, LedgerStoreError> {
        let row: Option<JsonRead> = self
            .client()
            .query(
                "SELECT brand_id AS id, argMax(formula_json, latest_version) AS json \
                 FROM commission_ngr_formulas FINAL WHERE brand_id = toUUID(?) GROUP BY brand_id",
            )
            .bind(brand.to_string())
            .fetch_optional()
            .await?;
        row.map(|r| {
            NgrFormula::from_json(&r.json).map_err(|e| corrupt("commission_ngr_formulas", r.id, e))
        })
        .transpose()
    }

    /// Stores a formula document whose newest version is `latest_version`.
    pub async fn save_formula(
        &self,
        formula: &NgrFormula,
        latest_version: u32,
        stored_at_ms: u64,
    ) -> Result<(), StoreError> {
        let row = FormulaRow {
            brand_id: formula.brand().as_uuid(),
            latest_version,
            formula_json: to_json(formula),
            stored_at: secs(stored_at_ms),
            stored_at_ms,
        };
        self.insert_all("commission_ngr_formulas", &[row]).await
    }

    /// The FX tables in force: the highest version of each month.
    pub async fn load_fx_tables(&self) -> Result<Vec<StoredFxTable>, LedgerStoreError> {
        let rows: Vec<FxRateRow> = self
            .client()
            .query("SELECT ?fields FROM commission_fx_rates FINAL")
            .fetch_all()
            .await?;
        let mut latest: BTreeMap<u16, u32> = BTreeMap::new();
        for r in &rows {
            let v = latest.entry(r.month).or_default();
            *v = (*v).max(r.version);
        }
        let mut tables: BTreeMap<u16, StoredFxTable> = BTreeMap::new();
        for r in rows {
            if latest.get(&r.month) != Some(&r.version) {
                continue;
            }
            let key = format!("{} v{}", date_to_month(r.month), r.version);
            let from = parse_currency(&r.from_currency)
                .map_err(|e| corrupt("commission_fx_rates", &key, e))?;
            let to = parse_currency(&r.to_currency)
                .map_err(|e| corrupt("commission_fx_rates", &key, e))?;
            if r.numerator <= 0 || r.denominator <= 0 {
                return Err(corrupt(
                    "commission_fx_rates",
                    &key,
                    "rates must be positive",
                ));
            }
            tables
                .entry(r.month)
                .or_insert_with(|| StoredFxTable {
                    month: date_to_month(r.month),
                    version: r.version,
                    rates: BTreeMap::new(),
                })
                .rates
                .insert(
                    (from, to),
                    Rate {
                        numerator: r.numerator,
                        denominator: r.denominator,
                    },
                );
        }
        Ok(tables.into_values().collect())
    }

    /// The engine's FX book (the tables in force).
    pub async fn load_fx_book(&self) -> Result<FxBook, LedgerStoreError> {
        let tables = self.load_fx_tables().await?;
        Ok(FxBook::new(tables.iter().map(|t| (t.month, t.table()))))
    }

    /// Stores one FX table (all its rates in one INSERT).
    pub async fn save_fx_table(
        &self,
        table: &StoredFxTable,
        stored_at_ms: u64,
    ) -> Result<(), StoreError> {
        let rows: Vec<FxRateRow> = table
            .rates
            .iter()
            .map(|((from, to), rate)| FxRateRow {
                month: month_to_date(table.month),
                version: table.version,
                from_currency: currency_bytes(*from),
                to_currency: currency_bytes(*to),
                numerator: rate.numerator,
                denominator: rate.denominator,
                stored_at: secs(stored_at_ms),
                stored_at_ms,
            })
            .collect();
        self.insert_all("commission_fx_rates", &rows).await
    }

    /// The earliest month any ledger entry is booked in (`None` when the
    /// ledger is empty).
    pub async fn earliest_booked_month(&self) -> Result<Option<Month>, StoreError> {
        let row: Option<(u64, u16)> = self
            .client()
            .query("SELECT count(), min(booked_in) FROM commission_ledger")
            .fetch_optional()
            .await?;
        Ok(row.and_then(|(n, d)| (n > 0).then(|| date_to_month(d))))
    }

    /// Records a run.
    pub async fn save_run(&self, run: &RunRow) -> Result<(), StoreError> {
        self.insert_all("commission_runs", std::slice::from_ref(run))
            .await
    }

    /// Every player's attribution (latest version; all statuses).
    pub async fn load_attributions(&self) -> Result<Vec<AttributionRow>, StoreError> {
        Ok(self
            .client()
            .query("SELECT ?fields FROM attributions FINAL")
            .fetch_all()
            .await?)
    }

    /// The attribution rows of one brand player (latest version).
    pub async fn load_player_attributions(
        &self,
        brand: BrandId,
        brand_player_id: &str,
    ) -> Result<Vec<AttributionRow>, StoreError> {
        Ok(self
            .client()
            .query(
                "SELECT ?fields FROM attributions FINAL \
                 WHERE brand_id = toUUID(?) AND brand_player_id = ?",
            )
            .bind(brand.to_string())
            .bind(brand_player_id)
            .fetch_all()
            .await?)
    }

    /// The stored events of one brand player that the commission facts
    /// need.
    pub async fn load_player_fact_events(
        &self,
        brand: BrandId,
        brand_player_id: &str,
    ) -> Result<Vec<FactEventRow>, StoreError> {
        Ok(self
            .client()
            .query(
                "SELECT ?fields FROM player_events FINAL WHERE brand_id = toUUID(?) \
                 AND brand_player_id = ? AND event_type != 'withdrawal'",
            )
            .bind(brand.to_string())
            .bind(brand_player_id)
            .fetch_all()
            .await?)
    }

    /// Every stored brand event the commission facts need (withdrawals are
    /// not needed), one row per (brand, event id).
    pub async fn load_fact_events(&self) -> Result<Vec<FactEventRow>, StoreError> {
        Ok(self
            .client()
            .query("SELECT ?fields FROM player_events FINAL WHERE event_type != 'withdrawal'")
            .fetch_all()
            .await?)
    }
}

/// Ledger entries from stored rows: identical replayed rows counted once;
/// two different rows with one entry id, a row whose hash or id does not
/// match its JSON are refused.
fn entries_of(rows: Vec<StoredEntryRow>) -> Result<Vec<LedgerEntry>, LedgerStoreError> {
    let mut seen: BTreeMap<Uuid, String> = BTreeMap::new();
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        match seen.get(&r.entry_id) {
            Some(sha) if *sha == r.entry_sha256 => continue,
            Some(_) => {
                return Err(corrupt(
                    "commission_ledger",
                    r.entry_id,
                    "two different rows have this entry id (two writers raced); keep the first, \
                     remove the other by hand, and re-run",
                ))
            }
            None => {}
        }
        if crate::events::hex_sha256(r.entry_json.as_bytes()) != r.entry_sha256 {
            return Err(corrupt(
                "commission_ledger",
                r.entry_id,
                "entry_sha256 does not match entry_json",
            ));
        }
        let entry: LedgerEntry = serde_json::from_str(&r.entry_json)
            .map_err(|e| corrupt("commission_ledger", r.entry_id, e))?;
        if entry.id != r.entry_id {
            return Err(corrupt(
                "commission_ledger",
                r.entry_id,
                "entry_id differs from the id in entry_json",
            ));
        }
        seen.insert(r.entry_id, r.entry_sha256);
        out.push(entry);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_map_to_the_first_day_of_the_month_and_back() {
        let m = Month::parse("2026-03").expect("month");
        let d = month_to_date(m);
        // 2026-03-01 is day 20 513 since 1970-01-01.
        assert_eq!(d, 20_513);
        assert_eq!(date_to_month(d), m);
        assert_eq!(date_to_month(d + 30), m);
        assert_eq!(date_to_month(d + 31), m.next());
    }
}
