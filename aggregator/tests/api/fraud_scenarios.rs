//! The fraud scenario test (issue 4): seeded synthetic traffic — ordinary
//! players (some behind CGNAT, a few on VPNs), click farms (a /24 and a
//! single IP), bonus-abuse rings (20 accounts on one device), injected
//! clicks (2 s before the registration) and a click-flooding affiliate —
//! replayed in time order through the real aggregator's HTTP API into
//! ClickHouse, then read back from `fraud_scores FINAL`.
//!
//! Replay: every event in generation (= time) order. Consecutive clicks go
//! in one `POST /edge/v1/clicks` batch (at most [`CLICK_BATCH`]); a
//! registration or first deposit first flushes the pending clicks, then is
//! posted alone to `POST /api/v1/events` with its brand's key, naming the
//! click id of its attributed click. So every window sees its events in
//! time order, a registration's click is stored before it, and escalations
//! find every earlier entity of their scope already in ClickHouse — the
//! order the pure runner (`Scenario::run`) scores in.
//!
//! Measures, per (truth, kind):
//! - **recall** (planted fraud): quarantined / events (quarantined on arrival
//!   or by a later escalation: the newest row per entity);
//! - **ordinary share**: quarantined ordinary events / ordinary events;
//! - **precision** (planted fraud): TP / (TP + FP), TP = planted events of
//!   that scenario and kind quarantined, FP = ordinary events of that kind
//!   quarantined whose deciding signal (the escalation's signal for an
//!   escalated row, else the hit with the most points) is one of the
//!   scenario's signals (farm: `ip_velocity`, `subnet_velocity`; ring:
//!   `device_registrations`, `device_deposits`, `ip_registrations`;
//!   injection: `click_injection`; flooding: `click_flooding`);
//! - **ordinary players quarantined**: an upper bound — a registered player
//!   counts once if their attributed click, registration or first deposit is
//!   quarantined; every other quarantined ordinary click counts as a player
//!   of its own (the generator does not say whose an unconverted click is).
//!
//! Fails if recall on any planted scenario's relevant events (farm: clicks;
//! ring: registrations and first deposits; injection and flooding:
//! registrations) is below 0.95, or more than 1 % of the ordinary players
//! are quarantined. The report (with the pure runner's figures on the same
//! scenario for comparison) is printed and written to
//! `target/fraud-scenarios.md`; `docs/fraud.md` quotes it.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use serde::Deserialize;
use serde_json::{json, Value};

use clickstitch_aggregator::fraud::scenario::{
    generate, Event, Kind, Scenario, ScenarioConfig, Truth,
};
use clickstitch_aggregator::fraud::{Capacity, FraudPolicies, Scorer, Signal, SignalHit};
use clickstitch_shared::{BrandId, ClickIdGenerator, RawClick};

use crate::helpers::{fraud_dir, now_ms, spawn_app_with, Options, TestApp};

const MINUTE_MS: u64 = 60_000;
const DAY_MS: u64 = 86_400_000;

/// Most clicks per edge batch.
const CLICK_BATCH: usize = 500;

/// The scenario: the planted fraud at the generator's defaults, 3 000
/// ordinary players (the default 20 000 is too slow for a debug build on
/// two cores), CGNAT scaled down with them (37.5 players per shared
/// address, as in the defaults). `start_ms` is set by [`scenario`].
fn config() -> ScenarioConfig {
    ScenarioConfig {
        seed: 42,
        ordinary_players: 3_000,
        cgnat_ips: 2,
        cgnat_players: 75,
        ..ScenarioConfig::default()
    }
}

