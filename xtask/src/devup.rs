//! `cargo xtask dev-up`: the whole stack locally, on the testkit harnesses.
//!
//! - ClickHouse (Debian's clickhouse-server), data under `.local/clickhouse`;
//! - the aggregator on `127.0.0.1:$AGG_PORT` (8080), log in `.local/logs/aggregator.log`;
//! - the edge worker's wasm under workerd on `127.0.0.1:$EDGE_PORT` (8787), direct delivery
//!   (clicks are batched straight to the aggregator);
//! - a demo brand, affiliate, campaign and link, and a `curl` for it.
//!
//! Ctrl-C (or `SIGTERM`) stops everything in reverse order: the edge, then the aggregator (it
//! flushes what it accepted), then ClickHouse. So does any component exiting on its own.

use std::fs::{self, File};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context as _};
use serde_json::{json, Value};

use clickstitch_testkit::edge::{self, BuildOptions};
use clickstitch_testkit::net::{self, accepts_connections};
use clickstitch_testkit::process::Guarded;
use clickstitch_testkit::workerd::{Workerd, WorkerdConfig};
use clickstitch_testkit::{ClickHouseOptions, ClickHouseServer};

use crate::stop::Stop;
use crate::util::{self, command, repo_root, target_dir, wait_http_unless};

/// A browser's user agent: curl's own is (rightly) on the bot list.
const UA: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36";

/// Ports and secrets (the environment variables `scripts/dev-up.sh` always took).
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// ClickHouse's HTTP port.
    #[arg(long, env = "CH_HTTP_PORT", default_value_t = 18123)]
    ch_http_port: u16,
    /// ClickHouse's native-protocol port.
    #[arg(long, env = "CH_TCP_PORT", default_value_t = 19000)]
    ch_tcp_port: u16,
    /// The aggregator's port.
    #[arg(long, env = "AGG_PORT", default_value_t = 8080)]
    agg_port: u16,
    /// The edge worker's port.
    #[arg(long, env = "EDGE_PORT", default_value_t = 8787)]
    edge_port: u16,
    /// The edge secret (default: dev-edge-secret-<hostname>-local).
    #[arg(long, env = "EDGE_SECRET", hide_env_values = true)]
    edge_secret: Option<String>,
    /// The operator token (default: dev-operator-token-<hostname>-local).
    #[arg(long, env = "OPERATOR_TOKEN", hide_env_values = true)]
    operator_token: Option<String>,
}

fn log(line: &str) {
    eprintln!("dev-up: {line}");
}

pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    let root = repo_root();
    let host = fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "localhost".to_owned());
    let edge_secret = args
        .edge_secret
        .clone()
        .unwrap_or_else(|| format!("dev-edge-secret-{host}-local"));
    let operator_token = args
        .operator_token
        .clone()
        .unwrap_or_else(|| format!("dev-operator-token-{host}-local"));
    for port in [
        args.ch_http_port,
        args.ch_tcp_port,
        args.agg_port,
        args.edge_port,
    ] {
        if accepts_connections(port) {
            bail!("port {port} is in use (set CH_HTTP_PORT / CH_TCP_PORT / AGG_PORT / EDGE_PORT)");
        }
    }
    let local = root.join(".local");
    let logs = local.join("logs");
    fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    let mut stop = Stop::listen()?;
    let interrupted = |stop: &mut Stop| match stop.received() {
        Some(signal) => bail!("{signal} received during start-up"),
        None => Ok(()),
    };

    // --- ClickHouse -----------------------------------------------------------------
    let ch_dir = local.join("clickhouse");
    log(&format!(
        "starting ClickHouse on :{}, data in {}/data",
        args.ch_http_port,
        ch_dir.display()
    ));
    let mut clickhouse = ClickHouseServer::start_with(&ClickHouseOptions {
        dir: Some(ch_dir),
        http_port: Some(args.ch_http_port),
        tcp_port: Some(args.ch_tcp_port),
        log_level: "warning".to_owned(),
        ..ClickHouseOptions::default()
    })?;
    let mut stack = Running {
        clickhouse: Some(&mut clickhouse),
        aggregator: None,
        workerd: None,
    };
    interrupted(&mut stop)?;

    // --- aggregator -------------------------------------------------------------------
    log("building the aggregator");
    util::cargo(&[
        "build",
        "-q",
        "-p",
        "clickstitch-aggregator",
        "--bin",
        "clickstitch-aggregator",
    ])?;
    let binary = target_dir().join("debug/clickstitch-aggregator");
    let log_file = File::create(logs.join("aggregator.log")).context("creating aggregator.log")?;
    let log_format = std::env::var("CLICKSTITCH_LOG__FORMAT").unwrap_or_else(|_| "pretty".into());
    let child = command(&binary)
        .env("CLICKSTITCH_SERVER__PORT", args.agg_port.to_string())
        .env(
            "CLICKSTITCH_CLICKHOUSE__URL",
            format!("http://127.0.0.1:{}", args.ch_http_port),
        )
        .env("CLICKSTITCH_AUTH__EDGE_SECRET", &edge_secret)
        .env("CLICKSTITCH_AUTH__OPERATOR_TOKEN", &operator_token)
        .env("CLICKSTITCH_LOG__FORMAT", log_format)
        .stdin(Stdio::null())
        .stdout(log_file.try_clone()?)
        .stderr(log_file)
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    stack.aggregator = Some(Guarded::watch(
        child,
        "clickstitch-aggregator-watchdog",
        binary.as_os_str(),
        None,
    )?);
    let aggregator_url = format!("http://127.0.0.1:{}", args.agg_port);
    wait_http_unless(
        &format!("{aggregator_url}/health"),
        "aggregator",
        120,
        || stop.received(),
    )?;
    log(&format!(
        "aggregator on {aggregator_url} (log: .local/logs/aggregator.log)"
    ));
    interrupted(&mut stop)?;

    // --- edge worker under workerd ------------------------------------------------------
    log("building the edge worker (wasm)");
    let build_log = logs.join("build-edge.log");
    let bundle = match edge::build(&BuildOptions {
        quiet: true,
        ..BuildOptions::default()
    }) {
        Ok(bundle) => {
            fs::write(&build_log, format!("built {}\n", bundle.display()))?;
            bundle
        }
        Err(e) => {
            fs::write(&build_log, format!("{e:#}\n"))?;
            bail!("edge build failed, see .local/logs/build-edge.log");
        }
    };
    interrupted(&mut stop)?;
    let config = WorkerdConfig::rust_bundle(bundle)
        .port(args.edge_port)
        .var("AGGREGATOR_URL", &aggregator_url)
        .var("CLICK_DELIVERY", "direct")
        .var("FLUSH_MAX_CLICKS", "500")
        .var("FLUSH_MAX_MS", "0")
        .var("LINK_CACHE_TTL_SECONDS", "60")
        .secret("EDGE_SECRET", &edge_secret)
        .secret("IDENTITY_SALT", "dev-identity-salt");
    let workerd = Workerd::start(config)?;
    let edge_url = workerd.url();
    let workerd_log = workerd
        .config_path()
        .with_file_name("workerd.log")
        .display()
        .to_string();
    stack.workerd = Some(workerd);
    wait_http_unless(
        &format!("{edge_url}/health"),
        "edge worker (workerd)",
        120,
        || stop.received(),
    )?;
    log(&format!("edge worker on {edge_url} (log: {workerd_log})"));

    // --- demo data ----------------------------------------------------------------------
    let code = seed(&aggregator_url, &operator_token)?;
    let edge_port = args.edge_port;
    let ch_tcp_port = args.ch_tcp_port;
    println!(
        r#"
  Clickstitch is up.

  A player's click (302 to the brand, with a click id):
    curl -i -A '{UA}' -H 'CF-IPCountry: DE' 'http://127.0.0.1:{edge_port}/{code}?sub1=newsletter'

  From a restricted country (451):
    curl -i -A '{UA}' -H 'CF-IPCountry: US' 'http://127.0.0.1:{edge_port}/{code}'

  As a bot (curl's own user agent: 302 without a click id):
    curl -i -H 'CF-IPCountry: DE' 'http://127.0.0.1:{edge_port}/{code}'

  Without a country (unknown countries fail closed: 451):
    curl -i -A '{UA}' 'http://127.0.0.1:{edge_port}/{code}'

  The stored clicks (about a second later):
    clickhouse-client --port {ch_tcp_port} --query "SELECT click_id, country, sub1, is_bot, bot_reason FROM clickstitch.clicks_unique ORDER BY clicked_at_ms"

  Admin API: {aggregator_url}/admin/v1/...  (Authorization: Bearer {operator_token})
  Ctrl-C stops everything."#
    );
    let why = stop.wait_until(|| stack.any_exited());
    if why.contains("component") {
        log("a component exited; see .local/logs");
    }
    drop(stack);
    Ok(())
}

