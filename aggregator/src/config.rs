//! Layered configuration: built-in defaults, then an optional TOML file,
//! then `CLICKSTITCH_*` environment variables (`__` separates sections, e.g.
//! `CLICKSTITCH_CLICKHOUSE__URL`). Secrets are [`SecretString`]s: their
//! `Debug` output is redacted, so a logged config never shows them.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use figment::providers::{Env, Format, Toml};
use figment::Figment;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::store::writer::WriterConfig;
use crate::store::ClickHouseConfig;

/// Every setting.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// HTTP listener.
    pub server: ServerSettings,
    /// ClickHouse connection.
    pub clickhouse: ClickHouseSettings,
    /// Click ingest batching and checks.
    pub ingest: IngestSettings,
    /// Shared secrets.
    pub auth: AuthSettings,
    /// Logging.
    pub log: LogSettings,
    /// Attribution rules and brand events.
    pub attribution: AttributionSettings,
    /// The commission job.
    pub commissions: CommissionSettings,
    /// Fraud scoring.
    pub fraud: FraudSettings,
    /// Request rate limits.
    pub rate_limit: RateLimitSettings,
}

/// `[fraud]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FraudSettings {
    /// Directory of the fraud policies (`default.json`, `<brand uuid>.json`;
    /// see docs/fraud.md). Re-read every `job_interval_secs`.
    pub policy_dir: std::path::PathBuf,
    /// Keys of each click window table ((link, IP) and (link, /24)).
    pub click_keys: usize,
    /// Keys of each registration window table (IP and device).
    pub registration_keys: usize,
    /// Keys of the first-deposit window table (device).
    pub deposit_keys: usize,
    /// Keys of the affiliate table (click flooding).
    pub affiliate_keys: usize,
    /// Seconds between two runs of the fraud job (policy reload; with
    /// several instances also the window baselines from ClickHouse).
    pub job_interval_secs: u64,
    /// Seconds between two population sweeps (run by the fraud job; 0
    /// turns the sweep off). See docs/fraud.md, "Conversion shortfall".
    pub sweep_interval_secs: u64,
}

impl Default for FraudSettings {
    fn default() -> Self {
        let c = crate::fraud::Capacity::default();
        Self {
            policy_dir: "config/fraud".into(),
            click_keys: c.click_keys,
            registration_keys: c.registration_keys,
            deposit_keys: c.deposit_keys,
            affiliate_keys: c.affiliate_keys,
            job_interval_secs: 30,
            sweep_interval_secs: 300,
        }
    }
}

impl FraudSettings {
    /// The window capacity.
    pub fn capacity(&self) -> crate::fraud::Capacity {
        crate::fraud::Capacity {
            click_keys: self.click_keys.max(1024),
            registration_keys: self.registration_keys.max(1024),
            deposit_keys: self.deposit_keys.max(1024),
            affiliate_keys: self.affiliate_keys.max(256),
        }
    }
}

/// `[commissions]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CommissionSettings {
    /// Run the commission job in the background on this instance. Enable it
    /// on exactly one aggregator: the job is the ledger's single writer
    /// (see `crate::services::commission::job`).
    pub job_enabled: bool,
    /// Seconds between two runs of the background job.
    pub job_interval_secs: u64,
    /// Runs recompute only the players whose facts changed; a full run
    /// reconciles at least this often (seconds).
    pub full_reconcile_secs: u64,
    /// More changed brand players than this since the previous run: a full
    /// run instead of an incremental one.
    pub incremental_max_players: usize,
}

impl Default for CommissionSettings {
    fn default() -> Self {
        Self {
            job_enabled: false,
            job_interval_secs: 300,
            full_reconcile_secs: 3_600,
            incremental_max_players: 2_000,
        }
    }
}

impl CommissionSettings {
    /// When runs go incremental.
    pub fn run_settings(&self) -> crate::services::commission::incremental::RunSettings {
        crate::services::commission::incremental::RunSettings {
            full_reconcile_ms: self.full_reconcile_secs.saturating_mul(1000),
            max_players: self.incremental_max_players,
            ..crate::services::commission::incremental::RunSettings::default()
        }
    }
}