/// Generates the scenario shifted so that its last event is ten minutes
/// ago (the generator's draws do not depend on `start_ms`, so the shift
/// changes nothing but the times): clicks are then in the aggregator's
/// accepted range (≤ 30 days old) and no registration is in the future.
fn scenario() -> (ScenarioConfig, Scenario) {
    let probe = config();
    let first = generate(&probe);
    let (min, max) = span(&first);
    let now = now_ms();
    let config = ScenarioConfig {
        start_ms: (probe.start_ms + now - 10 * MINUTE_MS) - max,
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
        let Event::Click(c) = &e.event else { continue };
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

/// A device fingerprint of its own for a click no registration points at
/// (the generator gives devices to players, and says which player a click
/// is only through the registration): never shared, so ordinary players do
/// not meet on a device by accident.
fn lone_device(index: usize) -> String {
    format!("{:032x}", (0xc11c_u128 << 112) | index as u128)
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

    async fn run(&mut self, scenario: &Scenario) -> Vec<String> {
        let mut devices: HashMap<usize, String> = HashMap::new();
        for e in &scenario.events {
            if let Event::Registration {
                facts,
                click: Some(c),
            } = &e.event
            {
                if let Some(ctx) = &facts.click {
                    devices.insert(*c, ctx.device_fingerprint.to_string());
                }
            }
        }
        let mut names = Vec::with_capacity(scenario.events.len());
        for (i, e) in scenario.events.iter().enumerate() {
            match &e.event {
                Event::Click(c) => {
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
                        device_fingerprint: devices
                            .get(&i)
                            .cloned()
                            .unwrap_or_else(|| lone_device(i)),
                        identity_hash: format!("{:032x}", (0x1d_u128 << 120) | i as u128),
                        is_bot: c.bot.is_some(),
                        bot_reason: c.bot.map(|r| r.as_str().to_owned()).unwrap_or_default(),
                        ..RawClick::default()
                    });
                    if self.pending.len() >= CLICK_BATCH {
                        self.flush().await;
                    }
                }
                Event::Registration { facts, click } => {
                    self.flush().await;
                    let name = format!("reg-{i}");
                    let mut body = json!({
                        "event_id": name, "type": "registration",
                        "occurred_at": facts.registered_at_ms,
                        "player_id": facts.brand_player_id,
                        "country": facts.country.as_str(),
                    });
                    if let Some(c) = click {
                        body["click_id"] = json!(names[*c]);
                    }
                    if let Some(ip) = facts.ip {
                        body["ip"] = json!(ip.to_string());
                    }
                    if let Some(fp) = facts.device_fingerprint {
                        body["device_fingerprint"] = json!(fp.to_string());
                    }
                    if let Some(asn) = facts.asn {
                        body["asn"] = json!(asn);
                    }
                    let key = self.catalogue.brand_keys[&facts.brand_id].clone();
                    self.post(&key, body).await;
                    names.push(name);
                }
                Event::FirstDeposit { facts, .. } => {
                    self.flush().await;
                    let name = format!("dep-{i}");
                    let mut body = json!({
                        "event_id": name, "type": "deposit",
                        "occurred_at": facts.deposited_at_ms,
                        "player_id": facts.brand_player_id,
                        "amount": "50.00", "currency": "EUR",
                    });
                    if let Some(fp) = facts.device_fingerprint {
                        body["device_fingerprint"] = json!(fp.to_string());
                    }
                    let key = self.catalogue.brand_keys[&facts.brand_id].clone();
                    self.post(&key, body).await;
                    names.push(name);
                }
            }
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

/// What the aggregator decided about one event.
#[derive(Debug, Clone, Default)]
struct Verdict {
    /// The score on arrival (an escalated row's score without the
    /// escalation's points); 0 for a click without a row.
    score: u8,
    quarantined: bool,
    escalated: bool,
    /// The deciding signal of a quarantined event.
    signal: Option<Signal>,
    /// The stored signals (JSON), for the report's examples.
    signals: String,
}

fn stored_verdicts(app: &TestApp, names: &[String]) -> Vec<Verdict> {
    let index: HashMap<&str, usize> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i))
        .collect();
    let text = app.sql(
        "SELECT entity_id, quarantined, signals, escalated_by \
         FROM fraud_scores FINAL FORMAT JSONEachRow",
    );
    let mut out = vec![Verdict::default(); names.len()];
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let row: StoredScore = serde_json::from_str(line).expect("a fraud_scores row");
        let i = *index
            .get(row.entity_id.as_str())
            .unwrap_or_else(|| panic!("a score for an entity not replayed: {line}"));
        let hits: Vec<SignalHit> = serde_json::from_str(&row.signals).expect("signals JSON");
        let escalated = !row.escalated_by.is_empty();
        // Escalations append a hit each ("escalated: …"); the hits before
        // them are the score on arrival.
        let (by_escalation, on_arrival): (Vec<&SignalHit>, Vec<&SignalHit>) = hits
            .iter()
            .partition(|h| h.detail.starts_with("escalated: "));
        let signal = match by_escalation.first() {
            Some(h) => Some(h.signal),
            None => on_arrival.iter().max_by_key(|h| h.points).map(|h| h.signal),
        };
        let arrival_points: u32 = on_arrival.iter().map(|h| u32::from(h.points)).sum();
        let score = u8::try_from(arrival_points.min(100)).unwrap_or(100);
        out[i] = Verdict {
            score,
            quarantined: row.quarantined == 1,
            escalated,
            signal,
            signals: row.signals,
        };
    }
    out
}

