//! Seeded synthetic traffic for fraud-scoring scenario tests: ordinary
//! players (some behind shared CGNAT addresses, a few on VPNs, some
//! switching device or country between click and registration) mixed with
//! planted fraud — click farms, bonus-abuse rings, click injection and a
//! click-flooding affiliate — each event labelled with the truth.
//!
//! Owns the generator ([`generate`]) and a runner that scores a scenario in
//! time order and tallies what was quarantined ([`Scenario::run`]). The
//! output is plain facts structs, so an integration test can replay the same
//! scenario through the real aggregator and ClickHouse. Deterministic for a
//! seed (`StdRng`); no IO, no clock.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use clickstitch_shared::fingerprint::{device_fingerprint, DeviceSignals, Hash128};
use clickstitch_shared::{AffiliateId, BrandId, CountryCode, ShortCode};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use uuid::Uuid;

use super::scorer::{
    ClickContext, ClickFacts, Escalation, FirstDepositFacts, RegistrationFacts, Scorer,
};

const SEC: u64 = 1_000;
const MIN: u64 = 60 * SEC;
const HOUR: u64 = 60 * MIN;
const DAY: u64 = 24 * HOUR;

/// What the generator produces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioConfig {
    /// RNG seed: the same seed gives the same events.
    pub seed: u64,
    /// Time of the first ordinary click, ms since the epoch.
    pub start_ms: u64,
    /// Days the ordinary traffic is spread over.
    pub days: u32,
    /// Ordinary players (each clicks 1–3 times; a quarter register, half of
    /// those deposit).
    pub ordinary_players: usize,
    /// Shared CGNAT addresses, and how many of the ordinary players use one.
    pub cgnat_ips: usize,
    /// Ordinary players behind a CGNAT address.
    pub cgnat_players: usize,
    /// Ordinary players clicking through a VPN on a hosting ASN, per mille.
    pub vpn_per_mille: u32,
    /// Click farms spread over one /24 (40 hosts, `farm_clicks` clicks in 5
    /// minutes on one link).
    pub subnet_farms: usize,
    /// Click farms on a single IP (`farm_clicks` / 2 clicks in 8 minutes).
    pub single_ip_farms: usize,
    /// Clicks per subnet farm.
    pub farm_clicks: usize,
    /// Bonus-abuse rings: `ring_size` players on one device within a day,
    /// each clicking, registering and depositing from it.
    pub abuse_rings: usize,
    /// Players per ring.
    pub ring_size: usize,
    /// Registrations 2 s after an injected click.
    pub injected_registrations: usize,
    /// Registrations of the click-flooding affiliate, 30–140 h after the
    /// click; the affiliate also sprays `flooding_spray_clicks` clicks.
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
            cgnat_ips: 8,
            cgnat_players: 300,
            vpn_per_mille: 5,
            subnet_farms: 2,
            single_ip_farms: 2,
            farm_clicks: 400,
            abuse_rings: 3,
            ring_size: 20,
            injected_registrations: 60,
            flooding_registrations: 40,
            flooding_spray_clicks: 1_000,
        }
    }
}

/// The truth about an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Truth {
    /// An ordinary player.
    Ordinary,
    /// A click farm's click.
    ClickFarm,
    /// A bonus-abuse ring member's click, registration or deposit.
    BonusAbuse,
    /// An injected click and its registration.
    ClickInjection,
    /// The flooding affiliate's clicks and registrations.
    ClickFlooding,
}

impl fmt::Display for Truth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Ordinary => "ordinary",
            Self::ClickFarm => "click farm",
            Self::BonusAbuse => "bonus-abuse ring",
            Self::ClickInjection => "click injection",
            Self::ClickFlooding => "click flooding",
        })
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
    Click(ClickFacts),
    /// A registration; `click` is the index (in [`Scenario::events`]) of
    /// its attributed click, whose score belongs in
    /// `facts.click.click_score` (generated as 0).
    Registration {
        /// The facts.
        facts: RegistrationFacts,
        /// Index of the attributed click event.
        click: Option<usize>,
    },
    /// A first deposit; `registration` is the index of the player's
    /// registration, whose score belongs in `facts.registration_score`.
    FirstDeposit {
        /// The facts.
        facts: FirstDepositFacts,
        /// Index of the registration event.
        registration: usize,
    },
}

