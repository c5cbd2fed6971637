//! The Workers runtime glue (wasm32 only): reads the request, resolves the
//! link, runs the [`crate::pipeline`], answers, and delivers the record by
//! queue or by the direct buffer; and the queue consumer.
//!
//! Owns all IO of the edge: the aggregator calls (link lookups, batch
//! posts), the request headers (the visitor cookie, the trusted proxy's
//! secret) and random bytes, the Cache API tier, `waitUntil` scheduling, the
//! direct buffer's flusher task and the per-isolate state. Decisions are made
//! in the pure modules; nothing here decides whether a click is a bot, where
//! it goes, whose headers to believe or when to post and retry.

use std::cell::RefCell;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::{select, Either};
use serde::Deserialize;
use worker::{
    AbortController, Cache, Context, Date, Delay, Env, Fetch, Headers, MessageBatch, Method,
    Request, RequestInit, Response,
};

use clickstitch_shared::fingerprint::VisitorId;
use clickstitch_shared::{CountryCode, LinkDefinition, ShortCode};

use crate::buffer::{
    to_batch, BatchResult, ClickBuffer, EdgeRecord, FlushPolicy, FlushStep, FlusherId,
};
use crate::config::{Delivery, EdgeConfig};
use crate::link_cache::{LinkCache, Lookup};
use crate::pipeline::{Answer, ClickRequest, Pipeline};
use crate::trust::PROXY_AUTH_HEADER;
use crate::visitor;

/// Distinct visitor/link pairs remembered for duplicate detection.
const DEDUP_CAPACITY: usize = 200_000;
/// Link definitions kept in memory.
const LINK_CAPACITY: usize = 50_000;
/// Records buffered in direct mode before the oldest are dropped.
const BUFFER_CAPACITY: usize = 100_000;
/// Timeout of one call to the aggregator.
const AGGREGATOR_TIMEOUT: Duration = Duration::from_secs(10);
/// Slack on top of a flusher's longest step before its lease is presumed
/// lost (its `waitUntil` was cancelled) and another flusher takes over.
const LEASE_SLACK: Duration = Duration::from_secs(5);
/// Longest an answer waits for the flusher to catch up (`FLUSH_MAX_UNSTORED`).
const MAX_ANSWER_WAIT: Duration = Duration::from_secs(1);
/// How often a waiting answer looks again.
const ANSWER_WAIT_POLL: Duration = Duration::from_millis(5);

struct Isolate {
    config: EdgeConfig,
    pipeline: Pipeline,
    links: LinkCache,
    buffer: ClickBuffer,
    flush: FlushPolicy,
}

/// The direct buffer's policy from the settings.
fn flush_policy(config: &EdgeConfig) -> FlushPolicy {
    let linger_ms = config.flush_max_delay.as_millis() as u64;
    let retry_max_ms = config.flush_retry_max.as_millis() as u64;
    FlushPolicy {
        max_records: config.flush_max_records,
        linger_ms,
        retry_max_ms,
        lease_ms: (AGGREGATOR_TIMEOUT + LEASE_SLACK).as_millis() as u64
            + linger_ms.max(retry_max_ms),
    }
}

thread_local! {
    static ISOLATE: RefCell<Option<Isolate>> = const { RefCell::new(None) };
}

fn setting(env: &Env, name: &str) -> Option<String> {
    env.secret(name)
        .map(|s| s.to_string())
        .or_else(|_| env.var(name).map(|v| v.to_string()))
        .ok()
}

/// Runs `f` on the isolate's state, creating it from `env` on first use.
fn with_isolate<R>(env: &Env, f: impl FnOnce(&mut Isolate) -> R) -> worker::Result<R> {
    ISOLATE.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            let config = EdgeConfig::from_lookup(|name| setting(env, name))
                .map_err(|e| worker::Error::RustError(e.to_string()))?;
            *slot = Some(Isolate {
                pipeline: Pipeline::new(config.identity_salt.as_bytes(), DEDUP_CAPACITY),
                links: LinkCache::new(config.link_fresh_for.as_millis() as u64, LINK_CAPACITY),
                buffer: ClickBuffer::new(BUFFER_CAPACITY),
                flush: flush_policy(&config),
                config,
            });
        }
        match slot.as_mut() {
            Some(isolate) => Ok(f(isolate)),
            None => Err(worker::Error::RustError("isolate state missing".into())),
        }
    })
}

