//! Seeded synthetic traffic for fraud-scoring scenario tests: a population
//! of labelled classes — ordinary players in the situations that trip naive
//! rules (crowds on the same phone build, a campus CGNAT, NAT families,
//! travellers, VPN users, a tipster's burst from one mobile /24) and planted
//! fraud (fast and slow click farms over a /22, scripted datacenter traffic,
//! bonus-abuse rings, slow-drip multi-accounting over days, click injection,
//! click flooding) — each event labelled with its class and actor.
//!
//! Owns the generator ([`generate`]) and a runner that scores a scenario in
//! time order the way the aggregator does — escalations, the periodic
//! population sweep, held clicks never credited — and tallies what was held
//! per class ([`Scenario::run`]). The output is plain facts, so an
//! integration test can replay the same scenario through the real
//! aggregator and ClickHouse. Deterministic for a seed (`StdRng`); no IO, no
//! clock.
//!
//! **Adding a class**: add a [`Class`] variant (with its name, whether it
//! is planted, the kinds of event it must be caught at and the signals that
//! catch it), a count in [`ScenarioConfig`] and its `count` arm, and a
//! generator function dispatched from [`generate`]. The helpers
//! ([`Person`], journeys, origins) build realistic players.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use clickstitch_shared::fingerprint::{
    brand_device_key, device_fingerprint, DeviceSignals, Hash128, VisitorId,
};
use clickstitch_shared::{AffiliateId, BrandId, CountryCode, ShortCode};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use uuid::Uuid;

use super::population::{self, ClickTally};
use super::scorer::{
    ClickContext, ClickFacts, Escalation, FirstDepositFacts, RegistrationFacts, Scorer,
};
use super::signals::Signal;

const SEC: u64 = 1_000;
const MIN: u64 = 60 * SEC;
const HOUR: u64 = 60 * MIN;
const DAY: u64 = 24 * HOUR;

/// A sweep tally's key: brand, link (as text, for the order), address,
/// ASN.
type TallyKey = (BrandId, String, IpAddr, u32);

/// How often (scenario time) the runner sweeps, as the aggregator's fraud
/// job does on its own interval.
pub const SWEEP_EVERY_MS: u64 = 6 * HOUR;

/// A class of traffic: who the actors are, and whether they are fraud.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Class {
    /// Ordinary players at home, on a mix of phone and browser builds.
    Ordinary,
    /// Strangers on the two most popular builds (identical headers).
    SamePhoneCrowd,
    /// Students behind a campus CGNAT: a few egress IPs, one evening.
    CampusCgnat,
    /// Families behind one home IP; two members share the family laptop.
    NatFamily,
    /// Clicked abroad, registered at home (other country, IP, sometimes
    /// device).
    Traveller,
    /// Players on a consumer VPN: shared exit IPs in hosting networks.
    VpnUser,
    /// A tipster's post: a dozen players from one mobile /24 within
    /// minutes, most registering.
    TipsterBurst,
    /// A click farm at over 100 clicks a minute across a /22.
    FastFarm,
    /// A click farm at about ten clicks a minute across a /22 for hours,
    /// rotating user agents.
    SlowFarm,
    /// Scripted clicks from cloud servers (hosting ASNs).
    Datacenter,
    /// Twenty accounts from one phone within a day.
    BonusRing,
    /// Six accounts from one device, one every one to two days.
    SlowDripRing,
    /// Malware fires the affiliate's click two seconds before the
    /// registration.
    ClickInjection,
    /// An affiliate sprays clicks; organic players register days later.
    ClickFlooding,
}

impl Class {
    /// Every class, ordinary first.
    pub const ALL: [Class; 14] = [
        Class::Ordinary,
        Class::SamePhoneCrowd,
        Class::CampusCgnat,
        Class::NatFamily,
        Class::Traveller,
        Class::VpnUser,
        Class::TipsterBurst,
        Class::FastFarm,
        Class::SlowFarm,
        Class::Datacenter,
        Class::BonusRing,
        Class::SlowDripRing,
        Class::ClickInjection,
        Class::ClickFlooding,
    ];

    /// Name in reports.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Ordinary => "ordinary",
            Self::SamePhoneCrowd => "same-phone crowd",
            Self::CampusCgnat => "campus CGNAT",
            Self::NatFamily => "NAT family",
            Self::Traveller => "traveller",
            Self::VpnUser => "VPN user",
            Self::TipsterBurst => "tipster burst",
            Self::FastFarm => "fast farm (/22)",
            Self::SlowFarm => "slow farm (/22)",
            Self::Datacenter => "datacenter script",
            Self::BonusRing => "bonus-abuse ring",
            Self::SlowDripRing => "slow-drip ring",
            Self::ClickInjection => "click injection",
            Self::ClickFlooding => "click flooding",
        }
    }

    /// Whether the class is planted fraud.
    pub fn is_planted(&self) -> bool {
        !self.caught_at().is_empty()
    }

    /// The kinds of event a planted class must be held at (recall is
    /// measured on them); empty for ordinary classes.
    pub fn caught_at(&self) -> &'static [Kind] {
        match self {
            Self::FastFarm | Self::SlowFarm | Self::Datacenter => &[Kind::Click],
            Self::BonusRing | Self::SlowDripRing => &[Kind::Registration, Kind::FirstDeposit],
            Self::ClickInjection | Self::ClickFlooding => &[Kind::Registration],
            _ => &[],
        }
    }

    /// The signals meant to catch a planted class (precision counts an
    /// ordinary event held by one of them as a false positive).
    pub fn signals(&self) -> &'static [Signal] {
        match self {
            Self::FastFarm | Self::SlowFarm => &[
                Signal::IpVelocity,
                Signal::SubnetVelocity,
                Signal::ConversionShortfall,
            ],
            Self::Datacenter => &[Signal::ConversionShortfall],
            Self::BonusRing | Self::SlowDripRing => {
                &[Signal::DeviceRegistrations, Signal::DeviceDeposits]
            }
            Self::ClickInjection => &[Signal::ClickInjection],
            Self::ClickFlooding => &[Signal::ClickFlooding],
            _ => &[],
        }
    }
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How much of each class to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioConfig {
    /// RNG seed: the same seed gives the same events.
    pub seed: u64,
    /// Time of the first ordinary click, ms since the epoch.
    pub start_ms: u64,
    /// Days the ordinary traffic is spread over (slow-drip rings start a
    /// week earlier).
    pub days: u32,
    /// [`Class::Ordinary`] players (each clicks 1–3 times; a quarter
    /// register, half of those deposit).
    pub ordinary_players: usize,
    /// [`Class::SamePhoneCrowd`] players.
    pub same_phone_players: usize,
    /// [`Class::CampusCgnat`] students (one campus, three egress IPs).
    pub campus_players: usize,
    /// [`Class::NatFamily`] households of three to five.
    pub nat_families: usize,
    /// [`Class::Traveller`] players.
    pub travellers: usize,
    /// [`Class::VpnUser`] players (eight shared exit IPs).
    pub vpn_users: usize,
    /// [`Class::TipsterBurst`] bursts of twelve players.
    pub tipster_bursts: usize,
    /// [`Class::FastFarm`] farms of 600 clicks in five minutes.
    pub fast_farms: usize,
    /// [`Class::SlowFarm`] farms of 900 clicks in 90 minutes.
    pub slow_farms: usize,
    /// [`Class::Datacenter`] scripts of 300 clicks over six hours.
    pub datacenter_scripts: usize,
    /// [`Class::BonusRing`] rings of 20 accounts.
    pub bonus_rings: usize,
    /// [`Class::SlowDripRing`] rings of six accounts.
    pub slow_drip_rings: usize,
    /// [`Class::ClickInjection`] registrations.
    pub injected_registrations: usize,
    /// [`Class::ClickFlooding`] registrations (30–140 h after the click);
    /// the affiliate also sprays `flooding_spray_clicks` clicks.
    pub flooding_registrations: usize,
    /// Non-converting clicks of the flooding affiliate.
    pub flooding_spray_clicks: usize,
}

