//! Wiring: builds the application from settings (migrate, load the
//! catalogue, start the click writer and the brand-event sink — replaying
//! the event journal into ClickHouse when there is one — bind the
//! listener) and runs it until a shutdown signal, then flushes everything
//! accepted before returning (journaled events that cannot be shipped then
//! stay in the journal for the next start).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use clickstitch_shared::BrandId;
use tokio::net::TcpListener;
use tower_http::decompression::RequestDecompressionLayer;
use tower_http::trace::TraceLayer;

use crate::attribution::{RulesReloader, RulesStore};
use crate::catalog::Catalog;
use crate::click_index::ClickIndex;
use crate::config::{AttributionSettings, IngestSettings, Secrets, Settings};
use crate::conversions::Conversions;
use crate::fraud::{FraudPolicies, Scorer};
use crate::fraud_job::FraudJob;
use crate::ingest::TimePolicy;
use crate::keys::Keys;
use crate::metrics::Metrics;
use crate::quarantine::Quarantine;
use crate::routes::{admin, clicks, edge_links, events, fraud, health, metrics, postback};
use crate::stitching::Stitcher;
use crate::store::journal::{JournalConfig, PipelineConfig};
use crate::store::writer::{ClickWriter, EventSink, JournalSetup, WriterConfig, WriterTask};
use crate::store::{Lookups, Store};
use crate::sweep::PopulationSweep;

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
    pub commission_memory: Arc<crate::commission_incremental::JobMemory>,
    /// When commission runs go incremental.
    pub commission_runs: crate::commission_incremental::RunSettings,
    /// The population sweep (also run by the fraud job).
    pub sweep: PopulationSweep,
    /// Per-credential rate limits and the failed-authentication lockout.
    pub rate_limits: Arc<crate::rate_limit::RateLimits>,
}

impl AppState {
    /// Builds the state.
    pub fn new(inner: Inner) -> Self {
        Self(Arc::new(inner))
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
    pub fn commission_job(&self) -> crate::commission_job::CommissionJob {
        crate::commission_job::CommissionJob::new(self.0.store.clone())
            .with_metrics(Arc::clone(&self.0.metrics))
            .with_memory(
                Arc::clone(&self.0.commission_memory),
                self.0.commission_runs,
            )
    }

    /// The rate limits.
    pub fn rate_limits(&self) -> Arc<crate::rate_limit::RateLimits> {
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

/// Every route.
pub fn router(state: AppState, max_body_bytes: usize) -> Router {
    let admin = Router::new()
        .route("/fraud/sweep", post(fraud::sweep_now))
        .route("/brands", post(admin::create_brand).get(admin::list_brands))
        .route(
            "/brands/{brand_id}",
            axum::routing::patch(admin::update_brand),
        )
        .route(
            "/affiliates",
            post(admin::create_affiliate).get(admin::list_affiliates),
        )
        .route(
            "/campaigns",
            post(admin::create_campaign).get(admin::list_campaigns),
        )
        .route("/links", post(admin::create_link))
        .route("/links/{code}", get(admin::get_link))
        .route("/brands/{brand_id}/api-keys", post(admin::issue_brand_key))
        .route(
            "/brands/{brand_id}/postback-secret",
            get(admin::postback_secret),
        )
        .route(
            "/brands/{brand_id}/postback-secret/rotate",
            post(admin::rotate_postback_secret),
        )
        .route(
            "/affiliates/{affiliate_id}/api-keys",
            post(admin::issue_affiliate_key),
        )
        .route(
            "/operators",
            post(admin::issue_operator_key).get(admin::list_operator_keys),
        )
        .route(
            "/api-keys/{key_id}",
            axum::routing::delete(admin::revoke_key),
        );
    let admin = admin
        .merge(crate::routes::commissions::admin_routes())
        .merge(crate::routes::cpa_status::admin_routes());
    let edge = Router::new()
        .route("/clicks", post(clicks::ingest_clicks))
        .route("/links/{code}", get(edge_links::link_definition));
    let api = Router::new()
        .route("/events", post(events::post_event))
        .route(
            "/players/{player_id}/attribution",
            get(events::get_attribution),
        )
        .route("/fraud/quarantine", get(fraud::list))
        .route("/fraud/quarantine/decisions", post(fraud::decide_many))
        .route(
            "/fraud/quarantine/{kind}/{id}/decision",
            post(fraud::decide),
        );
    let api = api.merge(crate::routes::commission_balances::api_routes());
    Router::new()
        .route("/health", get(health::health))
        .route("/metrics", get(metrics::metrics))
        .nest("/admin/v1", admin)
        .nest("/edge/v1", edge)
        .nest("/api/v1", api)
        .route("/postback/v1/{brand_id}", get(postback::postback))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::rate_limit::limit,
        ))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(axum::middleware::map_response(crate::error::json_errors))
        .layer(RequestDecompressionLayer::new())
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .with_state(state)
}

/// The span of one request: method and path only. The query string is
/// left out (a postback carries its brand's secret there), and headers are
/// never recorded (credentials), at any log level.
fn request_span<B>(req: &axum::http::Request<B>) -> tracing::Span {
    tracing::debug_span!(
        "request",
        method = %req.method(),
        path = %req.uri().path(),
        version = ?req.version(),
    )
}

/// A built, bound, not yet serving application.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    port: u16,
    state: AppState,
    writer_tasks: Vec<WriterTask>,
    reloader: RulesReloader,
    reload_every: Duration,
    max_body_bytes: usize,
    limits: crate::server::Limits,
    /// The background commission job and its interval, when enabled here.
    commission_job: Option<(crate::commission_job::CommissionJob, Duration)>,
    /// The fraud job and its interval.
    fraud_job: (FraudJob, Duration),
    /// The population sweep the fraud job runs.
    sweep: PopulationSweep,
    /// How often the API keys are reloaded from ClickHouse.
    key_refresh: Duration,
}