fn now_ms() -> u64 {
    Date::now().as_millis()
}

fn random_bytes() -> [u8; 10] {
    let mut b = [0u8; 10];
    // crypto.getRandomValues cannot fail for 10 bytes; zeros would still
    // give unique, ordered ids thanks to the generator's counter.
    let _ = getrandom::fill(&mut b);
    b
}

/// 16 random bytes for a new visitor id (all zeros, if the source ever
/// failed, give no id rather than a shared one: see `VisitorId::from_random`).
fn visitor_random_bytes() -> [u8; 16] {
    let mut b = [0u8; 16];
    let _ = getrandom::fill(&mut b);
    b
}

fn text_response(status: u16, body: &str) -> worker::Result<Response> {
    let headers = Headers::new();
    headers.set("content-type", "text/plain; charset=utf-8")?;
    headers.set("cache-control", "no-store")?;
    Ok(Response::ok(body)?
        .with_status(status)
        .with_headers(headers))
}

/// `fetch` event.
pub(crate) async fn handle_fetch(req: Request, env: Env, ctx: Context) -> worker::Result<Response> {
    let method = req.method();
    if !matches!(method, Method::Get | Method::Head) {
        return text_response(405, "method not allowed\n");
    }
    let path = req.path();
    if path == "/health" {
        return text_response(200, "ok\n");
    }
    let Ok(code) = ShortCode::parse(path.trim_start_matches('/')) else {
        return text_response(404, "link not found\n");
    };
    let config = with_isolate(&env, |s| s.config.clone())?;
    let now = now_ms();

    let link = match with_isolate(&env, |s| s.links.lookup(&code, now))? {
        Lookup::Fresh(def) => def,
        Lookup::Stale(def) => {
            let (env2, config2, code2) = (env.clone(), config.clone(), code.clone());
            ctx.wait_until(async move {
                refresh_link(&env2, &config2, &code2).await;
            });
            def
        }
        Lookup::KnownMissing => return text_response(404, "link not found\n"),
        Lookup::Unknown => match resolve_unknown(&env, &ctx, &config, &code).await {
            Ok(Some(def)) => def,
            Ok(None) => return text_response(404, "link not found\n"),
            Err(e) => {
                worker::console_error!("link lookup for {} failed: {}", code, e);
                return text_response(503, "temporarily unavailable, please retry\n");
            }
        },
    };

    // Whose word to take for the visitor's IP, country and `cf` facts.
    let proxy_auth = req.headers().get(PROXY_AUTH_HEADER).ok().flatten();
    let trusted = config.client_trust.trusts(proxy_auth.as_deref());
    let facts = RequestFacts::read(&req, trusted)?;
    // The brand's consent setting: without it the cookie is neither read
    // nor set, and the click has no visitor id.
    let visitor = if link.visitor_cookie {
        let cookie = req.headers().get("cookie").ok().flatten();
        visitor::choose(cookie.as_deref(), visitor_random_bytes)
    } else {
        None
    };
    let outcome = with_isolate(&env, |s| {
        s.pipeline.handle(
            &link,
            &facts.as_click_request(method == Method::Head, visitor),
            now,
            random_bytes(),
        )
    })?;
    let set_cookie = visitor::cookie_for(visitor, &outcome);
    deliver(&env, &ctx, &config, outcome.record)?;
    if config.delivery == Delivery::Direct {
        wait_for_the_flusher(&env, config.flush_max_unstored).await;
    }

    match outcome.answer {
        Answer::Redirect(location) => {
            let headers = Headers::new();
            headers.set("location", &location)?;
            headers.set("cache-control", "no-store")?;
            headers.set("referrer-policy", "no-referrer-when-downgrade")?;
            if let Some(cookie) = set_cookie {
                headers.set("set-cookie", &cookie)?;
            }
            Ok(Response::empty()?.with_status(302).with_headers(headers))
        }
        Answer::UnavailableForLegalReasons => text_response(
            451,
            "451 Unavailable For Legal Reasons: this offer is not available in your country.\n",
        ),
    }
}

