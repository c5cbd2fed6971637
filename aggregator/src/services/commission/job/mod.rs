//! The commission job and the other writers of the commission ledger.
//!
//! A full run reads everything the pure engine ([`crate::commission`])
//! needs from ClickHouse — every attributed player's facts (from
//! `player_events` and `attributions`, mapped by
//! [`crate::services::commission::facts`]), the deals, NGR formulas, FX tables, the
//! affiliate tree, the period calendar and the complete ledger — runs the
//! engine and appends the entries, NGR statements and problems it returns;
//! later runs of the same process are incremental
//! ([`crate::services::commission::incremental`]).
//! Period closes, payout runs and the commission configuration (deals,
//! formulas, FX tables) are written here too, because they change what the
//! next run computes.
//!
//! Owns the single-writer lock, the order of appends, the run reports and
//! the logging and metrics of problems. Must not compute commissions
//! (the engine does), write SQL (that is [`crate::store::ledger`]) or know
//! about HTTP (that is [`crate::http::routes::commissions`]).
//!
//! # One writer
//!
//! Every write to the ledger — a job run, a period close (which runs the
//! job first), a payout run (likewise) and a configuration change — holds
//! one process-wide lock ([`lock_writer`]) from reading the ledger to
//! appending to it, so two runs never compute on the same stale ledger.
//! The lock does not span processes: with several aggregators, enable the
//! background job (`commissions.job_enabled`) on exactly one of them and
//! send the commission admin requests to that one. If two writers ever
//! race anyway, they produce two different rows for one entry id; storage
//! keeps both (see migration 0004) and the next run refuses the ledger
//! until an operator removes the later row, instead of silently keeping
//! either.
//!
//! # Cost
//!
//! A full run recomputes everything from all facts, so its cost grows with
//! the number of attributed players and events; an incremental run costs
//! what changed (see [`crate::services::commission::incremental`]). The ledger a run
//! appends stays small: one entry per slot whose amount changed.

mod closing;
mod config;
mod run;

pub use closing::{CloseReport, PayoutReport, RolledOver};
pub use config::Saved;
pub(crate) use run::append;
pub use run::{facts_from, RunError, RunReport};

use crate::error::Problem;
use crate::store::ledger::LedgerStoreError;
use crate::store::{Store, StoreError};

pub use crate::services::commission::facts::{player_facts, LoadedFacts};

/// The `actor` recorded on commission runs of the job (background or
/// asked for through the admin API).
pub const JOB_ACTOR: &str = "job";

/// The process-wide ledger-writer lock (see the module docs).
static WRITER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Proof that the holder is the only ledger writer of this process.
#[derive(Debug)]
pub struct WriterGuard(#[allow(dead_code)] tokio::sync::MutexGuard<'static, ()>);

/// Waits for the process-wide ledger-writer lock.
pub async fn lock_writer() -> WriterGuard {
    WriterGuard(WRITER.lock().await)
}

/// Why a commission request failed.
#[derive(Debug, thiserror::Error)]
pub enum CommissionError {
    /// The request is invalid: nothing was stored.
    #[error("request is invalid")]
    Invalid(Vec<Problem>),
    /// The request contradicts what is stored (e.g. the month is already
    /// closed): nothing was stored.
    #[error("{0}")]
    Conflict(String),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] LedgerStoreError),
    /// The commission job, run first, failed: nothing was stored.
    #[error("the commission job failed: {0:#}")]
    Job(#[from] RunError),
}

impl From<StoreError> for CommissionError {
    fn from(e: StoreError) -> Self {
        CommissionError::Store(e.into())
    }
}

impl CommissionError {
    fn invalid(field: &str, message: impl Into<String>) -> Self {
        CommissionError::Invalid(vec![Problem::new(field, message)])
    }

    /// Whether retrying later may help (ClickHouse unavailable).
    pub fn is_retryable(&self) -> bool {
        match self {
            CommissionError::Store(e) => e.is_retryable(),
            CommissionError::Job(e) => e.is_retryable(),
            CommissionError::Invalid(_) | CommissionError::Conflict(_) => false,
        }
    }
}

/// The commission job (and the other ledger writers).
#[derive(Debug, Clone)]
pub struct CommissionJob {
    store: Store,
    metrics: Option<std::sync::Arc<crate::metrics::Metrics>>,
    memory: Option<std::sync::Arc<crate::services::commission::incremental::JobMemory>>,
    run_settings: crate::services::commission::incremental::RunSettings,
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl CommissionJob {
    /// A job on `store`.
    pub fn new(store: Store) -> Self {
        Self {
            store,
            metrics: None,
            memory: None,
            run_settings: crate::services::commission::incremental::RunSettings::default(),
        }
    }

    /// Keeps what runs computed in `memory` (shared by every job of this
    /// process on one store), so that later runs recompute only the players
    /// whose facts changed, with a full reconcile at least every
    /// `settings.full_reconcile_ms`. Without it every run is a full run.
    pub fn with_memory(
        mut self,
        memory: std::sync::Arc<crate::services::commission::incremental::JobMemory>,
        settings: crate::services::commission::incremental::RunSettings,
    ) -> Self {
        self.memory = Some(memory);
        self.run_settings = settings;
        self
    }

    /// Records runs and their problems into `metrics`.
    pub fn with_metrics(mut self, metrics: std::sync::Arc<crate::metrics::Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }
}
