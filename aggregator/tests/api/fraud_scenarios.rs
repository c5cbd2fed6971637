//! The fraud scenario test: seeded synthetic traffic of every class the
//! generator knows (`clickstitch_aggregator::fraud::scenario`: ordinary
//! players, same-phone crowds, a campus CGNAT, NAT families, travellers,
//! VPN users, tipster bursts; fast and slow click farms over a /22,
//! datacenter scripts, bonus-abuse and slow-drip rings, click injection,
//! click flooding) replayed in time order through the real aggregator's
//! HTTP API into ClickHouse, with the population sweep run on the replay's
//! clock, then read back from `fraud_scores FINAL`.
//!
//! Replay: every event in time order. Consecutive clicks go in one
//! `POST /edge/v1/clicks` batch (at most [`CLICK_BATCH`]) carrying the
//! browser's visitor id and header fingerprint; a registration or first
//! deposit first flushes the pending clicks, then is posted alone to
//! `POST /api/v1/events` with its brand's key, reporting its clicks (and the
//! brand's device id where the brand sends one). Every
//! [`SWEEP_EVERY_MS`] of scenario time, and once after the last event plus
//! the settle time, the app's own [`PopulationSweep`] runs at that time —
//! the order the pure runner (`Scenario::run`) scores in.
//!
//! Measures, per class and kind, what was held (on arrival, by an
//! escalation or by the sweep), and per class how many actors (players)
//! had anything held. Fails unless every planted class is held at ≥ 95 %
//! of the kinds it must be caught at and no ordinary class has more than
//! 1 % of its players held (`ScenarioReport::misses`). The report, with the
//! pure runner's on the same scenario for comparison (not asserted: the
//! aggregator attributes by its own rules), is printed and written to
//! `target/fraud-scenarios.md`; `docs/fraud.md` quotes it.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use serde::Deserialize;
use serde_json::{json, Value};

use clickstitch_aggregator::fraud::scenario::{
    generate, Event, Scenario, ScenarioConfig, SWEEP_EVERY_MS,
};
use clickstitch_aggregator::fraud::{Capacity, FraudPolicies, Scorer, SignalHit};
use clickstitch_aggregator::services::fraud::sweep::SWEEP_MARK;
use clickstitch_shared::{BrandId, ClickIdGenerator, RawClick};

use crate::helpers::{now_ms, spawn_app_with, Options, TestApp};
use clickstitch_testkit::aggregator::fraud_dir;

const MINUTE_MS: u64 = 60_000;
const DAY_MS: u64 = 86_400_000;

/// Most clicks per edge batch.
const CLICK_BATCH: usize = 500;

/// The scenario: every class at the generator's defaults, with 3 000
/// ordinary players (the default 20 000 is too slow for a debug build on
/// two cores). `start_ms` is set by [`scenario`].
fn config() -> ScenarioConfig {
    ScenarioConfig {
        seed: 42,
        ordinary_players: 3_000,
        ..ScenarioConfig::default()
    }
}

/// Generates the scenario shifted so that its last event is two hours
/// ago (the generator's draws do not depend on `start_ms`, so the shift
/// changes nothing but the times): clicks are then in the aggregator's
/// accepted range and no event is in the future, the final sweep included.
fn scenario() -> (ScenarioConfig, Scenario) {
    let probe = config();
    let first = generate(&probe);
    let (min, max) = span(&first);
    let now = now_ms();
    let config = ScenarioConfig {
        start_ms: (probe.start_ms + now - 120 * MINUTE_MS) - max,
        ..probe
    };
    let scenario = generate(&config);
    let (earliest, latest) = span(&scenario);
    assert_eq!(latest - earliest, max - min, "a shift only");
    assert!(
        earliest > now - 29 * DAY_MS,
        "the scenario spans {} days: too long for the click age limit",
        (latest - earliest) / DAY_MS
    );
    (config, scenario)
}

fn span(s: &Scenario) -> (u64, u64) {
    let first = s.events.first().expect("events").event.at_ms();
    let last = s.events.last().expect("events").event.at_ms();
    (first, last)
}

/// A link created through the admin API for a scenario link.
#[derive(Debug, Clone)]
struct RealLink {
    brand_id: String,
    affiliate_id: String,
    campaign_id: String,
    code: String,
}