/// The request facts the pipeline reads, owned so they outlive the borrow.
#[derive(Default)]
struct RequestFacts {
    query: String,
    ip: Option<IpAddr>,
    user_agent: Option<String>,
    referrer: String,
    accept_language: String,
    sec_ch_ua: String,
    sec_ch_ua_platform: String,
    sec_ch_ua_mobile: String,
    cf: CfFacts,
    header_country: Option<String>,
    /// The client-identity facts were dropped (not from the trusted proxy).
    identity_unverified: bool,
}

/// The subset of `request.cf` we use; every field optional (workerd outside
/// Cloudflare has no `cf`, tests set it through a header).
#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CfFacts {
    country: Option<String>,
    region: Option<String>,
    city: Option<String>,
    asn: Option<u32>,
    colo: Option<String>,
    tls_client_ciphers_sha1: Option<String>,
    tls_client_extensions_sha1: Option<String>,
    bot_management: Option<BotManagementFacts>,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BotManagementFacts {
    verified_bot: Option<bool>,
}

impl RequestFacts {
    /// Reads the request; with `trusted` false the client-identity facts
    /// (`CF-Connecting-IP`, `CF-IPCountry`, `request.cf`) are left out.
    fn read(req: &Request, trusted: bool) -> worker::Result<Self> {
        let h = req.headers();
        let get = |name: &str| h.get(name).ok().flatten();
        let identity = |name: &str| if trusted { get(name) } else { None };
        let url = req.url()?;
        let cf_value = if trusted {
            js_sys::Reflect::get(req.inner(), &"cf".into())
                .unwrap_or(wasm_bindgen::JsValue::UNDEFINED)
        } else {
            wasm_bindgen::JsValue::UNDEFINED
        };
        let cf: CfFacts = if cf_value.is_object() {
            serde_wasm_bindgen::from_value(cf_value).unwrap_or_default()
        } else {
            CfFacts::default()
        };
        Ok(Self {
            query: url.query().unwrap_or("").to_owned(),
            ip: identity("cf-connecting-ip").and_then(|v| v.trim().parse().ok()),
            user_agent: get("user-agent"),
            referrer: get("referer").unwrap_or_default(),
            accept_language: get("accept-language").unwrap_or_default(),
            sec_ch_ua: get("sec-ch-ua").unwrap_or_default(),
            sec_ch_ua_platform: get("sec-ch-ua-platform").unwrap_or_default(),
            sec_ch_ua_mobile: get("sec-ch-ua-mobile").unwrap_or_default(),
            header_country: identity("cf-ipcountry"),
            cf,
            identity_unverified: !trusted,
        })
    }

    fn as_click_request(&self, is_head: bool, visitor_id: Option<VisitorId>) -> ClickRequest<'_> {
        let country = self
            .cf
            .country
            .as_deref()
            .or(self.header_country.as_deref())
            .and_then(|c| CountryCode::parse(c).ok());
        ClickRequest {
            is_head,
            query: &self.query,
            ip: self.ip,
            user_agent: self.user_agent.as_deref(),
            referrer: &self.referrer,
            accept_language: &self.accept_language,
            sec_ch_ua: &self.sec_ch_ua,
            sec_ch_ua_platform: &self.sec_ch_ua_platform,
            sec_ch_ua_mobile: &self.sec_ch_ua_mobile,
            country,
            identity_unverified: self.identity_unverified,
            region: self.cf.region.as_deref().unwrap_or(""),
            city: self.cf.city.as_deref().unwrap_or(""),
            asn: self.cf.asn.unwrap_or(0),
            colo: self.cf.colo.as_deref().unwrap_or(""),
            tls_client_ciphers_sha1: self.cf.tls_client_ciphers_sha1.as_deref().unwrap_or(""),
            tls_client_extensions_sha1: self.cf.tls_client_extensions_sha1.as_deref().unwrap_or(""),
            verified_bot: self
                .cf
                .bot_management
                .as_ref()
                .and_then(|b| b.verified_bot)
                .unwrap_or(false),
            visitor_id,
        }
    }
}