impl Default for ScenarioConfig {
    fn default() -> Self {
        Self {
            seed: 42,
            start_ms: 1_790_000_000_000,
            days: 3,
            ordinary_players: 20_000,
            same_phone_players: 300,
            campus_players: 60,
            nat_families: 40,
            travellers: 150,
            vpn_users: 150,
            tipster_bursts: 5,
            fast_farms: 2,
            slow_farms: 2,
            datacenter_scripts: 2,
            bonus_rings: 3,
            slow_drip_rings: 3,
            injected_registrations: 60,
            flooding_registrations: 40,
            flooding_spray_clicks: 1_000,
        }
    }
}

impl ScenarioConfig {
    /// How many units of `class` to generate (players, farms, rings…).
    pub fn count(&self, class: Class) -> usize {
        match class {
            Class::Ordinary => self.ordinary_players,
            Class::SamePhoneCrowd => self.same_phone_players,
            Class::CampusCgnat => self.campus_players,
            Class::NatFamily => self.nat_families,
            Class::Traveller => self.travellers,
            Class::VpnUser => self.vpn_users,
            Class::TipsterBurst => self.tipster_bursts,
            Class::FastFarm => self.fast_farms,
            Class::SlowFarm => self.slow_farms,
            Class::Datacenter => self.datacenter_scripts,
            Class::BonusRing => self.bonus_rings,
            Class::SlowDripRing => self.slow_drip_rings,
            Class::ClickInjection => self.injected_registrations,
            Class::ClickFlooding => self.flooding_registrations,
        }
    }
}

/// Which kind of event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// A click.
    Click,
    /// A registration.
    Registration,
    /// A first deposit.
    FirstDeposit,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Click => "click",
            Self::Registration => "registration",
            Self::FirstDeposit => "first deposit",
        })
    }
}

/// One generated event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A click.
    Click {
        /// What the scorer sees.
        facts: ClickFacts,
        /// The browser's visitor cookie (None: cookies blocked, or a bot
        /// that keeps none).
        visitor: Option<VisitorId>,
        /// The header fingerprint the edge computes (its build).
        fingerprint: Hash128,
    },
    /// A registration. `click` is the index (in [`Scenario::events`]) of
    /// its last click, whose score belongs in `facts.click.click_score`
    /// (generated as 0); `reported` every click id the brand reports.
    Registration {
        /// The facts.
        facts: RegistrationFacts,
        /// Index of the last (attributed) click event.
        click: Option<usize>,
        /// Indices of every reported click.
        reported: Vec<usize>,
        /// The brand's own device id, if the brand sends one.
        device_id: Option<String>,
    },
    /// A first deposit; `registration` is the index of the player's
    /// registration, whose score belongs in `facts.registration_score`.
    FirstDeposit {
        /// The facts.
        facts: FirstDepositFacts,
        /// Index of the registration event.
        registration: usize,
        /// The brand's own device id, if the brand sends one.
        device_id: Option<String>,
    },
}

impl Event {
    /// The event time, ms since the epoch.
    pub fn at_ms(&self) -> u64 {
        match self {
            Self::Click { facts, .. } => facts.clicked_at_ms,
            Self::Registration { facts, .. } => facts.registered_at_ms,
            Self::FirstDeposit { facts, .. } => facts.deposited_at_ms,
        }
    }

    /// The kind.
    pub fn kind(&self) -> Kind {
        match self {
            Self::Click { .. } => Kind::Click,
            Self::Registration { .. } => Kind::Registration,
            Self::FirstDeposit { .. } => Kind::FirstDeposit,
        }
    }

    /// Whether an escalation covers this event.
    pub fn covered_by(&self, e: &Escalation) -> bool {
        match self {
            Self::Click { facts, .. } => e.covers_click(facts),
            Self::Registration { facts, .. } => e.covers_registration(facts),
            Self::FirstDeposit { facts, .. } => e.covers_first_deposit(facts),
        }
    }
}

/// A labelled event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioEvent {
    /// What it really is.
    pub class: Class,
    /// Who did it: one id per player (ordinary classes) or per actor.
    pub actor: u32,
    /// The event.
    pub event: Event,
}

/// Generated traffic in time order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scenario {
    /// Events sorted by time; references point to earlier indices.
    pub events: Vec<ScenarioEvent>,
}

/// The tally of one (class, kind) pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportRow {
    /// The class.
    pub class: Class,
    /// Which kind of event.
    pub kind: Kind,
    /// How many.
    pub events: usize,
    /// Scored above zero on arrival (some signal fired).
    pub flagged: usize,
    /// Held by their own score on arrival.
    pub at_arrival: usize,
    /// Held on arrival, by a later escalation or by the sweep.
    pub quarantined: usize,
}

impl ReportRow {
    /// `quarantined` in per mille of `events`.
    pub fn per_mille(&self) -> usize {
        self.quarantined * 1000 / self.events.max(1)
    }
}

/// Held actors of one class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActorRow {
    /// The class.
    pub class: Class,
    /// Distinct actors (players).
    pub actors: usize,
    /// Of which with at least one held event.
    pub held: usize,
}

/// What a scenario run held, per class and kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioReport {
    /// One row per (class, kind) present.
    pub rows: Vec<ReportRow>,
    /// One row per class present.
    pub actors: Vec<ActorRow>,
    /// Escalations emitted.
    pub escalations: usize,
    /// Clicks held by the population sweep.
    pub swept: usize,
}

