//! Load generator for `POST /edge/v1/clicks`.
//!
//! Seeds a brand, a top-level affiliate, a campaign and `--links` links
//! through the admin API, then for `--duration-secs` keeps `--concurrency`
//! requests in flight, each a batch of `--batch-size` fresh, unique, valid
//! clicks (UUIDv7 ids at the current time). Reports accepted clicks/s (only
//! 200 answers count), non-200 answers, request latency percentiles, its own
//! CPU use and the cost of generating the JSON, and, for `--watch-pid`
//! processes (e.g. the aggregator and ClickHouse), their CPU use over the
//! same window, plus the machine's total busy CPU (to show other load).
//!
//! The last line is machine-readable: `RESULT key=value ...`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _};
use clap::Parser;
use serde_json::{json, Value};

use clickstitch_benches::clicks::{templates, BatchWriter, ClickTemplate, LinkIds};
use clickstitch_benches::{percentiles, proc_cpu};

/// Drives the aggregator's click ingest at a fixed concurrency.
#[derive(Debug, Parser)]
#[command(about)]
struct Args {
    /// Aggregator base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Edge secret (Bearer token of /edge/v1).
    #[arg(long, env = "CLICKSTITCH_AUTH__EDGE_SECRET")]
    edge_secret: String,
    /// Operator token (Bearer token of /admin/v1).
    #[arg(long, env = "CLICKSTITCH_AUTH__OPERATOR_TOKEN")]
    operator_token: String,
    /// How long to send, seconds.
    #[arg(long, default_value_t = 60)]
    duration_secs: u64,
    /// Requests in flight.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Clicks per request.
    #[arg(long, default_value_t = 1000)]
    batch_size: usize,
    /// Links to seed (clicks are spread over them).
    #[arg(long, default_value_t = 4)]
    links: usize,
    /// Distinct click shapes (UA, place, sub-ids, IP ...) to cycle through.
    #[arg(long, default_value_t = 4096)]
    shapes: usize,
    /// Runtime worker threads of the load generator.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Seconds between progress lines.
    #[arg(long, default_value_t = 10)]
    report_every_secs: u64,
    /// `name=pid` of a process whose CPU use to report (repeatable).
    #[arg(long = "watch-pid", value_parser = parse_watch)]
    watch: Vec<(String, u32)>,
}

fn parse_watch(s: &str) -> Result<(String, u32), String> {
    let (name, pid) = s.split_once('=').ok_or("expected name=pid")?;
    Ok((
        name.to_owned(),
        pid.parse().map_err(|e| format!("bad pid: {e}"))?,
    ))
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[derive(Debug, Default)]
struct Totals {
    accepted_clicks: AtomicU64,
    rejected_clicks: AtomicU64,
    ok_requests: AtomicU64,
    /// Nanoseconds spent writing request bodies.
    gen_ns: AtomicU64,
    gen_clicks: AtomicU64,
    body_bytes: AtomicU64,
    non_200: Mutex<BTreeMap<String, u64>>,
    latencies_us: Mutex<Vec<u64>>,
}

impl Totals {
    fn count_failure(&self, what: String) {
        let mut m = self.non_200.lock().unwrap_or_else(|e| e.into_inner());
        *m.entry(what).or_default() += 1;
    }
}

async fn admin_post(
    http: &reqwest::Client,
    args: &Args,
    path: &str,
    body: Value,
) -> anyhow::Result<Value> {
    let r = http
        .post(format!("{}/admin/v1/{path}", args.url))
        .bearer_auth(&args.operator_token)
        .json(&body)
        .send()
        .await
        .with_context(|| format!("POST /admin/v1/{path}"))?;
    let status = r.status();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!("POST /admin/v1/{path} answered {status}: {v}");
    }
    Ok(v)
}

fn text(v: &Value, key: &str) -> anyhow::Result<String> {
    v[key]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("no {key} in {v}"))
}

