//! Incremental commission runs: recompute only the players whose facts
//! changed since the previous run, with a periodic full run that
//! reconciles.
//!
//! A full run reads every attribution, event and ledger entry; its cost
//! grows with history. What it computed — every player's RevShare
//! contribution and the standing problems ([`Kept`]) — stays in this
//! process's [`JobMemory`]. The next run asks ClickHouse which brand
//! players have anything new since the previous run started (minus a
//! margin: events, attribution rows, fraud scores and reviews, voids),
//! reads the facts of just those players (all their brands) and the ledger
//! rows of just the slots they touch, and calls
//! [`crate::commission::Engine::run_scoped`], which appends exactly what a
//! full run would (property-tested). A full run happens instead when
//! nothing is kept (first run of the process), the configuration changed
//! (deals, formulas, FX tables, the affiliate tree), someone else wrote the
//! ledger (its row count is not what this process left), too many players
//! changed, or `full_reconcile_ms` passed since the last full run — that
//! periodic run also books anything the incremental window missed (a
//! journal that shipped events later than the margin) and says so.
//!
//! Owns that decision and the incremental run's reads and appends. Must
//! not compute commissions (the engine does) nor write SQL (the store
//! does).

use std::collections::BTreeSet;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Mutex;

use uuid::Uuid;

use crate::commission::incremental::{in_scope, Kept};
use crate::commission::{
    AffiliateTree, DealBook, Engine, FormulaBook, FxBook, LedgerEntry, Link, PeriodCalendar,
    PlayerId,
};
use crate::services::commission::job::{append, facts_from, RunError, RunReport};
use crate::store::Store;

/// When to run incrementally.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunSettings {
    /// A full run at least this often (ms).
    pub full_reconcile_ms: u64,
    /// More changed brand players than this: a full run.
    pub max_players: usize,
    /// How far before the previous run's start changes are looked for
    /// (ms): covers rows stored with an earlier `received_at` (the event
    /// journal ships within about a second while ClickHouse is up).
    pub margin_ms: u64,
}

impl Default for RunSettings {
    fn default() -> Self {
        Self {
            full_reconcile_ms: 3_600_000,
            max_players: 2_000,
            margin_ms: 120_000,
        }
    }
}

/// The commission configuration a run reads, with a fingerprint of what
/// changes commissions (a changed fingerprint means a full run).
#[derive(Debug)]
pub struct Config {
    deals: DealBook,
    formulas: FormulaBook,
    fx: FxBook,
    calendar: PeriodCalendar,
    tree: AffiliateTree,
    fingerprint: u64,
}

impl Config {
    /// Reads deals, NGR formulas, FX tables, the period calendar and the
    /// affiliate tree.
    pub async fn load(store: &Store) -> Result<Self, RunError> {
        let deals = store
            .load_deals()
            .await
            .map_err(RunError::store("reading deals"))?;
        let formulas = store
            .load_formulas()
            .await
            .map_err(RunError::store("reading NGR formulas"))?;
        let tables = store
            .load_fx_tables()
            .await
            .map_err(RunError::store("reading FX tables"))?;
        let calendar = store
            .load_calendar()
            .await
            .map_err(RunError::store("reading period closes"))?;
        let catalogue = store
            .load_catalogue()
            .await
            .map_err(RunError::store("reading affiliates"))?;
        let links: Vec<Link> = catalogue
            .affiliates
            .iter()
            .filter_map(|a| {
                a.parent_id.map(|parent| Link {
                    child: a.id,
                    parent,
                })
            })
            .collect();
        let mut h = DefaultHasher::new();
        serde_json::to_string(&deals)
            .unwrap_or_default()
            .hash(&mut h);
        serde_json::to_string(&formulas)
            .unwrap_or_default()
            .hash(&mut h);
        serde_json::to_string(&tables)
            .unwrap_or_default()
            .hash(&mut h);
        format!("{links:?}").hash(&mut h);
        Ok(Self {
            fx: FxBook::new(tables.iter().map(|t| (t.month, t.table()))),
            deals: DealBook::new(deals).map_err(RunError::config("deals"))?,
            formulas: FormulaBook::new(formulas).map_err(RunError::config("NGR formulas"))?,
            calendar,
            tree: AffiliateTree::new(links).map_err(RunError::config("affiliate tree"))?,
            fingerprint: h.finish(),
        })
    }

    /// The engine over this configuration.
    pub fn engine(&self) -> Engine<'_> {
        Engine {
            deals: &self.deals,
            formulas: &self.formulas,
            fx: &self.fx,
            tree: &self.tree,
            calendar: &self.calendar,
        }
    }
}

/// What runs of this process keep for the next (one per store).
#[derive(Debug, Default)]
pub struct JobMemory(Mutex<Option<Memory>>);

impl JobMemory {
    /// Takes what is kept (a run that fails leaves nothing: the next one
    /// is full).
    pub fn take(&self) -> Option<Memory> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }

    /// Keeps `memory` for the next run.
    pub fn put(&self, memory: Memory) {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(memory);
    }
}

/// What the previous run left.
#[derive(Debug)]
pub struct Memory {
    kept: Kept,
    fingerprint: u64,
    started_ms: u64,
    last_full_ms: u64,
    ledger_rows: u64,
}

