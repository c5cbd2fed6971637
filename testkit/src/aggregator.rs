//! The aggregator's settings for tests (feature `aggregator`): one place for what the
//! aggregator's integration tests and the end-to-end tests run it with, and the secrets they
//! share with it.

use std::path::PathBuf;

use clickstitch_aggregator::config::Settings;

use crate::workerd::repo_root;
use crate::ClickHouseServer;

/// The edge secret (`auth.edge_secret`; the edge worker's `EDGE_SECRET`) in tests.
pub const EDGE_SECRET: &str = "test-edge-secret-0123456789";
/// The bootstrap operator token (`auth.operator_token`) in tests.
pub const OPERATOR_TOKEN: &str = "test-operator-token-0123456789";

/// The repository's example attribution rules (`config/attribution`).
#[must_use]
pub fn rules_dir() -> PathBuf {
    repo_root().join("config/attribution")
}

/// The repository's example fraud policies (`config/fraud`).
#[must_use]
pub fn fraud_dir() -> PathBuf {
    repo_root().join("config/fraud")
}

/// Settings for an aggregator on `database` of `server`: any free port (`server.port = 0`), the
/// server's URL and credentials, a 5 s start-up wait, a 20 ms group-commit delay, the test
/// secrets, and the repository's attribution rules and fraud policies. Callers change what
/// their tests need on top.
#[must_use]
pub fn test_settings(server: &ClickHouseServer, database: &str) -> Settings {
    let mut settings = Settings::default();
    settings.server.port = 0;
    settings.clickhouse.url = server.http_url();
    settings.clickhouse.user = server.user().to_owned();
    settings.clickhouse.password = server.password().to_owned().into();
    settings.clickhouse.database = database.to_owned();
    settings.clickhouse.startup_wait_secs = 5;
    settings.ingest.max_batch_delay_ms = 20;
    settings.auth.edge_secret = Some(EDGE_SECRET.to_owned().into());
    settings.auth.operator_token = Some(OPERATOR_TOKEN.to_owned().into());
    settings.attribution.rules_dir = rules_dir();
    settings.fraud.policy_dir = fraud_dir();
    settings
}