impl ScenarioReport {
    /// The row of a class and kind.
    pub fn row(&self, class: Class, kind: Kind) -> Option<&ReportRow> {
        self.rows
            .iter()
            .find(|r| r.class == class && r.kind == kind)
    }

    /// The actor row of a class.
    pub fn actors_of(&self, class: Class) -> Option<&ActorRow> {
        self.actors.iter().find(|r| r.class == class)
    }

    /// Targets missed: a planted class below 95 % recall on the kinds it
    /// must be caught at, or an ordinary class with more than 1 % of its
    /// players held. Empty when every target is met.
    pub fn misses(&self) -> Vec<String> {
        let mut out = Vec::new();
        for class in Class::ALL {
            for &kind in class.caught_at() {
                match self.row(class, kind) {
                    Some(r) if r.per_mille() >= 950 => {}
                    Some(r) => out.push(format!(
                        "{class} {kind}: {} of {} held",
                        r.quarantined, r.events
                    )),
                    None => {}
                }
            }
            if !class.is_planted() {
                if let Some(a) = self.actors_of(class) {
                    if a.held * 100 > a.actors {
                        out.push(format!("{class}: {} of {} players held", a.held, a.actors));
                    }
                }
            }
        }
        out
    }
}

impl fmt::Display for ScenarioReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "| class | event | events | any signal on arrival | held on arrival | held in the end |"
        )?;
        writeln!(f, "|---|---|---:|---:|---:|---:|")?;
        let pct = |n: usize, d: usize| format!("{n} ({:.1} %)", n as f64 * 100.0 / d.max(1) as f64);
        for r in &self.rows {
            writeln!(
                f,
                "| {} | {} | {} | {} | {} | {} |",
                r.class,
                r.kind,
                r.events,
                pct(r.flagged, r.events),
                pct(r.at_arrival, r.events),
                pct(r.quarantined, r.events)
            )?;
        }
        writeln!(f, "\n| class | players / actors | held |")?;
        writeln!(f, "|---|---:|---:|")?;
        for a in &self.actors {
            writeln!(
                f,
                "| {} | {} | {} |",
                a.class,
                a.actors,
                pct(a.held, a.actors)
            )?;
        }
        write!(
            f,
            "\n{} escalations, {} clicks held by the sweep",
            self.escalations, self.swept
        )
    }
}

/// What the runner decided about each event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdicts {
    /// Score on arrival.
    pub scores: Vec<u8>,
    /// Held on arrival.
    pub at_arrival: Vec<bool>,
    /// Held in the end (arrival, escalation or sweep).
    pub held: Vec<bool>,
    /// Escalations emitted.
    pub escalations: usize,
    /// Clicks held by the sweep.
    pub swept: usize,
}

impl Scenario {
    /// Scores every event in time order the way the aggregator does: the
    /// attributed click's and the registration's scores carried, a click
    /// held before its registration never credited (the registration is
    /// then scored without a click), escalations applied, and the
    /// population sweep run every [`SWEEP_EVERY_MS`] and once after the
    /// last event (at the end plus the policy's settle time).
    pub fn verdicts(&self, scorer: &Scorer) -> Verdicts {
        let n = self.events.len();
        let mut scores = vec![0u8; n];
        let mut at_arrival = vec![false; n];
        let mut held = vec![false; n];
        let mut converted = vec![false; n];
        let mut escalations = 0;
        let mut swept = 0;
        let mut next_sweep = self
            .events
            .first()
            .map_or(0, |e| e.event.at_ms() + SWEEP_EVERY_MS);
        for i in 0..n {
            let at = self.events[i].event.at_ms();
            while at >= next_sweep {
                swept += self.sweep(scorer, next_sweep, i, &converted, &mut held);
                next_sweep += SWEEP_EVERY_MS;
            }
            let score = match &self.events[i].event {
                Event::Click { facts, .. } => scorer.score_click(facts),
                Event::Registration {
                    facts,
                    click,
                    reported,
                    ..
                } => {
                    for &r in reported {
                        converted[r] = true;
                    }
                    let mut facts = facts.clone();
                    match click {
                        Some(c) if held[*c] => {
                            facts.click = None;
                            facts.affiliate_id = None;
                        }
                        Some(c) => {
                            if let Some(ctx) = facts.click.as_mut() {
                                ctx.click_score = scores[*c];
                            }
                        }
                        None => {}
                    }
                    scorer.score_registration(&facts)
                }
                Event::FirstDeposit {
                    facts,
                    registration,
                    ..
                } => {
                    let mut facts = facts.clone();
                    facts.registration_score = scores[*registration];
                    scorer.score_first_deposit(&facts)
                }
            };
            scores[i] = score.value;
            at_arrival[i] = score.quarantined;
            held[i] |= score.quarantined;
            for esc in &score.escalations {
                escalations += 1;
                for (j, h) in held[..i].iter_mut().enumerate() {
                    if !*h && self.events[j].event.covered_by(esc) {
                        *h = true;
                    }
                }
            }
        }
        if let Some(last) = self.events.last() {
            let settle = self.events.first().map_or(HOUR, |e| {
                let p = scorer.policies();
                let brand = match &e.event {
                    Event::Click { facts, .. } => facts.brand_id,
                    Event::Registration { facts, .. } => facts.brand_id,
                    Event::FirstDeposit { facts, .. } => facts.brand_id,
                };
                u64::from(p.get(brand).conversion_shortfall.settle_minutes) * MIN
            });
            swept += self.sweep(
                scorer,
                last.event.at_ms() + settle + 1,
                n,
                &converted,
                &mut held,
            );
        }
        Verdicts {
            scores,
            at_arrival,
            held,
            escalations,
            swept,
        }
    }

    /// One population sweep at `now_ms` over the first `upto` events;
    /// returns the clicks it newly held.
    fn sweep(
        &self,
        scorer: &Scorer,
        now_ms: u64,
        upto: usize,
        converted: &[bool],
        held: &mut [bool],
    ) -> usize {
        let policies = scorer.policies();
        let mut tallies: BTreeMap<TallyKey, (ShortCode, u64, u64)> = BTreeMap::new();
        let mut candidates = Vec::new();
        for (i, e) in self.events[..upto].iter().enumerate() {
            let Event::Click { facts, .. } = &e.event else {
                continue;
            };
            let (Some(ip), None) = (facts.ip, facts.bot) else {
                continue;
            };
            let rule = &policies.get(facts.brand_id).conversion_shortfall;
            let from = now_ms.saturating_sub(u64::from(rule.lookback_hours) * HOUR);
            let to = now_ms.saturating_sub(u64::from(rule.settle_minutes) * MIN);
            if !(from..to).contains(&facts.clicked_at_ms) {
                continue;
            }
            let t = tallies
                .entry((facts.brand_id, facts.link_code.to_string(), ip, facts.asn))
                .or_insert((facts.link_code.clone(), 0, 0));
            t.1 += 1;
            t.2 += u64::from(converted[i]);
            candidates.push(i);
        }
        let rows: Vec<ClickTally> = tallies
            .into_iter()
            .map(
                |((brand_id, _, ip, asn), (link_code, clicks, conv))| ClickTally {
                    brand_id,
                    link_code,
                    ip,
                    asn,
                    clicks,
                    converted: conv,
                },
            )
            .collect();
        let findings = population::sweep(&policies, &rows);
        let mut newly = 0;
        for f in &findings {
            for &i in &candidates {
                let Event::Click { facts, .. } = &self.events[i].event else {
                    continue;
                };
                if !held[i]
                    && !converted[i]
                    && facts.brand_id == f.brand_id
                    && facts.link_code == f.link_code
                    && f.covers(facts.ip, facts.asn)
                {
                    held[i] = true;
                    newly += 1;
                }
            }
        }
        newly
    }