// ---- link resolution ------------------------------------------------------

fn cache_key(code: &ShortCode) -> String {
    format!("https://link-cache.clickstitch.invalid/v1/{code}")
}

#[derive(serde::Serialize, Deserialize)]
struct CachedLink {
    definition: Option<LinkDefinition>,
    fetched_at_ms: u64,
}

/// Memory missed: try the colo's Cache API, then the aggregator.
async fn resolve_unknown(
    env: &Env,
    ctx: &Context,
    config: &EdgeConfig,
    code: &ShortCode,
) -> worker::Result<Option<Arc<LinkDefinition>>> {
    if let Some(cached) = cache_get(code).await {
        with_isolate(env, |s| {
            s.links.insert(
                code.clone(),
                cached.definition.clone(),
                cached.fetched_at_ms,
            )
        })?;
        match with_isolate(env, |s| s.links.lookup(code, now_ms()))? {
            Lookup::Fresh(def) => return Ok(Some(def)),
            Lookup::Stale(def) => {
                let (env2, config2, code2) = (env.clone(), config.clone(), code.clone());
                ctx.wait_until(async move { refresh_link(&env2, &config2, &code2).await });
                return Ok(Some(def));
            }
            Lookup::KnownMissing => return Ok(None),
            Lookup::Unknown => {}
        }
    }
    let def = fetch_definition(config, code).await?;
    remember(env, code, def.clone()).await?;
    Ok(def.map(Arc::new))
}

/// Background revalidation of a stale link; on failure the stale copy stays.
async fn refresh_link(env: &Env, config: &EdgeConfig, code: &ShortCode) {
    match fetch_definition(config, code).await {
        Ok(def) => {
            if let Err(e) = remember(env, code, def).await {
                worker::console_error!("caching link {} failed: {}", code, e);
            }
        }
        Err(e) => worker::console_warn!(
            "refreshing link {} failed (serving cached copy): {}",
            code,
            e
        ),
    }
}

async fn remember(env: &Env, code: &ShortCode, def: Option<LinkDefinition>) -> worker::Result<()> {
    let now = now_ms();
    with_isolate(env, |s| s.links.insert(code.clone(), def.clone(), now))?;
    cache_put(
        code,
        &CachedLink {
            definition: def,
            fetched_at_ms: now,
        },
    )
    .await;
    Ok(())
}

async fn cache_get(code: &ShortCode) -> Option<CachedLink> {
    let mut response = Cache::default().get(cache_key(code), false).await.ok()??;
    response.json::<CachedLink>().await.ok()
}

/// Best effort: the Cache API is absent on some runtimes and hosts.
async fn cache_put(code: &ShortCode, entry: &CachedLink) {
    let Ok(body) = serde_json::to_string(entry) else {
        return;
    };
    let headers = Headers::new();
    if headers.set("content-type", "application/json").is_err()
        || headers
            .set("cache-control", "public, max-age=604800")
            .is_err()
    {
        return;
    }
    if let Ok(response) = Response::ok(body).map(|r| r.with_headers(headers)) {
        let _ = Cache::default().put(cache_key(code), response).await;
    }
}

