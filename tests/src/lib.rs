//! `spawn_stack()`: the whole click path on real runtimes for end-to-end
//! tests — a ClickHouse server (shared per test process, one database per
//! stack), the aggregator on a fixed free port (so it can be stopped and
//! started again at the same address), and the edge worker's wasm bundle
//! under workerd in direct delivery mode, with a demo brand, affiliate
//! chain, campaign and link created through the admin API.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};
use tokio::sync::oneshot;

use clickstitch_aggregator::config::Settings;
use clickstitch_aggregator::startup::Application;
use clickstitch_testkit::aggregator::test_settings;
pub use clickstitch_testkit::aggregator::{EDGE_SECRET, OPERATOR_TOKEN};
use clickstitch_testkit::clickhouse::{unique_database_name, ClickHouseServer};
use clickstitch_testkit::net::free_port;
use clickstitch_testkit::workerd::{Workerd, WorkerdConfig, CF_HEADER};

/// A desktop Chrome user agent.
pub const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";

/// The link created for the stack.
#[derive(Debug, Clone)]
pub struct Demo {
    /// Brand id.
    pub brand_id: String,
    /// Root affiliate id.
    pub affiliate_id: String,
    /// Sub-affiliate owning the link.
    pub sub_affiliate_id: String,
    /// Campaign id.
    pub campaign_id: String,
    /// Short code.
    pub code: String,
}

struct RunningAggregator {
    shutdown: oneshot::Sender<()>,
    handle: tokio::task::JoinHandle<anyhow::Result<()>>,
}

/// The running stack.
#[allow(missing_debug_implementations)]
pub struct Stack {
    ch: &'static ClickHouseServer,
    /// The stack's database.
    pub database: String,
    aggregator_port: u16,
    aggregator: Option<RunningAggregator>,
    /// The edge worker under workerd (absent for [`spawn_backend`]).
    workerd: Option<Workerd>,
    /// A client that does not follow redirects.
    pub http: reqwest::Client,
    /// The demo link.
    pub demo: Demo,
}

fn settings(ch: &ClickHouseServer, database: &str, port: u16) -> Settings {
    let mut s = test_settings(ch, database);
    s.server.port = port;
    s
}

/// Builds the edge worker (once per process) and starts everything.
pub async fn spawn_stack() -> anyhow::Result<Stack> {
    spawn_stack_with(&[]).await
}

/// [`spawn_stack`] with the edge worker's settings changed: `(name,
/// Some(value))` sets a var or secret (replacing the stack's own value),
/// `(name, None)` leaves it unset so the worker's default applies.
pub async fn spawn_stack_with(changes: &[(&str, Option<&str>)]) -> anyhow::Result<Stack> {
    let mut stack = spawn_backend().await?;
    let mut settings: Vec<(String, String)> = [
        ("AGGREGATOR_URL", stack.aggregator_url().as_str()),
        ("CLICK_DELIVERY", "direct"),
        ("FLUSH_MAX_CLICKS", "100"),
        ("FLUSH_MAX_MS", "100"),
        ("LINK_CACHE_TTL_SECONDS", "60"),
        ("EDGE_SECRET", EDGE_SECRET),
        ("IDENTITY_SALT", "e2e-identity-salt"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    for (name, value) in changes {
        settings.retain(|(k, _)| k != name);
        if let Some(value) = value {
            settings.push(((*name).to_owned(), (*value).to_owned()));
        }
    }
    let mut config = tokio::task::spawn_blocking(WorkerdConfig::edge_worker).await??;
    for (name, value) in settings {
        config = if name.contains("SECRET") || name == "IDENTITY_SALT" {
            config.secret(name, value)
        } else {
            config.var(name, value)
        };
    }
    stack.workerd = Some(tokio::task::spawn_blocking(move || Workerd::start(config)).await??);
    Ok(stack)
}

/// ClickHouse, the aggregator and the demo link, without an edge runtime
/// (for tests that run the worker under another runtime).
pub async fn spawn_backend() -> anyhow::Result<Stack> {
    let ch = tokio::task::spawn_blocking(ClickHouseServer::shared).await?;
    let database = unique_database_name("e2e");
    let aggregator_port = free_port();
    let aggregator = start_aggregator(ch, &database, aggregator_port).await?;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()?;
    let demo = seed(&http, aggregator_port).await?;
    Ok(Stack {
        ch,
        database,
        aggregator_port,
        aggregator: Some(aggregator),
        workerd: None,
        http,
        demo,
    })
}

async fn start_aggregator(
    ch: &ClickHouseServer,
    database: &str,
    port: u16,
) -> anyhow::Result<RunningAggregator> {
    let app = Application::build(settings(ch, database, port)).await?;
    let (shutdown, rx) = oneshot::channel();
    let handle = tokio::spawn(app.run_until_stopped(async {
        let _ = rx.await;
    }));
    Ok(RunningAggregator { shutdown, handle })
}

async fn admin(
    http: &reqwest::Client,
    port: u16,
    path: &str,
    body: Value,
) -> anyhow::Result<Value> {
    let r = http
        .post(format!("http://127.0.0.1:{port}/admin/v1/{path}"))
        .bearer_auth(OPERATOR_TOKEN)
        .json(&body)
        .send()
        .await?;
    let status = r.status();
    let body: Value = r.json().await?;
    if status.as_u16() != 201 {
        bail!("POST {path} answered {status}: {body}");
    }
    Ok(body)
}

fn field(v: &Value, name: &str) -> anyhow::Result<String> {
    v[name]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("{name} missing in {v}"))
}

async fn seed(http: &reqwest::Client, port: u16) -> anyhow::Result<Demo> {
    let brand = admin(
        http,
        port,
        "brands",
        json!({"name": "Lucky Casino", "jurisdiction": {"name": "MGA", "restricted_countries": ["US", "FR"]}}),
    )
    .await?;
    let parent = admin(
        http,
        port,
        "affiliates",
        json!({"name": "Master Affiliates Ltd"}),
    )
    .await?;
    let sub = admin(
        http,
        port,
        "affiliates",
        json!({"name": "Sub Publisher", "parent_affiliate_id": parent["affiliate_id"]}),
    )
    .await?;
    let campaign = admin(
        http,
        port,
        "campaigns",
        json!({"brand_id": brand["brand_id"], "name": "Welcome"}),
    )
    .await?;
    let link = admin(
        http,
        port,
        "links",
        json!({
            "brand_id": brand["brand_id"], "affiliate_id": sub["affiliate_id"],
            "campaign_id": campaign["campaign_id"],
            "destination_template": "https://lucky.example/join?cid={click_id}&aff={affiliate_id}&sub={sub_affiliate_id}&s1={sub1}&geo={country}"
        }),
    )
    .await?;
    Ok(Demo {
        brand_id: field(&brand, "brand_id")?,
        affiliate_id: field(&parent, "affiliate_id")?,
        sub_affiliate_id: field(&sub, "affiliate_id")?,
        campaign_id: field(&campaign, "campaign_id")?,
        code: field(&link, "code")?,
    })
}

/// One visitor's request.
#[derive(Debug, Clone)]
pub struct Visit<'a> {
    /// Path and query, e.g. `/abcDEF1234?sub1=fb`.
    pub path: String,
    /// `cf` JSON (country, asn, …), or None for no `cf`.
    pub cf: Option<Value>,
    /// User agent (None: header absent).
    pub user_agent: Option<&'a str>,
    /// `CF-Connecting-IP`.
    pub ip: &'a str,
}

