//! Read-backs of the commission configuration and run log for operators:
//! every stored deal and NGR formula document (with their history), every
//! FX table version, the rows of `commission_runs`, the problems one run
//! met (`commission_problems`) and the payout entries of the ledger; and
//! the two reads of one page of `GET /api/v1/commissions` (which affiliates
//! are on the page, then only their ledgers).
//!
//! Owns these SELECTs and their row layouts, nothing else. Read-only: never
//! inserts, updates or deletes (the writers live in [`super::ledger`] and
//! [`super::problems`]). Must not decide anything about commissions (which
//! deal version applies, what is payable: the engine in
//! [`crate::commission`] does) nor know about HTTP.

use std::collections::BTreeMap;

use clickhouse::Row;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use clickstitch_shared::{AffiliateId, BrandId};

use crate::commission::{Deal, LedgerEntry, Month, NgrFormula, Slot};
use crate::money::{Currency, Rate};

use super::ledger::{date_to_month, FxRateRow, LedgerStoreError, StoredFxTable};
use super::{Store, StoreError};

#[allow(clippy::needless_pass_by_value)] // called with temporaries (errors, ids) of any type
fn corrupt(table: &'static str, key: impl ToString, message: impl ToString) -> LedgerStoreError {
    LedgerStoreError::Corrupt {
        table,
        key: key.to_string(),
        message: message.to_string(),
    }
}

/// One stored deal document and when it was stored.
#[derive(Debug, Clone)]
pub struct StoredDeal {
    /// The document (every version up to `latest_version`).
    pub deal: Deal,
    /// The highest version in the document.
    pub latest_version: u32,
    /// When it was stored (Unix ms).
    pub stored_at_ms: u64,
}

/// One stored NGR formula document and when it was stored.
#[derive(Debug, Clone)]
pub struct StoredFormula {
    /// The document (every version up to `latest_version`).
    pub formula: NgrFormula,
    /// The highest version in the document.
    pub latest_version: u32,
    /// When it was stored (Unix ms).
    pub stored_at_ms: u64,
}

/// One stored version of a month's FX table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredFxVersion {
    /// The month, version and rates.
    pub table: StoredFxTable,
    /// When it was stored (Unix ms).
    pub stored_at_ms: u64,
    /// Whether it is the month's highest version (the one that converts
    /// the month's amounts).
    pub in_force: bool,
}

/// Which runs of `commission_runs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunKind {
    /// Commission job runs.
    Job,
    /// Payout runs.
    Payout,
}

impl RunKind {
    /// The stored `Enum8` name (`job`, `payout`).
    pub fn code(self) -> &'static str {
        match self {
            RunKind::Job => "job",
            RunKind::Payout => "payout",
        }
    }

    fn from_stored(value: i8) -> Option<Self> {
        match value {
            1 => Some(RunKind::Job),
            2 => Some(RunKind::Payout),
            _ => None,
        }
    }
}

/// One `commission_runs` row, as operators read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRun {
    /// The run.
    pub run_id: Uuid,
    /// Job or payout.
    pub kind: RunKind,
    /// When it started (Unix ms; a payout run's `now`).
    pub started_at_ms: u64,
    /// When it finished (Unix ms).
    pub finished_at_ms: u64,
    /// The `now` it computed as of (Unix ms).
    pub now_ms: u64,
    /// Players computed.
    pub players: u32,
    /// Players skipped or held.
    pub skipped_players: u32,
    /// Ledger entries before the run.
    pub prior_entries: u32,
    /// Ledger entries it appended.
    pub entries_appended: u32,
    /// NGR statements it appended.
    pub statements_appended: u32,
    /// Why it failed (empty when it did not).
    pub error: String,
}

/// What [`StoredRun`] reads, in select-list order.
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
struct RunRead {
    #[serde(with = "clickhouse::serde::uuid")]
    run_id: Uuid,
    kind: i8,
    started_at_ms: u64,
    finished_at_ms: u64,
    now_ms: u64,
    players: u32,
    skipped_players: u32,
    prior_entries: u32,
    entries_appended: u32,
    statements_appended: u32,
    error: String,
}