/// What runs, stopped in reverse order of start when dropped (also on an error during start-up).
struct Running<'a> {
    clickhouse: Option<&'a mut ClickHouseServer>,
    aggregator: Option<Guarded>,
    workerd: Option<Workerd>,
}

impl Running<'_> {
    fn any_exited(&self) -> bool {
        let pids = [
            self.clickhouse.as_ref().and_then(|c| c.pid()),
            self.aggregator.as_ref().map(|a| a.server.id()),
            self.workerd.as_ref().and_then(Workerd::pid),
        ];
        pids.iter().any(|p| p.is_none_or(util::exited))
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        log("stopping…");
        if let Some(mut workerd) = self.workerd.take() {
            let _ = workerd.terminate(Duration::from_secs(10));
        }
        if let Some(mut aggregator) = self.aggregator.take() {
            // The aggregator flushes what it accepted on SIGTERM.
            let _ = aggregator.terminate(Duration::from_secs(60));
        }
        if let Some(clickhouse) = self.clickhouse.take() {
            let _ = clickhouse.terminate(Duration::from_secs(30));
        }
        log("stopped");
    }
}

/// Creates the demo brand, affiliate, campaign and link; returns the link's code.
fn seed(aggregator_url: &str, token: &str) -> anyhow::Result<String> {
    let post = |path: &str, body: &Value| -> anyhow::Result<Value> {
        let authorization = format!("Bearer {token}");
        let response = net::http_request(
            "POST",
            &format!("{aggregator_url}/admin/v1/{path}"),
            &[
                ("Authorization", authorization.as_str()),
                ("Content-Type", "application/json"),
            ],
            body.to_string().as_bytes(),
            Duration::from_secs(30),
        )
        .with_context(|| format!("POST /admin/v1/{path}"))?;
        if !(200..300).contains(&response.status) {
            bail!(
                "POST /admin/v1/{path} answered {}: {}",
                response.status,
                response.text()
            );
        }
        serde_json::from_slice(&response.body).with_context(|| format!("POST /admin/v1/{path}"))
    };
    let brand = post(
        "brands",
        &json!({"name": "Demo Casino", "jurisdiction": {"name": "MGA", "restricted_countries": ["US", "FR"]}}),
    )?;
    let affiliate = post("affiliates", &json!({"name": "Demo Affiliate"}))?;
    let campaign = post(
        "campaigns",
        &json!({"brand_id": brand["brand_id"], "name": "Welcome bonus"}),
    )?;
    let link = post(
        "links",
        &json!({
            "brand_id": brand["brand_id"], "affiliate_id": affiliate["affiliate_id"],
            "campaign_id": campaign["campaign_id"],
            "destination_template": "https://demo-casino.example/welcome?cid={click_id}&aff={affiliate_id}&s1={sub1}&geo={country}"
        }),
    )?;
    link["code"]
        .as_str()
        .map(str::to_owned)
        .context("the link has no code")
}