impl Event {
    /// The event time, ms since the epoch.
    pub fn at_ms(&self) -> u64 {
        match self {
            Self::Click(c) => c.clicked_at_ms,
            Self::Registration { facts, .. } => facts.registered_at_ms,
            Self::FirstDeposit { facts, .. } => facts.deposited_at_ms,
        }
    }

    /// The kind.
    pub fn kind(&self) -> Kind {
        match self {
            Self::Click(_) => Kind::Click,
            Self::Registration { .. } => Kind::Registration,
            Self::FirstDeposit { .. } => Kind::FirstDeposit,
        }
    }

    /// Whether an escalation covers this event.
    pub fn covered_by(&self, e: &Escalation) -> bool {
        match self {
            Self::Click(c) => e.covers_click(c),
            Self::Registration { facts, .. } => e.covers_registration(facts),
            Self::FirstDeposit { facts, .. } => e.covers_first_deposit(facts),
        }
    }
}

/// A labelled event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioEvent {
    /// What it really is.
    pub truth: Truth,
    /// The event.
    pub event: Event,
}

/// Generated traffic in time order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scenario {
    /// Events sorted by time; references point to earlier indices.
    pub events: Vec<ScenarioEvent>,
}

/// The tally of one (truth, kind) pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportRow {
    /// What the events really are.
    pub truth: Truth,
    /// Which kind of event.
    pub kind: Kind,
    /// How many.
    pub events: usize,
    /// Scored above zero on arrival (some signal fired).
    pub flagged: usize,
    /// Quarantined by their own score on arrival.
    pub at_arrival: usize,
    /// Quarantined on arrival or by a later event's escalation.
    pub quarantined: usize,
}

impl ReportRow {
    /// `quarantined` in per mille of `events`.
    pub fn per_mille(&self) -> usize {
        self.quarantined * 1000 / self.events.max(1)
    }

    /// `at_arrival` in per mille of `events`.
    pub fn at_arrival_per_mille(&self) -> usize {
        self.at_arrival * 1000 / self.events.max(1)
    }
}

/// What a scenario run quarantined, per truth and kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioReport {
    /// One row per (truth, kind) present.
    pub rows: Vec<ReportRow>,
    /// Escalations emitted.
    pub escalations: usize,
}

impl ScenarioReport {
    /// The row of a truth and kind.
    pub fn row(&self, truth: Truth, kind: Kind) -> Option<&ReportRow> {
        self.rows
            .iter()
            .find(|r| r.truth == truth && r.kind == kind)
    }
}

impl fmt::Display for ScenarioReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "| traffic | event | events | any signal on arrival | quarantined on arrival | quarantined incl. escalations |"
        )?;
        writeln!(f, "|---|---|---:|---:|---:|---:|")?;
        let pct = |n: usize, d: usize| format!("{n} ({:.1} %)", n as f64 * 100.0 / d.max(1) as f64);
        for r in &self.rows {
            writeln!(
                f,
                "| {} | {} | {} | {} | {} | {} |",
                r.truth,
                r.kind,
                r.events,
                pct(r.flagged, r.events),
                pct(r.at_arrival, r.events),
                pct(r.quarantined, r.events)
            )?;
        }
        write!(f, "\n{} escalations", self.escalations)
    }
}