impl Application {
    /// Migrates ClickHouse (waiting for it up to `startup_wait_secs`), loads
    /// the catalogue, starts the writer and binds the port.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let secrets = settings.secrets()?;
        let ch = settings.clickhouse.store_config();
        let wait = Duration::from_secs(settings.clickhouse.startup_wait_secs);
        let started = tokio::time::Instant::now();
        loop {
            match Store::migrate(&ch).await {
                Ok(applied) => {
                    tracing::info!(?applied, "ClickHouse schema up to date");
                    break;
                }
                Err(e) if e.is_retryable() && started.elapsed() < wait => {
                    tracing::warn!(error = %e, "waiting for ClickHouse");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => return Err(e).context("migrating ClickHouse"),
            }
        }
        let store = Store::new(&ch);
        let catalog = Catalog::load(store.clone())
            .await
            .context("loading the catalogue")?;
        let keys = Keys::load(store.clone(), secrets.postback_key.clone())
            .await
            .context("loading API keys")?;
        let (writer, writer_task) =
            ClickWriter::spawn(store.clone(), settings.ingest.writer_config());
        let rules_dir = &settings.attribution.rules_dir;
        let rules =
            Arc::new(RulesStore::load(rules_dir).with_context(|| {
                format!("loading attribution rules from {}", rules_dir.display())
            })?);
        let reloader = RulesReloader::new(Arc::clone(&rules), rules_dir.clone());
        // Before anything reads events from ClickHouse (fraud state, event-id
        // filter), what the journal holds is replayed into it.
        let (event_sink, event_writer_task) =
            spawn_event_sink(&store, &settings, ch.timeout, wait).await?;
        let lookups = Lookups::spawn(&store);
        let attribution = &settings.attribution;
        let clicks = Arc::new(
            warm_click_index(&store, &rules, attribution)
                .await
                .context("warming the recent-click index")?,
        );
        let metrics = Arc::new(Metrics::new());
        let fraud = &settings.fraud;
        let policies = FraudPolicies::load_dir(&fraud.policy_dir).with_context(|| {
            format!("loading fraud policies from {}", fraud.policy_dir.display())
        })?;
        let quarantine = Arc::new(Quarantine::new(
            Scorer::new(Arc::new(policies), fraud.capacity()),
            store.clone(),
            Arc::clone(&metrics),
            attribution.filter_capacity,
            attribution.single_instance,
        ));
        quarantine
            .load(crate::clock::now_ms())
            .await
            .context("loading the fraud state")?;
        let sweep = PopulationSweep::new(
            Arc::clone(&quarantine),
            store.clone(),
            event_sink.clone(),
            Arc::clone(&metrics),
        );
        let fraud_job = (
            FraudJob::new(
                Arc::clone(&quarantine),
                Arc::clone(&metrics),
                fraud.policy_dir.clone(),
                !attribution.single_instance,
            )
            .with_sweep(
                sweep.clone(),
                Duration::from_secs(fraud.sweep_interval_secs),
            ),
            Duration::from_secs(fraud.job_interval_secs.max(1)),
        );
        let conversions = Conversions::new(
            lookups.clone(),
            event_sink,
            Stitcher::new(
                store.clone(),
                lookups,
                rules,
                Arc::clone(&clicks),
                Arc::clone(&quarantine),
            ),
            Arc::clone(&quarantine),
            attribution.filter_capacity,
            attribution.single_instance,
        );
        if attribution.single_instance {
            let n = store
                .each_event_key(|k| {
                    conversions.remember_stored(BrandId::from(k.brand_id), &k.event_id)
                })
                .await
                .context("warming the event-id filter")?;
            tracing::info!(events = n, "event-id filter warmed");
        }
        let address = format!("{}:{}", settings.server.host, settings.server.port);
        let listener = TcpListener::bind(&address)
            .await
            .with_context(|| format!("binding {address}"))?;
        let port = listener.local_addr()?.port();
        let state = AppState::new(Inner {
            store,
            catalog,
            keys,
            conversions,
            clicks,
            quarantine,
            metrics,
            writer,
            secrets,
            ingest: settings.ingest.clone(),
            commission_memory: Arc::default(),
            commission_runs: settings.commissions.run_settings(),
            sweep: sweep.clone(),
            rate_limits: Arc::new(crate::rate_limit::RateLimits::new(&settings.rate_limit)),
        });
        // The background job shares what runs keep with the admin API's runs.
        let commission_job = settings.commissions.job_enabled.then(|| {
            let every = Duration::from_secs(settings.commissions.job_interval_secs.max(1));
            (state.commission_job(), every)
        });
        Ok(Self {
            listener,
            port,
            state,
            writer_tasks: vec![writer_task, event_writer_task],
            reloader,
            reload_every: Duration::from_secs(settings.attribution.reload_secs.max(1)),
            max_body_bytes: settings.server.max_body_bytes,
            limits: settings.server.limits(),
            commission_job,
            fraud_job,
            sweep,
            key_refresh: Duration::from_secs(settings.auth.key_refresh_secs.max(1)),
        })
    }