/// The catalogue the scenario needs: a brand (with a campaign and an API
/// key) per scenario brand, an affiliate per scenario affiliate, a link per
/// scenario link.
struct Catalogue {
    links: HashMap<String, RealLink>,
    brand_keys: HashMap<BrandId, String>,
}

async fn created(app: &TestApp, path: &str, body: Value, id: &str) -> String {
    let (status, out) = app.admin_post(path, body).await;
    assert_eq!(status, 201, "POST {path}: {out}");
    out[id]
        .as_str()
        .unwrap_or_else(|| panic!("{path} answered without {id}: {out}"))
        .to_owned()
}

async fn build_catalogue(app: &TestApp, scenario: &Scenario) -> Catalogue {
    let mut brands: HashMap<BrandId, (String, String)> = HashMap::new();
    let mut brand_keys = HashMap::new();
    let mut affiliates: HashMap<String, String> = HashMap::new();
    let mut links = HashMap::new();
    for e in &scenario.events {
        let Event::Click { facts: c, .. } = &e.event else {
            continue;
        };
        if !brands.contains_key(&c.brand_id) {
            let n = brands.len() + 1;
            let brand = created(
                app,
                "brands",
                json!({"name": format!("Scenario Casino {n}"), "jurisdiction": {"name": "MGA"}}),
                "brand_id",
            )
            .await;
            let campaign = created(
                app,
                "campaigns",
                json!({"brand_id": brand, "name": "Scenario"}),
                "campaign_id",
            )
            .await;
            brand_keys.insert(c.brand_id, app.issue_key(&format!("brands/{brand}")).await);
            brands.insert(c.brand_id, (brand, campaign));
        }
        let affiliate_key = c.affiliate_id.to_string();
        if !affiliates.contains_key(&affiliate_key) {
            let n = affiliates.len() + 1;
            let id = created(
                app,
                "affiliates",
                json!({"name": format!("Scenario Affiliate {n}")}),
                "affiliate_id",
            )
            .await;
            affiliates.insert(affiliate_key.clone(), id);
        }
        if let Entry::Vacant(slot) = links.entry(c.link_code.to_string()) {
            let (brand, campaign) = brands[&c.brand_id].clone();
            let affiliate = affiliates[&affiliate_key].clone();
            let code = created(
                app,
                "links",
                json!({
                    "brand_id": brand,
                    "affiliate_id": affiliate,
                    "campaign_id": campaign,
                    "destination_template": "https://casino.example/join?cid={click_id}"
                }),
                "code",
            )
            .await;
            slot.insert(RealLink {
                brand_id: brand,
                affiliate_id: affiliate,
                campaign_id: campaign,
                code,
            });
        }
    }
    Catalogue { links, brand_keys }
}

/// Replays the scenario in time order; returns, per event index, the id the
/// aggregator knows it by (click id, registration or deposit event id).
struct Replay<'a> {
    app: &'a TestApp,
    catalogue: &'a Catalogue,
    ids: ClickIdGenerator,
    pending: Vec<RawClick>,
    click_batches: usize,
    event_posts: usize,
    sweeps: usize,
}

