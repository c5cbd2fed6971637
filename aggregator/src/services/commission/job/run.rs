//! Commission runs: reading the facts, running the engine, appending what
//! it returns (statements, entries, problems, in that order), and the run's
//! report, log lines and metrics; full runs here, incremental ones in
//! [`crate::services::commission::incremental`].

use std::collections::BTreeSet;
use std::future::Future;
use std::time::Duration;

use serde::Serialize;
use uuid::Uuid;

use crate::commission::{LedgerEntry, ProblemKind, RunProblem, Slot};
use crate::store::ledger::{LedgerScope, LedgerStoreError, RunRow};
use crate::store::{Store, StoreError};
use crate::support::clock::now_ms;

use super::*;

/// Appends a run's output: statements first (an entry is never visible
/// before the statements it names; a failure in between leaves statements
/// that the next run finds stored), then entries, then the problems.
pub(crate) async fn append(
    store: &Store,
    run_id: Uuid,
    now_ms: u64,
    statements: &[crate::commission::NgrStatement],
    entries: &[LedgerEntry],
    problems: &[RunProblem],
) -> Result<(), RunError> {
    store
        .append_statements(statements, now_ms)
        .await
        .map_err(RunError::store("appending NGR statements"))?;
    store
        .append_ledger(entries)
        .await
        .map_err(RunError::store("appending ledger entries"))?;
    store
        .append_problems(run_id, now_ms, problems)
        .await
        .map_err(RunError::store("recording the run's problems"))?;
    Ok(())
}

/// The engine's facts of `attributions` from their stored `events`: voided
/// and corrected events left out (they stay stored), fraud holds applied.
/// Every reader of facts (full runs, incremental runs, the CPA status)
/// goes through here, so they all see the same facts.
pub async fn facts_from(
    store: &Store,
    attributions: &[crate::store::rows::AttributionRow],
    mut events: Vec<crate::store::ledger::FactEventRow>,
) -> Result<LoadedFacts, StoreError> {
    let voided = store.load_voided().await?;
    events.retain(|e| !voided.contains(&(e.brand_id, e.event_id.clone())));
    let holds = crate::services::fraud::quarantine::Quarantine::commission_holds(store).await?;
    Ok(player_facts(attributions, &events, &holds))
}

/// Why a commission run failed. Nothing after the failing step is stored;
/// what was stored before it (statements before entries) is found by the
/// next run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Reading or writing ClickHouse failed at `step`.
    #[error("{step}: {source}")]
    Store {
        /// What the run was doing.
        step: &'static str,
        /// Why it failed.
        #[source]
        source: LedgerStoreError,
    },
    /// Stored configuration (deals, formulas, the affiliate tree) is not
    /// usable as a whole.
    #[error("{step}: {message}")]
    Config {
        /// Which configuration.
        step: &'static str,
        /// Why.
        message: String,
    },
    /// The engine refused the run as a whole (per-player problems never
    /// get here: they are recorded and held).
    #[error("running the commission engine: {0}")]
    Engine(String),
}

impl RunError {
    /// A storage failure at `step`.
    pub fn store<E: Into<LedgerStoreError>>(step: &'static str) -> impl FnOnce(E) -> Self {
        move |e| RunError::Store {
            step,
            source: e.into(),
        }
    }

    /// Unusable configuration at `step`.
    pub fn config<E: std::fmt::Display>(step: &'static str) -> impl FnOnce(E) -> Self {
        move |e| RunError::Config {
            step,
            message: e.to_string(),
        }
    }

    /// The engine's refusal.
    pub fn engine<E: std::fmt::Display>(e: E) -> Self {
        RunError::Engine(e.to_string())
    }

    /// Whether retrying later may succeed (ClickHouse was unavailable).
    pub fn is_retryable(&self) -> bool {
        matches!(self, RunError::Store { source, .. } if source.is_retryable())
    }
}

/// What a job run did.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// The run's id (`commission_runs.run_id`).
    pub run_id: Uuid,
    /// The `now` the run was given (Unix ms).
    pub now_ms: u64,
    /// `full`, `reconcile` (the periodic full run after incremental ones)
    /// or `incremental`.
    pub mode: &'static str,
    /// (player, brand) fact sets passed to the engine.
    pub players: usize,
    /// Players left out of this run, with the reason (e.g. a registration
    /// whose event row is not readable yet).
    pub skipped_players: Vec<String>,
    /// Players passed without attribution because their fraud review is
    /// open (they earn nothing meanwhile).
    pub held_players: Vec<String>,
    /// What could not be computed, and what the run held back because of
    /// it (also stored in `commission_problems`).
    pub problems: Vec<RunProblem>,
    /// Ledger entries that existed before the run.
    pub prior_entries: usize,
    /// The entries appended (empty when nothing changed).
    pub entries: Vec<LedgerEntry>,
    /// NGR statements appended (those whose id was new).
    pub statements_appended: usize,
}