impl Scenario {
    /// Scores every event in order (filling in the attributed click's and
    /// the registration's scores), applies the escalations to the events
    /// they cover, and tallies.
    pub fn run(&self, scorer: &Scorer) -> ScenarioReport {
        let n = self.events.len();
        let mut scores = vec![0u8; n];
        let mut quarantined = vec![false; n];
        let mut escalations = Vec::new();
        for (i, e) in self.events.iter().enumerate() {
            let score = match &e.event {
                Event::Click(c) => scorer.score_click(c),
                Event::Registration { facts, click } => {
                    let mut facts = facts.clone();
                    if let (Some(ctx), Some(ci)) = (facts.click.as_mut(), click) {
                        ctx.click_score = scores.get(*ci).copied().unwrap_or(0);
                    }
                    scorer.score_registration(&facts)
                }
                Event::FirstDeposit {
                    facts,
                    registration,
                } => {
                    let mut facts = facts.clone();
                    facts.registration_score = scores.get(*registration).copied().unwrap_or(0);
                    scorer.score_first_deposit(&facts)
                }
            };
            scores[i] = score.value;
            quarantined[i] = score.quarantined;
            escalations.extend(score.escalations);
        }
        let mut escalated = quarantined.clone();
        for esc in &escalations {
            for (i, e) in self.events.iter().enumerate() {
                if !escalated[i] && e.event.covered_by(esc) {
                    escalated[i] = true;
                }
            }
        }
        let mut rows: BTreeMap<(Truth, Kind), ReportRow> = BTreeMap::new();
        for (i, e) in self.events.iter().enumerate() {
            let kind = e.event.kind();
            let row = rows.entry((e.truth, kind)).or_insert(ReportRow {
                truth: e.truth,
                kind,
                events: 0,
                flagged: 0,
                at_arrival: 0,
                quarantined: 0,
            });
            row.events += 1;
            row.flagged += usize::from(scores[i] > 0);
            row.at_arrival += usize::from(quarantined[i]);
            row.quarantined += usize::from(escalated[i]);
        }
        ScenarioReport {
            rows: rows.into_values().collect(),
            escalations: escalations.len(),
        }
    }
}

/// An affiliate of the scenario with its links.
struct Affiliate {
    brand: BrandId,
    id: AffiliateId,
    links: Vec<ShortCode>,
}

/// Where a click comes from.
#[derive(Clone, Copy)]
struct Origin {
    ip: IpAddr,
    asn: u32,
    country: CountryCode,
}