const RUN_COLUMNS: &str = "SELECT run_id, kind, started_at_ms, finished_at_ms, now_ms, players, \
     skipped_players, prior_entries, entries_appended, statements_appended, error \
     FROM commission_runs";

impl RunRead {
    fn into_run(self) -> Result<StoredRun, LedgerStoreError> {
        let kind = RunKind::from_stored(self.kind)
            .ok_or_else(|| corrupt("commission_runs", self.run_id, "unknown kind"))?;
        Ok(StoredRun {
            run_id: self.run_id,
            kind,
            started_at_ms: self.started_at_ms,
            finished_at_ms: self.finished_at_ms,
            now_ms: self.now_ms,
            players: self.players,
            skipped_players: self.skipped_players,
            prior_entries: self.prior_entries,
            entries_appended: self.entries_appended,
            statements_appended: self.statements_appended,
            error: self.error,
        })
    }
}

/// One problem a run met (a `commission_problems` row, in select-list
/// order). Empty strings stand for "none".
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct RunProblemRow {
    /// The problem kind's code.
    pub kind: String,
    /// What it held back.
    pub held: String,
    /// The player (empty when about an affiliate).
    pub player_id: String,
    /// The brand (empty when unknown).
    pub brand_id: String,
    /// The affiliate (empty when about a player).
    pub affiliate_id: String,
    /// The brand events involved.
    pub events: Vec<String>,
    /// The explanation.
    pub message: String,
}

/// A stored deal or formula document, in select-list order.
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
struct DocumentRead {
    #[serde(with = "clickhouse::serde::uuid")]
    id: Uuid,
    latest_version: u32,
    json: String,
    stored_at_ms: u64,
}

fn deal_of(r: &DocumentRead) -> Result<StoredDeal, LedgerStoreError> {
    let deal = Deal::from_json(&r.json).map_err(|e| corrupt("commission_deals", r.id, e))?;
    Ok(StoredDeal {
        deal,
        latest_version: r.latest_version,
        stored_at_ms: r.stored_at_ms,
    })
}

fn formula_of(r: &DocumentRead) -> Result<StoredFormula, LedgerStoreError> {
    let formula =
        NgrFormula::from_json(&r.json).map_err(|e| corrupt("commission_ngr_formulas", r.id, e))?;
    Ok(StoredFormula {
        formula,
        latest_version: r.latest_version,
        stored_at_ms: r.stored_at_ms,
    })
}

fn currency(text: &[u8; 3], key: &str) -> Result<Currency, LedgerStoreError> {
    std::str::from_utf8(text)
        .map_err(|e| e.to_string())
        .and_then(|s| Currency::parse(s).map_err(|e| e.to_string()))
        .map_err(|e| corrupt("commission_fx_rates", key, e))
}

impl Store {
    /// Every affiliate's current deal document (the stored one with the
    /// highest version), by affiliate id.
    pub async fn load_current_deals(&self) -> Result<Vec<StoredDeal>, LedgerStoreError> {
        let rows: Vec<DocumentRead> = self
            .client()
            .query(
                "SELECT affiliate_id, max(latest_version), argMax(deal_json, latest_version), \
                 argMax(stored_at_ms, latest_version) \
                 FROM commission_deals FINAL GROUP BY affiliate_id ORDER BY affiliate_id",
            )
            .fetch_all()
            .await?;
        rows.iter().map(deal_of).collect()
    }

    /// Every stored deal document of one affiliate, newest first (empty
    /// when it has no deal).
    pub async fn load_deal_history(
        &self,
        affiliate: AffiliateId,
    ) -> Result<Vec<StoredDeal>, LedgerStoreError> {
        let rows: Vec<DocumentRead> = self
            .client()
            .query(
                "SELECT affiliate_id, latest_version, deal_json, stored_at_ms \
                 FROM commission_deals FINAL WHERE affiliate_id = toUUID(?) \
                 ORDER BY latest_version DESC, stored_at_ms DESC",
            )
            .bind(affiliate.to_string())
            .fetch_all()
            .await?;
        rows.iter().map(deal_of).collect()
    }