    /// Runs [`Scenario::verdicts`] and tallies per class.
    pub fn run(&self, scorer: &Scorer) -> ScenarioReport {
        let v = self.verdicts(scorer);
        self.report(&v.scores, &v.at_arrival, &v.held, v.escalations, v.swept)
    }

    /// Tallies per class and kind, and held actors per class, from
    /// per-event verdicts (the runner's or the aggregator's).
    pub fn report(
        &self,
        scores: &[u8],
        at_arrival: &[bool],
        held: &[bool],
        escalations: usize,
        swept: usize,
    ) -> ScenarioReport {
        let mut rows: BTreeMap<(Class, Kind), ReportRow> = BTreeMap::new();
        let mut actors: BTreeMap<Class, (BTreeSet<u32>, HashSet<u32>)> = BTreeMap::new();
        for (i, e) in self.events.iter().enumerate() {
            let kind = e.event.kind();
            let row = rows.entry((e.class, kind)).or_insert(ReportRow {
                class: e.class,
                kind,
                events: 0,
                flagged: 0,
                at_arrival: 0,
                quarantined: 0,
            });
            row.events += 1;
            row.flagged += usize::from(scores.get(i).is_some_and(|&s| s > 0));
            row.at_arrival += usize::from(at_arrival.get(i).copied().unwrap_or(false));
            let is_held = held.get(i).copied().unwrap_or(false);
            row.quarantined += usize::from(is_held);
            let a = actors.entry(e.class).or_default();
            a.0.insert(e.actor);
            if is_held {
                a.1.insert(e.actor);
            }
        }
        ScenarioReport {
            rows: rows.into_values().collect(),
            actors: actors
                .into_iter()
                .map(|(class, (all, held))| ActorRow {
                    class,
                    actors: all.len(),
                    held: held.len(),
                })
                .collect(),
            escalations,
            swept,
        }
    }
}

/// An affiliate of the scenario with its links.
struct Affiliate {
    brand: BrandId,
    id: AffiliateId,
    links: Vec<ShortCode>,
}

/// Where a request comes from.
#[derive(Clone, Copy)]
struct Origin {
    ip: IpAddr,
    asn: u32,
    country: CountryCode,
}

/// One browser on one device: its build's header fingerprint, its visitor
/// cookie and, for brands with an SDK, the brand's device id.
#[derive(Clone)]
struct Person {
    fingerprint: Hash128,
    visitor: Option<VisitorId>,
    device_id: String,
}

/// A registration plan: when (after the last click), from where, on which
/// device, and whether (and when) a first deposit follows.
struct Signup {
    ctit: u64,
    from: Origin,
    device: Person,
    deposit_after: Option<u64>,
}

/// Public IPv4 first octets used for residential addresses.
const RESIDENTIAL_V4: &[u8] = &[
    31, 37, 46, 62, 77, 78, 79, 80, 81, 82, 83, 84, 85, 86, 87, 88, 89, 90, 91, 92, 93, 94, 95,
    109, 151, 176, 178, 188, 212, 213, 217,
];

/// Residential and mobile ASNs (Telekom, Vodafone, BT, Orange, …).
const RESIDENTIAL_ASNS: &[u32] = &[
    3320, 3209, 6805, 2856, 5089, 5607, 3215, 12322, 15557, 3352, 12479, 6739, 1136, 33915, 3269,
    30722, 1267, 6830, 8447, 5432, 8151, 28573, 812, 577, 7922,
];

/// Hosting ASNs consumer VPNs exit from (M247, Datacamp, OVH, Leaseweb).
const VPN_ASNS: &[u32] = &[9009, 60068, 16276, 60781];

/// Cloud ASNs scripts run in (AWS, DigitalOcean, Hetzner).
const CLOUD_ASNS: &[u32] = &[16509, 14061, 24940];

const COUNTRIES: &[&str] = &[
    "DE", "GB", "FR", "ES", "IT", "NL", "SE", "FI", "NO", "AT", "CA", "BR", "MX", "IE", "PL",
];

/// Phone and browser builds, most popular first; a player's build is drawn
/// with weight 1/rank (the top two carry about a quarter of all players).
const BUILDS: usize = 40;

/// Events before sorting; references are draft indices.
struct Drafts {
    rng: StdRng,
    drafts: Vec<ScenarioEvent>,
    countries: Vec<CountryCode>,
    next_id: u128,
    next_actor: u32,
    builds: Vec<Hash128>,
    /// Brands whose events carry the brand's own device id.
    sdk_brands: Vec<BrandId>,
}

impl Drafts {
    fn push(&mut self, class: Class, actor: u32, event: Event) -> usize {
        self.drafts.push(ScenarioEvent {
            class,
            actor,
            event,
        });
        self.drafts.len() - 1
    }

    fn actor(&mut self) -> u32 {
        self.next_actor += 1;
        self.next_actor
    }