/// What a run leaves for the next.
#[derive(Debug)]
pub struct AfterRun {
    /// Contributions and standing problems.
    pub kept: Kept,
    /// Ledger rows other than payouts after the run.
    pub ledger_rows: u64,
    /// When the last full run started (`None`: this one was full).
    pub last_full_ms: Option<u64>,
}

impl AfterRun {
    /// The memory of a run that started at `started_ms` under `config`.
    pub fn into_memory(self, config: &Config, started_ms: u64) -> Memory {
        Memory {
            kept: self.kept,
            fingerprint: config.fingerprint,
            started_ms,
            last_full_ms: self.last_full_ms.unwrap_or(started_ms),
            ledger_rows: self.ledger_rows,
        }
    }
}

/// How the next run goes.
#[derive(Debug)]
pub enum Plan {
    /// Everything.
    Full {
        /// The periodic reconcile after incremental runs.
        reconcile: bool,
        /// Why (logged).
        why: &'static str,
    },
    /// Only the brand players that changed.
    Incremental {
        /// What the previous run left.
        memory: Memory,
        /// The changed brand players.
        changed: BTreeSet<(Uuid, String)>,
    },
}

impl Memory {
    /// Decides the run that starts at `started_ms`.
    pub async fn plan(
        self,
        config: &Config,
        started_ms: u64,
        store: &Store,
        settings: &RunSettings,
    ) -> Result<Plan, RunError> {
        let full = |reconcile, why| Ok(Plan::Full { reconcile, why });
        if self.fingerprint != config.fingerprint {
            return full(false, "the commission configuration changed");
        }
        if started_ms >= self.last_full_ms.saturating_add(settings.full_reconcile_ms) {
            return full(true, "periodic reconcile");
        }
        let rows = store
            .ledger_rows()
            .await
            .map_err(RunError::store("counting ledger rows"))?;
        if rows != self.ledger_rows {
            return full(false, "the ledger changed outside this process's runs");
        }
        let changed = store
            .changed_brand_players(self.started_ms.saturating_sub(settings.margin_ms))
            .await
            .map_err(RunError::store("finding changed players"))?;
        if changed.len() > settings.max_players {
            return full(false, "more players changed than an incremental run takes");
        }
        Ok(Plan::Incremental {
            memory: self,
            changed,
        })
    }
}

/// An incremental run over the `changed` brand players (and every brand
/// of the same global players).
pub async fn incremental(
    store: &Store,
    config: &Config,
    memory: Memory,
    changed: BTreeSet<(Uuid, String)>,
    run_id: Uuid,
    now_ms: u64,
) -> Result<(RunReport, AfterRun), RunError> {
    let Memory {
        mut kept,
        last_full_ms,
        ledger_rows,
        ..
    } = memory;
    let ids = store
        .player_ids_of(&changed)
        .await
        .map_err(RunError::store("reading changed players"))?;
    let attributions = store
        .attributions_of_players(&ids)
        .await
        .map_err(RunError::store("reading attributions"))?;
    let pairs: BTreeSet<(Uuid, String)> = attributions
        .iter()
        .map(|a| (a.brand_id, a.brand_player_id.clone()))
        .collect();
    let events = store
        .fact_events_of(&pairs)
        .await
        .map_err(RunError::store("reading player events"))?;
    let facts = facts_from(store, &attributions, events)
        .await
        .map_err(RunError::store("reading voided events and fraud holds"))?;

    let players: BTreeSet<PlayerId> = ids.iter().copied().map(PlayerId::from).collect();
    let credited = facts
        .players
        .iter()
        .filter_map(|f| f.attribution())
        .flat_map(|a| a.credits().iter().map(|c| c.affiliate));
    let scope = kept.scope(&players, credited);
    let others = kept.others(&scope, &players);
    // Overrides on the scope's RevShare are owned by their ancestors.
    let owners: BTreeSet<Uuid> = scope
        .iter()
        .flat_map(|a| std::iter::once(*a).chain(config.tree.ancestors(*a)))
        .map(|a| a.as_uuid())
        .collect();
    let prior: Vec<LedgerEntry> = store
        .load_ledger_of(&ids, &owners)
        .await
        .map_err(RunError::store("reading the ledger"))?
        .into_iter()
        .filter(|e| in_scope(&e.slot, &players, &scope))
        .collect();
    let output = config
        .engine()
        .run_scoped(&facts.players, &facts.problems, &others, &prior)
        .map_err(RunError::engine)?;
    let candidates: BTreeSet<Uuid> = output.statements.iter().map(|s| s.id).collect();
    let stored = store
        .stored_statements_among(&candidates)
        .await
        .map_err(RunError::store("reading statement ids"))?;
    let statements: Vec<_> = output
        .statements
        .iter()
        .filter(|s| !stored.contains(&s.id))
        .cloned()
        .collect();
    kept.fold(&players, &scope, &output);
    let problems = kept.problems();
    append(
        store,
        run_id,
        now_ms,
        &statements,
        &output.entries,
        &problems,
    )
    .await?;
    let after = AfterRun {
        kept,
        ledger_rows: ledger_rows + output.entries.len() as u64,
        last_full_ms: Some(last_full_ms),
    };
    let report = RunReport {
        run_id,
        now_ms,
        mode: "incremental",
        players: facts.players.len(),
        skipped_players: facts.skipped,
        held_players: facts.held,
        prior_entries: prior.len(),
        entries: output.entries,
        statements_appended: statements.len(),
        problems,
    };
    Ok((report, after))
}