    /// Every brand's current NGR formula document, by brand id.
    pub async fn load_current_formulas(&self) -> Result<Vec<StoredFormula>, LedgerStoreError> {
        let rows: Vec<DocumentRead> = self
            .client()
            .query(
                "SELECT brand_id, max(latest_version), argMax(formula_json, latest_version), \
                 argMax(stored_at_ms, latest_version) \
                 FROM commission_ngr_formulas FINAL GROUP BY brand_id ORDER BY brand_id",
            )
            .fetch_all()
            .await?;
        rows.iter().map(formula_of).collect()
    }

    /// Every stored NGR formula document of one brand, newest first (empty
    /// when it has none).
    pub async fn load_formula_history(
        &self,
        brand: BrandId,
    ) -> Result<Vec<StoredFormula>, LedgerStoreError> {
        let rows: Vec<DocumentRead> = self
            .client()
            .query(
                "SELECT brand_id, latest_version, formula_json, stored_at_ms \
                 FROM commission_ngr_formulas FINAL WHERE brand_id = toUUID(?) \
                 ORDER BY latest_version DESC, stored_at_ms DESC",
            )
            .bind(brand.to_string())
            .fetch_all()
            .await?;
        rows.iter().map(formula_of).collect()
    }

    /// Every stored FX table version (of `month` only, when given): months
    /// in order, each month's versions highest first.
    pub async fn load_fx_history(
        &self,
        month: Option<Month>,
    ) -> Result<Vec<StoredFxVersion>, LedgerStoreError> {
        const SQL: &str = "SELECT ?fields FROM commission_fx_rates FINAL";
        const ORDER: &str = "ORDER BY month, version DESC, from_currency, to_currency";
        let rows: Vec<FxRateRow> = match month {
            None => self.client().query(&format!("{SQL} {ORDER}")),
            Some(m) => self
                .client()
                .query(&format!("{SQL} WHERE month = toDate(?) {ORDER}"))
                .bind(format!("{m}-01")),
        }
        .fetch_all()
        .await?;
        let mut highest: BTreeMap<u16, u32> = BTreeMap::new();
        for r in &rows {
            let v = highest.entry(r.month).or_default();
            *v = (*v).max(r.version);
        }
        let mut out: Vec<StoredFxVersion> = Vec::new();
        for r in rows {
            let key = format!("{} v{}", date_to_month(r.month), r.version);
            let from = currency(&r.from_currency, &key)?;
            let to = currency(&r.to_currency, &key)?;
            let rate = Rate {
                numerator: r.numerator,
                denominator: r.denominator,
            };
            let month = date_to_month(r.month);
            match out.last_mut() {
                Some(t) if t.table.month == month && t.table.version == r.version => {
                    t.table.rates.insert((from, to), rate);
                    t.stored_at_ms = t.stored_at_ms.max(r.stored_at_ms);
                }
                _ => out.push(StoredFxVersion {
                    table: StoredFxTable {
                        month,
                        version: r.version,
                        rates: BTreeMap::from([((from, to), rate)]),
                    },
                    stored_at_ms: r.stored_at_ms,
                    in_force: highest.get(&r.month) == Some(&r.version),
                }),
            }
        }
        Ok(out)
    }

    /// The latest `limit` runs (of `kind` only, when given), newest first.
    pub async fn load_runs(
        &self,
        kind: Option<RunKind>,
        limit: u32,
    ) -> Result<Vec<StoredRun>, LedgerStoreError> {
        const ORDER: &str = "ORDER BY started_at_ms DESC, finished_at_ms DESC LIMIT ?";
        let query = match kind {
            None => self.client().query(&format!("{RUN_COLUMNS} {ORDER}")),
            Some(k) => self
                .client()
                .query(&format!("{RUN_COLUMNS} WHERE kind = ? {ORDER}"))
                .bind(k.code()),
        };
        let rows: Vec<RunRead> = query.bind(limit).fetch_all().await?;
        rows.into_iter().map(RunRead::into_run).collect()
    }

