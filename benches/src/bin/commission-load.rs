//! Commission job at scale: a full recompute over a large history, and an
//! incremental run after a batch of changed players, against a real
//! ClickHouse server (`scripts/bench-commissions.sh` starts one).
//!
//! Writes `--players` registrations (4 brands, one affiliate per 100
//! players, one in ten registrations reporting a second, 0 bps touchpoint,
//! 80 % KYC approved) and `--events` events in all (deposits and game
//! sessions with a 1–15 % house edge, from January 2026 on, stored two days
//! ago), hybrid
//! CPA + RevShare deals and NGR formulas; then measures, in one process:
//!
//! 1. the first run (empty ledger: appends everything),
//! 2. a full recompute over that ledger (nothing new: appends nothing),
//! 3. an incremental run after `--dirty` players each got one new game
//!    session (the job kept what run 2 computed),
//! 4. an incremental run with nothing new.
//!
//! Prints one Markdown table row per step (wall time, players read,
//! entries appended) and the process's peak RSS.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _};
use clap::Parser;
use uuid::Uuid;

use clickstitch_aggregator::commission::{Deal, NgrFormula, Timestamp};
use clickstitch_aggregator::services::commission::incremental::{JobMemory, RunSettings};
use clickstitch_aggregator::services::commission::job::{CommissionJob, RunReport};
use clickstitch_aggregator::store::{migrations, ClickHouseConfig, Store};

/// Generates a commission history and times the job over it.
#[derive(Debug, Parser)]
#[command(about)]
struct Args {
    /// ClickHouse HTTP interface.
    #[arg(long, default_value = "http://127.0.0.1:8123")]
    clickhouse_url: String,
    /// Database (created).
    #[arg(long, default_value = "clickstitch_bench")]
    database: String,
    /// Registered players.
    #[arg(long, default_value_t = 100_000)]
    players: u64,
    /// Events in all (registrations included).
    #[arg(long, default_value_t = 2_000_000)]
    events: u64,
    /// Players with a new event before the incremental run.
    #[arg(long, default_value_t = 1_000)]
    dirty: u64,
}

const BRANDS: u64 = 4;

fn brand(n: u64) -> Uuid {
    Uuid::from_u128(0xb0_0000 + u128::from(n % BRANDS))
}

fn affiliate(n: u64) -> Uuid {
    Uuid::from_u128(0xaf_0000_0000 + u128::from(n))
}

fn player(n: u64) -> Uuid {
    Uuid::from_u128(0x91_0000_0000_0000 + u128::from(n))
}

/// `YYYY-MM-DD hh:mm:ss` (UTC) of Unix ms.
fn datetime(ms: u64) -> String {
    let t = Timestamp::from_unix_ms(ms).to_string();
    format!("{} {}", &t[0..10], &t[11..19])
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A tiny deterministic generator (no seed files, same data every run).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
}

struct Http {
    client: reqwest::Client,
    url: String,
    database: String,
}

impl Http {
    async fn sql(&self, query: &str, body: String) -> anyhow::Result<String> {
        // A statement without data travels as the body itself.
        let request = self
            .client
            .post(&self.url)
            .query(&[("database", self.database.as_str())]);
        let request = if body.is_empty() {
            request.body(query.to_owned())
        } else {
            request.query(&[("query", query)]).body(body)
        };
        let r = request.send().await.context("ClickHouse request")?;
        let status = r.status();
        let text = r.text().await.unwrap_or_default();
        if !status.is_success() {
            bail!("ClickHouse: {status}: {text}");
        }
        Ok(text)
    }
}

const EVENT_COLUMNS: &str = "brand_id, event_id, event_type, occurred_at, occurred_at_ms, \
    received_at, player_id, brand_player_id, country, kyc_status, amount_minor, currency, \
    stakes_minor, wins_minor, payload_sha256";

/// One `player_events` TSV line.
#[allow(clippy::too_many_arguments)]
fn event_line(
    out: &mut String,
    n: u64,
    id: &str,
    kind: &str,
    at_ms: u64,
    received_ms: u64,
    kyc: &str,
    amount: i64,
    stakes: i64,
    wins: i64,
) {
    let _ = writeln!(
        out,
        "{}\t{id}\t{kind}\t{}\t{at_ms}\t{}\t{}\tp-{n}\tDE\t{kyc}\t{amount}\tEUR\t{stakes}\t{wins}\tbench",
        brand(n),
        datetime(at_ms),
        datetime(received_ms),
        player(n)
    );
}

