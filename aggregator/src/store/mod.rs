//! ClickHouse storage: the only module that imports the `clickhouse` crate.
//!
//! Split like vector's ClickHouse sink: [`rows`] (the table rows and their
//! mapping from domain types), [`writer`] (group-commit batching of clicks),
//! [`queries`] (catalogue reads and writes, click lookups), [`retry`]
//! (which errors are worth retrying), [`health`] (reachability) and
//! [`migrations`] (versioned, idempotent schema). Nothing outside this module
//! sees a ClickHouse type; callers get domain types or [`StoreError`].

pub mod health;
pub mod migrations;
pub mod queries;
pub mod retry;
pub mod rows;
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
        .with_compression(clickhouse::Compression::None)
}