    /// One run (of `kind` only, when given); when the id was recorded more
    /// than once (a payout run id given again after it paid nothing), the
    /// latest record.
    pub async fn load_run(
        &self,
        run_id: Uuid,
        kind: Option<RunKind>,
    ) -> Result<Option<StoredRun>, LedgerStoreError> {
        const ORDER: &str = "ORDER BY finished_at_ms DESC LIMIT 1";
        let query = match kind {
            None => self
                .client()
                .query(&format!("{RUN_COLUMNS} WHERE run_id = toUUID(?) {ORDER}"))
                .bind(run_id.to_string()),
            Some(k) => self
                .client()
                .query(&format!(
                    "{RUN_COLUMNS} WHERE run_id = toUUID(?) AND kind = ? {ORDER}"
                ))
                .bind(run_id.to_string())
                .bind(k.code()),
        };
        let row: Option<RunRead> = query.fetch_optional().await?;
        row.map(RunRead::into_run).transpose()
    }

    /// The problems one run met (empty when none, or not a job run).
    pub async fn load_run_problems(&self, run_id: Uuid) -> Result<Vec<RunProblemRow>, StoreError> {
        Ok(self
            .client()
            .query(
                "SELECT kind, held, player_id, brand_id, affiliate_id, events, message \
                 FROM commission_problems WHERE run_id = toUUID(?) ORDER BY problem_key",
            )
            .bind(run_id.to_string())
            .fetch_all()
            .await?)
    }

    /// The payout entries of the ledger (of payout run `run` only, when
    /// given), identical replayed rows counted once, ordered by run and
    /// affiliate. Two different rows with one entry id are refused.
    pub async fn load_payout_entries(
        &self,
        run: Option<Uuid>,
    ) -> Result<Vec<LedgerEntry>, LedgerStoreError> {
        let mut out: Vec<LedgerEntry> = self
            .load_ledger_where("kind = 'payout'")
            .await?
            .into_iter()
            .filter(|e| match e.slot {
                Slot::Payout { run: id, .. } => run.is_none_or(|wanted| wanted == id),
                _ => false,
            })
            .collect();
        out.sort_by_key(|e| match e.slot {
            Slot::Payout { run, affiliate } => (Some(run), affiliate, e.id),
            _ => (None, e.affiliate, e.id),
        });
        Ok(out)
    }