/// Keys of the problems of the previous run in this process: a problem is
/// logged at error level when it first appears, not at every run.
static LAST_PROBLEMS: std::sync::Mutex<BTreeSet<String>> = std::sync::Mutex::new(BTreeSet::new());

impl CommissionJob {
    /// Logs new problems at error level and publishes the run's outcome.
    pub(super) fn observe(&self, result: &Result<RunReport, RunError>) {
        let Ok(r) = result else {
            if let Some(m) = &self.metrics {
                m.commission_run("failed");
            }
            return;
        };
        let keys: BTreeSet<String> = r.problems.iter().map(RunProblem::key).collect();
        {
            let mut last = LAST_PROBLEMS
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for (p, key) in r
                .problems
                .iter()
                .zip(r.problems.iter().map(RunProblem::key))
            {
                if !last.contains(&key) {
                    tracing::error!(
                        kind = p.kind.code(),
                        held = p.held.code(),
                        player = p.player.map(|x| x.to_string()),
                        brand = p.brand.map(|x| x.to_string()),
                        affiliate = p.affiliate.map(|x| x.to_string()),
                        message = %p.message,
                        "commission problem: held back until repaired (GET /admin/v1/commissions/problems)"
                    );
                }
            }
            *last = keys;
        }
        if !r.problems.is_empty() {
            tracing::warn!(
                problems = r.problems.len(),
                "commission run computed everyone else; some players or affiliates are held back"
            );
        }
        if let Some(m) = &self.metrics {
            m.commission_run("ok");
            let counts = ProblemKind::ALL.map(|k| {
                let n = r.problems.iter().filter(|p| p.kind == k).count();
                (k.code(), n as u64)
            });
            m.set_commission_problems(counts, r.held_players.len() as u64);
        }
    }

    /// Runs the engine over everything and appends what changed. Holds the
    /// writer lock for the whole run. Running it again with no new facts
    /// appends nothing.
    pub async fn run_once(&self, now_ms: u64) -> Result<RunReport, RunError> {
        let guard = lock_writer().await;
        self.run_locked(&guard, now_ms).await
    }

    /// Runs the job every `every` (first at once) until `shutdown`
    /// completes. Failures are logged and retried at the next tick.
    pub async fn run_until_stopped(self, every: Duration, shutdown: impl Future<Output = ()>) {
        crate::support::schedule::every(every, shutdown, || async {
            match self.run_once(now_ms()).await {
                Ok(r) if r.entries.is_empty() => {
                    tracing::debug!(players = r.players, "commission run: nothing to append");
                }
                Ok(r) => tracing::info!(
                    players = r.players,
                    entries = r.entries.len(),
                    statements = r.statements_appended,
                    "commission run appended entries"
                ),
                Err(e) => tracing::error!(error = format!("{e:#}"), "commission run failed"),
            }
        })
        .await;
        tracing::info!("commission job stopped");
    }

    /// [`Self::run_once`] for a caller that already holds the lock.
    /// Recorded with `actor` [`JOB_ACTOR`].
    pub async fn run_locked(
        &self,
        _guard: &WriterGuard,
        now_ms: u64,
    ) -> Result<RunReport, RunError> {
        let run_id = Uuid::now_v7();
        let started_ms = crate::support::clock::now_ms();
        let result = self.compute_and_append(run_id, now_ms).await;
        self.observe(&result);
        let row = match &result {
            Ok(r) => RunRow {
                run_id,
                kind: 1,
                started_at: crate::support::clock::secs(started_ms),
                started_at_ms: started_ms,
                finished_at_ms: crate::support::clock::now_ms(),
                now_ms,
                players: count(r.players),
                skipped_players: count(r.skipped_players.len() + r.problems.len()),
                prior_entries: count(r.prior_entries),
                entries_appended: count(r.entries.len()),
                statements_appended: count(r.statements_appended),
                entry_ids: r.entries.iter().map(|e| e.id).collect(),
                error: String::new(),
                actor: JOB_ACTOR.to_owned(),
            },
            Err(e) => RunRow {
                run_id,
                kind: 1,
                started_at: crate::support::clock::secs(started_ms),
                started_at_ms: started_ms,
                finished_at_ms: crate::support::clock::now_ms(),
                now_ms,
                players: 0,
                skipped_players: 0,
                prior_entries: 0,
                entries_appended: 0,
                statements_appended: 0,
                entry_ids: Vec::new(),
                error: format!("{e:#}"),
                actor: JOB_ACTOR.to_owned(),
            },
        };
        // The run log is informational: the ledger is already durable.
        if let Err(e) = self.store.save_run(&row).await {
            tracing::warn!(error = %e, "could not record the commission run");
        }
        result
    }