/// Sends `request` with [`AGGREGATOR_TIMEOUT`].
async fn send_with_timeout(request: Request) -> worker::Result<Response> {
    let controller = AbortController::default();
    let signal = controller.signal();
    let fetch = Fetch::Request(request);
    let send = fetch.send_with_signal(&signal);
    let timeout = Delay::from(AGGREGATOR_TIMEOUT);
    futures_util::pin_mut!(send);
    match select(send, timeout).await {
        Either::Left((result, _)) => result,
        Either::Right(((), _)) => {
            controller.abort();
            Err(worker::Error::RustError("aggregator call timed out".into()))
        }
    }
}

fn aggregator_request(
    config: &EdgeConfig,
    method: Method,
    path: &str,
    body: Option<String>,
) -> worker::Result<Request> {
    let headers = Headers::new();
    headers.set("authorization", &format!("Bearer {}", config.edge_secret))?;
    if body.is_some() {
        headers.set("content-type", "application/json")?;
    }
    let mut init = RequestInit::new();
    init.with_method(method).with_headers(headers);
    if let Some(body) = body {
        init.with_body(Some(body.into()));
    }
    Request::new_with_init(&format!("{}{}", config.aggregator_url, path), &init)
}

/// Asks the aggregator; `Ok(None)` for 404.
async fn fetch_definition(
    config: &EdgeConfig,
    code: &ShortCode,
) -> worker::Result<Option<LinkDefinition>> {
    let request = aggregator_request(config, Method::Get, &format!("/edge/v1/links/{code}"), None)?;
    let mut response = send_with_timeout(request).await?;
    match response.status_code() {
        200 => Ok(Some(response.json::<LinkDefinition>().await?)),
        404 => Ok(None),
        status => Err(worker::Error::RustError(format!(
            "aggregator answered {status}"
        ))),
    }
}

// ---- delivery ---------------------------------------------------------------

fn deliver(
    env: &Env,
    ctx: &Context,
    config: &EdgeConfig,
    record: EdgeRecord,
) -> worker::Result<()> {
    match config.delivery {
        Delivery::Queue => {
            let queue = env.queue("CLICK_QUEUE")?;
            let (env2, config2) = (env.clone(), config.clone());
            ctx.wait_until(async move {
                if let Err(e) = queue.send(&record).await {
                    // Keep the record: fall back to the direct path.
                    worker::console_error!(
                        "queue send failed, buffering for direct delivery: {}",
                        e
                    );
                    if let Ok(Some(flusher)) = buffer_record(&env2, record) {
                        run_flusher(&env2, &config2, flusher).await;
                    }
                }
            });
            Ok(())
        }
        Delivery::Direct => {
            if let Some(flusher) = buffer_record(env, record)? {
                let (env2, config2) = (env.clone(), config.clone());
                ctx.wait_until(async move { run_flusher(&env2, &config2, flusher).await });
            }
            Ok(())
        }
    }
}

/// Holds the answer while more than `max_unstored` records wait to be
/// stored and the aggregator is taking them ([`ClickBuffer::answer_must_wait`]),
/// for at most [`MAX_ANSWER_WAIT`]. workerd finishes the requests in flight
/// before it exits on `SIGTERM` (but not `waitUntil` tasks), so this bounds
/// the answered clicks a shutdown can lose.
async fn wait_for_the_flusher(env: &Env, max_unstored: usize) {
    let started = now_ms();
    let limit = MAX_ANSWER_WAIT.as_millis() as u64;
    while with_isolate(env, |s| s.buffer.answer_must_wait(max_unstored)).unwrap_or(false)
        && now_ms().saturating_sub(started) < limit
    {
        Delay::from(ANSWER_WAIT_POLL).await;
    }
}

/// Buffers the record; returns a flusher for the caller to run (in
/// `waitUntil`) when none is running.
fn buffer_record(env: &Env, record: EdgeRecord) -> worker::Result<Option<FlusherId>> {
    let now = now_ms();
    with_isolate(env, |s| {
        let policy = s.flush;
        s.buffer.push(record, now, &policy)
    })
}