    /// The affiliates of one page of the commissions API: those with a
    /// ledger row in `page` (see [`AffiliatePage`]), at most `page.limit`,
    /// in ClickHouse's order of UUIDs (the second half first; not the order
    /// of the ids as text nor of [`AffiliateId`]).
    ///
    /// That order is the ledger's primary key order: the rows before the
    /// cursor are skipped by the index, and the affiliates of a page are
    /// neighbours on disk, so that [`Store::load_affiliate_ledgers`] reads
    /// about the page's rows only. Reads the `affiliate_id` column of the
    /// rows after the cursor (plus `booked_in` with a period, `slot` and
    /// `brand_ids` with a brand) — never the entries themselves.
    pub async fn commission_page_affiliates(
        &self,
        page: &AffiliatePage,
    ) -> Result<Vec<AffiliateId>, StoreError> {
        #[derive(Row, Deserialize)]
        struct Id {
            #[serde(with = "clickhouse::serde::uuid")]
            affiliate_id: Uuid,
        }
        // Compared and ordered as UUIDs, the cursor included (the order of
        // the table's primary key); never as strings, which would read the
        // whole column and scatter a page's ledgers over the table.
        const ORDER: &str = "GROUP BY affiliate_id ORDER BY affiliate_id LIMIT ?";
        let mut conditions: Vec<&str> = Vec::new();
        let mut binds: Vec<String> = Vec::new();
        if let Some(after) = page.after {
            conditions.push("affiliate_id > toUUID(?)");
            binds.push(after.to_string());
        }
        if let Some(a) = page.affiliate {
            conditions.push("affiliate_id = toUUID(?)");
            binds.push(a.to_string());
        }
        let period = page.period.map(|m| format!("{m}-01"));
        let brand = match page.slots {
            SlotBrands::Any => None,
            SlotBrands::Naming(b) => Some((b, false)),
            SlotBrands::Only(b) => Some((b, true)),
        };
        let sql = match brand {
            None => {
                if let Some(p) = period {
                    conditions.push("booked_in = toDate(?)");
                    binds.push(p);
                }
                format!(
                    "SELECT affiliate_id FROM commission_ledger{} {ORDER}",
                    where_clause(&conditions)
                )
            }
            // Which slots an affiliate shows depends on every row of the
            // slot (and a slot belongs to one affiliate), so slots are
            // grouped first; the period asks for one row of the slot.
            Some((b, only)) => {
                let mut having = vec!["max(has(brand_ids, toUUID(?))) = 1"];
                binds.push(b.to_string());
                if only {
                    having.push("min(hasAll([toUUID(?)], brand_ids)) = 1");
                    binds.push(b.to_string());
                }
                if let Some(p) = period {
                    having.push("max(booked_in = toDate(?)) = 1");
                    binds.push(p);
                }
                format!(
                    "SELECT affiliate_id FROM (SELECT affiliate_id, slot FROM commission_ledger{} \
                     GROUP BY affiliate_id, slot HAVING {}) {ORDER}",
                    where_clause(&conditions),
                    having.join(" AND ")
                )
            }
        };
        let query = binds
            .iter()
            .fold(self.client().query(&sql), |q, b| q.bind(b.as_str()));
        let rows: Vec<Id> = query.bind(page.limit).fetch_all().await?;
        Ok(rows
            .into_iter()
            .map(|r| AffiliateId::from(r.affiliate_id))
            .collect())
    }

    /// The complete ledgers of `affiliates` (every row of theirs), checked
    /// like [`Store::load_ledger`]: identical replayed rows counted once,
    /// two different rows with one entry id refused. Empty for no
    /// affiliates.
    pub async fn load_affiliate_ledgers(
        &self,
        affiliates: &[AffiliateId],
    ) -> Result<Vec<LedgerEntry>, LedgerStoreError> {
        if affiliates.is_empty() {
            return Ok(Vec::new());
        }
        // Typed ids print as canonical UUIDs: safe to splice as literals.
        let ids: Vec<String> = affiliates
            .iter()
            .map(|a| format!("toUUID('{}')", a.as_uuid().as_hyphenated()))
            .collect();
        self.load_ledger_where(&format!("affiliate_id IN ({})", ids.join(", ")))
            .await
    }
}

/// Which slots (all the entries of one slot, so that an accrual is never
/// listed without its reversal) a commissions page lists, by brand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotBrands {
    /// Every slot.
    Any,
    /// The slots with an entry naming the brand (the operator's `brand_id`
    /// filter).
    Naming(BrandId),
    /// The slots whose entries name the brand and no other (what a brand
    /// key sees: never payouts, never a RevShare mixing brands).
    Only(BrandId),
}

/// Which affiliates one page of the commissions API lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AffiliatePage {
    /// Only affiliates after this one (the last affiliate of the previous
    /// page) in ClickHouse's order of UUIDs.
    pub after: Option<AffiliateId>,
    /// Only this affiliate.
    pub affiliate: Option<AffiliateId>,
    /// Only affiliates with slots of these brands.
    pub slots: SlotBrands,
    /// Only affiliates with an entry (in those slots) booked in this month.
    pub period: Option<Month>,
    /// At most this many affiliates.
    pub limit: u32,
}

fn where_clause(conditions: &[&str]) -> String {
    if conditions.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conditions.join(" AND "))
    }
}