/// The pure runner's score on arrival and decision per event:
/// `Scenario::run` event by event (same scores carried, same escalations
/// applied at the end).
fn pure_verdicts(scenario: &Scenario, scorer: &Scorer) -> (Vec<u8>, Vec<bool>) {
    let n = scenario.events.len();
    let mut scores = vec![0u8; n];
    let mut quarantined = vec![false; n];
    let mut escalations = Vec::new();
    for (i, e) in scenario.events.iter().enumerate() {
        let score = match &e.event {
            Event::Click(c) => scorer.score_click(c),
            Event::Registration { facts, click } => {
                let mut facts = facts.clone();
                if let (Some(ctx), Some(c)) = (facts.click.as_mut(), click) {
                    ctx.click_score = scores[*c];
                }
                scorer.score_registration(&facts)
            }
            Event::FirstDeposit {
                facts,
                registration,
            } => {
                let mut facts = facts.clone();
                facts.registration_score = scores[*registration];
                scorer.score_first_deposit(&facts)
            }
        };
        scores[i] = score.value;
        quarantined[i] = score.quarantined;
        escalations.extend(score.escalations);
    }
    for esc in &escalations {
        for (i, e) in scenario.events.iter().enumerate() {
            if !quarantined[i] && e.event.covered_by(esc) {
                quarantined[i] = true;
            }
        }
    }
    (scores, quarantined)
}

fn scenario_signals(truth: Truth) -> &'static [Signal] {
    match truth {
        Truth::ClickFarm => &[Signal::IpVelocity, Signal::SubnetVelocity],
        Truth::BonusAbuse => &[
            Signal::DeviceRegistrations,
            Signal::DeviceDeposits,
            Signal::IpRegistrations,
        ],
        Truth::ClickInjection => &[Signal::ClickInjection],
        Truth::ClickFlooding => &[Signal::ClickFlooding],
        Truth::Ordinary => &[],
    }
}

/// The planted scenarios' relevant events, which recall is asserted on.
const ASSERTED: [(Truth, Kind); 5] = [
    (Truth::ClickFarm, Kind::Click),
    (Truth::BonusAbuse, Kind::Registration),
    (Truth::BonusAbuse, Kind::FirstDeposit),
    (Truth::ClickInjection, Kind::Registration),
    (Truth::ClickFlooding, Kind::Registration),
];

#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    events: usize,
    flagged: usize,
    quarantined: usize,
    escalated: usize,
    pure: usize,
}

fn ratio(n: usize, d: usize) -> f64 {
    n as f64 / d.max(1) as f64
}