/// `[attribution]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AttributionSettings {
    /// Directory of the versioned rules files (see docs/attribution.md).
    pub rules_dir: std::path::PathBuf,
    /// How often the rules directory is checked for changes, seconds.
    pub reload_secs: u64,
    /// Group-commit window for brand events, ms (the bound on how long an
    /// event waits before its INSERT starts; keeps stitching latency low).
    pub event_batch_delay_ms: u64,
    /// True when this is the only aggregator receiving clicks and events:
    /// in-memory filters may then answer "certainly absent" (a new event
    /// id, a device with no other click) without asking ClickHouse. Set to
    /// false when several instances run behind a load balancer.
    pub single_instance: bool,
    /// Recent clicks kept in memory for stitching (≈ 250 bytes each).
    pub recent_clicks: usize,
    /// Distinct event ids and devices the presence filters are sized for
    /// (≈ 1.2 bytes each per filter at 1 % false positives; beyond it they
    /// only cost more ClickHouse lookups).
    pub filter_capacity: usize,
    /// Directory of the brand-event write-ahead journal (see
    /// `crate::store::journal`). When set, an event is acknowledged once it
    /// is fsynced there and reaches ClickHouse in the background (≈ 0.2 s
    /// later, or once ClickHouse is back); what is left at a restart is
    /// replayed before serving. Unset (default): acknowledged once it is in
    /// ClickHouse. Local disk, one directory per instance.
    pub journal_dir: Option<std::path::PathBuf>,
    /// With the journal: events are refused (503) once this many bytes are
    /// journaled and not yet in ClickHouse (bounds the disk used while
    /// ClickHouse is unreachable; ≈ 2–4 KB per event).
    pub journal_max_backlog_bytes: u64,
}

impl Default for AttributionSettings {
    fn default() -> Self {
        Self {
            rules_dir: "config/attribution".into(),
            reload_secs: 5,
            event_batch_delay_ms: 2,
            single_instance: true,
            recent_clicks: 1_000_000,
            filter_capacity: 10_000_000,
            journal_dir: None,
            journal_max_backlog_bytes: 1 << 30,
        }
    }
}

/// `[rate_limit]`: requests per second per credential, with a burst, and
/// the failed-authentication lockout per client IP (docs/security.md
/// "Rate limits"). A `*_per_sec` of 0 turns that limit off.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitSettings {
    /// The edge secret (all click batches and link lookups of every edge).
    pub edge_per_sec: u32,
    /// Burst of the edge secret.
    pub edge_burst: u32,
    /// Each operator credential (and the bootstrap token).
    pub operator_per_sec: u32,
    /// Burst of an operator credential.
    pub operator_burst: u32,
    /// Each brand or affiliate API key.
    pub key_per_sec: u32,
    /// Burst of an API key.
    pub key_burst: u32,
    /// Postbacks, per brand.
    pub postback_per_sec: u32,
    /// Burst of a brand's postbacks.
    pub postback_burst: u32,
    /// Failed authentications (401) per client IP per second; beyond the
    /// burst, every request from that IP without valid credentials is
    /// answered 429 until it refills.
    pub failed_auth_per_sec: u32,
    /// Burst of failed authentications per client IP.
    pub failed_auth_burst: u32,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self {
            edge_per_sec: 5_000,
            edge_burst: 10_000,
            operator_per_sec: 200,
            operator_burst: 1_000,
            key_per_sec: 2_000,
            key_burst: 5_000,
            postback_per_sec: 2_000,
            postback_burst: 5_000,
            failed_auth_per_sec: 20,
            failed_auth_burst: 300,
        }
    }
}

/// `[server]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSettings {
    /// Address to bind.
    pub host: String,
    /// Port to bind (0 picks a free one).
    pub port: u16,
    /// Largest accepted request body, bytes.
    pub max_body_bytes: usize,
    /// Open connections at most (one more is closed at once).
    pub max_connections: usize,
    /// A request's headers must arrive within this many seconds; a
    /// keep-alive connection idle this long is closed.
    pub header_read_timeout_secs: u64,
    /// A request, body included, must be answered within this many seconds
    /// (408 otherwise).
    pub request_timeout_secs: u64,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 8080,
            max_body_bytes: 32 * 1024 * 1024,
            max_connections: 10_000,
            header_read_timeout_secs: 10,
            request_timeout_secs: 60,
        }
    }
}

impl ServerSettings {
    /// The connection-level bounds of [`crate::server::serve`].
    pub fn limits(&self) -> crate::server::Limits {
        crate::server::Limits {
            max_connections: self.max_connections,
            header_read_timeout: std::time::Duration::from_secs(
                self.header_read_timeout_secs.max(1),
            ),
            request_timeout: std::time::Duration::from_secs(self.request_timeout_secs.max(1)),
            shutdown_grace: std::time::Duration::from_secs(30),
        }
    }
}

/// `[clickhouse]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClickHouseSettings {
    /// HTTP interface URL.
    pub url: String,
    /// Database name (created if missing).
    pub database: String,
    /// User.
    pub user: String,
    /// Password.
    pub password: SecretString,
    /// Timeout of one request, ms.
    pub timeout_ms: u64,
    /// How long startup waits for ClickHouse to answer, s.
    pub startup_wait_secs: u64,
    /// `lz4` (default) or `none`: compression of INSERT bodies. `none`
    /// saves CPU when ClickHouse is on the same host or LAN.
    pub compression: String,
}