/// Posts batches for as long as the buffer holds records, waiting between
/// retries with capped backoff (the steps are [`ClickBuffer::next_step`]'s).
/// On workerd `waitUntil` has no time limit, so records buffered during an
/// outage of any length reach the aggregator within one retry interval of
/// its return, without new traffic. Where the runtime cancels the task
/// (Cloudflare: 30 s after the response) its lease runs out and the next
/// request starts a new flusher.
async fn run_flusher(env: &Env, config: &EdgeConfig, flusher: FlusherId) {
    loop {
        let step = with_isolate(env, |s| {
            let policy = s.flush;
            s.buffer.next_step(flusher, now_ms(), &policy)
        });
        match step {
            Err(_) | Ok(FlushStep::Done) => return,
            Ok(FlushStep::Wait(ms)) => Delay::from(Duration::from_millis(ms)).await,
            Ok(FlushStep::Send { batch, records }) => {
                let result = match post_batch(config, &records).await {
                    Posted::Stored => BatchResult::Stored,
                    Posted::Refused(status) => {
                        worker::console_error!(
                            "aggregator refused a batch of {} records ({}); dropped",
                            records.len(),
                            status
                        );
                        BatchResult::Refused
                    }
                    Posted::Retry(why) => {
                        worker::console_warn!(
                            "posting {} records failed ({}); they stay buffered and are retried",
                            records.len(),
                            why
                        );
                        BatchResult::Failed
                    }
                };
                let _ = with_isolate(env, |s| {
                    let policy = s.flush;
                    s.buffer.finish(flusher, batch, result, now_ms(), &policy)
                });
            }
        }
    }
}

/// What the aggregator did with a batch.
enum Posted {
    /// 2xx: durable (any rejected records are permanent failures, logged).
    Stored,
    /// 400 / 413 / 422: the batch can never be accepted as it is.
    Refused(u16),
    /// Anything else: try again later.
    Retry(String),
}

async fn post_batch(config: &EdgeConfig, records: &[EdgeRecord]) -> Posted {
    let body = match serde_json::to_string(&to_batch(records.iter().cloned())) {
        Ok(b) => b,
        Err(e) => return Posted::Retry(e.to_string()),
    };
    let request = match aggregator_request(config, Method::Post, "/edge/v1/clicks", Some(body)) {
        Ok(r) => r,
        Err(e) => return Posted::Retry(e.to_string()),
    };
    match send_with_timeout(request).await {
        Ok(mut response) => match response.status_code() {
            200..=299 => {
                if let Ok(text) = response.text().await {
                    if text.contains("\"index\"") {
                        worker::console_warn!("aggregator rejected some records: {}", text);
                    }
                }
                Posted::Stored
            }
            status @ (400 | 413 | 422) => Posted::Refused(status),
            status => Posted::Retry(format!("aggregator answered {status}")),
        },
        Err(e) => Posted::Retry(e.to_string()),
    }
}

/// `queue` event: posts the messages as one batch; acks on 2xx, otherwise
/// asks the queue to retry (after `max_retries` it goes to the DLQ).
pub(crate) async fn handle_queue(batch: MessageBatch<EdgeRecord>, env: Env) -> worker::Result<()> {
    let config = EdgeConfig::from_lookup(|name| setting(&env, name))
        .map_err(|e| worker::Error::RustError(e.to_string()))?;
    let records: Vec<EdgeRecord> = batch
        .messages()?
        .into_iter()
        .map(|m| m.into_body())
        .collect();
    match post_batch(&config, &records).await {
        Posted::Stored => batch.ack_all(),
        Posted::Refused(status) => {
            worker::console_error!(
                "aggregator refused {} queued records ({}); retrying towards the DLQ",
                records.len(),
                status
            );
            batch.retry_all();
        }
        Posted::Retry(why) => {
            worker::console_warn!("aggregator unavailable for queued batch: {}", why);
            batch.retry_all();
        }
    }
    Ok(())
}