#[tokio::test]
async fn generated_traffic_through_the_aggregator_quarantines_the_planted_fraud_and_spares_ordinary_players(
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

    let replay_started = Instant::now();
    let mut replay = Replay {
        app: &app,
        catalogue: &catalogue,
        ids: ClickIdGenerator::new(),
        pending: Vec::new(),
        click_batches: 0,
        event_posts: 0,
    };
    let names = replay.run(&scenario).await;
    let (click_batches, event_posts) = (replay.click_batches, replay.event_posts);
    let replay_time = replay_started.elapsed();
    // Everything acknowledged is in ClickHouse once the app has stopped
    // (its writers flush on shutdown).
    app.stop().await;

    let stored = stored_verdicts(&app, &names);
    let policies = Arc::new(FraudPolicies::load_dir(&fraud_dir()).expect("the fraud policies"));
    let (pure_scores, pure) = pure_verdicts(
        &scenario,
        &Scorer::new(Arc::clone(&policies), Capacity::small()),
    );
    let pure_report = scenario.run(&Scorer::new(policies, Capacity::small()));

    // Per (truth, kind).
    let mut tallies: BTreeMap<(Truth, Kind), Tally> = BTreeMap::new();
    for (i, e) in scenario.events.iter().enumerate() {
        let t = tallies.entry((e.truth, e.event.kind())).or_default();
        t.events += 1;
        t.flagged += usize::from(stored[i].score > 0);
        t.quarantined += usize::from(stored[i].quarantined);
        t.escalated += usize::from(stored[i].quarantined && stored[i].escalated);
        t.pure += usize::from(pure[i]);
    }
    for (&(truth, kind), t) in &tallies {
        let row = pure_report.row(truth, kind).expect("the runner's row");
        assert_eq!(row.quarantined, t.pure, "the replica of Scenario::run");
    }
    // False positives per scenario: ordinary events quarantined on its
    // signals.
    let mut false_positives: BTreeMap<(Truth, Kind), usize> = BTreeMap::new();
    for (i, e) in scenario.events.iter().enumerate() {
        let v = &stored[i];
        if e.truth != Truth::Ordinary || !v.quarantined {
            continue;
        }
        for &(truth, kind) in tallies.keys() {
            if kind == e.event.kind()
                && truth != Truth::Ordinary
                && v.signal
                    .is_some_and(|s| scenario_signals(truth).contains(&s))
            {
                *false_positives.entry((truth, kind)).or_default() += 1;
            }
        }
    }
    // Ordinary players (upper bound, see the module comment).
    let mut player_of: HashMap<usize, usize> = HashMap::new();
    for (i, e) in scenario.events.iter().enumerate() {
        if e.truth != Truth::Ordinary {
            continue;
        }
        match &e.event {
            Event::Registration { click, .. } => {
                player_of.insert(i, i);
                if let Some(c) = click {
                    player_of.insert(*c, i);
                }
            }
            Event::FirstDeposit { registration, .. } => {
                player_of.insert(i, *registration);
            }
            Event::Click(_) => {}
        }
    }
    let quarantined_players: HashSet<usize> = scenario
        .events
        .iter()
        .enumerate()
        .filter(|(i, e)| e.truth == Truth::Ordinary && stored[*i].quarantined)
        .map(|(i, _)| player_of.get(&i).copied().unwrap_or(i))
        .collect();
    let player_share = ratio(quarantined_players.len(), config.ordinary_players);

    // Disagreements with the pure runner.
    let mut differences: BTreeMap<(Truth, Kind, bool), usize> = BTreeMap::new();
    let mut score_differences: BTreeMap<(Truth, Kind), usize> = BTreeMap::new();
    for (i, e) in scenario.events.iter().enumerate() {
        if stored[i].quarantined != pure[i] {
            *differences
                .entry((e.truth, e.event.kind(), stored[i].quarantined))
                .or_default() += 1;
        }
        if stored[i].score != pure_scores[i] {
            *score_differences
                .entry((e.truth, e.event.kind()))
                .or_default() += 1;
        }
    }

    let mut report = String::new();
    report.push_str(
        "| traffic | event | events | any signal | quarantined | of which by escalation | recall / ordinary share | precision | pure runner: quarantined |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for (&(truth, kind), t) in &tallies {
        let share = ratio(t.quarantined, t.events);
        let precision = if truth == Truth::Ordinary {
            "–".to_owned()
        } else {
            let fp = false_positives.get(&(truth, kind)).copied().unwrap_or(0);
            if t.quarantined + fp == 0 {
                "–".to_owned()
            } else {
                format!("{:.3}", ratio(t.quarantined, t.quarantined + fp))
            }
        };
        report.push_str(&format!(
            "| {truth} | {kind} | {} | {} | {} | {} | {share:.3} | {precision} | {} |\n",
            t.events, t.flagged, t.quarantined, t.escalated, t.pure
        ));
    }
    report.push_str(&format!(
        "\nOrdinary players quarantined (upper bound): {} of {} ({:.2} %).\n",
        quarantined_players.len(),
        config.ordinary_players,
        player_share * 100.0
    ));
    if score_differences.is_empty() {
        report.push_str(
            "The aggregator and the pure runner give every event the same score on arrival.\n",
        );
    } else {
        let list: Vec<String> = score_differences
            .iter()
            .map(|((truth, kind), n)| format!("{truth} {kind}: {n}"))
            .collect();
        report.push_str(&format!(
            "Scores on arrival differing from the pure runner's: {}. For example:\n",
            list.join(", ")
        ));
        for (i, e) in scenario
            .events
            .iter()
            .enumerate()
            .filter(|(i, _)| stored[*i].score != pure_scores[*i])
            .take(5)
        {
            report.push_str(&format!(
                "- {} {} {}: aggregator {} `{}`, pure runner {}\n",
                e.truth,
                e.event.kind(),
                names[i],
                stored[i].score,
                stored[i].signals,
                pure_scores[i]
            ));
        }
    }
    if differences.is_empty() {
        report.push_str("The aggregator and the pure runner quarantine the same events.\n");
    } else {
        report.push_str("\nDisagreements with the pure runner:\n\n");
        for ((truth, kind, aggregator), n) in &differences {
            let which = if *aggregator {
                "quarantined only by the aggregator"
            } else {
                "quarantined only by the pure runner"
            };
            report.push_str(&format!("- {truth} {kind}: {n} {which}\n"));
        }
    }
    report.push_str(&format!(
        "\nScenario: seed {}, {} days, {} ordinary players ({} behind {} CGNAT addresses, VPN {} ‰), \
         {} /24 + {} single-IP click farms × {} clicks, {} rings × {} accounts, {} injected \
         registrations, {} flooded registrations + {} sprayed clicks: {} events \
         ({} clicks, {} registrations, {} first deposits).\n",
        config.seed,
        config.days,
        config.ordinary_players,
        config.cgnat_players,
        config.cgnat_ips,
        config.vpn_per_mille,
        config.subnet_farms,
        config.single_ip_farms,
        config.farm_clicks,
        config.abuse_rings,
        config.ring_size,
        config.injected_registrations,
        config.flooding_registrations,
        config.flooding_spray_clicks,
        scenario.events.len(),
        tallies
            .iter()
            .filter(|(k, _)| k.1 == Kind::Click)
            .map(|(_, t)| t.events)
            .sum::<usize>(),
        tallies
            .iter()
            .filter(|(k, _)| k.1 == Kind::Registration)
            .map(|(_, t)| t.events)
            .sum::<usize>(),
        tallies
            .iter()
            .filter(|(k, _)| k.1 == Kind::FirstDeposit)
            .map(|(_, t)| t.events)
            .sum::<usize>(),
    ));
    report.push_str(&format!(
        "Replay: {click_batches} click batches and {event_posts} event posts in {:.1} s \
         (setup {:.1} s, total {:.1} s).\n",
        replay_time.as_secs_f64(),
        setup.as_secs_f64(),
        started.elapsed().as_secs_f64()
    ));
    println!("{report}");
    let target = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target");
    std::fs::create_dir_all(&target).expect("the target directory");
    std::fs::write(target.join("fraud-scenarios.md"), &report).expect("the report written");

    for (truth, kind) in ASSERTED {
        let t = tallies.get(&(truth, kind)).expect("planted events");
        let recall = ratio(t.quarantined, t.events);
        assert!(
            recall >= 0.95,
            "recall on {truth} {kind}s is {recall:.3}\n{report}"
        );
    }
    assert!(
        player_share <= 0.01,
        "{:.2} % of the ordinary players quarantined\n{report}",
        player_share * 100.0
    );
}
