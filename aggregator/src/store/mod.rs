//! ClickHouse storage: the only module that imports the `clickhouse` crate.
//!
//! Split like vector's ClickHouse sink: [`rows`] (the table rows and their
//! mapping from domain types), [`writer`] (group-commit batching of clicks),
//! [`queries`] (catalogue reads and writes, click lookups), [`retry`]
//! (which errors are worth retrying), [`health`] (reachability) and
//! [`migrations`] (versioned, idempotent schema), with one module per
//! area for the rest (ledger, fraud, journal, …). Callers get domain types,
//! row structs or [`StoreError`]; no `clickhouse` crate type leaves this
//! module, but several `*Row` structs still do (their fields are plain
//! Rust types) — making rows private to the store is the next step of the
//! layout described in `docs/architecture.md`.

pub mod changes;
pub mod commission_reads;
pub mod fraud;
pub mod fraud_review;
pub mod health;
pub mod journal;
pub mod ledger;
pub mod lookups;
pub mod migrations;
pub mod problems;
pub mod queries;
pub mod retry;
pub mod rows;
pub mod sweep;
pub mod voids;
pub mod writer;

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

pub use retry::StoreError;

/// How to reach ClickHouse.
#[derive(Debug, Clone)]
pub struct ClickHouseConfig {
    /// HTTP interface, e.g. `http://127.0.0.1:8123`.
    pub url: String,
    /// Database holding Clickstitch's tables (created if missing).
    pub database: String,
    /// User name.
    pub user: String,
    /// Password (never logged).
    pub password: SecretString,
    /// Timeout for one INSERT or query round trip.
    pub timeout: Duration,
    /// LZ4-compress INSERT bodies (saves network on remote servers; costs
    /// CPU on both sides, measurable on loopback).
    pub compress: bool,
}

/// A connection handle shared by the writer and the queries.
#[derive(Clone)]
pub struct Store {
    client: clickhouse::Client,
    timeout: Duration,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

impl Store {
    /// Connects lazily (no IO until the first request), bound to the database.
    pub fn new(config: &ClickHouseConfig) -> Self {
        Self {
            client: base_client(config).with_database(&config.database),
            timeout: config.timeout,
        }
    }

    /// Creates the database if needed and applies pending migrations.
    pub async fn migrate(config: &ClickHouseConfig) -> Result<Vec<u32>, StoreError> {
        let server = base_client(config);
        migrations::run(&server, &config.database).await
    }

    pub(crate) fn client(&self) -> &clickhouse::Client {
        &self.client
    }

    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }
}

fn base_client(config: &ClickHouseConfig) -> clickhouse::Client {
    // Validation needs `RowBinaryWithNamesAndTypes`, which ClickHouse 18.16
    // lacks; rows are checked by our own migrations and integration tests.
    clickhouse::Client::default()
        .with_url(&config.url)
        .with_user(&config.user)
        .with_password(config.password.expose_secret())
        .with_validation(false)
        .with_compression(if config.compress {
            clickhouse::Compression::Lz4
        } else {
            clickhouse::Compression::None
        })
}

/// The coalesced lookups of event ingestion (one set per process).
#[derive(Debug, Clone)]
pub struct Lookups {
    /// Stored events by `(brand, event id)`.
    pub events: lookups::Coalescer<(clickstitch_shared::BrandId, String), rows::StoredEventRow>,
    /// Clicks by `(brand, click id)`.
    pub clicks: lookups::Coalescer<
        (clickstitch_shared::BrandId, clickstitch_shared::ClickId),
        rows::ClickSummaryRow,
    >,
    /// Same-device clicks.
    pub visitors: lookups::Coalescer<queries::VisitorKey, Vec<rows::ClickSummaryRow>>,
    /// Wallet currencies by `(brand, brand player id)`.
    pub wallets: lookups::Coalescer<(clickstitch_shared::BrandId, String), crate::money::Currency>,
    /// The store itself, for the rare uncoalesced lookups (event repair).
    pub store: Store,
}

impl Lookups {
    /// Starts the coalescers (needs a Tokio runtime).
    pub fn spawn(store: &Store) -> Self {
        const MAX_KEYS: usize = 500;
        const IN_FLIGHT: usize = 4;
        let (s1, s2, s3, s4) = (store.clone(), store.clone(), store.clone(), store.clone());
        Self {
            events: lookups::Coalescer::spawn(MAX_KEYS, IN_FLIGHT, move |keys: Vec<_>| {
                let s = s1.clone();
                async move { s.find_events(&keys).await }
            }),
            clicks: lookups::Coalescer::spawn(MAX_KEYS, IN_FLIGHT, move |keys: Vec<_>| {
                let s = s2.clone();
                async move { s.find_brand_clicks(&keys).await }
            }),
            visitors: lookups::Coalescer::spawn(MAX_KEYS, IN_FLIGHT, move |keys: Vec<_>| {
                let s = s3.clone();
                async move { s.find_visitor_matches(&keys).await }
            }),
            wallets: lookups::Coalescer::spawn(MAX_KEYS, IN_FLIGHT, move |keys: Vec<_>| {
                let s = s4.clone();
                async move { s.find_wallets(&keys).await }
            }),
            store: store.clone(),
        }
    }
}
