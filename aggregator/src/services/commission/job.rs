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

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::time::Duration;

use serde::Serialize;
use uuid::Uuid;

use clickstitch_shared::AffiliateId;

use crate::commission::{
    payout, Deal, LedgerEntry, Month, NgrFormula, PayoutDecision, PayoutRun, ProblemKind,
    RunProblem, Slot, Timestamp,
};
use crate::error::Problem;
use crate::money::Money;
use crate::store::ledger::{LedgerScope, LedgerStoreError, RunRow, StoredFxTable};
use crate::store::{Store, StoreError};
use crate::support::clock::now_ms;

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

pub use crate::services::commission::facts::{player_facts, LoadedFacts};

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

/// What a period close did.
#[derive(Debug, Clone, Serialize)]
pub struct CloseReport {
    /// The month closed.
    pub month: Month,
    /// The recorded close instant.
    pub closed_at: Timestamp,
    /// The job run made just before the close, so that every fact received
    /// until then is booked in the month.
    pub run: RunReport,
}

/// An affiliate whose payable balance was not paid.
#[derive(Debug, Clone, Serialize)]
pub struct RolledOver {
    /// The affiliate.
    pub affiliate: AffiliateId,
    /// The payable balance (may be zero or negative).
    pub payable: Money,
    /// The minimum payout it did not reach.
    pub min_payout: Money,
}

/// What a payout run did.
#[derive(Debug, Clone, Serialize)]
pub struct PayoutReport {
    /// The payout run id (the payout entries' ids derive from it).
    pub run_id: Uuid,
    /// When it was decided.
    pub at: Timestamp,
    /// True when the run id had already been used: the stored payouts are
    /// returned and nothing is paid again.
    pub replayed: bool,
    /// The payout entries appended (or found, on a replay).
    pub paid: Vec<LedgerEntry>,
    /// Affiliates below their minimum payout (or with nothing payable).
    pub rolled_over: Vec<RolledOver>,
    /// Affiliates with ledger entries but no deal version in force now.
    pub skipped: Vec<AffiliateId>,
    /// The job run made first (none on a replay).
    pub run: Option<RunReport>,
}

/// Whether a configuration write stored something new.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Saved {
    /// Stored.
    Created,
    /// Identical to what is stored: nothing written.
    Unchanged,
}

/// The commission job (and the other ledger writers).
#[derive(Debug, Clone)]
pub struct CommissionJob {
    store: Store,
    metrics: Option<std::sync::Arc<crate::metrics::Metrics>>,
    memory: Option<std::sync::Arc<crate::services::commission::incremental::JobMemory>>,
    run_settings: crate::services::commission::incremental::RunSettings,
}