    fn uuid(&mut self) -> Uuid {
        self.next_id += 1;
        Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0000 | self.next_id)
    }

    fn code(&mut self) -> ShortCode {
        loop {
            let bytes: [u8; 16] = self.rng.random();
            if let Some(code) = ShortCode::from_random_bytes(&bytes) {
                return code;
            }
        }
    }

    fn affiliate(&mut self, brand: BrandId) -> Affiliate {
        Affiliate {
            brand,
            id: AffiliateId::from(self.uuid()),
            links: (0..3).map(|_| self.code()).collect(),
        }
    }

    /// A popular build, weighted 1/rank.
    fn build(&mut self) -> Hash128 {
        let total: f64 = (1..=BUILDS).map(|r| 1.0 / r as f64).sum();
        let mut x = self.rng.random_range(0.0..total);
        for (r, b) in self.builds.iter().enumerate() {
            x -= 1.0 / (r + 1) as f64;
            if x <= 0.0 {
                return *b;
            }
        }
        self.builds[0]
    }

    /// A header fingerprint nobody else has (a rotating farm user agent).
    fn rare_build(&mut self) -> Hash128 {
        let ua = format!("Mozilla/5.0 farm-{:032x}", self.rng.random::<u128>());
        device_fingerprint(&DeviceSignals {
            user_agent: &ua,
            ..DeviceSignals::default()
        })
    }

    fn visitor(&mut self) -> VisitorId {
        loop {
            if let Some(v) = VisitorId::from_random(self.rng.random()) {
                return v;
            }
        }
    }

    /// A person on a popular build; 5 % block cookies.
    fn person(&mut self) -> Person {
        let fingerprint = self.build();
        self.person_on(fingerprint)
    }

    fn person_on(&mut self, fingerprint: Hash128) -> Person {
        let visitor = (!self.rng.random_ratio(5, 100)).then(|| self.visitor());
        Person {
            fingerprint,
            visitor,
            device_id: format!("sdk-{:032x}", self.rng.random::<u128>()),
        }
    }

    fn country(&mut self) -> CountryCode {
        let i = self.rng.random_range(0..self.countries.len().max(1));
        self.countries
            .get(i)
            .copied()
            .unwrap_or(CountryCode::UNKNOWN)
    }

    fn other_country(&mut self, not: CountryCode) -> CountryCode {
        for _ in 0..8 {
            let c = self.country();
            if c != not {
                return c;
            }
        }
        CountryCode::UNKNOWN
    }

    fn pick<T: Copy>(&mut self, from: &[T], fallback: T) -> T {
        let i = self.rng.random_range(0..from.len().max(1));
        from.get(i).copied().unwrap_or(fallback)
    }

    /// A residential address: IPv4 mostly, IPv6 (a random /64) for one in ten.
    fn residential_ip(&mut self) -> IpAddr {
        if self.rng.random_ratio(1, 10) {
            let prefix: u64 = 0x2a02_0000_0000_0000 | self.rng.random_range(0..1u64 << 40);
            let iid: u64 = self.rng.random();
            IpAddr::V6(Ipv6Addr::from((u128::from(prefix) << 64) | u128::from(iid)))
        } else {
            let a = self.pick(RESIDENTIAL_V4, 81);
            IpAddr::V4(Ipv4Addr::new(
                a,
                self.rng.random(),
                self.rng.random(),
                self.rng.random_range(1..255),
            ))
        }
    }

    fn home(&mut self) -> Origin {
        let ip = self.residential_ip();
        let asn = self.pick(RESIDENTIAL_ASNS, 3320);
        let country = self.country();
        Origin { ip, asn, country }
    }

    /// A random address in the /22 starting at `base`.
    fn in_block(&mut self, base: [u8; 3]) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(
            base[0],
            base[1],
            (base[2] & 0xfc) | self.rng.random_range(0..4u8),
            self.rng.random_range(1..255),
        ))
    }

    fn block(&mut self) -> [u8; 3] {
        [
            self.pick(RESIDENTIAL_V4, 81),
            self.rng.random(),
            self.rng.random(),
        ]
    }

    #[allow(clippy::too_many_arguments)]
    fn click(
        &mut self,
        class: Class,
        actor: u32,
        affiliate: &Affiliate,
        link: &ShortCode,
        from: Origin,
        who: &Person,
        at: u64,
    ) -> usize {
        self.push(
            class,
            actor,
            Event::Click {
                facts: ClickFacts {
                    brand_id: affiliate.brand,
                    link_code: link.clone(),
                    affiliate_id: affiliate.id,
                    ip: Some(from.ip),
                    asn: from.asn,
                    country: from.country,
                    bot: None,
                    clicked_at_ms: at,
                },
                visitor: who.visitor,
                fingerprint: who.fingerprint,
            },
        )
    }

    /// A player's journey: `clicks` clicks on `link` from `from` (the
    /// first at `at`, then minutes apart) by `who`, then maybe a signup
    /// that reports every click. Returns the last click's time.
    #[allow(clippy::too_many_arguments)]
    fn journey(
        &mut self,
        class: Class,
        affiliate: &Affiliate,
        link: &ShortCode,
        from: Origin,
        who: &Person,
        at: u64,
        clicks: usize,
        signup: Option<Signup>,
    ) {
        let actor = self.actor();
        let mut t = at;
        let mut ids = Vec::new();
        for k in 0..clicks.max(1) {
            if k > 0 {
                t += self.rng.random_range(5 * SEC..10 * MIN);
            }
            ids.push(self.click(class, actor, affiliate, link, from, who, t));
        }
        if let Some(s) = signup {
            self.signup(class, actor, affiliate, &ids, t, from.country, who, &s);
        }
    }

    /// Registers (and maybe deposits) after clicks `ids`, the last at
    /// `clicked_at`.
    #[allow(clippy::too_many_arguments)]
    fn signup(
        &mut self,
        class: Class,
        actor: u32,
        affiliate: &Affiliate,
        ids: &[usize],
        clicked_at: u64,
        click_country: CountryCode,
        clicker: &Person,
        s: &Signup,
    ) {
        let brand = affiliate.brand;
        let sdk = self.sdk_brands.contains(&brand);
        let device_id = sdk.then(|| s.device.device_id.clone());
        // What the aggregator derives: the brand's device id, else the
        // visitor cookie of the attributed (last) click.
        let device_key = match &device_id {
            Some(id) => Some(brand_device_key(id)),
            None => clicker.visitor.map(|v| v.device_key()),
        };
        let at = clicked_at + s.ctit;
        let player = format!("p{actor}");
        let reg = self.push(
            class,
            actor,
            Event::Registration {
                facts: RegistrationFacts {
                    brand_id: brand,
                    brand_player_id: player.clone(),
                    affiliate_id: Some(affiliate.id),
                    registered_at_ms: at,
                    country: s.from.country,
                    ip: Some(s.from.ip),
                    asn: Some(s.from.asn),
                    device_fingerprint: Some(s.device.fingerprint),
                    device_key,
                    click: Some(ClickContext {
                        clicked_at_ms: clicked_at,
                        device_fingerprint: clicker.fingerprint,
                        country: click_country,
                        click_score: 0,
                    }),
                },
                click: ids.last().copied(),
                reported: ids.to_vec(),
                device_id: device_id.clone(),
            },
        );
        if let Some(delay) = s.deposit_after {
            self.push(
                class,
                actor,
                Event::FirstDeposit {
                    facts: FirstDepositFacts {
                        brand_id: brand,
                        brand_player_id: player,
                        deposited_at_ms: at + delay,
                        device_key,
                        registration_score: 0,
                    },
                    registration: reg,
                    device_id,
                },
            );
        }
    }

    /// An ordinary click-to-registration time: most within the hour, some
    /// within the day, a tenth over days.
    fn ordinary_ctit(&mut self) -> u64 {
        match self.rng.random_range(0..100) {
            0..=54 => self.rng.random_range(MIN..HOUR),
            55..=89 => self.rng.random_range(HOUR..DAY),
            _ => self.rng.random_range(DAY..5 * DAY),
        }
    }

    fn deposit_half(&mut self) -> Option<u64> {
        self.rng
            .random_bool(0.5)
            .then(|| self.rng.random_range(10 * MIN..48 * HOUR))
    }

    fn clicks(&mut self) -> usize {
        match self.rng.random_range(0..10) {
            0..=6 => 1,
            7..=8 => 2,
            _ => 3,
        }
    }
}