impl Stack {
    /// The aggregator's base URL.
    pub fn aggregator_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.aggregator_port)
    }

    /// The workerd edge worker's base URL.
    pub fn edge_url(&self) -> String {
        self.workerd.as_ref().map(Workerd::url).unwrap_or_default()
    }

    /// workerd's log, for failure messages.
    pub fn edge_logs(&self) -> String {
        self.workerd.as_ref().map(Workerd::logs).unwrap_or_default()
    }

    /// Sends a GET to the workerd edge worker.
    pub async fn visit(&self, visit: &Visit<'_>) -> anyhow::Result<reqwest::Response> {
        self.visit_at(&self.edge_url(), visit).await
    }

    /// Sends a GET to an edge worker at `base`.
    pub async fn visit_at(
        &self,
        base: &str,
        visit: &Visit<'_>,
    ) -> anyhow::Result<reqwest::Response> {
        let mut req = self
            .http
            .get(format!("{base}{}", visit.path))
            .header("cf-connecting-ip", visit.ip)
            .header("accept-language", "de-DE,de;q=0.9");
        if let Some(cf) = &visit.cf {
            req = req.header(CF_HEADER, cf.to_string());
        }
        if let Some(ua) = visit.user_agent {
            req = req.header("user-agent", ua);
        }
        Ok(req.send().await?)
    }

    /// POSTs `body` to the admin API's `/admin/v1/{path}` with the operator
    /// token; the created object (anything but `201` is an error).
    pub async fn admin_post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        admin(&self.http, self.aggregator_port, path, body).await
    }

    /// Sends the workerd edge worker `SIGTERM` and waits up to `timeout` for
    /// it to exit (see `Workerd::terminate`).
    pub async fn terminate_edge(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let mut workerd = self.workerd.take().context("no edge worker runs")?;
        let (workerd, result) = tokio::task::spawn_blocking(move || {
            let result = workerd.terminate(timeout);
            (workerd, result)
        })
        .await?;
        self.workerd = Some(workerd);
        result.map(drop)
    }

    /// Runs SQL in the stack's database.
    pub fn sql(&self, sql: &str) -> anyhow::Result<String> {
        self.ch.query_in(&self.database, sql)
    }

    /// Polls `sql` (a single number) until it equals `expected` or `timeout` passes.
    pub async fn wait_for_count(
        &self,
        sql: &str,
        expected: u64,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        let started = Instant::now();
        loop {
            let got: u64 = self.sql(sql)?.trim().parse().context("a count")?;
            if got == expected {
                return Ok(());
            }
            if started.elapsed() > timeout {
                bail!(
                    "{sql} = {got}, expected {expected} within {timeout:?}\nworkerd log:\n{}",
                    self.edge_logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops the aggregator (graceful: flushes what it accepted).
    pub async fn stop_aggregator(&mut self) -> anyhow::Result<()> {
        if let Some(a) = self.aggregator.take() {
            let _ = a.shutdown.send(());
            a.handle.await??;
        }
        Ok(())
    }

    /// Starts the aggregator again on the same port.
    pub async fn start_aggregator(&mut self) -> anyhow::Result<()> {
        self.aggregator =
            Some(start_aggregator(self.ch, &self.database, self.aggregator_port).await?);
        Ok(())
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if let Some(a) = self.aggregator.take() {
            let _ = a.shutdown.send(());
        }
    }
}