/// Events before sorting; references are draft indices.
struct Drafts {
    rng: StdRng,
    drafts: Vec<ScenarioEvent>,
    countries: Vec<CountryCode>,
    next_id: u128,
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

/// Hosting ASNs VPN users come out of.
const VPN_ASNS: &[u32] = &[9009, 16276, 14061, 24940, 20473, 60068];

const COUNTRIES: &[&str] = &[
    "DE", "GB", "FR", "ES", "IT", "NL", "SE", "FI", "NO", "AT", "CA", "BR", "MX", "IE", "PL",
];

impl Drafts {
    fn push(&mut self, truth: Truth, event: Event) -> usize {
        self.drafts.push(ScenarioEvent { truth, event });
        self.drafts.len() - 1
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

    fn device(&mut self) -> Hash128 {
        let ua = format!("device-{:032x}", self.rng.random::<u128>());
        device_fingerprint(&DeviceSignals {
            user_agent: &ua,
            ..DeviceSignals::default()
        })
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

    fn click(
        &mut self,
        truth: Truth,
        affiliate: &Affiliate,
        link: &ShortCode,
        from: Origin,
        at: u64,
    ) -> usize {
        self.push(
            truth,
            Event::Click(ClickFacts {
                brand_id: affiliate.brand,
                link_code: link.clone(),
                affiliate_id: affiliate.id,
                ip: Some(from.ip),
                asn: from.asn,
                country: from.country,
                bot: None,
                clicked_at_ms: at,
            }),
        )
    }
}

/// One player's journey: click(s), maybe a registration, maybe a deposit.
struct Journey {
    truth: Truth,
    player: String,
    click_country: CountryCode,
    click_device: Hash128,
    clicked_at: u64,
    /// `None`: no registration.
    registration: Option<RegistrationPlan>,
}

struct RegistrationPlan {
    ctit: u64,
    ip: IpAddr,
    asn: u32,
    country: CountryCode,
    device: Hash128,
    /// Delay to the first deposit and its device; `None`: no deposit.
    deposit: Option<(u64, Option<Hash128>)>,
}

fn new_affiliate(d: &mut Drafts, brand: BrandId) -> Affiliate {
    Affiliate {
        brand,
        id: AffiliateId::from(d.uuid()),
        links: (0..3).map(|_| d.code()).collect(),
    }
}

fn register(d: &mut Drafts, affiliate: &Affiliate, click: usize, j: &Journey) {
    let Some(plan) = &j.registration else {
        return;
    };
    let at = j.clicked_at + plan.ctit;
    let reg = d.push(
        j.truth,
        Event::Registration {
            facts: RegistrationFacts {
                brand_id: affiliate.brand,
                brand_player_id: j.player.clone(),
                affiliate_id: Some(affiliate.id),
                registered_at_ms: at,
                country: plan.country,
                ip: Some(plan.ip),
                asn: Some(plan.asn),
                device_fingerprint: Some(plan.device),
                click: Some(ClickContext {
                    clicked_at_ms: j.clicked_at,
                    device_fingerprint: j.click_device,
                    country: j.click_country,
                    click_score: 0,
                }),
            },
            click: Some(click),
        },
    );
    if let Some((delay, device)) = plan.deposit {
        d.push(
            j.truth,
            Event::FirstDeposit {
                facts: FirstDepositFacts {
                    brand_id: affiliate.brand,
                    brand_player_id: j.player.clone(),
                    deposited_at_ms: at + delay,
                    device_fingerprint: device,
                    registration_score: 0,
                },
                registration: reg,
            },
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
    };
    let brands = [BrandId::from(d.uuid()), BrandId::from(d.uuid())];
    let ordinary: Vec<Affiliate> = (0..30)
        .map(|i| new_affiliate(&mut d, brands[i % 2]))
        .collect();
    let cgnat: Vec<IpAddr> = (0..config.cgnat_ips.max(1))
        .map(|_| d.residential_ip())
        .collect();
    let span = u64::from(config.days.max(1)) * DAY;
    let start = config.start_ms;

    // Ordinary players.
    for p in 0..config.ordinary_players {
        let aff = &ordinary[d.rng.random_range(0..ordinary.len())];
        let link = aff.links[d.rng.random_range(0..aff.links.len())].clone();
        let home = d.country();
        let home_ip = if p < config.cgnat_players {
            cgnat[d.rng.random_range(0..cgnat.len())]
        } else {
            d.residential_ip()
        };
        let home_asn = d.pick(RESIDENTIAL_ASNS, 3320);
        let vpn = d.rng.random_ratio(config.vpn_per_mille.min(1000), 1000);
        let (click_ip, click_asn, click_country) = if vpn {
            let ip = d.residential_ip();
            let asn = d.pick(VPN_ASNS, 9009);
            let country = if d.rng.random_bool(0.5) {
                d.other_country(home)
            } else {
                home
            };
            (ip, asn, country)
        } else {
            (home_ip, home_asn, home)
        };
        let device = d.device();
        let mut at = start + d.rng.random_range(0..span);
        let clicks = match d.rng.random_range(0..10) {
            0..=6 => 1,
            7..=8 => 2,
            _ => 3,
        };
        let mut last = 0;
        for k in 0..clicks {
            if k > 0 {
                at += d.rng.random_range(5 * SEC..10 * MIN);
            }
            last = d.click(
                Truth::Ordinary,
                aff,
                &link,
                Origin {
                    ip: click_ip,
                    asn: click_asn,
                    country: click_country,
                },
                at,
            );
        }
        let registration = d.rng.random_ratio(1, 4).then(|| {
            let ctit = match d.rng.random_range(0..100) {
                0..=54 => d.rng.random_range(MIN..HOUR),
                55..=89 => d.rng.random_range(HOUR..DAY),
                _ => d.rng.random_range(DAY..5 * DAY),
            };
            let reg_device = if d.rng.random_ratio(5, 100) {
                d.device()
            } else {
                device
            };
            let country = if d.rng.random_ratio(3, 100) {
                d.other_country(home)
            } else {
                home
            };
            let ip = if d.rng.random_ratio(8, 10) {
                home_ip
            } else {
                d.residential_ip()
            };
            let deposit = d.rng.random_bool(0.5).then(|| {
                let delay = d.rng.random_range(10 * MIN..48 * HOUR);
                (delay, d.rng.random_ratio(9, 10).then_some(reg_device))
            });
            RegistrationPlan {
                ctit,
                ip,
                asn: home_asn,
                country,
                device: reg_device,
                deposit,
            }
        });
        let journey = Journey {
            truth: Truth::Ordinary,
            player: format!("player-{p}"),
            click_country,
            click_device: device,
            clicked_at: at,
            registration,
        };
        register(&mut d, aff, last, &journey);
    }

    // Click farms: one /24 with 40 hosts, or a single IP, on one link.
    let farms = config.subnet_farms + config.single_ip_farms;
    for f in 0..farms {
        let aff = new_affiliate(&mut d, brands[f % 2]);
        let link = aff.links[0].clone();
        let base = start + d.rng.random_range(0..span);
        let net = [d.pick(RESIDENTIAL_V4, 81), d.rng.random(), d.rng.random()];
        let asn = d.pick(RESIDENTIAL_ASNS, 3320);
        let country = d.country();
        let single = f >= config.subnet_farms;
        let (clicks, spread) = if single {
            (config.farm_clicks / 2, 8 * MIN)
        } else {
            (config.farm_clicks, 5 * MIN)
        };
        for _ in 0..clicks {
            let host = if single { 7 } else { d.rng.random_range(1..41) };
            let ip = IpAddr::V4(Ipv4Addr::new(net[0], net[1], net[2], host));
            let at = base + d.rng.random_range(0..spread);
            d.click(
                Truth::ClickFarm,
                &aff,
                &link,
                Origin { ip, asn, country },
                at,
            );
        }
    }

    // Bonus-abuse rings: one device, many players within a day, each with a
    // click, a registration and a first deposit, through rotating proxies.
    for r in 0..config.abuse_rings {
        let aff = &ordinary[d.rng.random_range(0..ordinary.len())];
        let link = aff.links[0].clone();
        let device = d.device();
        let country = d.country();
        let base = start + d.rng.random_range(0..span);
        for k in 0..config.ring_size {
            let ip = d.residential_ip();
            let asn = d.pick(RESIDENTIAL_ASNS, 3320);
            let at = base + d.rng.random_range(0..20 * HOUR);
            let click = d.click(
                Truth::BonusAbuse,
                aff,
                &link,
                Origin { ip, asn, country },
                at,
            );
            let ctit = d.rng.random_range(5 * MIN..40 * MIN);
            let deposit = Some((d.rng.random_range(10 * MIN..2 * HOUR), Some(device)));
            let journey = Journey {
                truth: Truth::BonusAbuse,
                player: format!("ring-{r}-{k}"),
                click_country: country,
                click_device: device,
                clicked_at: at,
                registration: Some(RegistrationPlan {
                    ctit,
                    ip,
                    asn,
                    country,
                    device,
                    deposit,
                }),
            };
            register(&mut d, aff, click, &journey);
        }
    }

    // Click injection: malware on the player's device fires the
    // affiliate's click two seconds before the registration completes.
    let injector = new_affiliate(&mut d, brands[0]);
    for k in 0..config.injected_registrations {
        let link = injector.links[k % injector.links.len()].clone();
        let ip = d.residential_ip();
        let asn = d.pick(RESIDENTIAL_ASNS, 3320);
        let country = d.country();
        let device = d.device();
        let at = start + d.rng.random_range(0..span);
        let click = d.click(
            Truth::ClickInjection,
            &injector,
            &link,
            Origin { ip, asn, country },
            at,
        );
        let journey = Journey {
            truth: Truth::ClickInjection,
            player: format!("injected-{k}"),
            click_country: country,
            click_device: device,
            clicked_at: at,
            registration: Some(RegistrationPlan {
                ctit: 2 * SEC,
                ip,
                asn,
                country,
                device,
                deposit: None,
            }),
        };
        register(&mut d, &injector, click, &journey);
    }

    // Click flooding: an affiliate sprays clicks; organic players who
    // register days later are attributed to it.
    let flooder = new_affiliate(&mut d, brands[1]);
    for _ in 0..config.flooding_spray_clicks {
        let link = flooder.links[d.rng.random_range(0..flooder.links.len())].clone();
        let ip = d.residential_ip();
        let asn = d.pick(RESIDENTIAL_ASNS, 3320);
        let country = d.country();
        let at = start + d.rng.random_range(0..span);
        d.click(
            Truth::ClickFlooding,
            &flooder,
            &link,
            Origin { ip, asn, country },
            at,
        );
    }
    for k in 0..config.flooding_registrations {
        let link = flooder.links[k % flooder.links.len()].clone();
        let ip = d.residential_ip();
        let asn = d.pick(RESIDENTIAL_ASNS, 3320);
        let country = d.country();
        let device = d.device();
        let registered = start + d.rng.random_range(0..span);
        let ctit = d.rng.random_range(30 * HOUR..140 * HOUR);
        let at = registered.saturating_sub(ctit);
        let click = d.click(
            Truth::ClickFlooding,
            &flooder,
            &link,
            Origin { ip, asn, country },
            at,
        );
        let journey = Journey {
            truth: Truth::ClickFlooding,
            player: format!("flooded-{k}"),
            click_country: country,
            click_device: device,
            clicked_at: at,
            registration: Some(RegistrationPlan {
                ctit,
                ip,
                asn,
                country,
                device,
                deposit: None,
            }),
        };
        register(&mut d, &flooder, click, &journey);
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
                Event::Registration { click: Some(c), .. } => *c = position[*c],
                Event::FirstDeposit { registration, .. } => *registration = position[*registration],
                _ => {}
            }
            e
        })
        .collect();
    Scenario { events }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::fraud::policy::FraudPolicies;
    use crate::fraud::scorer::Capacity;

    fn run(config: &ScenarioConfig) -> ScenarioReport {
        let scenario = generate(config);
        let scorer = Scorer::new(Arc::new(FraudPolicies::builtin()), Capacity::small());
        let report = scenario.run(&scorer);
        for s in scorer.table_stats() {
            assert_eq!(s.evictions, 0, "{s:?}");
        }
        report
    }

    fn check(report: &ScenarioReport) {
        for (truth, kind) in [
            (Truth::ClickFarm, Kind::Click),
            (Truth::BonusAbuse, Kind::Registration),
            (Truth::BonusAbuse, Kind::FirstDeposit),
            (Truth::ClickInjection, Kind::Registration),
            (Truth::ClickFlooding, Kind::Registration),
        ] {
            let row = report.row(truth, kind).expect("planted");
            assert!(row.per_mille() >= 950, "{truth} {kind}: {row:?}\n{report}");
        }
        for kind in [Kind::Click, Kind::Registration, Kind::FirstDeposit] {
            let row = report.row(Truth::Ordinary, kind).expect("ordinary");
            assert!(row.events > 100, "{row:?}");
            assert!(row.per_mille() <= 10, "ordinary {kind}: {row:?}\n{report}");
        }
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
                    facts,
                } => {
                    assert!(*c < i);
                    let Event::Click(click) = &a.events[*c].event else {
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
    }

    #[test]
    fn planted_fraud_is_quarantined_and_ordinary_traffic_is_not() {
        let report = run(&ScenarioConfig::default());
        println!("{report}");
        check(&report);
    }

    #[test]
    fn the_scenario_holds_for_other_seeds() {
        for seed in [1, 2, 3] {
            let report = run(&ScenarioConfig {
                seed,
                ordinary_players: 6_000,
                ..ScenarioConfig::default()
            });
            check(&report);
        }
    }
}