/// The shared world every class draws from.
struct World {
    ordinary: Vec<Affiliate>,
    brands: [BrandId; 2],
    start: u64,
    span: u64,
}

impl World {
    fn link<'a>(&'a self, d: &mut Drafts) -> (&'a Affiliate, ShortCode) {
        let aff = &self.ordinary[d.rng.random_range(0..self.ordinary.len())];
        let link = aff.links[d.rng.random_range(0..aff.links.len())].clone();
        (aff, link)
    }

    fn when(&self, d: &mut Drafts) -> u64 {
        self.start + d.rng.random_range(0..self.span)
    }
}

fn ordinary(d: &mut Drafts, w: &World, n: usize) {
    for _ in 0..n {
        let (aff, link) = w.link(d);
        let home = d.home();
        let who = d.person();
        let at = w.when(d);
        let clicks = d.clicks();
        let signup = d.rng.random_ratio(1, 4).then(|| {
            let device = if d.rng.random_ratio(5, 100) {
                d.person()
            } else {
                who.clone()
            };
            let from = if d.rng.random_ratio(8, 10) {
                home
            } else {
                Origin {
                    ip: d.residential_ip(),
                    ..home
                }
            };
            Signup {
                ctit: d.ordinary_ctit(),
                from,
                device,
                deposit_after: d.deposit_half(),
            }
        });
        d.journey(Class::Ordinary, aff, &link, home, &who, at, clicks, signup);
    }
}

fn same_phone_crowd(d: &mut Drafts, w: &World, n: usize) {
    let builds = [d.builds[0], d.builds[1]];
    for k in 0..n {
        let (aff, link) = w.link(d);
        let home = d.home();
        let who = d.person_on(builds[k % 2]);
        let at = w.when(d);
        let signup = d.rng.random_ratio(2, 5).then(|| Signup {
            ctit: d.ordinary_ctit(),
            from: home,
            device: who.clone(),
            deposit_after: d.rng.random_ratio(3, 5).then_some(30 * MIN),
        });
        d.journey(Class::SamePhoneCrowd, aff, &link, home, &who, at, 1, signup);
    }
}

fn campus_cgnat(d: &mut Drafts, w: &World, n: usize) {
    let block = d.block();
    let egress: Vec<IpAddr> = (0..3)
        .map(|h| IpAddr::V4(Ipv4Addr::new(block[0], block[1], block[2], 10 + h)))
        .collect();
    let asn = d.pick(RESIDENTIAL_ASNS, 3320);
    let country = d.country();
    let (aff, _) = w.link(d);
    let evening = w.when(d);
    for _ in 0..n {
        let link = aff.links[d.rng.random_range(0..2)].clone();
        let from = Origin {
            ip: egress[d.rng.random_range(0..egress.len())],
            asn,
            country,
        };
        let who = d.person();
        let at = evening + d.rng.random_range(0..4 * HOUR);
        let signup = d.rng.random_ratio(2, 5).then(|| Signup {
            ctit: d.rng.random_range(2 * MIN..40 * MIN),
            from: Origin {
                ip: egress[d.rng.random_range(0..egress.len())],
                ..from
            },
            device: who.clone(),
            deposit_after: d.deposit_half(),
        });
        d.journey(Class::CampusCgnat, aff, &link, from, &who, at, 1, signup);
    }
}

fn nat_family(d: &mut Drafts, w: &World, n: usize) {
    for _ in 0..n {
        let home = d.home();
        let (aff, link) = w.link(d);
        let laptop = d.person();
        let members = d.rng.random_range(3..=5);
        let day = w.when(d);
        for m in 0..members {
            // The first two share the family laptop.
            let who = if m < 2 { laptop.clone() } else { d.person() };
            let at = day + d.rng.random_range(0..20 * HOUR);
            let signup = d.rng.random_ratio(3, 5).then(|| Signup {
                ctit: d.rng.random_range(MIN..3 * HOUR),
                from: home,
                device: who.clone(),
                deposit_after: d.deposit_half(),
            });
            d.journey(Class::NatFamily, aff, &link, home, &who, at, 1, signup);
        }
    }
}

fn traveller(d: &mut Drafts, w: &World, n: usize) {
    for _ in 0..n {
        let (aff, link) = w.link(d);
        let home = d.home();
        let abroad = Origin {
            ip: d.residential_ip(),
            asn: d.pick(RESIDENTIAL_ASNS, 3320),
            country: d.other_country(home.country),
        };
        let who = d.person();
        let at = w.when(d);
        let device = if d.rng.random_ratio(3, 10) {
            d.person()
        } else {
            who.clone()
        };
        let signup = d.rng.random_ratio(1, 2).then(|| Signup {
            ctit: d.rng.random_range(HOUR..72 * HOUR),
            from: home,
            device,
            deposit_after: d.deposit_half(),
        });
        d.journey(Class::Traveller, aff, &link, abroad, &who, at, 1, signup);
    }
}

fn vpn_user(d: &mut Drafts, w: &World, n: usize) {
    let exits: Vec<Origin> = (0..8)
        .map(|_| {
            let asn = d.pick(VPN_ASNS, 9009);
            let country = d.country();
            Origin {
                ip: IpAddr::V4(Ipv4Addr::new(
                    185,
                    d.rng.random(),
                    d.rng.random(),
                    d.rng.random_range(1..255),
                )),
                asn,
                country,
            }
        })
        .collect();
    for _ in 0..n {
        let (aff, link) = w.link(d);
        let exit = exits[d.rng.random_range(0..exits.len())];
        let who = d.person();
        let at = w.when(d);
        let clicks = d.clicks();
        let signup = d.rng.random_ratio(1, 3).then(|| {
            // Half still on the VPN when registering, half at home.
            let from = if d.rng.random_bool(0.5) {
                exits[d.rng.random_range(0..exits.len())]
            } else {
                d.home()
            };
            Signup {
                ctit: d.ordinary_ctit(),
                from,
                device: who.clone(),
                deposit_after: d.deposit_half(),
            }
        });
        d.journey(Class::VpnUser, aff, &link, exit, &who, at, clicks, signup);
    }
}