async fn seed(http: &Http, store: &Store, args: &Args) -> anyhow::Result<()> {
    let two_days_ago = now_ms() - 2 * 86_400_000;
    let jan = Timestamp::utc(2026, 1, 1, 0, 0)?.unix_ms();
    let day = 86_400_000u64;
    let mut rng = Lcg(7);
    let per_player = (args.events / args.players.max(1)).max(1) - 1;
    let affiliates = (args.players / 100).max(1);

    let mut attributions = String::new();
    let mut events = String::new();
    let mut lines = 0u64;
    for n in 0..args.players {
        let registered = jan + (n % 250) * day + (n % 86_400) * 1_000;
        let kyc = if rng.next() % 10 < 8 {
            "approved"
        } else {
            "pending"
        };
        event_line(
            &mut events,
            n,
            &format!("reg-{n}"),
            "registration",
            registered,
            two_days_ago,
            kyc,
            0,
            0,
            0,
        );
        for i in 0..per_player {
            let at = registered + (1 + i * 2) * day / 3 + rng.next() % 3_600_000;
            if i % 3 == 0 {
                let amount = 1_000 + (rng.next() % 20_000) as i64;
                event_line(
                    &mut events,
                    n,
                    &format!("dep-{n}-{i}"),
                    "deposit",
                    at,
                    two_days_ago,
                    "",
                    amount,
                    0,
                    0,
                );
            } else {
                // A house edge of 1–15 % per session.
                let stakes = (rng.next() % 50_000) as i64;
                let wins = stakes * (85 + (rng.next() % 15) as i64) / 100;
                event_line(
                    &mut events,
                    n,
                    &format!("game-{n}-{i}"),
                    "game_activity",
                    at,
                    two_days_ago,
                    "",
                    0,
                    stakes,
                    wins,
                );
            }
        }
        lines += 1 + per_player;
        let a = affiliate(n % affiliates);
        let (ids, bps) = if n % 10 == 0 {
            (
                format!("['{a}','{}']", affiliate((n + 1) % affiliates)),
                "[10000,0]",
            )
        } else {
            (format!("['{a}']"), "[10000]")
        };
        let k = if n % 10 == 0 { 2 } else { 1 };
        let _ = writeln!(
            attributions,
            "{}\t{}\tp-{n}\treg-{n}\tfinal\tdefault/default.json@1\t{ids}\t[{}]\t[{}]\t[{}]\t{bps}\t{}\t{registered}\t{registered}",
            brand(n),
            player(n),
            vec!["''"; k].join(","),
            vec![format!("'{}'", Uuid::from_u128(0xc0)); k].join(","),
            (0..k).map(|i| format!("'{}'", Uuid::from_u128(u128::from(n) * 4 + i as u128))).collect::<Vec<_>>().join(","),
            datetime(registered),
        );
        if events.len() > 64 << 20 {
            http.sql(
                &format!("INSERT INTO player_events ({EVENT_COLUMNS}) FORMAT TabSeparated"),
                std::mem::take(&mut events),
            )
            .await?;
        }
    }
    http.sql(
        &format!("INSERT INTO player_events ({EVENT_COLUMNS}) FORMAT TabSeparated"),
        events,
    )
    .await?;
    http.sql(
        "INSERT INTO attributions (brand_id, player_id, brand_player_id, registration_event_id, \
         status, rules_version, credit_affiliate_ids, credit_sub_affiliate_ids, \
         credit_campaign_ids, credit_click_ids, credit_bps, decided_at, decided_at_ms, version) \
         FORMAT TabSeparated",
        attributions,
    )
    .await?;
    for a in 0..affiliates {
        let deal = Deal::from_json(&format!(
            r#"{{"affiliate": "{}", "currency": "EUR", "versions": [{{"version": 1,
            "effective_from": "2026-01", "hold_days": 30, "clawback_days": 90, "min_payout": 5000,
            "plan": {{"type": "hybrid",
              "cpa": {{"amounts": {{"DE": 10000}}, "min_first_deposit": 2000,
                "first_deposit_within_days": 30, "min_total_deposits": 5000,
                "min_wagering": 10000}},
              "revshare": {{"negative_carryover": true, "schedule": {{"type": "ladder", "bands": [
                {{"from": 0, "rate_bps": 2500}}, {{"from": 1000000, "rate_bps": 3500}}]}}}}}}}}]}}"#,
            affiliate(a)
        ))?;
        store.save_deal(&deal, 1, now_ms()).await?;
    }
    for b in 0..BRANDS {
        let formula = NgrFormula::from_json(&format!(
            r#"{{"brand": "{}", "versions": [{{"version": 1, "effective_from": "2026-01",
            "payment_fee_bps": 250, "tax_bps": 1000, "admin_fee_bps": 500}}]}}"#,
            brand(b)
        ))?;
        store.save_formula(&formula, 1, now_ms()).await?;
    }
    eprintln!(
        "commission-load: {} players, {} events, {affiliates} affiliates, {BRANDS} brands",
        args.players,
        args.players + lines - args.players
    );
    Ok(())
}

