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
use clickstitch_shared::BrandId;
use tokio::net::TcpListener;

use crate::attribution::{RulesReloader, RulesStore};
use crate::catalog::Catalog;
use crate::click_index::ClickIndex;
use crate::config::{AttributionSettings, Settings};
use crate::fraud::{FraudPolicies, Scorer};
use crate::http::{router, AppState, Inner};
use crate::keys::Keys;
use crate::metrics::Metrics;
use crate::services::conversions::stitching::Stitcher;
use crate::services::conversions::Conversions;
use crate::services::fraud::job::FraudJob;
use crate::services::fraud::quarantine::Quarantine;
use crate::services::fraud::sweep::PopulationSweep;
use crate::store::journal::{JournalConfig, PipelineConfig};
use crate::store::writer::{ClickWriter, EventSink, JournalSetup, WriterConfig, WriterTask};
use crate::store::{Lookups, Store};

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
    commission_job: Option<(crate::services::commission::job::CommissionJob, Duration)>,
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
            .load(crate::support::clock::now_ms())
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
            rate_limits: Arc::new(crate::http::rate_limit::RateLimits::new(
                &settings.rate_limit,
            )),
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
            crate::support::schedule::every(
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
    let from_ms = crate::support::clock::now_ms().saturating_sub(longest_ms + 86_400_000);
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