    pub(super) async fn compute_and_append(
        &self,
        run_id: Uuid,
        now_ms: u64,
    ) -> Result<RunReport, RunError> {
        let started = crate::support::clock::now_ms();
        let config = crate::services::commission::incremental::Config::load(&self.store).await?;
        let plan = match self.memory.as_ref().and_then(|m| m.take()) {
            Some(m) => {
                m.plan(&config, started, &self.store, &self.run_settings)
                    .await?
            }
            None => crate::services::commission::incremental::Plan::Full {
                reconcile: false,
                why: "nothing kept from an earlier run in this process",
            },
        };
        let run = match plan {
            crate::services::commission::incremental::Plan::Incremental { memory, changed } => {
                crate::services::commission::incremental::incremental(
                    &self.store,
                    &config,
                    memory,
                    changed,
                    run_id,
                    now_ms,
                )
                .await?
            }
            crate::services::commission::incremental::Plan::Full { reconcile, why } => {
                tracing::debug!(why, "full commission run");
                self.full(&config, run_id, now_ms, reconcile).await?
            }
        };
        let (report, kept) = run;
        if let Some(m) = &self.memory {
            m.put(kept.into_memory(&config, started));
        }
        Ok(report)
    }

    /// A full run: every attribution, event and ledger entry.
    pub(super) async fn full(
        &self,
        config: &crate::services::commission::incremental::Config,
        run_id: Uuid,
        now_ms: u64,
        reconcile: bool,
    ) -> Result<
        (
            RunReport,
            crate::services::commission::incremental::AfterRun,
        ),
        RunError,
    > {
        let store = &self.store;
        let attributions = store
            .load_attributions()
            .await
            .map_err(RunError::store("reading attributions"))?;
        let events = store
            .load_fact_events()
            .await
            .map_err(RunError::store("reading player events"))?;
        let facts = facts_from(store, &attributions, events)
            .await
            .map_err(RunError::store("reading voided events and fraud holds"))?;
        let prior = store
            .load_ledger(LedgerScope::All)
            .await
            .map_err(RunError::store("reading the ledger"))?;
        let output = config
            .engine()
            .run_with(&facts.players, &facts.problems, &prior)
            .map_err(RunError::engine)?;
        let known = store
            .load_statement_ids()
            .await
            .map_err(RunError::store("reading statement ids"))?;
        let statements: Vec<_> = output
            .statements
            .iter()
            .filter(|s| !known.contains(&s.id))
            .cloned()
            .collect();
        append(
            store,
            run_id,
            now_ms,
            &statements,
            &output.entries,
            &output.problems,
        )
        .await?;
        if reconcile && !output.entries.is_empty() {
            tracing::warn!(
                entries = output.entries.len(),
                "the periodic full commission run appended entries that incremental runs had \
                 not (a change arrived later than the incremental window): booked now"
            );
            if let Some(m) = &self.metrics {
                m.commission_reconcile_entries(output.entries.len() as u64);
            }
        }
        let ledger_rows = prior
            .iter()
            .filter(|e| !matches!(e.slot, Slot::Payout { .. }))
            .count()
            + output.entries.len();
        let kept = crate::services::commission::incremental::AfterRun {
            kept: crate::commission::incremental::Kept::from_full(&output),
            ledger_rows: ledger_rows as u64,
            last_full_ms: None,
        };
        let report = RunReport {
            run_id,
            now_ms,
            mode: if reconcile { "reconcile" } else { "full" },
            players: facts.players.len(),
            skipped_players: facts.skipped,
            held_players: facts.held,
            prior_entries: prior.len(),
            entries: output.entries,
            statements_appended: statements.len(),
            problems: output.problems,
        };
        Ok((report, kept))
    }
}