    /// The population sweep the fraud job runs, to run it at a chosen time
    /// (tests replaying traffic on their own clock).
    pub fn population_sweep(&self) -> PopulationSweep {
        self.sweep.clone()
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until `shutdown` completes, then lets in-flight requests finish
    /// and flushes every accepted click before returning.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Self {
            listener,
            state,
            writer_tasks,
            reloader,
            reload_every,
            max_body_bytes,
            limits,
            port,
            commission_job,
            fraud_job,
            sweep,
            key_refresh,
        } = self;
        // The fraud job keeps its own handle; this one would hold the event
        // writer open past shutdown (it finishes when its last handle goes).
        drop(sweep);
        tracing::info!(port, "aggregator listening");
        let (stop_jobs, mut jobs_stopped) = tokio::sync::watch::channel(false);
        let reload_job = tokio::spawn(reloader.run_until_stopped(reload_every, async move {
            let _ = jobs_stopped.changed().await;
        }));
        let mut commission_stopped = stop_jobs.subscribe();
        let commission_task = commission_job.map(|(job, every)| {
            tokio::spawn(job.run_until_stopped(every, async move {
                let _ = commission_stopped.changed().await;
            }))
        });
        let mut keys_stopped = stop_jobs.subscribe();
        let keys_state = state.clone();
        let keys_task = tokio::spawn(async move {
            crate::schedule::every(
                key_refresh,
                async move {
                    let _ = keys_stopped.changed().await;
                },
                || async {
                    if let Err(e) = keys_state.keys().refresh().await {
                        tracing::warn!(error = %e, "API keys not reloaded; the cached ones stay");
                    }
                },
            )
            .await;
        });
        let mut fraud_stopped = stop_jobs.subscribe();
        let (fraud_job, fraud_every) = fraud_job;
        let fraud_task = tokio::spawn(fraud_job.run_until_stopped(fraud_every, async move {
            let _ = fraud_stopped.changed().await;
        }));
        let app = router(state, max_body_bytes);
        let drainers: Vec<_> = writer_tasks.iter().map(WriterTask::drainer).collect();
        let shutdown = async move {
            shutdown.await;
            // Requests still in flight get their groups written at once.
            drainers.iter().for_each(|d| d.drain_now());
            let _ = stop_jobs.send(true);
        };
        crate::server::serve(listener, app, limits, shutdown)
            .await
            .context("serving HTTP")?;
        tracing::info!("HTTP stopped; flushing pending writes");
        for task in writer_tasks {
            task.finished().await;
        }
        if let Err(e) = reload_job.await {
            tracing::error!(error = %e, "rules reload job failed");
        }
        if let Err(e) = fraud_task.await {
            tracing::error!(error = %e, "fraud job failed");
        }
        if let Err(e) = keys_task.await {
            tracing::error!(error = %e, "API key refresh failed");
        }
        if let Some(task) = commission_task {
            if let Err(e) = task.await {
                tracing::error!(error = %e, "commission job failed");
            }
        }
        tracing::info!("aggregator stopped");
        Ok(())
    }
}