fn row(step: &str, took: Duration, r: &RunReport) {
    println!(
        "| {step} | {} | {:.2} s | {} | {} |",
        r.mode,
        took.as_secs_f64(),
        r.players,
        r.entries.len()
    );
}

fn peak_rss_mib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb / 1024)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let http = Http {
        client: reqwest::Client::new(),
        url: args.clickhouse_url.clone(),
        database: "default".into(),
    };
    http.sql(
        &format!("CREATE DATABASE IF NOT EXISTS {}", args.database),
        String::new(),
    )
    .await?;
    let http = Http {
        database: args.database.clone(),
        ..http
    };
    for m in migrations::MIGRATIONS {
        for statement in migrations::statements(m.sql) {
            http.sql(&statement, String::new()).await?;
        }
    }
    let store = Store::new(&ClickHouseConfig {
        url: args.clickhouse_url.clone(),
        database: args.database.clone(),
        user: "default".into(),
        password: String::new().into(),
        timeout: Duration::from_secs(600),
        compress: false,
    });
    let t = Instant::now();
    seed(&http, &store, &args).await?;
    eprintln!(
        "commission-load: seeded in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    println!("| step | mode | wall | players read | entries appended |");
    println!("|---|---|---:|---:|---:|");
    let fresh = || CommissionJob::new(store.clone());
    let t = Instant::now();
    let r = fresh().run_once(now_ms()).await?;
    row("first run (empty ledger)", t.elapsed(), &r);

    let memory = Arc::new(JobMemory::default());
    let job =
        CommissionJob::new(store.clone()).with_memory(Arc::clone(&memory), RunSettings::default());
    let t = Instant::now();
    let r = job.run_once(now_ms()).await?;
    row("full recompute, nothing new", t.elapsed(), &r);

    // Changes after that run's start: one new game session per dirty player.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let mut events = String::new();
    let step = (args.players / args.dirty.max(1)).max(1);
    let oct = Timestamp::utc(2026, 10, 20, 12, 0)?.unix_ms();
    for k in 0..args.dirty.min(args.players) {
        let n = k * step;
        event_line(
            &mut events,
            n,
            &format!("late-{n}"),
            "game_activity",
            oct,
            now_ms(),
            "",
            0,
            10_000,
            2_500,
        );
    }
    http.sql(
        &format!("INSERT INTO player_events ({EVENT_COLUMNS}) FORMAT TabSeparated"),
        events,
    )
    .await?;
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let t = Instant::now();
    let r = job.run_once(now_ms()).await?;
    row(&format!("{} players changed", args.dirty), t.elapsed(), &r);

    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let t = Instant::now();
    let r = job.run_once(now_ms()).await?;
    row("nothing new", t.elapsed(), &r);

    let t = Instant::now();
    let r = fresh().run_once(now_ms()).await?;
    row(
        "full recompute after the incremental runs (checks them)",
        t.elapsed(),
        &r,
    );
    if !r.entries.is_empty() {
        bail!(
            "the full recompute appended {} entries: incremental runs missed them",
            r.entries.len()
        );
    }
    println!("\npeak RSS {} MiB", peak_rss_mib());
    Ok(())
}
