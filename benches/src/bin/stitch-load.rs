//! Stitching latency under load: from a registration carrying a click id
//! to the player's attribution being readable through the API.
//!
//! Seeds a brand, affiliate, campaign and link, stores `--clicks` clicks
//! through the edge ingest endpoint, issues a brand API key, then sends
//! registrations open-loop at `--rate` per second for `--duration-secs`
//! (each scheduled on its own, so a slow answer does not slow the sending).
//! For each registration it measures from sending `POST /api/v1/events`
//! until `GET /api/v1/players/{id}/attribution` has answered 200 with an
//! attribution naming the click — the latency a brand sees. Prints
//! percentiles; the last line is machine-readable (`RESULT …`).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _};
use clap::Parser;
use serde_json::{json, Value};
use tokio::sync::Mutex;

use clickstitch_shared::{ClickIdGenerator, RawClick};

/// Drives registrations at a fixed rate and measures stitching latency.
#[derive(Debug, Parser)]
#[command(about)]
struct Args {
    /// Aggregator base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Edge secret.
    #[arg(long, env = "CLICKSTITCH_AUTH__EDGE_SECRET")]
    edge_secret: String,
    /// Operator token.
    #[arg(long, env = "CLICKSTITCH_AUTH__OPERATOR_TOKEN")]
    operator_token: String,
    /// Registrations per second.
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    /// How long to send, seconds.
    #[arg(long, default_value_t = 30)]
    duration_secs: u64,
    /// Clicks stored before the run (registrations pick from them).
    #[arg(long, default_value_t = 50_000)]
    clicks: usize,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

async fn admin(http: &reqwest::Client, a: &Args, path: &str, body: Value) -> anyhow::Result<Value> {
    let r = http
        .post(format!("{}/admin/v1/{path}", a.url))
        .bearer_auth(&a.operator_token)
        .json(&body)
        .send()
        .await?;
    let status = r.status();
    let body: Value = r.json().await?;
    if !status.is_success() {
        bail!("POST {path}: {status} {body}");
    }
    Ok(body)
}

fn text(v: &Value, k: &str) -> anyhow::Result<String> {
    v[k].as_str()
        .map(str::to_owned)
        .with_context(|| format!("{k} missing in {v}"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(512)
        .timeout(Duration::from_secs(30))
        .build()?;
    let brand = admin(
        &http,
        &a,
        "brands",
        json!({"name": "Stitch Bench", "jurisdiction": {"name": "MGA"}}),
    )
    .await?;
    let aff = admin(&http, &a, "affiliates", json!({"name": "Bench Affiliate"})).await?;
    let camp = admin(
        &http,
        &a,
        "campaigns",
        json!({"brand_id": brand["brand_id"], "name": "Bench"}),
    )
    .await?;
    let link = admin(
        &http,
        &a,
        "links",
        json!({"brand_id": brand["brand_id"], "affiliate_id": aff["affiliate_id"], "campaign_id": camp["campaign_id"],
               "destination_template": "https://bench.example/?c={click_id}"}),
    )
    .await?;
    let key = text(
        &admin(
            &http,
            &a,
            &format!("brands/{}/api-keys", text(&brand, "brand_id")?),
            json!({}),
        )
        .await?,
        "token",
    )?;

    // Store the clicks, each with its own device and network, spread over
    // the two hours before the run up to ten minutes before it: ordinary
    // traffic that fraud scoring leaves alone (no IP or /24 bursts, no
    // registration seconds after its click).
    let mut ids = ClickIdGenerator::new();
    let span_start = now_ms().saturating_sub(2 * 3_600_000);
    let span_ms = 110 * 60_000 / a.clicks.max(1) as u64;
    let mut click_ids = Vec::with_capacity(a.clicks);
    let started = Instant::now();
    for chunk in 0..a.clicks.div_ceil(5000) {
        let n = (a.clicks - chunk * 5000).min(5000);
        let clicks: Vec<RawClick> = (0..n)
            .map(|i| {
                let k = chunk * 5000 + i;
                let mut random = [0u8; 10];
                random[2..].copy_from_slice(&(k as u64).to_be_bytes());
                let id = ids.next_id(span_start + k as u64 * span_ms, random);
                // A multiplicative hash spreads consecutive clicks over
                // distinct /24s of public-looking space.
                let h = (k as u32).wrapping_mul(2_654_435_761);
                RawClick {
                    click_id: id.to_string(),
                    clicked_at_ms: id.timestamp_ms(),
                    link_code: text(&link, "code").unwrap_or_default(),
                    brand_id: text(&brand, "brand_id").unwrap_or_default(),
                    affiliate_id: text(&aff, "affiliate_id").unwrap_or_default(),
                    campaign_id: text(&camp, "campaign_id").unwrap_or_default(),
                    country: "DE".into(),
                    ip: format!(
                        "{}.{}.{}.{}",
                        11 + (h >> 24) % 200,
                        (h >> 16) & 255,
                        (h >> 8) & 255,
                        h & 255
                    ),
                    user_agent: "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/131.0".into(),
                    device_fingerprint: format!("{:032x}", k as u128 * 2_654_435_761),
                    identity_hash: format!("{:032x}", k as u128 * 40_503),
                    ..RawClick::default()
                }
            })
            .collect();
        click_ids.extend(clicks.iter().map(|c| c.click_id.clone()));
        let r = http
            .post(format!("{}/edge/v1/clicks", a.url))
            .bearer_auth(&a.edge_secret)
            .json(&json!({"clicks": clicks}))
            .send()
            .await?;
        if !r.status().is_success() {
            bail!("storing clicks: {} {}", r.status(), r.text().await?);
        }
    }
    eprintln!(
        "stored {} clicks in {:.1}s",
        click_ids.len(),
        started.elapsed().as_secs_f64()
    );

    let total = (a.rate * a.duration_secs) as usize;
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(total)));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let interval = Duration::from_nanos(1_000_000_000 / a.rate.max(1));
    let run_started = Instant::now();
    let mut tasks = Vec::with_capacity(total);
    for n in 0..total {
        tokio::time::sleep_until(tokio::time::Instant::from_std(
            run_started + interval * n as u32,
        ))
        .await;
        let (http, url, key) = (http.clone(), a.url.clone(), key.clone());
        let click_id = click_ids[n % click_ids.len()].clone();
        let (latencies, failures) = (latencies.clone(), failures.clone());
        tasks.push(tokio::spawn(async move {
            let t0 = Instant::now();
            let player = format!("bench-player-{n}");
            let result: anyhow::Result<()> = async {
                let r = http
                    .post(format!("{url}/api/v1/events"))
                    .bearer_auth(&key)
                    .json(&json!({"event_id": format!("bench-reg-{n}"), "type": "registration", "occurred_at": now_ms() + 1000,
                                  "player_id": player, "country": "DE", "click_id": click_id}))
                    .send()
                    .await?;
                if r.status().as_u16() != 201 {
                    bail!("POST {}", r.status());
                }
                let got: Value = http
                    .get(format!("{url}/api/v1/players/{player}/attribution"))
                    .bearer_auth(&key)
                    .send()
                    .await?
                    .json()
                    .await?;
                if got["touchpoints"][0]["click_id"] != Value::String(click_id) {
                    bail!("attribution not readable: {got}");
                }
                Ok(())
            }
            .await;
            match result {
                Ok(()) => latencies.lock().await.push(t0.elapsed()),
                Err(e) => failures.lock().await.push(e.to_string()),
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let elapsed = run_started.elapsed().as_secs_f64();
    let mut l = latencies.lock().await.clone();
    l.sort();
    let failures = failures.lock().await.clone();
    let pct = |p: f64| {
        l.get(((l.len() as f64 * p) as usize).min(l.len().saturating_sub(1)))
            .map(|d| d.as_secs_f64() * 1000.0)
            .unwrap_or(f64::NAN)
    };
    println!(
        "registrations: {} ok, {} failed in {elapsed:.1}s ({:.0}/s offered {}/s)",
        l.len(),
        failures.len(),
        (l.len() + failures.len()) as f64 / elapsed,
        a.rate
    );
    println!(
        "registration → attribution readable (POST + GET), ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}",
        pct(0.50),
        pct(0.90),
        pct(0.99),
        pct(0.999),
        pct(1.0)
    );
    if let Some(f) = failures.first() {
        println!("first failure: {f}");
    }
    println!(
        "RESULT ok={} failed={} rate={} p50_ms={:.2} p99_ms={:.2} p999_ms={:.2} max_ms={:.2}",
        l.len(),
        failures.len(),
        a.rate,
        pct(0.50),
        pct(0.99),
        pct(0.999),
        pct(1.0)
    );
    Ok(())
}