/// The brand-event sink: a writer of its own with a short group-commit
/// window, or, with `attribution.journal_dir`, the journal (replayed into
/// ClickHouse before this returns) shipped by a writer tuned for
/// throughput.
async fn spawn_event_sink(
    store: &Store,
    settings: &Settings,
    ch_timeout: Duration,
    startup_wait: Duration,
) -> anyhow::Result<(EventSink, WriterTask)> {
    let attribution = &settings.attribution;
    let Some(dir) = &attribution.journal_dir else {
        // A short group-commit window keeps registration → attribution
        // latency low.
        let (writer, task) = ClickWriter::spawn(
            store.clone(),
            WriterConfig {
                max_rows: 10_000,
                max_delay: Duration::from_millis(attribution.event_batch_delay_ms),
                // One group at a time: events arriving during an INSERT join
                // the next group (fewer, larger INSERTs under load; two in
                // flight measured slower: more, smaller INSERTs).
                max_in_flight: 1,
                attempts: 3,
            },
        );
        return Ok((EventSink::Direct(writer), task));
    };
    let setup = JournalSetup {
        dir: dir.clone(),
        journal: JournalConfig::default(),
        pipeline: PipelineConfig {
            max_backlog_bytes: attribution.journal_max_backlog_bytes,
            wait_timeout: ch_timeout,
            ..PipelineConfig::default()
        },
        // The shipper gathers (every 200 ms) and retries itself: one
        // attempt, no extra delay, everything read in one INSERT per table.
        shipping: WriterConfig {
            max_rows: 1_000_000,
            max_delay: Duration::ZERO,
            max_in_flight: 1,
            attempts: 1,
        },
    };
    let (sink, task) = EventSink::spawn_journaled(store.clone(), setup)
        .await
        .with_context(|| format!("opening the event journal in {}", dir.display()))?;
    let started = tokio::time::Instant::now();
    sink.replay(startup_wait.max(ch_timeout * 3))
        .await
        .with_context(|| {
            format!(
                "replaying the event journal in {} into ClickHouse",
                dir.display()
            )
        })?;
    tracing::info!(
        dir = %dir.display(),
        ms = started.elapsed().as_millis() as u64,
        "event journal replayed into ClickHouse"
    );
    Ok((sink, task))
}

/// The recent-click index; with `single_instance`, its device filter is
/// warmed from ClickHouse back to the longest attribution window so that it
/// can prove "no other click of this device".
async fn warm_click_index(
    store: &Store,
    rules: &RulesStore,
    settings: &AttributionSettings,
) -> anyhow::Result<ClickIndex> {
    if !settings.single_instance {
        return Ok(ClickIndex::new(
            settings.recent_clicks,
            settings.filter_capacity,
            None,
        ));
    }
    let longest_ms = rules
        .current()
        .files()
        .map(|r| r.window().as_ms())
        .max()
        .unwrap_or(0);
    // A day of margin: registrations may be dated a little in the past.
    let from_ms = crate::clock::now_ms().saturating_sub(longest_ms + 86_400_000);
    let index = ClickIndex::new(
        settings.recent_clicks,
        settings.filter_capacity,
        Some(from_ms),
    );
    let devices = store
        .each_visitor_click_count(from_ms, |r| {
            index.count_device(BrandId::from(r.brand_id), &r.visitor_id, r.clicks)
        })
        .await?;
    tracing::info!(
        devices,
        bytes = index.filter_bytes(),
        "device filter warmed"
    );
    Ok(index)
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown requested");
}