async fn seed(http: &reqwest::Client, args: &Args) -> anyhow::Result<Vec<LinkIds>> {
    let brand = admin_post(
        http,
        args,
        "brands",
        json!({"name": "Load Test Casino", "jurisdiction": {"name": "MGA", "restricted_countries": ["US"]}}),
    )
    .await?;
    let affiliate = admin_post(
        http,
        args,
        "affiliates",
        json!({"name": "Load Test Affiliates Ltd"}),
    )
    .await?;
    let campaign = admin_post(
        http,
        args,
        "campaigns",
        json!({"brand_id": brand["brand_id"], "name": "Welcome Bonus"}),
    )
    .await?;
    let mut links = Vec::new();
    for _ in 0..args.links.max(1) {
        let link = admin_post(
            http,
            args,
            "links",
            json!({
                "brand_id": brand["brand_id"],
                "affiliate_id": affiliate["affiliate_id"],
                "campaign_id": campaign["campaign_id"],
                "destination_template": "https://lucky.example/join?cid={click_id}&s1={sub1}&s2={sub2}"
            }),
        )
        .await?;
        links.push(LinkIds {
            code: text(&link, "code")?,
            brand_id: text(&brand, "brand_id")?,
            // A top-level affiliate: clicks name it, with no sub-affiliate.
            affiliate_id: text(&affiliate, "affiliate_id")?,
            campaign_id: text(&campaign, "campaign_id")?,
        });
    }
    Ok(links)
}

