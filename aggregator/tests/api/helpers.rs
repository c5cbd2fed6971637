//! `spawn_app()`: one aggregator per test, on port 0, with its own database
//! on the shared ClickHouse server (or on a server of its own, for tests
//! that stop ClickHouse).

use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::oneshot;

use clickstitch_aggregator::config::Settings;
use clickstitch_aggregator::startup::Application;
use clickstitch_shared::{ClickIdGenerator, RawClick, RawGeoBlock};
use clickstitch_testkit::aggregator::test_settings;
pub(crate) use clickstitch_testkit::aggregator::{EDGE_SECRET, OPERATOR_TOKEN};
use clickstitch_testkit::clickhouse::{unique_database_name, ClickHouseServer};

/// Where the app's ClickHouse is.
pub(crate) enum Ch {
    Shared(&'static ClickHouseServer),
    Own(ClickHouseServer),
}

impl Ch {
    pub(crate) fn server(&self) -> &ClickHouseServer {
        match self {
            Ch::Shared(s) => s,
            Ch::Own(s) => s,
        }
    }

    pub(crate) fn own_mut(&mut self) -> &mut ClickHouseServer {
        match self {
            Ch::Own(s) => s,
            Ch::Shared(_) => panic!("this test app uses the shared server"),
        }
    }
}

pub(crate) struct TestApp {
    pub address: String,
    pub database: String,
    pub ch: Ch,
    pub http: reqwest::Client,
    /// The app's population sweep (run at a chosen time by replay tests).
    /// It holds a handle on the app's event writer, so [`TestApp::stop`]
    /// drops it first (the writer finishes when its last handle goes).
    pub sweep: Option<clickstitch_aggregator::services::fraud::sweep::PopulationSweep>,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// Options for [`spawn_app_with`].
pub(crate) struct Options {
    pub own_clickhouse: bool,
    pub max_batch_delay_ms: u64,
    pub postback_key: Option<&'static str>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            own_clickhouse: false,
            max_batch_delay_ms: 20,
            postback_key: None,
        }
    }
}

pub(crate) async fn spawn_app() -> TestApp {
    spawn_app_with(Options::default()).await
}

pub(crate) async fn spawn_app_with(options: Options) -> TestApp {
    let ch = if options.own_clickhouse {
        Ch::Own(
            tokio::task::spawn_blocking(ClickHouseServer::start)
                .await
                .expect("join")
                .expect("start a ClickHouse server"),
        )
    } else {
        Ch::Shared(
            tokio::task::spawn_blocking(ClickHouseServer::shared)
                .await
                .expect("join"),
        )
    };
    start(ch, unique_database_name("agg_test"), |settings| {
        settings.ingest.max_batch_delay_ms = options.max_batch_delay_ms;
        settings.auth.postback_key = options.postback_key.map(|k| k.to_owned().into());
    })
    .await
}

/// Builds and runs an aggregator on `database` of `ch` with the test
/// settings, adjusted by `tweak` before the app is built.
async fn start(ch: Ch, database: String, tweak: impl FnOnce(&mut Settings)) -> TestApp {
    let mut settings = test_settings(ch.server(), &database);
    settings.clickhouse.timeout_ms = 5_000;
    // Tests store clicks up to 90 days old (late-registration scenarios).
    settings.ingest.max_click_age_hours = 24 * 90;
    let small = clickstitch_aggregator::fraud::Capacity::small();
    settings.fraud.click_keys = small.click_keys;
    settings.fraud.registration_keys = small.registration_keys;
    settings.fraud.deposit_keys = small.deposit_keys;
    settings.fraud.affiliate_keys = small.affiliate_keys;
    tweak(&mut settings);
    let app = Application::build(settings)
        .await
        .expect("build the application");
    let address = format!("http://127.0.0.1:{}", app.port());
    let sweep = app.population_sweep();
    let (tx, rx) = oneshot::channel();
    let handle = tokio::spawn(app.run_until_stopped(async {
        let _ = rx.await;
    }));
    TestApp {
        address,
        database,
        ch,
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("client"),
        sweep: Some(sweep),
        shutdown: Some(tx),
        handle: Some(handle),
    }
}