impl Default for ClickHouseSettings {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:8123".into(),
            database: "clickstitch".into(),
            user: "default".into(),
            password: SecretString::from(""),
            timeout_ms: 10_000,
            startup_wait_secs: 30,
            compression: "lz4".into(),
        }
    }
}

impl ClickHouseSettings {
    /// The store's view of these settings.
    pub fn store_config(&self) -> ClickHouseConfig {
        ClickHouseConfig {
            url: self.url.clone(),
            database: self.database.clone(),
            user: self.user.clone(),
            password: self.password.clone(),
            timeout: Duration::from_millis(self.timeout_ms),
            compress: self.compression != "none",
        }
    }
}

/// `[ingest]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngestSettings {
    /// Flush a group once this many rows are pending.
    pub max_batch_rows: usize,
    /// Flush a group at the latest this long after its first row, ms: the
    /// bound on the time a request waits before its INSERT starts.
    pub max_batch_delay_ms: u64,
    /// Concurrent INSERTs.
    pub max_inserts_in_flight: usize,
    /// Clicks older than this are refused, hours (queues may deliver late).
    pub max_click_age_hours: u64,
    /// Clicks dated further in the future are refused, seconds (clock skew).
    pub max_click_future_secs: u64,
    /// Oldest brand event accepted (`occurred_at`), days before now: the
    /// backdating limit. Events further in the future than
    /// `max_click_future_secs` are refused too.
    pub max_event_age_days: u64,
}

impl Default for IngestSettings {
    fn default() -> Self {
        Self {
            max_batch_rows: 100_000,
            max_batch_delay_ms: 50,
            max_inserts_in_flight: 2,
            max_click_age_hours: 24 * 30,
            max_click_future_secs: 300,
            max_event_age_days: 400,
        }
    }
}

impl IngestSettings {
    /// The writer's view of these settings.
    pub fn writer_config(&self) -> WriterConfig {
        WriterConfig {
            max_rows: self.max_batch_rows.max(1),
            max_delay: Duration::from_millis(self.max_batch_delay_ms),
            max_in_flight: self.max_inserts_in_flight.max(1),
            attempts: 3,
        }
    }
}

/// `[auth]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    /// Secret the edge sends as `Authorization: Bearer …` (≥ 16 chars).
    pub edge_secret: Option<SecretString>,
    /// Operator token for the admin API (≥ 16 chars).
    pub operator_token: Option<SecretString>,
    /// Server key from which per-brand postback secrets are derived
    /// (≥ 32 chars). Without it, S2S postbacks are disabled.
    pub postback_key: Option<SecretString>,
    /// Seconds between two reloads of the API keys from ClickHouse: a key
    /// revoked on another instance stops working here within this (1..).
    pub key_refresh_secs: u64,
    /// Whether the bootstrap `operator_token` is a full admin (true, the
    /// default) or may only issue, list and revoke operator credentials
    /// (false: every action is then recorded under a named operator).
    pub bootstrap_full_access: bool,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            edge_secret: None,
            operator_token: None,
            postback_key: None,
            key_refresh_secs: 5,
            bootstrap_full_access: true,
        }
    }
}

/// `[log]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    /// `json` (default, for log shippers) or `pretty`.
    pub format: String,
    /// `tracing` filter, e.g. `info,clickstitch_aggregator=debug`
    /// (`RUST_LOG` overrides).
    pub filter: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            format: "json".into(),
            filter: "info".into(),
        }
    }
}

/// The secrets, checked present and long enough.
#[derive(Debug, Clone)]
pub struct Secrets {
    /// Edge → aggregator secret.
    pub edge_secret: SecretString,
    /// Operator token.
    pub operator_token: SecretString,
    /// Postback key, if postbacks are enabled.
    pub postback_key: Option<SecretString>,
    /// `auth.bootstrap_full_access`.
    pub bootstrap_full_access: bool,
}

impl Settings {
    /// Loads defaults ← `file` (if given) ← environment.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Self> {
        let mut figment = Figment::new();
        if let Some(path) = file {
            anyhow::ensure!(
                path.exists(),
                "config file {} does not exist",
                path.display()
            );
            figment = figment.merge(Toml::file(path));
        }
        figment
            .merge(Env::prefixed("CLICKSTITCH_").split("__"))
            .extract()
            .context("invalid configuration")
    }

    /// The secrets, or an error naming what is missing.
    pub fn secrets(&self) -> anyhow::Result<Secrets> {
        let get = |name: &str, s: &Option<SecretString>| -> anyhow::Result<SecretString> {
            let s = s.clone().with_context(|| {
                format!(
                    "auth.{name} is required (env CLICKSTITCH_AUTH__{})",
                    name.to_uppercase()
                )
            })?;
            anyhow::ensure!(
                s.expose_secret().len() >= 16,
                "auth.{name} must be at least 16 characters"
            );
            Ok(s)
        };
        let postback_key = match &self.auth.postback_key {
            None => None,
            Some(k) => {
                anyhow::ensure!(
                    k.expose_secret().len() >= 32,
                    "auth.postback_key must be at least 32 characters"
                );
                Some(k.clone())
            }
        };
        Ok(Secrets {
            edge_secret: get("edge_secret", &self.auth.edge_secret)?,
            operator_token: get("operator_token", &self.auth.operator_token)?,
            postback_key,
            bootstrap_full_access: self.auth.bootstrap_full_access,
        })
    }
}