#[allow(clippy::too_many_arguments)]
async fn worker(
    id: usize,
    http: reqwest::Client,
    url: String,
    auth: String,
    templates: Arc<Vec<ClickTemplate>>,
    batch_size: usize,
    stop: Arc<AtomicBool>,
    totals: Arc<Totals>,
) {
    let seed = (id as u64 + 1).wrapping_mul(0xA076_1D64_78BD_642F) ^ now_ms().rotate_left(20);
    let mut writer = BatchWriter::new(seed);
    let mut latencies = Vec::with_capacity(16_384);
    let mut body = String::with_capacity(batch_size * 800 + 64);
    while !stop.load(Ordering::Relaxed) {
        let t = Instant::now();
        writer.write_batch(&mut body, &templates, batch_size, now_ms());
        totals
            .gen_ns
            .fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
        totals
            .gen_clicks
            .fetch_add(batch_size as u64, Ordering::Relaxed);
        totals
            .body_bytes
            .fetch_add(body.len() as u64, Ordering::Relaxed);
        // The body moves into the request; keep the capacity for the next one.
        let payload = std::mem::replace(&mut body, String::with_capacity(batch_size * 800 + 64));
        let started = Instant::now();
        let result = http
            .post(&url)
            .header(reqwest::header::AUTHORIZATION, &auth)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(payload)
            .send()
            .await;
        match result {
            Ok(r) => {
                let status = r.status();
                let bytes = r.bytes().await;
                latencies.push(started.elapsed().as_micros() as u64);
                if status == reqwest::StatusCode::OK {
                    let v: Value = bytes
                        .ok()
                        .and_then(|b| serde_json::from_slice(&b).ok())
                        .unwrap_or(Value::Null);
                    let accepted = v["accepted"]["clicks"].as_u64().unwrap_or(0);
                    let rejected = v["rejected_count"]
                        .as_u64()
                        .unwrap_or_else(|| v["rejected"].as_array().map_or(0, Vec::len) as u64);
                    totals
                        .accepted_clicks
                        .fetch_add(accepted, Ordering::Relaxed);
                    totals
                        .rejected_clicks
                        .fetch_add(rejected, Ordering::Relaxed);
                    totals.ok_requests.fetch_add(1, Ordering::Relaxed);
                    if rejected > 0 && totals.rejected_clicks.load(Ordering::Relaxed) == rejected {
                        eprintln!("first rejections: {}", v["rejected"]);
                    }
                } else {
                    let snippet = bytes
                        .map(|b| String::from_utf8_lossy(&b[..b.len().min(200)]).into_owned())
                        .unwrap_or_default();
                    if totals.non_200.lock().map(|m| m.is_empty()).unwrap_or(false) {
                        eprintln!("first non-200 answer: {status} {snippet}");
                    }
                    totals.count_failure(status.as_u16().to_string());
                }
            }
            Err(e) => {
                latencies.push(started.elapsed().as_micros() as u64);
                let kind = if e.is_timeout() {
                    "timeout"
                } else if e.is_connect() {
                    "connect error"
                } else {
                    "transport error"
                };
                totals.count_failure(kind.to_owned());
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    totals
        .latencies_us
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .extend(latencies);
}

/// CPU seconds at one instant: this process, each watched one, the machine.
#[derive(Debug, Clone)]
struct CpuSnapshot {
    own: Option<f64>,
    watched: Vec<Option<f64>>,
    machine: Option<(f64, f64)>,
}

fn cpu_snapshot(watch: &[(String, u32)]) -> CpuSnapshot {
    CpuSnapshot {
        own: proc_cpu::self_cpu_secs(),
        watched: watch
            .iter()
            .map(|(_, pid)| proc_cpu::process_cpu_secs(*pid))
            .collect(),
        machine: proc_cpu::machine_cpu_secs(),
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency.max(1))
        .timeout(Duration::from_secs(60))
        .tcp_nodelay(true)
        .build()?;
    let links = seed(&http, &args).await.context("seeding the catalogue")?;
    eprintln!(
        "seeded {} link(s): {}",
        links.len(),
        links
            .iter()
            .map(|l| l.code.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let templates = Arc::new(templates(&links, args.shapes.max(1)));

    // What generating a body costs on its own (before any load).
    {
        let mut w = BatchWriter::new(7);
        let mut body = String::new();
        let n = 50_000 / args.batch_size.max(1) + 1;
        let t = Instant::now();
        for _ in 0..n {
            w.write_batch(&mut body, &templates, args.batch_size, now_ms());
        }
        let per_click = t.elapsed().as_nanos() as f64 / (n * args.batch_size.max(1)) as f64;
        eprintln!(
            "body generation alone: {per_click:.0} ns/click, {} bytes/click ({} bytes per {}-click body) \
             => one core could generate {:.1} M clicks/s",
            body.len() / args.batch_size.max(1),
            body.len(),
            args.batch_size,
            1000.0 / per_click
        );
    }

    let url = format!("{}/edge/v1/clicks", args.url);
    let auth = format!("Bearer {}", args.edge_secret);
    let stop = Arc::new(AtomicBool::new(false));
    let totals = Arc::new(Totals::default());
    let cpu0 = cpu_snapshot(&args.watch);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..args.concurrency.max(1) {
        tasks.push(tokio::spawn(worker(
            i,
            http.clone(),
            url.clone(),
            auth.clone(),
            templates.clone(),
            args.batch_size.max(1),
            stop.clone(),
            totals.clone(),
        )));
    }
    let deadline = started + Duration::from_secs(args.duration_secs);
    let every = Duration::from_secs(args.report_every_secs.max(1));
    let mut last = (Instant::now(), 0_u64);
    let mut intervals = Vec::new();
    while Instant::now() < deadline {
        let next = (last.0 + every).min(deadline);
        tokio::time::sleep_until(next.into()).await;
        let accepted = totals.accepted_clicks.load(Ordering::Relaxed);
        let dt = last.0.elapsed().as_secs_f64();
        let rate = (accepted - last.1) as f64 / dt;
        intervals.push(rate);
        eprintln!(
            "[{:>5.1}s] {:>9.0} clicks/s accepted (total {accepted})",
            started.elapsed().as_secs_f64(),
            rate
        );
        last = (Instant::now(), accepted);
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu1 = cpu_snapshot(&args.watch);

    let accepted = totals.accepted_clicks.load(Ordering::Relaxed);
    let rejected = totals.rejected_clicks.load(Ordering::Relaxed);
    let ok = totals.ok_requests.load(Ordering::Relaxed);
    let failures = totals
        .non_200
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let failed: u64 = failures.values().sum();
    let mut lat = std::mem::take(
        &mut *totals
            .latencies_us
            .lock()
            .unwrap_or_else(|e| e.into_inner()),
    );
    lat.sort_unstable();
    let [p50, p90, p99, p999, max] = percentiles::percentiles(&lat);
    let ms = |us: u64| us as f64 / 1000.0;
    let rate = accepted as f64 / elapsed;
    let gen_ns = totals.gen_ns.load(Ordering::Relaxed) as f64;
    let gen_clicks = totals.gen_clicks.load(Ordering::Relaxed).max(1) as f64;
    let body_bytes = totals.body_bytes.load(Ordering::Relaxed) as f64;
    let min_interval = intervals.iter().copied().fold(f64::INFINITY, f64::min);

    println!(
        "ingest-load: {} for {elapsed:.1} s, concurrency {}, batch {} clicks, {} threads",
        args.url, args.concurrency, args.batch_size, args.threads
    );
    println!(
        "  accepted: {accepted} clicks in {ok} requests = {rate:.0} clicks/s \
         (slowest {}s interval: {min_interval:.0} clicks/s); rejected records: {rejected}",
        args.report_every_secs
    );
    println!("  non-200 / failed requests: {failed} {failures:?}");
    println!(
        "  request latency: p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, p99.9 {:.1} ms, max {:.1} ms ({} requests)",
        ms(p50), ms(p90), ms(p99), ms(p999), ms(max), lat.len()
    );
    println!(
        "  offered: {:.1} MB/s of JSON, {:.0} bytes/click; body generation {:.0} ns/click = {:.1}% of one core (wall time, inflated when the machine is busy)",
        body_bytes / elapsed / 1e6,
        body_bytes / gen_clicks,
        gen_ns / gen_clicks,
        gen_ns / 1e9 / elapsed * 100.0
    );
    let cores = proc_cpu::cpus() as f64;
    let pct = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) => Some((b - a) / elapsed * 100.0),
        _ => None,
    };
    let mut result = format!(
        "RESULT clicks_per_s={rate:.0} accepted={accepted} rejected={rejected} failed={failed} \
         p50_ms={:.1} p99_ms={:.1} min_interval_clicks_per_s={min_interval:.0} gen_ns_per_click={:.0}",
        ms(p50),
        ms(p99),
        gen_ns / gen_clicks
    );
    let mut ours = 0.0;
    let mut watched_us_per_click = 0.0;
    if let Some(p) = pct(cpu0.own, cpu1.own) {
        ours += p;
        println!("  CPU: load generator {p:.0}% (of one core)");
        result.push_str(&format!(" cpu_loadgen_pct={p:.0}"));
    }
    for (i, (name, pid)) in args.watch.iter().enumerate() {
        if let Some(p) = pct(cpu0.watched[i], cpu1.watched[i]) {
            ours += p;
            // CPU time per accepted click: robust against other load on the
            // machine, unlike the rate.
            let us_per_click = p / 100.0 * elapsed / accepted.max(1) as f64 * 1e6;
            watched_us_per_click += us_per_click;
            println!("  CPU: {name} (pid {pid}) {p:.0}% = {us_per_click:.2} µs per accepted click");
            result.push_str(&format!(
                " cpu_{name}_pct={p:.0} cpu_{name}_us_per_click={us_per_click:.2}"
            ));
        }
    }
    if let (Some((b0, t0)), Some((b1, t1))) = (cpu0.machine, cpu1.machine) {
        let busy = (b1 - b0) / (t1 - t0) * cores * 100.0;
        println!(
            "  CPU: machine busy {busy:.0}% of {:.0}% ({cores:.0} cores); other processes {:.0}%",
            cores * 100.0,
            (busy - ours).max(0.0)
        );
        result.push_str(&format!(
            " cpu_machine_pct={busy:.0} cpu_other_pct={:.0}",
            (busy - ours).max(0.0)
        ));
    }
    if watched_us_per_click > 0.0 {
        // What the watched processes could do with every core to themselves
        // at the CPU cost per click measured here (an estimate: it ignores
        // contention effects and assumes the work spreads over all cores).
        let projected = cores * 1e6 / watched_us_per_click;
        println!(
            "  projected with all {cores:.0} cores for the watched processes: {projected:.0} clicks/s \
             ({watched_us_per_click:.2} µs CPU per click)"
        );
        result.push_str(&format!(" projected_clicks_per_s={projected:.0}"));
    }
    println!("{result}");
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()?;
    runtime.block_on(run(args))
}