/// A second aggregator on an existing database of the shared server
/// (nothing in its memory).
pub(crate) async fn spawn_on_database(database: &str) -> TestApp {
    let ch = tokio::task::spawn_blocking(ClickHouseServer::shared)
        .await
        .expect("join");
    start(Ch::Shared(ch), database.to_owned(), |_| {}).await
}

/// Like [`spawn_on_database`], with the settings adjusted by `tweak`.
pub(crate) async fn spawn_on_database_configured(
    database: &str,
    tweak: impl FnOnce(&mut Settings),
) -> TestApp {
    let ch = tokio::task::spawn_blocking(ClickHouseServer::shared)
        .await
        .expect("join");
    start(Ch::Shared(ch), database.to_owned(), tweak).await
}

/// A brand, affiliate chain, campaign and link created through the admin API.
#[derive(Debug, Clone)]
pub(crate) struct Fixture {
    pub brand_id: String,
    pub affiliate_id: String,
    pub campaign_id: String,
    pub code: String,
}

impl TestApp {
    /// Sends the shutdown signal and waits for the final flush.
    pub(crate) async fn stop(&mut self) {
        self.sweep = None;
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            h.await.expect("join").expect("clean shutdown");
        }
    }

    pub(crate) async fn post_batch_raw(
        &self,
        body: String,
        token: Option<&str>,
    ) -> reqwest::Response {
        let mut req = self
            .http
            .post(format!("{}/edge/v1/clicks", self.address))
            .header("content-type", "application/json")
            .body(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.expect("request sent")
    }

    pub(crate) async fn post_batch(
        &self,
        clicks: &[RawClick],
        blocks: &[RawGeoBlock],
    ) -> (u16, Value) {
        let body = json!({"clicks": clicks, "geo_blocks": blocks}).to_string();
        let r = self.post_batch_raw(body, Some(EDGE_SECRET)).await;
        let status = r.status().as_u16();
        (status, r.json().await.expect("json body"))
    }

    pub(crate) async fn admin_post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}/admin/v1/{path}", self.address))
            .bearer_auth(OPERATOR_TOKEN)
            .json(&body)
            .send()
            .await
            .expect("request sent");
        let status = r.status().as_u16();
        (status, r.json().await.expect("json body"))
    }

    pub(crate) async fn edge_get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}/edge/v1/{path}", self.address))
            .bearer_auth(EDGE_SECRET)
            .send()
            .await
            .expect("request sent")
    }

    /// Issues an API key for a brand or affiliate (`brands/{id}` or
    /// `affiliates/{id}`) and returns its token.
    pub(crate) async fn issue_key(&self, owner: &str) -> String {
        let (s, body) = self
            .admin_post(&format!("{owner}/api-keys"), json!({}))
            .await;
        assert_eq!(s, 201, "{body}");
        body["token"].as_str().expect("token").to_owned()
    }

    /// POSTs an event with `key`; returns status, replay header and body.
    pub(crate) async fn post_event(&self, key: &str, event: Value) -> (u16, bool, Value) {
        let r = self
            .http
            .post(format!("{}/api/v1/events", self.address))
            .bearer_auth(key)
            .json(&event)
            .send()
            .await
            .expect("request sent");
        let status = r.status().as_u16();
        let replayed = r.headers().get("idempotent-replayed").is_some();
        (status, replayed, r.json().await.expect("json body"))
    }

    /// GETs `path` (under the app) with `key`.
    pub(crate) async fn get_json(&self, key: &str, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.address))
            .bearer_auth(key)
            .send()
            .await
            .expect("request sent");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// A new API key of the fixture's brand.
    /// Revokes an API key with the operator token; the answer's status.
    pub(crate) async fn revoke_key(&self, key_id: &str) -> u16 {
        self.http
            .delete(format!("{}/admin/v1/api-keys/{key_id}", self.address))
            .bearer_auth(OPERATOR_TOKEN)
            .send()
            .await
            .expect("sent")
            .status()
            .as_u16()
    }

    /// The brand's current postback secret (the app needs a postback key).
    pub(crate) async fn postback_secret(&self, brand_id: &str) -> String {
        let (status, body) = self
            .get_json(
                OPERATOR_TOKEN,
                &format!("/admin/v1/brands/{brand_id}/postback-secret"),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body["postback_secret"]
            .as_str()
            .expect("a postback secret")
            .to_owned()
    }

    pub(crate) async fn brand_key(&self, f: &Fixture) -> String {
        self.issue_key(&format!("brands/{}", f.brand_id)).await
    }

    /// POSTs JSON to `path` (under the app) with `key`.
    pub(crate) async fn post_json(&self, key: &str, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.address))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .expect("request sent");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Runs SQL in the app's database, returning the text result.
    pub(crate) fn sql(&self, sql: &str) -> String {
        self.ch
            .server()
            .query_in(&self.database, sql)
            .expect("query")
    }

    pub(crate) fn count(&self, table_or_view: &str) -> u64 {
        self.sql(&format!("SELECT count() FROM {table_or_view}"))
            .trim()
            .parse()
            .expect("a count")
    }

    /// Creates a brand restricting US, a parent affiliate, a sub-affiliate,
    /// a campaign, and a link owned by the sub-affiliate.
    pub(crate) async fn seed(&self) -> Fixture {
        let (s, brand) = self
            .admin_post(
                "brands",
                json!({"name": "Lucky Casino", "jurisdiction": {"name": "MGA", "restricted_countries": ["US"]}}),
            )
            .await;
        assert_eq!(s, 201, "{brand}");
        let (s, parent) = self
            .admin_post("affiliates", json!({"name": "Master Affiliates Ltd"}))
            .await;
        assert_eq!(s, 201, "{parent}");
        let (s, sub) = self
            .admin_post(
                "affiliates",
                json!({"name": "Sub Publisher", "parent_affiliate_id": parent["affiliate_id"]}),
            )
            .await;
        assert_eq!(s, 201, "{sub}");
        let (s, campaign) = self
            .admin_post(
                "campaigns",
                json!({"brand_id": brand["brand_id"], "name": "Welcome"}),
            )
            .await;
        assert_eq!(s, 201, "{campaign}");
        let (s, link) = self
            .admin_post(
                "links",
                json!({
                    "brand_id": brand["brand_id"],
                    "affiliate_id": sub["affiliate_id"],
                    "campaign_id": campaign["campaign_id"],
                    "destination_template": "https://lucky.example/join?cid={click_id}&s1={sub1}"
                }),
            )
            .await;
        assert_eq!(s, 201, "{link}");
        Fixture {
            brand_id: str_of(&brand["brand_id"]),
            // Clicks name the root account and the owning sub-affiliate.
            affiliate_id: str_of(&parent["affiliate_id"]),
            campaign_id: str_of(&campaign["campaign_id"]),
            code: str_of(&link["code"]),
        }
        .with_sub(str_of(&sub["affiliate_id"]))
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

fn str_of(v: &Value) -> String {
    v.as_str()
        .unwrap_or_else(|| panic!("expected a string, got {v}"))
        .to_owned()
}

thread_local! {
    static SUB: std::cell::RefCell<std::collections::HashMap<String, String>> = Default::default();
}

impl Fixture {
    fn with_sub(self, sub: String) -> Self {
        SUB.with(|m| m.borrow_mut().insert(self.code.clone(), sub));
        self
    }

    pub(crate) fn sub_affiliate_id(&self) -> String {
        SUB.with(|m| m.borrow().get(&self.code).cloned())
            .unwrap_or_default()
    }
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as u64
}

/// A complete, valid human click on the fixture's link.
pub(crate) fn click(f: &Fixture, ids: &mut ClickIdGenerator, n: u8) -> RawClick {
    let id = ids.next_id(now_ms(), [n; 10]);
    RawClick {
        click_id: id.to_string(),
        clicked_at_ms: id.timestamp_ms(),
        link_code: f.code.clone(),
        brand_id: f.brand_id.clone(),
        affiliate_id: f.affiliate_id.clone(),
        sub_affiliate_id: f.sub_affiliate_id(),
        campaign_id: f.campaign_id.clone(),
        sub1: format!("fb{n}"),
        sub2: "story".into(),
        sub3: "ad-7".into(),
        sub4: "x.y".into(),
        sub5: "ünï".into(),
        country: "DE".into(),
        region: "Hessen".into(),
        city: "Frankfurt am Main".into(),
        asn: 3320,
        colo: "FRA".into(),
        ip: format!("203.0.113.{n}"),
        user_agent: "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0".into(),
        referrer: "https://news.example/article?id=1".into(),
        accept_language: "de-DE,de;q=0.9".into(),
        device_fingerprint: format!("{:032x}", u128::from(n) * 7919),
        identity_hash: format!("{:032x}", u128::from(n) * 104_729),
        is_bot: false,
        bot_reason: String::new(),
        is_duplicate: false,
        visitor_id: format!("{:032x}", u128::from(n) * 15_485_863 + 1),
    }
}

/// A geo block on the fixture's link.
pub(crate) fn geo_block(f: &Fixture, ids: &mut ClickIdGenerator) -> RawGeoBlock {
    let id = ids.next_id(now_ms(), [9; 10]);
    RawGeoBlock {
        event_id: id.to_string(),
        blocked_at_ms: id.timestamp_ms(),
        link_code: f.code.clone(),
        brand_id: f.brand_id.clone(),
        affiliate_id: f.affiliate_id.clone(),
        campaign_id: f.campaign_id.clone(),
        country: "US".into(),
        reason: "jurisdiction_restricted".into(),
    }
}

/// Like [`spawn_app`] (shared ClickHouse server, a database of its own),
/// with the settings adjusted by `tweak` before the app is built — e.g. a
/// longer `ingest.max_click_age_hours` for scenarios months in the past.
pub(crate) async fn spawn_app_configured(tweak: impl FnOnce(&mut Settings)) -> TestApp {
    let ch = Ch::Shared(
        tokio::task::spawn_blocking(ClickHouseServer::shared)
            .await
            .expect("join"),
    );
    start(ch, unique_database_name("agg_test"), tweak).await
}

/// The app's ClickHouse connection settings (for driving jobs directly).
pub(crate) fn store_config(app: &TestApp) -> clickstitch_aggregator::store::ClickHouseConfig {
    clickstitch_aggregator::store::ClickHouseConfig {
        url: app.ch.server().http_url(),
        database: app.database.clone(),
        user: app.ch.server().user().to_owned(),
        password: app.ch.server().password().to_owned().into(),
        timeout: Duration::from_secs(30),
        compress: false,
    }
}

/// Like [`spawn_app_configured`], on a ClickHouse server of its own (for
/// tests that stop it).
pub(crate) async fn spawn_app_own_clickhouse_configured(
    tweak: impl FnOnce(&mut Settings),
) -> TestApp {
    let server = tokio::task::spawn_blocking(ClickHouseServer::start)
        .await
        .expect("join")
        .expect("start a ClickHouse server");
    start(Ch::Own(server), unique_database_name("agg_test"), tweak).await
}

impl TestApp {
    /// Stops this aggregator and starts a fresh one (nothing in memory) on
    /// the same ClickHouse server and database, with the test settings
    /// adjusted by `tweak`.
    pub(crate) async fn restart_with(mut self, tweak: impl FnOnce(&mut Settings)) -> TestApp {
        self.stop().await;
        let placeholder = tokio::task::spawn_blocking(ClickHouseServer::shared)
            .await
            .expect("join");
        let ch = std::mem::replace(&mut self.ch, Ch::Shared(placeholder));
        start(ch, self.database.clone(), tweak).await
    }
}

/// The `field` of every problem in a 4xx body's `details`, in order.
pub(crate) fn problem_fields(body: &Value) -> Vec<&str> {
    body["details"]
        .as_array()
        .expect("details")
        .iter()
        .map(|d| d["field"].as_str().expect("field"))
        .collect()
}