/// Help text listing every setting, shown by `--help`.
pub const SETTINGS_HELP: &str = "\
CONFIGURATION
  Settings come from built-in defaults, then the TOML file given with --config,
  then environment variables CLICKSTITCH_<SECTION>__<KEY> (upper case).

  [server]      host = \"127.0.0.1\"            port = 8080 (0 = any free port)
                max_body_bytes = 33554432
  [clickhouse]  url = \"http://127.0.0.1:8123\"  database = \"clickstitch\"
                user = \"default\"               password = \"\"
                timeout_ms = 10000             startup_wait_secs = 30
                compression = \"lz4\" | \"none\"
  [ingest]      max_batch_rows = 100000        max_batch_delay_ms = 50
                max_inserts_in_flight = 2      max_click_age_hours = 720
                max_click_future_secs = 300
  [auth]        edge_secret = (required, >= 16 chars; shared with the edge worker)
                operator_token = (required, >= 16 chars; for /admin/v1)
                postback_key = (optional, >= 32 chars; enables /postback/v1)
                key_refresh_secs = 5 (API keys reloaded; bounds revocation delay)
                bootstrap_full_access = true (false: operator_token only manages operators)
  [rate_limit]  per credential, requests/s and burst (0 = off), docs/security.md:
                edge_per_sec = 5000 edge_burst = 10000  operator_per_sec = 200 operator_burst = 1000
                key_per_sec = 2000 key_burst = 5000     postback_per_sec = 2000 postback_burst = 5000
                failed_auth_per_sec = 20 failed_auth_burst = 300 (per client IP, then 429)
  [log]         format = \"json\" | \"pretty\"    filter = \"info\" (RUST_LOG overrides)
  [attribution] rules_dir = \"config/attribution\"  reload_secs = 5
                event_batch_delay_ms = 2  single_instance = true
                recent_clicks = 1000000  filter_capacity = 10000000
                journal_dir = (unset: ack events once in ClickHouse; set: once fsynced there)
                journal_max_backlog_bytes = 1073741824 (then 503 until ClickHouse catches up)
  [commissions] job_enabled = false (true on exactly one instance)  job_interval_secs = 300
  [fraud]       policy_dir = \"config/fraud\"   job_interval_secs = 30   sweep_interval_secs = 300
                click_keys = 1000000  registration_keys = 1000000
                deposit_keys = 250000  affiliate_keys = 40000

  Example: CLICKSTITCH_CLICKHOUSE__URL=http://ch:8123 CLICKSTITCH_AUTH__EDGE_SECRET=... \\
           clickstitch-aggregator --config aggregator.toml";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail API returns figment::Error
    fn a_config_file_overrides_defaults_and_unknown_keys_are_refused() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("a.toml", "[server]\nport = 9999\n[auth]\nedge_secret = \"0123456789abcdef\"\noperator_token = \"0123456789abcdef\"\n")?;
            let s = Settings::load(Some(Path::new("a.toml"))).expect("valid");
            assert_eq!(s.server.port, 9999);
            assert_eq!(s.clickhouse.database, "clickstitch");
            assert!(s.secrets().is_ok());
            jail.set_env("CLICKSTITCH_SERVER__PORT", "7777");
            assert_eq!(
                Settings::load(Some(Path::new("a.toml")))
                    .expect("valid")
                    .server
                    .port,
                7777
            );
            jail.create_file("b.toml", "[server]\nprot = 1\n")?;
            assert!(Settings::load(Some(Path::new("b.toml"))).is_err());
            Ok(())
        });
    }

    #[test]
    fn short_or_missing_secrets_are_refused_and_never_printed() {
        let mut s = Settings::default();
        assert!(s.secrets().is_err());
        s.auth.edge_secret = Some(SecretString::from("short"));
        s.auth.operator_token = Some(SecretString::from("0123456789abcdef"));
        assert!(s.secrets().is_err());
        s.auth.edge_secret = Some(SecretString::from("super-secret-value-1"));
        assert!(!format!("{s:?}").contains("super-secret-value-1"));
    }
}
