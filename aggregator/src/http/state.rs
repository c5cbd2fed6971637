//! The state every handler shares ([`AppState`]): the services, the store,
//! the caches and the settings they need, behind one `Arc`. Built by
//! [`crate::startup`]; read by the handlers in [`super::routes`] and the
//! middleware.

use std::sync::Arc;

use crate::catalog::Catalog;
use crate::click_index::ClickIndex;
use crate::config::{IngestSettings, Secrets};
use crate::ingest::TimePolicy;
use crate::keys::Keys;
use crate::metrics::Metrics;
use crate::services::conversions::Conversions;
use crate::services::fraud::quarantine::Quarantine;
use crate::services::fraud::sweep::PopulationSweep;
use crate::store::writer::ClickWriter;
use crate::store::Store;

/// Shared state of all handlers.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Inner>);

/// Everything the handlers share.
#[derive(Debug)]
pub struct Inner {
    /// ClickHouse.
    pub store: Store,
    /// Brands, affiliates, campaigns, links.
    pub catalog: Catalog,
    /// API keys.
    pub keys: Keys,
    /// Brand events.
    pub conversions: Conversions,
    /// Recent clicks (fed by click ingest, read by stitching).
    pub clicks: Arc<ClickIndex>,
    /// Fraud scoring, held entities and reviews.
    pub quarantine: Arc<Quarantine>,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// The click writer.
    pub writer: ClickWriter,
    /// Secrets.
    pub secrets: Secrets,
    /// Ingest limits.
    pub ingest: IngestSettings,
    /// What commission runs of this process keep between runs.
    pub commission_memory: Arc<crate::services::commission::incremental::JobMemory>,
    /// When commission runs go incremental.
    pub commission_runs: crate::services::commission::incremental::RunSettings,
    /// The population sweep (also run by the fraud job).
    pub sweep: PopulationSweep,
    /// Per-credential rate limits and the failed-authentication lockout.
    pub rate_limits: Arc<crate::http::rate_limit::RateLimits>,
}

impl AppState {
    /// Builds the state.
    pub fn new(inner: Inner) -> Self {
        Self(Arc::new(inner))
    }

    /// The click ingest service.
    pub fn click_ingest(&self) -> crate::services::clicks::ClickIngest<'_> {
        crate::services::clicks::ClickIngest {
            catalog: &self.0.catalog,
            recent: &self.0.clicks,
            quarantine: &self.0.quarantine,
            writer: &self.0.writer,
            metrics: &self.0.metrics,
        }
    }

    /// The recent-click index.
    pub fn clicks(&self) -> &ClickIndex {
        &self.0.clicks
    }

    /// The population sweep.
    pub fn sweep(&self) -> &PopulationSweep {
        &self.0.sweep
    }

    /// Fraud scoring and review.
    pub fn quarantine(&self) -> &Quarantine {
        &self.0.quarantine
    }

    /// The metrics registry.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.0.metrics
    }

    /// The commission job of this process: its runs share what they keep.
    pub fn commission_job(&self) -> crate::services::commission::job::CommissionJob {
        crate::services::commission::job::CommissionJob::new(self.0.store.clone())
            .with_metrics(Arc::clone(&self.0.metrics))
            .with_memory(
                Arc::clone(&self.0.commission_memory),
                self.0.commission_runs,
            )
    }

    /// The rate limits.
    pub fn rate_limits(&self) -> Arc<crate::http::rate_limit::RateLimits> {
        Arc::clone(&self.0.rate_limits)
    }

    /// API keys.
    pub fn keys(&self) -> &Keys {
        &self.0.keys
    }

    /// The conversion service.
    pub fn conversions(&self) -> &Conversions {
        &self.0.conversions
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.0.store
    }

    /// The catalogue.
    pub fn catalog(&self) -> &Catalog {
        &self.0.catalog
    }

    /// The click writer.
    pub fn writer(&self) -> &ClickWriter {
        &self.0.writer
    }

    /// The secrets.
    pub fn secrets(&self) -> &Secrets {
        &self.0.secrets
    }

    /// Time limits for records arriving at `now_ms`.
    pub fn time_policy(&self, now_ms: u64) -> TimePolicy {
        TimePolicy {
            now_ms,
            max_age_ms: self.0.ingest.max_click_age_hours * 3_600_000,
            max_future_ms: self.0.ingest.max_click_future_secs * 1000,
        }
    }

    /// Time limits for brand events reported at `now_ms` (the backdating
    /// limit `ingest.max_event_age_days`).
    pub fn event_time_policy(&self, now_ms: u64) -> TimePolicy {
        TimePolicy {
            now_ms,
            max_age_ms: self.0.ingest.max_event_age_days.saturating_mul(86_400_000),
            max_future_ms: self.0.ingest.max_click_future_secs * 1000,
        }
    }
}