impl Replay<'_> {
    async fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let (status, body) = self.app.post_batch(&self.pending, &[]).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body["accepted"]["clicks"].as_u64(),
            Some(self.pending.len() as u64),
            "every click accepted: {body}"
        );
        self.pending.clear();
        self.click_batches += 1;
    }

    async fn post(&mut self, key: &str, event: Value) {
        let (status, _, body) = self.app.post_event(key, event).await;
        assert_eq!(status, 201, "{body}");
        assert!(body["fraud"].is_object(), "scored: {body}");
        self.event_posts += 1;
    }

    async fn sweep(&mut self, at_ms: u64) {
        self.flush().await;
        let sweep = self.app.sweep.as_ref().expect("the app is running");
        sweep.run_once(at_ms).await.expect("a sweep");
        self.sweeps += 1;
    }

    async fn run(&mut self, scenario: &Scenario, settle_ms: u64) -> Vec<String> {
        let mut names: Vec<String> = Vec::with_capacity(scenario.events.len());
        let mut next_sweep = scenario
            .events
            .first()
            .map_or(0, |e| e.event.at_ms() + SWEEP_EVERY_MS);
        for (i, e) in scenario.events.iter().enumerate() {
            while e.event.at_ms() >= next_sweep {
                self.sweep(next_sweep).await;
                next_sweep += SWEEP_EVERY_MS;
            }
            match &e.event {
                Event::Click {
                    facts: c,
                    visitor,
                    fingerprint,
                } => {
                    let link = &self.catalogue.links[c.link_code.as_str()];
                    let mut random = [0u8; 10];
                    random[..8].copy_from_slice(&(i as u64).to_be_bytes());
                    let id = self.ids.next_id(c.clicked_at_ms, random);
                    names.push(id.to_string());
                    self.pending.push(RawClick {
                        click_id: id.to_string(),
                        clicked_at_ms: id.timestamp_ms(),
                        link_code: link.code.clone(),
                        brand_id: link.brand_id.clone(),
                        affiliate_id: link.affiliate_id.clone(),
                        campaign_id: link.campaign_id.clone(),
                        country: c.country.as_str().to_owned(),
                        asn: c.asn,
                        ip: c.ip.map(|ip| ip.to_string()).unwrap_or_default(),
                        user_agent: "Mozilla/5.0 (Linux; Android 14) Chrome/131.0".into(),
                        accept_language: "en-GB,en;q=0.9".into(),
                        device_fingerprint: fingerprint.to_string(),
                        visitor_id: visitor.map(|v| v.to_string()).unwrap_or_default(),
                        identity_hash: format!("{:032x}", (0x1d_u128 << 120) | i as u128),
                        is_bot: c.bot.is_some(),
                        bot_reason: c.bot.map(|r| r.as_str().to_owned()).unwrap_or_default(),
                        ..RawClick::default()
                    });
                    if self.pending.len() >= CLICK_BATCH {
                        self.flush().await;
                    }
                }
                Event::Registration {
                    facts,
                    reported,
                    device_id,
                    ..
                } => {
                    self.flush().await;
                    let name = format!("reg-{i}");
                    let mut body = json!({
                        "event_id": name, "type": "registration",
                        "occurred_at": facts.registered_at_ms,
                        "player_id": facts.brand_player_id,
                        "country": facts.country.as_str(),
                    });
                    if !reported.is_empty() {
                        let ids: Vec<&str> = reported.iter().map(|&c| names[c].as_str()).collect();
                        body["click_ids"] = json!(ids);
                    }
                    if let Some(ip) = facts.ip {
                        body["ip"] = json!(ip.to_string());
                    }
                    if let Some(fp) = facts.device_fingerprint {
                        body["device_fingerprint"] = json!(fp.to_string());
                    }
                    if let Some(device) = device_id {
                        body["device_id"] = json!(device);
                    }
                    if let Some(asn) = facts.asn {
                        body["asn"] = json!(asn);
                    }
                    let key = self.catalogue.brand_keys[&facts.brand_id].clone();
                    self.post(&key, body).await;
                    names.push(name);
                }
                Event::FirstDeposit {
                    facts, device_id, ..
                } => {
                    self.flush().await;
                    let name = format!("dep-{i}");
                    let mut body = json!({
                        "event_id": name, "type": "deposit",
                        "occurred_at": facts.deposited_at_ms,
                        "player_id": facts.brand_player_id,
                        "amount": "50.00", "currency": "EUR",
                    });
                    if let Some(device) = device_id {
                        body["device_id"] = json!(device);
                    }
                    let key = self.catalogue.brand_keys[&facts.brand_id].clone();
                    self.post(&key, body).await;
                    names.push(name);
                }
            }
        }
        if let Some(last) = scenario.events.last() {
            self.sweep(last.event.at_ms() + settle_ms + 1).await;
        }
        self.flush().await;
        names
    }
}

/// One `fraud_scores FINAL` row.
#[derive(Debug, Deserialize)]
struct StoredScore {
    entity_id: String,
    quarantined: u8,
    signals: String,
    escalated_by: String,
}

/// What the aggregator decided, per event: the score on arrival (an
/// escalated or swept row's score without the points added later), held
/// on arrival, held in the end; and how many were escalated / swept.
struct Stored {
    scores: Vec<u8>,
    at_arrival: Vec<bool>,
    held: Vec<bool>,
    escalated: usize,
    swept: usize,
}

