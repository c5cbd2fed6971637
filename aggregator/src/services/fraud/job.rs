//! The fraud job: keeps the scorer's configuration and window state
//! current while the aggregator runs.
//!
//! Each run re-reads the fraud policy directory (a bad file keeps the
//! previous policies and is logged), and — when several instances share the
//! traffic (`attribution.single_instance = false`) — rebuilds the window
//! baselines from ClickHouse so that each instance counts the others'
//! clicks and registrations (stale by at most the interval plus the
//! baseline lag). It also publishes the window tables' fill to /metrics,
//! and every `sweep_interval_secs` runs the population sweep.
//! Owns scheduling only; the work is [`Quarantine::absorb_baselines`] and
//! [`PopulationSweep::run_once`].

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::fraud::FraudPolicies;
use crate::metrics::Metrics;
use crate::services::fraud::quarantine::Quarantine;
use crate::services::fraud::sweep::PopulationSweep;
use crate::support::clock::now_ms;

/// The fraud job.
#[derive(Debug)]
pub struct FraudJob {
    quarantine: Arc<Quarantine>,
    metrics: Arc<Metrics>,
    policy_dir: PathBuf,
    shared_traffic: bool,
    sweep: Option<(PopulationSweep, u64)>,
    last_sweep_ms: AtomicU64,
}

impl FraudJob {
    /// A job for `quarantine`; `shared_traffic` when other instances take
    /// part of the traffic.
    pub fn new(
        quarantine: Arc<Quarantine>,
        metrics: Arc<Metrics>,
        policy_dir: PathBuf,
        shared_traffic: bool,
    ) -> Self {
        Self {
            quarantine,
            metrics,
            policy_dir,
            shared_traffic,
            sweep: None,
            last_sweep_ms: AtomicU64::new(0),
        }
    }

    /// Also runs `sweep` every `every` (on the first run, then whenever a
    /// run finds that much time passed).
    pub fn with_sweep(mut self, sweep: PopulationSweep, every: Duration) -> Self {
        let every_ms = u64::try_from(every.as_millis()).unwrap_or(u64::MAX);
        self.sweep = (every_ms > 0).then_some((sweep, every_ms));
        self
    }

    /// One run at `now_ms`.
    pub async fn run_once(&self, now_ms: u64) -> anyhow::Result<()> {
        let policies = FraudPolicies::load_dir(&self.policy_dir).with_context(|| {
            format!(
                "reloading fraud policies from {}",
                self.policy_dir.display()
            )
        });
        match policies {
            Ok(p) => self.quarantine.scorer().replace_policies(Arc::new(p)),
            Err(e) => tracing::error!(
                error = format!("{e:#}"),
                "fraud policies not reloaded; the previous ones stay active"
            ),
        }
        if self.shared_traffic {
            self.quarantine
                .absorb_baselines(now_ms, false)
                .await
                .context("rebuilding fraud window baselines")?;
        }
        for t in self.quarantine.scorer().table_stats() {
            self.metrics
                .set_fraud_window_state(t.name, t.keys, t.capacity, t.evictions);
        }
        if let Some((sweep, every_ms)) = &self.sweep {
            let last = self.last_sweep_ms.load(Ordering::Relaxed);
            if last == 0 || now_ms >= last.saturating_add(*every_ms) {
                self.last_sweep_ms.store(now_ms.max(1), Ordering::Relaxed);
                sweep
                    .run_once(now_ms)
                    .await
                    .context("running the population sweep")?;
            }
        }
        Ok(())
    }

    /// Runs every `every` until `shutdown` completes.
    pub async fn run_until_stopped(self, every: Duration, shutdown: impl Future<Output = ()>) {
        crate::support::schedule::every(every, shutdown, || async {
            if let Err(e) = self.run_once(now_ms()).await {
                tracing::error!(error = format!("{e:#}"), "fraud job run failed");
            }
        })
        .await;
        tracing::info!("fraud job stopped");
    }
}