fn tipster_burst(d: &mut Drafts, w: &World, n: usize) {
    for _ in 0..n {
        let (aff, link) = w.link(d);
        let block = d.block();
        let asn = d.pick(RESIDENTIAL_ASNS, 3320);
        let country = d.country();
        let post = w.when(d);
        for _ in 0..12 {
            let from = Origin {
                ip: IpAddr::V4(Ipv4Addr::new(
                    block[0],
                    block[1],
                    block[2],
                    d.rng.random_range(1..4),
                )),
                asn,
                country,
            };
            let who = d.person();
            let at = post + d.rng.random_range(0..10 * MIN);
            let signup = d.rng.random_ratio(7, 10).then(|| Signup {
                ctit: d.rng.random_range(3 * MIN..40 * MIN),
                from,
                device: who.clone(),
                deposit_after: d.rng.random_ratio(2, 3).then_some(20 * MIN),
            });
            d.journey(Class::TipsterBurst, aff, &link, from, &who, at, 1, signup);
        }
    }
}

/// A click farm: `clicks` clicks over `spread` on one link from a /22,
/// a new user agent and no (or a fresh) cookie each time, never
/// converting. Even farms run on their own affiliate's link, odd ones on
/// an ordinary affiliate's link.
fn farm(d: &mut Drafts, w: &World, class: Class, n: usize, clicks: usize, spread: u64) {
    for f in 0..n {
        let own = d.affiliate(w.brands[f % 2]);
        let (aff, link) = if f % 2 == 0 {
            let link = own.links[0].clone();
            (&own, link)
        } else {
            w.link(d)
        };
        let block = d.block();
        let asn = d.pick(RESIDENTIAL_ASNS, 3320);
        let country = d.country();
        let base = w.when(d);
        let actor = d.actor();
        for _ in 0..clicks {
            let who = Person {
                fingerprint: d.rare_build(),
                visitor: d.rng.random_bool(0.5).then(|| d.visitor()),
                device_id: String::new(),
            };
            let from = Origin {
                ip: d.in_block(block),
                asn,
                country,
            };
            let at = base + d.rng.random_range(0..spread);
            d.click(class, actor, aff, &link, from, &who, at);
        }
    }
}

fn datacenter(d: &mut Drafts, w: &World, n: usize) {
    for s in 0..n {
        let aff = d.affiliate(w.brands[s % 2]);
        let link = aff.links[0].clone();
        let base = w.when(d);
        let actor = d.actor();
        let servers: Vec<Origin> = (0..60)
            .map(|_| Origin {
                ip: IpAddr::V4(Ipv4Addr::new(
                    d.pick(&[3, 18, 52, 134, 159, 167], 3),
                    d.rng.random(),
                    d.rng.random(),
                    d.rng.random_range(1..255),
                )),
                asn: d.pick(CLOUD_ASNS, 16509),
                country: CountryCode::parse("US").unwrap_or(CountryCode::UNKNOWN),
            })
            .collect();
        for _ in 0..300 {
            let who = Person {
                fingerprint: d.build(),
                visitor: None,
                device_id: String::new(),
            };
            let from = servers[d.rng.random_range(0..servers.len())];
            let at = base + d.rng.random_range(0..6 * HOUR);
            d.click(Class::Datacenter, actor, &aff, &link, from, &who, at);
        }
    }
}

/// A multi-accounting ring: `size` accounts on one device (one browser,
/// one SDK device id), each clicking the affiliate's link, registering
/// and depositing through rotating residential proxies, `gap` apart.
fn ring(
    d: &mut Drafts,
    w: &World,
    class: Class,
    n: usize,
    size: usize,
    gap: (u64, u64),
    start: u64,
) {
    for _ in 0..n {
        let (aff, link) = w.link(d);
        let device = Person {
            fingerprint: d.build(),
            visitor: Some(d.visitor()),
            device_id: format!("sdk-{:032x}", d.rng.random::<u128>()),
        };
        let country = d.country();
        let mut at = start + d.rng.random_range(0..w.span / 2);
        for _ in 0..size {
            let from = Origin {
                ip: d.residential_ip(),
                asn: d.pick(RESIDENTIAL_ASNS, 3320),
                country,
            };
            let signup = Signup {
                ctit: d.rng.random_range(5 * MIN..40 * MIN),
                from,
                device: device.clone(),
                deposit_after: Some(d.rng.random_range(10 * MIN..2 * HOUR)),
            };
            d.journey(class, aff, &link, from, &device, at, 1, Some(signup));
            at += d.rng.random_range(gap.0..gap.1);
        }
    }
}

fn click_injection(d: &mut Drafts, w: &World, n: usize) {
    let injector = d.affiliate(w.brands[0]);
    for k in 0..n {
        let link = injector.links[k % injector.links.len()].clone();
        let home = d.home();
        let who = d.person();
        let at = w.when(d);
        let signup = Signup {
            ctit: 2 * SEC,
            from: home,
            device: who.clone(),
            deposit_after: None,
        };
        d.journey(
            Class::ClickInjection,
            &injector,
            &link,
            home,
            &who,
            at,
            1,
            Some(signup),
        );
    }
}

fn click_flooding(d: &mut Drafts, w: &World, n: usize, spray: usize) {
    let flooder = d.affiliate(w.brands[1]);
    let actor = d.actor();
    for _ in 0..spray {
        let link = flooder.links[d.rng.random_range(0..flooder.links.len())].clone();
        let home = d.home();
        let who = d.person();
        let at = w.when(d);
        d.click(Class::ClickFlooding, actor, &flooder, &link, home, &who, at);
    }
    for k in 0..n {
        let link = flooder.links[k % flooder.links.len()].clone();
        let home = d.home();
        let who = d.person();
        let registered = w.when(d);
        let ctit = d.rng.random_range(30 * HOUR..140 * HOUR);
        let signup = Signup {
            ctit,
            from: home,
            device: who.clone(),
            deposit_after: None,
        };
        let at = registered.saturating_sub(ctit);
        d.journey(
            Class::ClickFlooding,
            &flooder,
            &link,
            home,
            &who,
            at,
            1,
            Some(signup),
        );
    }
}