fn stored_verdicts(app: &TestApp, names: &[String]) -> Stored {
    let index: HashMap<&str, usize> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i))
        .collect();
    let text = app.sql(
        "SELECT entity_id, quarantined, signals, escalated_by \
         FROM fraud_scores FINAL FORMAT JSONEachRow",
    );
    let n = names.len();
    let mut out = Stored {
        scores: vec![0; n],
        at_arrival: vec![false; n],
        held: vec![false; n],
        escalated: 0,
        swept: 0,
    };
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let row: StoredScore = serde_json::from_str(line).expect("a fraud_scores row");
        let i = *index
            .get(row.entity_id.as_str())
            .unwrap_or_else(|| panic!("a score for an entity not replayed: {line}"));
        let hits: Vec<SignalHit> = serde_json::from_str(&row.signals).expect("signals JSON");
        let later = |h: &&SignalHit| {
            h.detail.starts_with("escalated: ")
                || (row.escalated_by == SWEEP_MARK
                    && h.signal == clickstitch_aggregator::fraud::Signal::ConversionShortfall)
        };
        let arrival: u32 = hits
            .iter()
            .filter(|h| !later(h))
            .map(|h| u32::from(h.points))
            .sum();
        out.scores[i] = u8::try_from(arrival.min(100)).unwrap_or(100);
        out.held[i] = row.quarantined == 1;
        out.at_arrival[i] = row.quarantined == 1 && row.escalated_by.is_empty();
        if row.quarantined == 1 && row.escalated_by == SWEEP_MARK {
            out.swept += 1;
        } else if row.quarantined == 1 && !row.escalated_by.is_empty() {
            out.escalated += 1;
        }
    }
    out
}

#[tokio::test]
async fn generated_traffic_through_the_aggregator_holds_every_planted_scheme_and_spares_every_ordinary_class(
) {
    let started = Instant::now();
    let mut app = spawn_app_with(Options {
        // One request at a time: do not wait for company in the writer.
        max_batch_delay_ms: 1,
        ..Options::default()
    })
    .await;
    let (config, scenario) = scenario();
    let catalogue = build_catalogue(&app, &scenario).await;
    let setup = started.elapsed();
    let policies = Arc::new(FraudPolicies::load_dir(&fraud_dir()).expect("the fraud policies"));
    let settle_ms = u64::from(
        policies
            .default_policy()
            .conversion_shortfall
            .settle_minutes,
    ) * MINUTE_MS;

    let replay_started = Instant::now();
    let mut replay = Replay {
        app: &app,
        catalogue: &catalogue,
        ids: ClickIdGenerator::new(),
        pending: Vec::new(),
        click_batches: 0,
        event_posts: 0,
        sweeps: 0,
    };
    let names = replay.run(&scenario, settle_ms).await;
    let (click_batches, event_posts, sweeps) =
        (replay.click_batches, replay.event_posts, replay.sweeps);
    let replay_time = replay_started.elapsed();
    // Everything acknowledged is in ClickHouse once the app has stopped
    // (its writers flush on shutdown).
    app.stop().await;

    let stored = stored_verdicts(&app, &names);
    let report = scenario.report(
        &stored.scores,
        &stored.at_arrival,
        &stored.held,
        stored.escalated,
        stored.swept,
    );
    let pure = scenario.run(&Scorer::new(policies, Capacity::small()));

    let mut text = String::new();
    text.push_str("### Through the aggregator and ClickHouse\n\n");
    text.push_str(&report.to_string());
    text.push_str("\n### The pure runner on the same scenario (for comparison)\n\n");
    text.push_str(&pure.to_string());
    text.push_str(&format!(
        "\nScenario: seed {}, {} ordinary players, {} events ({} days). Replay: {click_batches} \
         click batches, {event_posts} event posts and {sweeps} sweeps in {:.1} s (setup {:.1} s, \
         total {:.1} s).\n",
        config.seed,
        config.ordinary_players,
        scenario.events.len(),
        span(&scenario).1.saturating_sub(span(&scenario).0) / DAY_MS + 1,
        replay_time.as_secs_f64(),
        setup.as_secs_f64(),
        started.elapsed().as_secs_f64()
    ));
    println!("{text}");
    let target = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target");
    std::fs::create_dir_all(&target).expect("the target directory");
    std::fs::write(target.join("fraud-scenarios.md"), &text).expect("the report written");

    assert_eq!(report.misses(), Vec::<String>::new(), "\n{text}");
    assert!(stored.swept > 0, "the sweep held the farms' clicks\n{text}");
}