/// Keys of the problems of the previous run in this process: a problem is
/// logged at error level when it first appears, not at every run.
static LAST_PROBLEMS: std::sync::Mutex<BTreeSet<String>> = std::sync::Mutex::new(BTreeSet::new());

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

    /// Logs new problems at error level and publishes the run's outcome.
    fn observe(&self, result: &Result<RunReport, RunError>) {
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

    async fn compute_and_append(&self, run_id: Uuid, now_ms: u64) -> Result<RunReport, RunError> {
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
    async fn full(
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

    /// Closes `month` at `closed_at_ms` (default `now_ms`; never in the
    /// future): runs the job first so that every fact received until now is
    /// booked in the month, then records the close. Later facts about the
    /// month are booked in the next open period. `actor` (who closes) is
    /// recorded with the close.
    pub async fn close_period(
        &self,
        month: Month,
        closed_at_ms: Option<u64>,
        now_ms: u64,
        actor: &str,
    ) -> Result<CloseReport, CommissionError> {
        let guard = lock_writer().await;
        let calendar = self.store.load_calendar().await?;
        if let Some(at) = calendar.closed_at(month) {
            return Err(CommissionError::Conflict(format!(
                "{month} is already closed (at {at}); a closed period never reopens"
            )));
        }
        let at = closed_at_ms.unwrap_or(now_ms);
        if at > now_ms {
            return Err(CommissionError::invalid(
                "closed_at",
                "must not be in the future",
            ));
        }
        let closed_at = Timestamp::from_unix_ms(at);
        calendar.close(month, closed_at).map_err(|e| match e {
            crate::commission::period::PeriodError::OutOfOrder { expected, .. } => {
                CommissionError::Conflict(format!(
                    "{e}: months close in order, close {expected} first"
                ))
            }
            other => CommissionError::invalid("month", other.to_string()),
        })?;
        let run = self
            .run_locked(&guard, now_ms)
            .await
            .map_err(CommissionError::Job)?;
        // Months close in order: the first close must not leave an earlier
        // month with entries open behind it (they would stay pending).
        if calendar.last_closed().is_none() {
            if let Some(first) = self.store.earliest_booked_month().await? {
                if first < month {
                    return Err(CommissionError::Conflict(format!(
                        "{first} has ledger entries and is still open: months close in order, \
                         close {first} first"
                    )));
                }
            }
        }
        self.store
            .save_period_close(month, at, now_ms, actor)
            .await?;
        Ok(CloseReport {
            month,
            closed_at,
            run,
        })
    }

    /// A payout run at `now_ms`: runs the job first, then pays each
    /// affiliate's payable balance if it reaches the minimum payout of the
    /// deal version in force now (otherwise it rolls over). Replaying a run
    /// id returns the stored payouts and pays nothing again. `actor` (who
    /// pays) is recorded with the run.
    pub async fn run_payouts(
        &self,
        run_id: Option<Uuid>,
        now_ms: u64,
        actor: &str,
    ) -> Result<PayoutReport, CommissionError> {
        let guard = lock_writer().await;
        let at = Timestamp::from_unix_ms(now_ms);
        if let Some(id) = run_id {
            let ledger = self.store.load_ledger(LedgerScope::All).await?;
            let paid: Vec<LedgerEntry> = ledger
                .into_iter()
                .filter(|e| matches!(e.slot, Slot::Payout { run, .. } if run == id))
                .collect();
            if !paid.is_empty() {
                return Ok(PayoutReport {
                    run_id: id,
                    at,
                    replayed: true,
                    paid,
                    rolled_over: Vec::new(),
                    skipped: Vec::new(),
                    run: None,
                });
            }
        }
        let run_id = run_id.unwrap_or_else(Uuid::now_v7);
        let run = self
            .run_locked(&guard, now_ms)
            .await
            .map_err(CommissionError::Job)?;
        let ledger = self.store.load_ledger(LedgerScope::All).await?;
        let calendar = self.store.load_calendar().await?;
        let deals: BTreeMap<AffiliateId, Deal> = self
            .store
            .load_deals()
            .await?
            .into_iter()
            .map(|d| (d.affiliate(), d))
            .collect();
        let affiliates: BTreeSet<AffiliateId> = ledger.iter().map(|e| e.affiliate).collect();
        let mut report = PayoutReport {
            run_id,
            at,
            replayed: false,
            paid: Vec::new(),
            rolled_over: Vec::new(),
            skipped: Vec::new(),
            run: Some(run),
        };
        for affiliate in affiliates {
            let Some(version) = deals.get(&affiliate).and_then(|d| d.version_at(at.month())) else {
                report.skipped.push(affiliate);
                continue;
            };
            let decision = payout(
                &ledger,
                &calendar,
                affiliate,
                version.min_payout(),
                PayoutRun { id: run_id, at },
            )
            .map_err(|e| CommissionError::Conflict(format!("affiliate {affiliate}: {e}")))?;
            match decision {
                PayoutDecision::Pay(entry) => report.paid.push(*entry),
                PayoutDecision::RollOver {
                    payable,
                    min_payout,
                } => report.rolled_over.push(RolledOver {
                    affiliate,
                    payable,
                    min_payout,
                }),
            }
        }
        self.store.append_ledger(&report.paid).await?;
        let row = RunRow {
            run_id,
            kind: 2,
            started_at: crate::support::clock::secs(now_ms),
            started_at_ms: now_ms,
            finished_at_ms: crate::support::clock::now_ms(),
            now_ms,
            players: 0,
            skipped_players: 0,
            prior_entries: count(ledger.len()),
            entries_appended: count(report.paid.len()),
            statements_appended: 0,
            entry_ids: report.paid.iter().map(|e| e.id).collect(),
            error: String::new(),
            actor: actor.to_owned(),
        };
        if let Err(e) = self.store.save_run(&row).await {
            tracing::warn!(error = %e, "could not record the payout run");
        }
        Ok(report)
    }

    /// Stores an affiliate's deal. Versions are append-only: a new document
    /// must repeat every stored version unchanged (a change is a new
    /// version) and keep the currency. The same document again is
    /// [`Saved::Unchanged`].
    pub async fn save_deal(&self, deal: &Deal, now_ms: u64) -> Result<Saved, CommissionError> {
        let _guard = lock_writer().await;
        let new = serde_json::to_value(deal).unwrap_or_default();
        let latest = latest_version(&new);
        if let Some(old) = self.store.load_deal(deal.affiliate()).await? {
            if old.currency() != deal.currency() {
                return Err(CommissionError::invalid(
                    "currency",
                    format!(
                        "the deal currency never changes: the stored deal is in {}",
                        old.currency()
                    ),
                ));
            }
            let old = serde_json::to_value(&old).unwrap_or_default();
            if old == new {
                return Ok(Saved::Unchanged);
            }
            append_only(&old, &new)?;
        }
        self.store.save_deal(deal, latest, now_ms).await?;
        Ok(Saved::Created)
    }

    /// Stores a brand's NGR formula (versions append-only, like deals).
    pub async fn save_formula(
        &self,
        formula: &NgrFormula,
        now_ms: u64,
    ) -> Result<Saved, CommissionError> {
        let _guard = lock_writer().await;
        let new = serde_json::to_value(formula).unwrap_or_default();
        if let Some(old) = self.store.load_formula(formula.brand()).await? {
            let old = serde_json::to_value(&old).unwrap_or_default();
            if old == new {
                return Ok(Saved::Unchanged);
            }
            append_only(&old, &new)?;
        }
        self.store
            .save_formula(formula, latest_version(&new), now_ms)
            .await?;
        Ok(Saved::Created)
    }

    /// Stores an FX table for its month. Its version must be above the
    /// month's stored version (the same table again is
    /// [`Saved::Unchanged`]); the highest version converts the month.
    pub async fn save_fx_table(
        &self,
        table: &StoredFxTable,
        now_ms: u64,
    ) -> Result<Saved, CommissionError> {
        let _guard = lock_writer().await;
        let stored = self.store.load_fx_tables().await?;
        if let Some(old) = stored.iter().find(|t| t.month == table.month) {
            if old == table {
                return Ok(Saved::Unchanged);
            }
            if table.version <= old.version {
                return Err(CommissionError::invalid(
                    "version",
                    format!(
                        "{} already has version {} with other rates; publish a higher version",
                        table.month, old.version
                    ),
                ));
            }
        }
        self.store.save_fx_table(table, now_ms).await?;
        Ok(Saved::Created)
    }
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The `version` of the last element of `doc.versions`.
fn latest_version(doc: &serde_json::Value) -> u32 {
    doc["versions"]
        .as_array()
        .and_then(|v| v.last())
        .and_then(|v| v["version"].as_u64())
        .and_then(|v| u32::try_from(v).ok())
        .unwrap_or(0)
}

/// Checks that `new.versions` starts with every version of `old`, unchanged.
fn append_only(old: &serde_json::Value, new: &serde_json::Value) -> Result<(), CommissionError> {
    let empty = Vec::new();
    let old_versions = old["versions"].as_array().unwrap_or(&empty);
    let new_versions = new["versions"].as_array().unwrap_or(&empty);
    let mut problems = Vec::new();
    for (i, v) in old_versions.iter().enumerate() {
        match new_versions.get(i) {
            Some(n) if n == v => {}
            _ => problems.push(Problem::new(
                format!("versions[{i}]"),
                format!(
                    "version {} is stored with other terms (or is missing); stored versions never \
                     change: repeat it unchanged and add a new version",
                    v["version"]
                ),
            )),
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(CommissionError::Invalid(problems))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_versions_are_append_only() {
        let old = serde_json::json!({"versions": [{"version": 1, "x": 1}]});
        let added =
            serde_json::json!({"versions": [{"version": 1, "x": 1}, {"version": 2, "x": 2}]});
        let changed = serde_json::json!({"versions": [{"version": 1, "x": 9}]});
        assert!(append_only(&old, &added).is_ok());
        assert_eq!(latest_version(&added), 2);
        match append_only(&old, &changed) {
            Err(CommissionError::Invalid(p)) => assert_eq!(p[0].field, "versions[0]"),
            other => panic!("{other:?}"),
        }
    }
}