/// Generates a scenario; the same config gives the same events.
pub fn generate(config: &ScenarioConfig) -> Scenario {
    let mut d = Drafts {
        rng: StdRng::seed_from_u64(config.seed),
        drafts: Vec::new(),
        countries: COUNTRIES
            .iter()
            .filter_map(|c| CountryCode::parse(c).ok())
            .collect(),
        next_id: 0,
        next_actor: 0,
        builds: Vec::new(),
        sdk_brands: Vec::new(),
    };
    d.builds = (0..BUILDS)
        .map(|r| {
            let ua = format!("Mozilla/5.0 (build {r}) Mobile Safari/604.1");
            device_fingerprint(&DeviceSignals {
                user_agent: &ua,
                accept_language: if r % 2 == 0 { "en-GB" } else { "de-DE" },
                ..DeviceSignals::default()
            })
        })
        .collect();
    let brands = [BrandId::from(d.uuid()), BrandId::from(d.uuid())];
    // The second brand sends its SDK's device id with every event.
    d.sdk_brands = vec![brands[1]];
    let ordinary_affiliates: Vec<Affiliate> = (0..30).map(|i| d.affiliate(brands[i % 2])).collect();
    let w = World {
        ordinary: ordinary_affiliates,
        brands,
        start: config.start_ms,
        span: u64::from(config.days.max(1)) * DAY,
    };
    for class in Class::ALL {
        let n = config.count(class);
        match class {
            Class::Ordinary => ordinary(&mut d, &w, n),
            Class::SamePhoneCrowd => same_phone_crowd(&mut d, &w, n),
            Class::CampusCgnat => campus_cgnat(&mut d, &w, n),
            Class::NatFamily => nat_family(&mut d, &w, n),
            Class::Traveller => traveller(&mut d, &w, n),
            Class::VpnUser => vpn_user(&mut d, &w, n),
            Class::TipsterBurst => tipster_burst(&mut d, &w, n),
            Class::FastFarm => farm(&mut d, &w, class, n, 600, 5 * MIN),
            Class::SlowFarm => farm(&mut d, &w, class, n, 900, 90 * MIN),
            Class::Datacenter => datacenter(&mut d, &w, n),
            Class::BonusRing => ring(&mut d, &w, class, n, 20, (10 * MIN, 90 * MIN), w.start),
            Class::SlowDripRing => ring(
                &mut d,
                &w,
                class,
                n,
                6,
                (24 * HOUR, 48 * HOUR),
                w.start.saturating_sub(7 * DAY),
            ),
            Class::ClickInjection => click_injection(&mut d, &w, n),
            Class::ClickFlooding => click_flooding(&mut d, &w, n, config.flooding_spray_clicks),
        }
    }

    // Time order (ties keep generation order, so a reference always points
    // to an earlier event), then remap references.
    let mut order: Vec<usize> = (0..d.drafts.len()).collect();
    order.sort_by_key(|&i| (d.drafts[i].event.at_ms(), i));
    let mut position = vec![0; order.len()];
    for (pos, &draft) in order.iter().enumerate() {
        position[draft] = pos;
    }
    let mut slots: Vec<Option<ScenarioEvent>> = d.drafts.into_iter().map(Some).collect();
    let events = order
        .iter()
        .filter_map(|&i| slots[i].take())
        .map(|mut e| {
            match &mut e.event {
                Event::Registration {
                    click, reported, ..
                } => {
                    if let Some(c) = click {
                        *c = position[*c];
                    }
                    for r in reported.iter_mut() {
                        *r = position[*r];
                    }
                }
                Event::FirstDeposit { registration, .. } => *registration = position[*registration],
                Event::Click { .. } => {}
            }
            e
        })
        .collect();
    Scenario { events }
}

/// Per-class counts of a scenario's players, for reports.
pub fn actors_per_class(s: &Scenario) -> HashMap<Class, usize> {
    let mut sets: HashMap<Class, BTreeSet<u32>> = HashMap::new();
    for e in &s.events {
        sets.entry(e.class).or_default().insert(e.actor);
    }
    sets.into_iter().map(|(c, a)| (c, a.len())).collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::policy::FraudPolicies;
    use crate::scorer::Capacity;

    fn run(config: &ScenarioConfig) -> ScenarioReport {
        let scenario = generate(config);
        let scorer = Scorer::new(Arc::new(FraudPolicies::builtin()), Capacity::small());
        let report = scenario.run(&scorer);
        for s in scorer.table_stats() {
            assert_eq!(s.evictions, 0, "{s:?}");
        }
        report
    }

    #[test]
    fn the_same_seed_generates_the_same_events_in_time_order_with_earlier_references() {
        let config = ScenarioConfig {
            ordinary_players: 500,
            ..ScenarioConfig::default()
        };
        let a = generate(&config);
        assert_eq!(a, generate(&config));
        assert_ne!(
            a,
            generate(&ScenarioConfig {
                seed: 7,
                ..config.clone()
            })
        );
        assert!(a
            .events
            .windows(2)
            .all(|w| w[0].event.at_ms() <= w[1].event.at_ms()));
        for (i, e) in a.events.iter().enumerate() {
            match &e.event {
                Event::Registration {
                    click: Some(c),
                    reported,
                    facts,
                    ..
                } => {
                    assert!(*c < i && reported.iter().all(|r| r < &i));
                    let Event::Click { facts: click, .. } = &a.events[*c].event else {
                        panic!("a registration points to its click");
                    };
                    assert_eq!(
                        Some(click.clicked_at_ms),
                        facts.click.as_ref().map(|c| c.clicked_at_ms)
                    );
                }
                Event::FirstDeposit { registration, .. } => assert!(*registration < i),
                _ => {}
            }
        }
        let present: BTreeSet<Class> = a.events.iter().map(|e| e.class).collect();
        assert_eq!(present.len(), Class::ALL.len(), "every class is generated");
    }

    #[test]
    fn every_planted_scheme_is_caught_and_every_ordinary_class_is_spared() {
        let report = run(&ScenarioConfig {
            ordinary_players: 6_000,
            ..ScenarioConfig::default()
        });
        println!("{report}");
        assert_eq!(report.misses(), Vec::<String>::new(), "\n{report}");
    }

    #[test]
    fn the_targets_hold_for_other_seeds() {
        for seed in [1, 2, 3] {
            let report = run(&ScenarioConfig {
                seed,
                ordinary_players: 3_000,
                ..ScenarioConfig::default()
            });
            assert_eq!(
                report.misses(),
                Vec::<String>::new(),
                "seed {seed}\n{report}"
            );
        }
    }

    #[test]
    fn the_same_phone_crowd_shares_one_header_fingerprint_but_not_a_visitor_id() {
        let s = generate(&ScenarioConfig {
            ordinary_players: 100,
            ..ScenarioConfig::default()
        });
        let mut fingerprints = BTreeSet::new();
        let mut visitors = BTreeSet::new();
        let mut clicks = 0;
        for e in &s.events {
            if let (
                Class::SamePhoneCrowd,
                Event::Click {
                    fingerprint,
                    visitor,
                    ..
                },
            ) = (e.class, &e.event)
            {
                clicks += 1;
                fingerprints.insert(*fingerprint);
                visitors.extend(*visitor);
            }
        }
        assert_eq!(fingerprints.len(), 2);
        assert!(
            visitors.len() * 100 >= clicks * 90,
            "{} of {clicks}",
            visitors.len()
        );
    }
}
