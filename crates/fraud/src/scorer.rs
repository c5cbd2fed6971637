//! The scorer: observes each click, registration and first deposit into the
//! sliding windows and scores it 0–100 under its brand's policy, with the
//! contributing signals, the quarantine decision and, when a window signal
//! alone crosses the quarantine threshold, an [`Escalation`] naming the
//! earlier events of the same window that should be quarantined too.
//!
//! Owns the event facts ([`ClickFacts`], [`RegistrationFacts`],
//! [`FirstDepositFacts`]), the window keys, the [`Score`], the baseline rows
//! ([`ClickBaselineRow`] …) and the window geometry. Does not touch
//! ClickHouse or HTTP and reads no clock: event times come in the facts, and
//! the caller feeds baselines it queried itself.
//!
//! `Scorer` is `Send + Sync`; every table is split into up to 64 shards,
//! each behind its own `Mutex` held for one table operation, so concurrent
//! requests rarely wait for each other.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};

use clickstitch_shared::bot::BotReason;
use clickstitch_shared::fingerprint::Hash128;
use clickstitch_shared::{AffiliateId, BrandId, CountryCode, ShortCode};
use serde::{Deserialize, Serialize};

use super::policy::{
    FraudPolicies, FraudPolicy, MAX_DISTINCT_WINDOW_HOURS, MAX_FLOODING_WINDOW_DAYS,
    MAX_VELOCITY_WINDOW_MINUTES,
};
use super::signals::{self, count_points, AffiliateCtit, Network, Signal, SignalHit};
use super::window::{Absorbed, CounterTable, DistinctTable, KeyHasher, Sharded, MEMBERS};

/// Click bucket length: velocity windows are whole minutes.
pub const CLICK_BUCKET_MS: u64 = 60_000;

/// Buckets per click ring (the longest velocity window, 16 minutes).
pub const CLICK_RING: usize = MAX_VELOCITY_WINDOW_MINUTES as usize;

/// Affiliate bucket length for click flooding: 6 hours.
pub const AFFILIATE_BUCKET_MS: u64 = 6 * HOUR_MS;

/// Buckets per affiliate ring (the longest flooding window, 30 days).
pub const AFFILIATE_RING: usize = (MAX_FLOODING_WINDOW_DAYS * 4) as usize;

/// Horizon of the distinct (registration, deposit) tables, in minutes.
pub const DISTINCT_HORIZON_MINUTES: u32 = MAX_DISTINCT_WINDOW_HOURS * 60;

use clickstitch_domain::units::{HOUR_MS, MINUTE_MS};

/// Window key kinds, hashed with the key's parts so kinds never collide.
const CLICK_IP: u8 = 1;
const CLICK_SUBNET: u8 = 2;
const REGISTRATION_IP: u8 = 3;
const REGISTRATION_DEVICE: u8 = 4;
const DEPOSIT_DEVICE: u8 = 5;
const AFFILIATE_TOTAL: u8 = 6;
const AFFILIATE_LONG: u8 = 7;
const PLAYER: u8 = 8;

/// How many keys each window table holds (see `docs/fraud.md` for the
/// memory per key). All memory is allocated up front, zeroed, so the OS
/// backs it as it is first used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capacity {
    /// Keys of each of the two click tables: (brand, link, IP) and
    /// (brand, link, /24). 44 bytes each.
    pub click_keys: usize,
    /// Keys of each of the two registration tables: (brand, IP) and
    /// (brand, device). 76 bytes each.
    pub registration_keys: usize,
    /// Keys of the first-deposit table (brand, device). 76 bytes each.
    pub deposit_keys: usize,
    /// Keys of the affiliate table: two per (brand, affiliate). 252 bytes
    /// each.
    pub affiliate_keys: usize,
}

impl Default for Capacity {
    /// Sized for a million distinct (link, IP) pairs per click horizon and
    /// a million registering IPs / devices per window: about 270 MB.
    fn default() -> Self {
        Self {
            click_keys: 1_000_000,
            registration_keys: 1_000_000,
            deposit_keys: 250_000,
            affiliate_keys: 40_000,
        }
    }
}

impl Capacity {
    /// A small capacity for tests and development (about 9 MB).
    pub fn small() -> Self {
        Self {
            click_keys: 65_536,
            registration_keys: 16_384,
            deposit_keys: 4_096,
            affiliate_keys: 2_048,
        }
    }

    /// Approximate bytes the tables of this capacity allocate.
    pub fn approx_memory_bytes(&self) -> usize {
        let click = 8 + 4 + 2 * CLICK_RING;
        let distinct = 8 + 4 + 8 * MEMBERS;
        let affiliate = 8 + 4 + 2 * AFFILIATE_RING;
        2 * self.click_keys * click
            + (2 * self.registration_keys + self.deposit_keys) * distinct
            + self.affiliate_keys * affiliate
    }
}

/// A click as the scorer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClickFacts {
    /// The link's brand (selects the policy).
    pub brand_id: BrandId,
    /// The short link clicked.
    pub link_code: ShortCode,
    /// The link's affiliate.
    pub affiliate_id: AffiliateId,
    /// The visitor's IP, if stored. A brand that stores IPs truncated to the
    /// /24 makes IP and subnet velocity the same signal.
    pub ip: Option<IpAddr>,
    /// Autonomous system number of the visitor's network (0 unknown).
    pub asn: u32,
    /// Country the edge saw (informational: no click signal uses it).
    pub country: CountryCode,
    /// `Some` if the edge judged the visitor a bot, with its reason.
    pub bot: Option<BotReason>,
    /// Click time, ms since the epoch.
    pub clicked_at_ms: u64,
}

/// The click a registration is attributed to (its last click).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClickContext {
    /// Click time, ms since the epoch.
    pub clicked_at_ms: u64,
    /// The click's device fingerprint.
    pub device_fingerprint: Hash128,
    /// The click's country.
    pub country: CountryCode,
    /// The click's score ([`Score::value`]).
    pub click_score: u8,
}

/// A registration as the scorer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationFacts {
    /// The brand.
    pub brand_id: BrandId,
    /// The brand's id of the player (distinct counts are over this).
    pub brand_player_id: String,
    /// The attributed affiliate, if any.
    pub affiliate_id: Option<AffiliateId>,
    /// Registration time, ms since the epoch.
    pub registered_at_ms: u64,
    /// Country of registration.
    pub country: CountryCode,
    /// IP the brand saw at registration, if reported.
    pub ip: Option<IpAddr>,
    /// ASN of that IP, if known.
    pub asn: Option<u32>,
    /// The header fingerprint at registration, if reported: a weak signal
    /// only (compared with the click's, never counted per device).
    pub device_fingerprint: Option<Hash128>,
    /// A high-entropy identity of the registering device, if known: the
    /// brand's own device id, else the attributed click's visitor cookie.
    /// Multi-accounting (`device_registrations`) counts players per key.
    pub device_key: Option<Hash128>,
    /// The attributed click; without one no click-based signal fires.
    pub click: Option<ClickContext>,
}

/// A player's first deposit as the scorer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirstDepositFacts {
    /// The brand.
    pub brand_id: BrandId,
    /// The brand's id of the player.
    pub brand_player_id: String,
    /// Deposit time, ms since the epoch.
    pub deposited_at_ms: u64,
    /// A high-entropy identity of the depositing device, if known (the
    /// brand's device id, else the registration's device key).
    pub device_key: Option<Hash128>,
    /// The player's registration score ([`Score::value`]).
    pub registration_score: u8,
}

/// The score of one event: stored with it for audit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Score {
    /// `min(100, Σ hit points)`.
    pub value: u8,
    /// `value >= quarantine_threshold` of the policy used.
    pub quarantined: bool,
    /// The `version` of the policy used.
    pub policy_version: String,
    /// Every signal that fired, in evaluation order.
    pub hits: Vec<SignalHit>,
    /// Earlier events this event shows to be fraudulent too (usually empty).
    pub escalations: Vec<Escalation>,
}

impl Score {
    /// Whether `signal` fired.
    pub fn has(&self, signal: Signal) -> bool {
        self.hits.iter().any(|h| h.signal == signal)
    }
}

/// "Every event in `scope` between `from_ms` and `to_ms` (inclusive) should
/// be quarantined for `signal`": emitted once, by the event whose arrival
/// made a window signal reach the quarantine threshold on its own. The
/// events before it in the same window scored below the threshold when
/// they arrived (their window was not yet full); the caller re-flags them
/// in storage. Emitted only on the crossing, so a window a baseline pushed
/// over the threshold in one step (another instance saw the crossing) does
/// not escalate here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Escalation {
    /// The signal that crossed.
    pub signal: Signal,
    /// Which events.
    pub scope: EscalationScope,
    /// Start of the window, ms since the epoch (inclusive).
    pub from_ms: u64,
    /// The escalating event's time (inclusive).
    pub to_ms: u64,
}

/// Which events an [`Escalation`] covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EscalationScope {
    /// Human clicks of one brand's link from one IP (IPv6: /64).
    LinkIp {
        /// The brand.
        brand_id: BrandId,
        /// The link.
        link_code: ShortCode,
        /// The IP as a /32 (or /64).
        network: Network,
    },
    /// Human clicks of one brand's link from one /24 (IPv6: /48).
    LinkSubnet {
        /// The brand.
        brand_id: BrandId,
        /// The link.
        link_code: ShortCode,
        /// The /24 or /48.
        network: Network,
    },
    /// Registrations of one brand from one IP (IPv6: /64).
    RegistrationIp {
        /// The brand.
        brand_id: BrandId,
        /// The IP as a /32 (or /64).
        network: Network,
    },
    /// Registrations of one brand from one device.
    RegistrationDevice {
        /// The brand.
        brand_id: BrandId,
        /// The device's high-entropy key.
        device_key: Hash128,
    },
    /// First deposits of one brand from one device.
    DepositDevice {
        /// The brand.
        brand_id: BrandId,
        /// The device's high-entropy key.
        device_key: Hash128,
    },
    /// Registrations of one brand through one affiliate whose click came
    /// more than `ctit_over_ms` before.
    AffiliateLongCtit {
        /// The brand.
        brand_id: BrandId,
        /// The affiliate.
        affiliate_id: AffiliateId,
        /// The long-CTIT threshold, ms.
        ctit_over_ms: u64,
    },
}

impl Escalation {
    fn in_range(&self, at_ms: u64) -> bool {
        (self.from_ms..=self.to_ms).contains(&at_ms)
    }

    /// Whether the escalation covers this click.
    pub fn covers_click(&self, c: &ClickFacts) -> bool {
        let (brand, link, net) = match &self.scope {
            EscalationScope::LinkIp {
                brand_id,
                link_code,
                network,
            }
            | EscalationScope::LinkSubnet {
                brand_id,
                link_code,
                network,
            } => (brand_id, link_code, network),
            _ => return false,
        };
        c.bot.is_none()
            && *brand == c.brand_id
            && *link == c.link_code
            && c.ip.is_some_and(|ip| net.contains(ip))
            && self.in_range(c.clicked_at_ms)
    }

    /// Whether the escalation covers this registration.
    pub fn covers_registration(&self, r: &RegistrationFacts) -> bool {
        let in_scope = match &self.scope {
            EscalationScope::RegistrationIp { brand_id, network } => {
                *brand_id == r.brand_id && r.ip.is_some_and(|ip| network.contains(ip))
            }
            EscalationScope::RegistrationDevice {
                brand_id,
                device_key,
            } => *brand_id == r.brand_id && r.device_key == Some(*device_key),
            EscalationScope::AffiliateLongCtit {
                brand_id,
                affiliate_id,
                ctit_over_ms,
            } => {
                *brand_id == r.brand_id
                    && r.affiliate_id == Some(*affiliate_id)
                    && r.click.as_ref().is_some_and(|c| {
                        r.registered_at_ms.saturating_sub(c.clicked_at_ms) > *ctit_over_ms
                    })
            }
            _ => false,
        };
        in_scope && self.in_range(r.registered_at_ms)
    }

    /// Whether the escalation covers this first deposit.
    pub fn covers_first_deposit(&self, d: &FirstDepositFacts) -> bool {
        match &self.scope {
            EscalationScope::DepositDevice {
                brand_id,
                device_key,
            } => {
                *brand_id == d.brand_id
                    && d.device_key == Some(*device_key)
                    && self.in_range(d.deposited_at_ms)
            }
            _ => false,
        }
    }
}

/// Human clicks of one IP on one link in one click bucket, from ClickHouse:
/// `GROUP BY brand_id, link_code, ip, toStartOfMinute(clicked_at)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClickBaselineRow {
    /// The brand.
    pub brand_id: BrandId,
    /// The link.
    pub link_code: ShortCode,
    /// The IP (the scorer derives the /24 or /48 itself).
    pub ip: IpAddr,
    /// Start of the bucket ([`CLICK_BUCKET_MS`]), ms since the epoch.
    pub bucket_start_ms: u64,
    /// Human clicks (duplicates included, bots excluded).
    pub clicks: u32,
}

/// One registration, from ClickHouse (distinct players are counted, so
/// repeated rows are harmless).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationBaselineRow {
    /// The brand.
    pub brand_id: BrandId,
    /// The brand's player id.
    pub brand_player_id: String,
    /// Registration time, ms since the epoch.
    pub registered_at_ms: u64,
    /// IP at registration, if known.
    pub ip: Option<IpAddr>,
    /// The registration's high-entropy device key, if it had one.
    pub device_key: Option<Hash128>,
}

/// One affiliate's registrations with a click in one affiliate bucket, from
/// ClickHouse: `GROUP BY brand_id, affiliate_id, toStartOfInterval(registered_at, INTERVAL 6 HOUR)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AffiliateBaselineRow {
    /// The brand.
    pub brand_id: BrandId,
    /// The affiliate.
    pub affiliate_id: AffiliateId,
    /// Start of the bucket ([`AFFILIATE_BUCKET_MS`]), ms since the epoch.
    pub bucket_start_ms: u64,
    /// Registrations with an attributed click.
    pub registrations: u32,
    /// Of which more than the brand's `long_ctit_hours` after the click.
    pub long_ctit: u32,
}

/// One first deposit, from ClickHouse (repeated rows are harmless).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirstDepositBaselineRow {
    /// The brand.
    pub brand_id: BrandId,
    /// The brand's player id.
    pub brand_player_id: String,
    /// Deposit time, ms since the epoch.
    pub deposited_at_ms: u64,
    /// The deposit's high-entropy device key, if it had one.
    pub device_key: Option<Hash128>,
}

/// What the baseline queries must cover, from the current policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BaselinePlan {
    /// Click bucket ([`CLICK_BUCKET_MS`]).
    pub click_bucket_ms: u64,
    /// How far before the cutoff click rows are needed (the longest
    /// velocity window of any policy).
    pub click_lookback_ms: u64,
    /// How far back registration rows are needed.
    pub registration_lookback_ms: u64,
    /// How far back first-deposit rows are needed.
    pub deposit_lookback_ms: u64,
    /// Affiliate bucket ([`AFFILIATE_BUCKET_MS`]).
    pub affiliate_bucket_ms: u64,
    /// How far before the cutoff affiliate rows are needed.
    pub affiliate_lookback_ms: u64,
}

/// `now_ms − lag_ms` rounded down to a multiple of `bucket_ms`: a cutoff for
/// [`Scorer::absorb_click_baseline`] (click bucket) or
/// [`Scorer::absorb_affiliate_baseline`] (affiliate bucket). The lag should
/// cover the time from scoring an event to its row being readable in
/// ClickHouse (a minute or two), so that the baseline does not miss events
/// this instance has counted.
pub fn aligned_cutoff(now_ms: u64, lag_ms: u64, bucket_ms: u64) -> u64 {
    let bucket_ms = bucket_ms.max(1);
    now_ms.saturating_sub(lag_ms) / bucket_ms * bucket_ms
}

/// Fill, capacity and evictions of one window table, for /metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableStats {
    /// `click_ip`, `click_subnet`, `registration_ip`, `registration_device`,
    /// `deposit_device` or `affiliate_ctit`.
    pub name: &'static str,
    /// Slots in use (live or expired but not yet reused: expiry is lazy).
    pub keys: u64,
    /// Total slots.
    pub capacity: u64,
    /// Live keys evicted to make room since start: above zero, the table is
    /// too small for the traffic.
    pub evictions: u64,
    /// Bytes allocated.
    pub memory_bytes: u64,
}

/// Scores events against sliding windows; see the module documentation.
pub struct Scorer {
    policies: RwLock<Arc<FraudPolicies>>,
    hasher: KeyHasher,
    capacity: Capacity,
    click_ip: Sharded<CounterTable>,
    click_subnet: Sharded<CounterTable>,
    registration_ip: Sharded<DistinctTable>,
    registration_device: Sharded<DistinctTable>,
    deposit_device: Sharded<DistinctTable>,
    affiliates: Sharded<CounterTable>,
}

impl fmt::Debug for Scorer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scorer")
            .field("capacity", &self.capacity)
            .field("tables", &self.table_stats())
            .finish_non_exhaustive()
    }
}

/// Accumulates the hits and escalations of one event.
struct Tally<'a> {
    policy: &'a FraudPolicy,
    hits: Vec<SignalHit>,
    escalations: Vec<Escalation>,
    /// Whether a strong signal fired (see [`Signal::is_strong`]): without
    /// one, no sum of weak signals holds the event.
    decisive: bool,
}

impl<'a> Tally<'a> {
    fn new(policy: &'a FraudPolicy) -> Self {
        Self {
            policy,
            hits: Vec::new(),
            escalations: Vec::new(),
            decisive: false,
        }
    }

    fn hit(&mut self, hit: Option<SignalHit>) {
        if let Some(hit) = hit {
            self.decisive |= hit.signal.is_strong();
            self.hits.push(hit);
        }
    }

    /// A carry-over hit: strong when the earlier stage was itself held
    /// (its score reached the threshold), weak otherwise.
    fn carry(&mut self, hit: Option<SignalHit>, earlier_score: u8) {
        if let Some(hit) = hit {
            self.decisive |= earlier_score >= self.policy.quarantine_threshold;
            self.hits.push(hit);
        }
    }

    /// Escalates if a count signal's points crossed the threshold between
    /// `before` and `after`.
    fn escalate_count(
        &mut self,
        signal: Signal,
        (points, limit): (u8, u32),
        (before, after): (u32, u32),
        scope: impl FnOnce() -> EscalationScope,
        (from_ms, to_ms): (u64, u64),
    ) {
        let threshold = self.policy.quarantine_threshold;
        if signal.is_strong()
            && count_points(points, limit, before) < threshold
            && count_points(points, limit, after) >= threshold
        {
            self.escalations.push(Escalation {
                signal,
                scope: scope(),
                from_ms,
                to_ms,
            });
        }
    }

    fn finish(self) -> Score {
        let sum: u32 = self.hits.iter().map(|h| u32::from(h.points)).sum();
        let value = u8::try_from(sum.min(100)).unwrap_or(100);
        Score {
            value,
            quarantined: self.decisive && value >= self.policy.quarantine_threshold,
            policy_version: self.policy.version.clone(),
            hits: self.hits,
            escalations: self.escalations,
        }
    }
}

/// Start of a counter window of `buckets` buckets ending at `at_ms`.
fn counter_window_start(at_ms: u64, bucket_ms: u64, buckets: u64) -> u64 {
    (at_ms / bucket_ms + 1).saturating_sub(buckets) * bucket_ms
}

/// Start of a distinct window of `minutes` ending at `at_ms`.
fn distinct_window_start(at_ms: u64, minutes: u32) -> u64 {
    (at_ms / MINUTE_MS + 1).saturating_sub(u64::from(minutes)) * MINUTE_MS
}

impl Scorer {
    /// A scorer with tables of `capacity` and a fixed hash seed (tests,
    /// benchmarks). Production should prefer [`Scorer::with_seed`] with a
    /// random seed.
    pub fn new(policies: Arc<FraudPolicies>, capacity: Capacity) -> Self {
        Self::with_seed(policies, capacity, 0x5eed_c11c_5717_c400)
    }

    /// A scorer whose window keys are hashed with `seed`: a random seed
    /// makes slot placement unpredictable to outsiders, so nobody can aim
    /// keys at one set to evict someone else's counts.
    #[allow(clippy::needless_pass_by_value)] // the scorer's owners hand over their Arc
    pub fn with_seed(policies: Arc<FraudPolicies>, capacity: Capacity, seed: u64) -> Self {
        let counters = |ring, bucket_ms| move |n| CounterTable::new(n, ring, bucket_ms);
        let distinct = |n| DistinctTable::new(n, DISTINCT_HORIZON_MINUTES);
        let scorer = Self {
            policies: RwLock::new(policies.clone()),
            hasher: KeyHasher::new(seed),
            capacity,
            click_ip: Sharded::new(capacity.click_keys, counters(CLICK_RING, CLICK_BUCKET_MS)),
            click_subnet: Sharded::new(capacity.click_keys, counters(CLICK_RING, CLICK_BUCKET_MS)),
            registration_ip: Sharded::new(capacity.registration_keys, distinct),
            registration_device: Sharded::new(capacity.registration_keys, distinct),
            deposit_device: Sharded::new(capacity.deposit_keys, distinct),
            affiliates: Sharded::new(
                capacity.affiliate_keys,
                counters(AFFILIATE_RING, AFFILIATE_BUCKET_MS),
            ),
        };
        scorer.set_horizons(&policies);
        scorer
    }

    /// Makes each table expire keys after the longest window any policy
    /// reads from it, so that a slot older than that is reused rather than
    /// counted as an eviction.
    fn set_horizons(&self, policies: &FraudPolicies) {
        let max = |f: &dyn Fn(&FraudPolicy) -> u32| policies.all().map(|p| f(p)).max().unwrap_or(1);
        let click = max(&|p| {
            p.ip_velocity
                .window_minutes
                .max(p.subnet_velocity.window_minutes)
        }) as usize;
        self.click_ip.each(|t| t.set_horizon(click));
        self.click_subnet.each(|t| t.set_horizon(click));
        let ip = max(&|p| p.ip_registrations.window_hours) * 60;
        self.registration_ip.each(|t| t.set_horizon(ip));
        let device = max(&|p| p.device_registrations.window_hours) * 60;
        self.registration_device.each(|t| t.set_horizon(device));
        let deposit = max(&|p| p.device_deposits.window_hours) * 60;
        self.deposit_device.each(|t| t.set_horizon(deposit));
        let flooding = max(&|p| p.click_flooding.window_days) as usize * 4;
        self.affiliates.each(|t| t.set_horizon(flooding));
    }

    /// The policies in force.
    pub fn policies(&self) -> Arc<FraudPolicies> {
        // The lock only guards an Arc swap, which cannot be left half done.
        self.policies
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Makes `policies` apply to every event scored from now on (a reload).
    /// Windows are kept: their geometry does not depend on the policy (only
    /// the expiry horizons follow the longest windows in use).
    pub fn replace_policies(&self, policies: Arc<FraudPolicies>) {
        self.set_horizons(&policies);
        *self
            .policies
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = policies;
    }

    /// The table capacity.
    pub fn capacity(&self) -> Capacity {
        self.capacity
    }

    /// Click bucket length ([`CLICK_BUCKET_MS`]), for the baseline query.
    pub fn bucket_ms(&self) -> u64 {
        CLICK_BUCKET_MS
    }

    /// Affiliate bucket length ([`AFFILIATE_BUCKET_MS`]).
    pub fn affiliate_bucket_ms(&self) -> u64 {
        AFFILIATE_BUCKET_MS
    }

    /// What the baseline queries must cover under the current policies.
    pub fn baseline_plan(&self) -> BaselinePlan {
        let policies = self.policies();
        let max = |f: &dyn Fn(&FraudPolicy) -> u64| policies.all().map(|p| f(p)).max().unwrap_or(0);
        BaselinePlan {
            click_bucket_ms: CLICK_BUCKET_MS,
            click_lookback_ms: max(&|p| {
                u64::from(
                    p.ip_velocity
                        .window_minutes
                        .max(p.subnet_velocity.window_minutes),
                ) * MINUTE_MS
            }),
            registration_lookback_ms: max(&|p| {
                u64::from(
                    p.ip_registrations
                        .window_hours
                        .max(p.device_registrations.window_hours),
                ) * HOUR_MS
            }),
            deposit_lookback_ms: max(&|p| u64::from(p.device_deposits.window_hours) * HOUR_MS),
            affiliate_bucket_ms: AFFILIATE_BUCKET_MS,
            affiliate_lookback_ms: max(&|p| u64::from(p.click_flooding.window_days) * 24 * HOUR_MS),
        }
    }

    /// Observes a click and scores it: bot and datacenter ASN on every
    /// click; IP and subnet velocity on human clicks with an IP (bots are
    /// not counted in the windows, matching a baseline of human clicks).
    pub fn score_click(&self, click: &ClickFacts) -> Score {
        let policies = self.policies();
        let p = policies.get(click.brand_id);
        let mut t = Tally::new(p);
        t.hit(signals::bot_user_agent(&p.bot_user_agent, click.bot));
        t.hit(signals::datacenter_asn(&p.datacenter_asn, click.asn));
        if let (None, Some(ip)) = (click.bot, click.ip) {
            let at = click.clicked_at_ms;
            let brand = click.brand_id;
            let link = &click.link_code;

            let host = Network::host_of(ip);
            let rule = &p.ip_velocity;
            let key = self.hasher.key(&(CLICK_IP, brand, link, host));
            let window = rule.window_minutes as usize;
            let n = self.click_ip.with(key, |w| w.add(key, at, window));
            t.hit(signals::ip_velocity(rule, n, host, link));
            t.escalate_count(
                Signal::IpVelocity,
                (rule.points, rule.limit),
                (n.saturating_sub(1), n),
                || EscalationScope::LinkIp {
                    brand_id: brand,
                    link_code: link.clone(),
                    network: host,
                },
                (counter_window_start(at, CLICK_BUCKET_MS, window as u64), at),
            );

            let subnet = Network::subnet_of(ip);
            let rule = &p.subnet_velocity;
            let key = self.hasher.key(&(CLICK_SUBNET, brand, link, subnet));
            let window = rule.window_minutes as usize;
            let n = self.click_subnet.with(key, |w| w.add(key, at, window));
            t.hit(signals::subnet_velocity(rule, n, subnet, link));
            t.escalate_count(
                Signal::SubnetVelocity,
                (rule.points, rule.limit),
                (n.saturating_sub(1), n),
                || EscalationScope::LinkSubnet {
                    brand_id: brand,
                    link_code: link.clone(),
                    network: subnet,
                },
                (counter_window_start(at, CLICK_BUCKET_MS, window as u64), at),
            );
        }
        t.finish()
    }

    /// Observes a registration and scores it: distinct players per IP and
    /// per device, datacenter ASN, and — only with an attributed click —
    /// click injection, fingerprint and country mismatch, click flooding of
    /// the affiliate and the click's score carried over.
    pub fn score_registration(&self, r: &RegistrationFacts) -> Score {
        let policies = self.policies();
        let p = policies.get(r.brand_id);
        let mut t = Tally::new(p);
        let at = r.registered_at_ms;
        let brand = r.brand_id;
        let member = self
            .hasher
            .member(&(PLAYER, brand, r.brand_player_id.as_str()));
        let saturated = Some(MEMBERS as u32);

        if let Some(ip) = r.ip {
            let host = Network::host_of(ip);
            let rule = &p.ip_registrations;
            let minutes = rule.window_hours * 60;
            let key = self.hasher.key(&(REGISTRATION_IP, brand, host));
            let d = self
                .registration_ip
                .with(key, |w| w.insert(key, member, at, minutes));
            t.hit(signals::ip_registrations(rule, d.after, saturated, host));
            t.escalate_count(
                Signal::IpRegistrations,
                (rule.points, rule.limit),
                (d.before, d.after),
                || EscalationScope::RegistrationIp {
                    brand_id: brand,
                    network: host,
                },
                (distinct_window_start(at, minutes), at),
            );
        }
        if let Some(asn) = r.asn {
            t.hit(signals::datacenter_asn(&p.datacenter_asn, asn));
        }
        if let Some(device) = r.device_key {
            let rule = &p.device_registrations;
            let minutes = rule.window_hours * 60;
            let key = self.hasher.key(&(REGISTRATION_DEVICE, brand, device));
            let d = self
                .registration_device
                .with(key, |w| w.insert(key, member, at, minutes));
            t.hit(signals::device_registrations(
                rule, d.after, saturated, device,
            ));
            t.escalate_count(
                Signal::DeviceRegistrations,
                (rule.points, rule.limit),
                (d.before, d.after),
                || EscalationScope::RegistrationDevice {
                    brand_id: brand,
                    device_key: device,
                },
                (distinct_window_start(at, minutes), at),
            );
        }
        if let Some(click) = &r.click {
            t.hit(signals::click_injection(
                &p.click_injection,
                click.clicked_at_ms,
                at,
            ));
            t.hit(signals::fingerprint_mismatch(
                &p.fingerprint_mismatch,
                click.device_fingerprint,
                r.device_fingerprint,
            ));
            t.hit(signals::country_mismatch(
                &p.country_mismatch,
                click.country,
                r.country,
            ));
            if let Some(affiliate) = r.affiliate_id {
                self.flooding(&mut t, brand, affiliate, click.clicked_at_ms, at);
            }
            t.carry(
                signals::click_carryover(&p.click_carryover, click.click_score),
                click.click_score,
            );
        }
        t.finish()
    }

    fn flooding(
        &self,
        t: &mut Tally<'_>,
        brand: BrandId,
        affiliate: AffiliateId,
        clicked_at_ms: u64,
        at: u64,
    ) {
        let rule = &t.policy.click_flooding;
        let ctit = at.saturating_sub(clicked_at_ms);
        let ctit_over_ms = u64::from(rule.long_ctit_hours) * HOUR_MS;
        let long = ctit > ctit_over_ms;
        let buckets = (rule.window_days * 4) as usize;
        let total_key = self.hasher.key(&(AFFILIATE_TOTAL, brand, affiliate));
        let long_key = self.hasher.key(&(AFFILIATE_LONG, brand, affiliate));
        let registrations = self
            .affiliates
            .with(total_key, |w| w.add(total_key, at, buckets));
        let long_ctit = self.affiliates.with(long_key, |w| {
            if long {
                w.add(long_key, at, buckets)
            } else {
                w.count(long_key, at, buckets)
            }
        });
        let stats = AffiliateCtit {
            registrations,
            long_ctit,
        };
        let hit = signals::click_flooding(rule, ctit, affiliate, stats);
        let before = AffiliateCtit {
            registrations: registrations.saturating_sub(1),
            long_ctit: long_ctit.saturating_sub(u32::from(long)),
        };
        if hit.is_some() && rule.points >= t.policy.quarantine_threshold && !before.flagged(rule) {
            t.escalations.push(Escalation {
                signal: Signal::ClickFlooding,
                scope: EscalationScope::AffiliateLongCtit {
                    brand_id: brand,
                    affiliate_id: affiliate,
                    ctit_over_ms,
                },
                from_ms: counter_window_start(at, AFFILIATE_BUCKET_MS, buckets as u64),
                to_ms: at,
            });
        }
        t.hit(hit);
    }

    /// Observes a first deposit and scores it: distinct players making a
    /// first deposit from one device, plus part of the registration's score
    /// (`registration_carryover`, default 50 %: a quarantined registration
    /// does not quarantine its deposit alone, but little more is needed).
    pub fn score_first_deposit(&self, d: &FirstDepositFacts) -> Score {
        let policies = self.policies();
        let p = policies.get(d.brand_id);
        let mut t = Tally::new(p);
        let at = d.deposited_at_ms;
        let brand = d.brand_id;
        if let Some(device) = d.device_key {
            let member = self
                .hasher
                .member(&(PLAYER, brand, d.brand_player_id.as_str()));
            let rule = &p.device_deposits;
            let minutes = rule.window_hours * 60;
            let key = self.hasher.key(&(DEPOSIT_DEVICE, brand, device));
            let c = self
                .deposit_device
                .with(key, |w| w.insert(key, member, at, minutes));
            t.hit(signals::device_deposits(
                rule,
                c.after,
                Some(MEMBERS as u32),
                device,
            ));
            t.escalate_count(
                Signal::DeviceDeposits,
                (rule.points, rule.limit),
                (c.before, c.after),
                || EscalationScope::DepositDevice {
                    brand_id: brand,
                    device_key: device,
                },
                (distinct_window_start(at, minutes), at),
            );
        }
        t.carry(
            signals::registration_carryover(&p.registration_carryover, d.registration_score),
            d.registration_score,
        );
        t.finish()
    }

    /// Merges click counts from ClickHouse covering every click bucket
    /// strictly before `cutoff_ms` (rounded down to a bucket boundary, see
    /// [`aligned_cutoff`]): in the IP and subnet tables, every key's buckets
    /// before the cutoff become the baseline's (zero where it has no row),
    /// and buckets at or after it keep what this instance counted. Rows at
    /// or after the cutoff are ignored. Call at startup and then
    /// periodically; each shard is swapped under its lock, so scoring goes
    /// on meanwhile.
    pub fn absorb_click_baseline(
        &self,
        cutoff_ms: u64,
        rows: impl IntoIterator<Item = ClickBaselineRow>,
    ) -> Absorbed {
        let mut hosts: HashMap<(u64, u64), u32> = HashMap::new();
        let mut subnets: HashMap<(u64, u64), u32> = HashMap::new();
        for row in rows {
            let bucket = row.bucket_start_ms / CLICK_BUCKET_MS;
            let (brand, link) = (row.brand_id, &row.link_code);
            let host = self
                .hasher
                .key(&(CLICK_IP, brand, link, Network::host_of(row.ip)));
            let subnet = self
                .hasher
                .key(&(CLICK_SUBNET, brand, link, Network::subnet_of(row.ip)));
            let add = |m: &mut HashMap<(u64, u64), u32>, k| {
                let e = m.entry((k, bucket)).or_insert(0);
                *e = e.saturating_add(row.clicks);
            };
            add(&mut hosts, host);
            add(&mut subnets, subnet);
        }
        let cutoff = cutoff_ms / CLICK_BUCKET_MS;
        // The subnet table is fed from the same rows; report the IP table.
        absorb_counters(&self.click_subnet, cutoff, subnets);
        absorb_counters(&self.click_ip, cutoff, hosts)
    }

    /// Merges affiliate registration counts (click flooding) from ClickHouse
    /// covering every affiliate bucket strictly before `cutoff_ms` (rounded
    /// down to [`AFFILIATE_BUCKET_MS`]); same semantics as
    /// [`Scorer::absorb_click_baseline`].
    pub fn absorb_affiliate_baseline(
        &self,
        cutoff_ms: u64,
        rows: impl IntoIterator<Item = AffiliateBaselineRow>,
    ) -> Absorbed {
        let mut counts: HashMap<(u64, u64), u32> = HashMap::new();
        for row in rows {
            let bucket = row.bucket_start_ms / AFFILIATE_BUCKET_MS;
            let (brand, affiliate) = (row.brand_id, row.affiliate_id);
            for (kind, n) in [
                (AFFILIATE_TOTAL, row.registrations),
                (AFFILIATE_LONG, row.long_ctit),
            ] {
                let key = self.hasher.key(&(kind, brand, affiliate));
                let e = counts.entry((key, bucket)).or_insert(0);
                *e = e.saturating_add(n);
            }
        }
        absorb_counters(&self.affiliates, cutoff_ms / AFFILIATE_BUCKET_MS, counts)
    }

    /// Merges registrations from ClickHouse into the per-IP and per-device
    /// tables. Idempotent (players are counted once), so no cutoff: rows
    /// this instance has seen, or an earlier baseline had, change nothing.
    /// Returns the rows merged.
    pub fn absorb_registration_baseline(
        &self,
        rows: impl IntoIterator<Item = RegistrationBaselineRow>,
    ) -> u64 {
        let mut ips = Vec::new();
        let mut devices = Vec::new();
        let mut n = 0;
        for row in rows {
            let brand = row.brand_id;
            let member = self
                .hasher
                .member(&(PLAYER, brand, row.brand_player_id.as_str()));
            if let Some(ip) = row.ip {
                let key = self
                    .hasher
                    .key(&(REGISTRATION_IP, brand, Network::host_of(ip)));
                ips.push((key, member, row.registered_at_ms));
            }
            if let Some(device) = row.device_key {
                let key = self.hasher.key(&(REGISTRATION_DEVICE, brand, device));
                devices.push((key, member, row.registered_at_ms));
            }
            n += 1;
        }
        absorb_distinct(&self.registration_ip, ips);
        absorb_distinct(&self.registration_device, devices);
        n
    }

    /// Merges first deposits from ClickHouse into the per-device table;
    /// idempotent like [`Scorer::absorb_registration_baseline`].
    pub fn absorb_first_deposit_baseline(
        &self,
        rows: impl IntoIterator<Item = FirstDepositBaselineRow>,
    ) -> u64 {
        let mut devices = Vec::new();
        let mut n = 0;
        for row in rows {
            let brand = row.brand_id;
            if let Some(device) = row.device_key {
                let member = self
                    .hasher
                    .member(&(PLAYER, brand, row.brand_player_id.as_str()));
                let key = self.hasher.key(&(DEPOSIT_DEVICE, brand, device));
                devices.push((key, member, row.deposited_at_ms));
            }
            n += 1;
        }
        absorb_distinct(&self.deposit_device, devices);
        n
    }

    /// Fill, capacity, evictions and memory of every table.
    pub fn table_stats(&self) -> Vec<TableStats> {
        fn counters(name: &'static str, s: &Sharded<CounterTable>) -> TableStats {
            TableStats {
                name,
                keys: s.sum(|t| t.len() as u64),
                capacity: s.sum(|t| t.capacity() as u64),
                evictions: s.sum(CounterTable::evictions),
                memory_bytes: s.sum(|t| t.memory_bytes() as u64),
            }
        }
        fn distinct(name: &'static str, s: &Sharded<DistinctTable>) -> TableStats {
            TableStats {
                name,
                keys: s.sum(|t| t.len() as u64),
                capacity: s.sum(|t| t.capacity() as u64),
                evictions: s.sum(DistinctTable::evictions),
                memory_bytes: s.sum(|t| t.memory_bytes() as u64),
            }
        }
        vec![
            counters("click_ip", &self.click_ip),
            counters("click_subnet", &self.click_subnet),
            distinct("registration_ip", &self.registration_ip),
            distinct("registration_device", &self.registration_device),
            distinct("deposit_device", &self.deposit_device),
            counters("affiliate_ctit", &self.affiliates),
        ]
    }

    /// Bytes allocated by all window tables.
    pub fn approx_memory_bytes(&self) -> usize {
        self.table_stats()
            .iter()
            .map(|s| s.memory_bytes as usize)
            .sum()
    }
}

/// Groups `(key, bucket) → count` by shard and absorbs each shard's rows
/// under its lock (every shard, so every key's pre-cutoff buckets are
/// replaced).
fn absorb_counters(
    table: &Sharded<CounterTable>,
    cutoff_bucket: u64,
    counts: HashMap<(u64, u64), u32>,
) -> Absorbed {
    let mut per_shard: Vec<Vec<(u64, u64, u32)>> = vec![Vec::new(); table.shard_count()];
    for ((key, bucket), n) in counts {
        per_shard[table.shard_of(key)].push((key, bucket, n));
    }
    let mut done = Absorbed::default();
    for (i, rows) in per_shard.iter().enumerate() {
        done += table.with_shard(i, |t| t.absorb(cutoff_bucket, rows));
    }
    done
}

fn absorb_distinct(table: &Sharded<DistinctTable>, rows: Vec<(u64, u32, u64)>) {
    let mut per_shard: Vec<Vec<(u64, u32, u64)>> = vec![Vec::new(); table.shard_count()];
    for row in rows {
        per_shard[table.shard_of(row.0)].push(row);
    }
    for (i, rows) in per_shard.iter().enumerate() {
        if !rows.is_empty() {
            table.with_shard(i, |t| t.absorb(rows));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::FraudPolicy;

    const T0: u64 = 1_790_000_000_000;
    const MIN: u64 = 60_000;

    fn brand(n: u128) -> BrandId {
        BrandId::from(uuid::Uuid::from_u128(n))
    }

    fn affiliate(n: u128) -> AffiliateId {
        AffiliateId::from(uuid::Uuid::from_u128(n))
    }

    fn fp(n: u8) -> Hash128 {
        Hash128::parse(&format!("{n:02x}").repeat(16)).expect("hash")
    }

    fn cc(s: &str) -> CountryCode {
        CountryCode::parse(s).expect("country")
    }

    fn scorer() -> Scorer {
        Scorer::new(Arc::new(FraudPolicies::builtin()), Capacity::small())
    }

    fn click(ip: &str, at: u64) -> ClickFacts {
        ClickFacts {
            brand_id: brand(1),
            link_code: ShortCode::parse("AbC123xyz0").expect("code"),
            affiliate_id: affiliate(1),
            ip: Some(ip.parse().expect("ip")),
            asn: 3320,
            country: cc("DE"),
            bot: None,
            clicked_at_ms: at,
        }
    }

    fn registration(player: &str, ip: &str, device: u8, at: u64) -> RegistrationFacts {
        RegistrationFacts {
            brand_id: brand(1),
            brand_player_id: player.into(),
            affiliate_id: Some(affiliate(1)),
            registered_at_ms: at,
            country: cc("DE"),
            ip: Some(ip.parse().expect("ip")),
            asn: None,
            device_fingerprint: Some(fp(device)),
            device_key: Some(fp(device)),
            click: Some(ClickContext {
                clicked_at_ms: at - 20 * MIN,
                device_fingerprint: fp(device),
                country: cc("DE"),
                click_score: 0,
            }),
        }
    }

    #[test]
    fn an_ordinary_click_scores_zero_with_no_hits() {
        let s = scorer().score_click(&click("198.51.100.1", T0));
        assert_eq!(s.value, 0);
        assert!(!s.quarantined && s.hits.is_empty() && s.escalations.is_empty());
        assert_eq!(s.policy_version, FraudPolicy::builtin().version);
    }

    #[test]
    fn a_click_farm_on_one_ip_is_quarantined_from_its_32nd_click_and_escalates_the_earlier_ones() {
        let sc = scorer();
        let scores: Vec<Score> = (0..40)
            .map(|i| sc.score_click(&click("203.0.113.7", T0 + i * 5_000)))
            .collect();
        assert!(!scores[19].has(Signal::IpVelocity), "20 clicks are allowed");
        assert_eq!(scores[20].value, 40, "the 21st click scores the weight");
        assert!(!scores[30].quarantined);
        assert!(scores[31].quarantined);
        let escalations: Vec<&Escalation> = scores.iter().flat_map(|s| &s.escalations).collect();
        assert_eq!(escalations.len(), 1, "once, on the crossing");
        let e = escalations[0];
        assert_eq!(e.signal, Signal::IpVelocity);
        assert_eq!(e.to_ms, T0 + 31 * 5_000);
        assert!(e.covers_click(&click("203.0.113.7", T0)));
        assert!(!e.covers_click(&click("203.0.113.8", T0)));
        let mut other_link = click("203.0.113.7", T0);
        other_link.link_code = ShortCode::parse("Zzz999yyy8").expect("code");
        assert!(!e.covers_click(&other_link));
    }

    #[test]
    fn many_ips_of_one_slash_24_fire_subnet_velocity_but_not_ip_velocity() {
        let sc = scorer();
        let mut last = None;
        for i in 0..100u64 {
            last = Some(sc.score_click(&click(&format!("203.0.113.{}", i % 50), T0 + i * 1_000)));
        }
        let s = last.expect("scored");
        assert!(s.has(Signal::SubnetVelocity) && !s.has(Signal::IpVelocity));
        assert!(s.quarantined, "{s:?}");
    }

    #[test]
    fn clicks_on_other_links_or_brands_or_outside_the_window_count_separately() {
        let sc = scorer();
        for i in 0..20 {
            sc.score_click(&click("203.0.113.7", T0 + i * 1_000));
        }
        let mut other_brand = click("203.0.113.7", T0 + 30_000);
        other_brand.brand_id = brand(2);
        assert!(!sc.score_click(&other_brand).has(Signal::IpVelocity));
        assert!(!sc
            .score_click(&click("203.0.113.7", T0 + 11 * MIN))
            .has(Signal::IpVelocity));
        assert!(sc
            .score_click(&click("203.0.113.7", T0 + 40_000))
            .has(Signal::IpVelocity));
    }

    #[test]
    fn a_known_bot_scores_the_bot_weight_and_is_not_counted_in_the_windows() {
        let sc = scorer();
        let mut bot = click("203.0.113.7", T0);
        bot.bot = Some(BotReason::KnownBot);
        bot.asn = 16509;
        for _ in 0..50 {
            let s = sc.score_click(&bot);
            assert_eq!(s.value, 100);
            assert!(s.quarantined && s.has(Signal::DatacenterAsn));
        }
        assert_eq!(sc.score_click(&click("203.0.113.7", T0)).value, 0);
    }

    #[test]
    fn registrations_count_distinct_players_so_a_repeated_registration_counts_once() {
        let sc = scorer();
        for _ in 0..5 {
            let s = sc.score_registration(&registration("p1", "198.51.100.4", 1, T0));
            assert!(!s.has(Signal::IpRegistrations));
        }
        for (i, p) in ["p2", "p3"].iter().enumerate() {
            sc.score_registration(&registration(p, "198.51.100.4", 2 + i as u8, T0 + MIN));
        }
        let s = sc.score_registration(&registration("p4", "198.51.100.4", 9, T0 + 2 * MIN));
        let hit = s.hits.iter().find(|h| h.signal == Signal::IpRegistrations);
        assert_eq!(hit.map(|h| h.points), Some(30), "{s:?}");
        assert!(!s.quarantined, "CGNAT-sized sharing is tolerated");
    }

    #[test]
    fn a_bonus_abuse_ring_on_one_device_is_quarantined_from_the_fourth_player_and_escalates() {
        let sc = scorer();
        let scores: Vec<Score> = (0..6)
            .map(|i| {
                sc.score_registration(&registration(
                    &format!("ring{i}"),
                    &format!("198.51.{i}.10"),
                    7,
                    T0 + i * 30 * MIN,
                ))
            })
            .collect();
        assert!(!scores[1].has(Signal::DeviceRegistrations));
        assert_eq!(scores[2].value, 50);
        assert!(scores[3].quarantined);
        let e = &scores[3].escalations;
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].signal, Signal::DeviceRegistrations);
        assert!(e[0].covers_registration(&registration("ring0", "1.1.1.1", 7, T0)));
        assert!(!e[0].covers_registration(&registration("x", "1.1.1.1", 8, T0)));
    }

    #[test]
    fn a_registration_without_a_click_fires_no_click_based_signals() {
        let sc = scorer();
        let mut r = registration("p1", "198.51.100.4", 1, T0);
        r.click = None;
        r.country = cc("FR");
        r.device_fingerprint = Some(fp(2));
        let s = sc.score_registration(&r);
        assert_eq!(s.value, 0, "{s:?}");
    }

    #[test]
    fn injection_mismatches_and_the_click_score_add_up_on_a_registration() {
        let sc = scorer();
        let mut r = registration("p1", "198.51.100.4", 1, T0);
        r.country = cc("FR");
        r.device_fingerprint = Some(fp(2));
        r.click = Some(ClickContext {
            clicked_at_ms: T0 - 2_000,
            device_fingerprint: fp(1),
            country: cc("DE"),
            click_score: 40,
        });
        let s = sc.score_registration(&r);
        let codes: Vec<&str> = s.hits.iter().map(|h| h.signal.code()).collect();
        assert_eq!(
            codes,
            [
                "click_injection",
                "fingerprint_mismatch",
                "country_mismatch",
                "click_carryover"
            ]
        );
        assert_eq!(s.value, 100, "70 + 20 + 15 + 20, capped");
        assert!(s.quarantined);
    }

    #[test]
    fn an_affiliate_whose_registrations_mostly_come_days_after_the_click_is_flagged_for_click_flooding(
    ) {
        let sc = scorer();
        let day = 24 * 60 * MIN;
        let mut scores = Vec::new();
        for i in 0..30u64 {
            let mut r = registration(
                &format!("p{i}"),
                &format!("198.51.{i}.1"),
                i as u8,
                T0 + i * 60 * MIN,
            );
            // 4 in 5 come three days after the click.
            let ctit = if i % 5 == 0 { 30 * MIN } else { 3 * day };
            if let Some(c) = r.click.as_mut() {
                c.clicked_at_ms = r.registered_at_ms - ctit;
            }
            scores.push((ctit, sc.score_registration(&r)));
        }
        let first = scores
            .iter()
            .position(|(_, s)| s.has(Signal::ClickFlooding))
            .expect("flagged");
        assert_eq!(first, 19, "judged from the 20th registration on");
        assert_eq!(scores[first].1.escalations.len(), 1);
        assert!(scores
            .iter()
            .filter(|(c, _)| *c == 30 * MIN)
            .all(|(_, s)| !s.has(Signal::ClickFlooding)));
    }

    #[test]
    fn first_deposits_of_several_players_on_one_device_are_quarantined_and_carry_the_registration_score(
    ) {
        let sc = scorer();
        let deposit = |player: &str, at, score| FirstDepositFacts {
            brand_id: brand(1),
            brand_player_id: player.into(),
            deposited_at_ms: at,
            device_key: Some(fp(3)),
            registration_score: score,
        };
        assert_eq!(sc.score_first_deposit(&deposit("a", T0, 0)).value, 0);
        assert_eq!(sc.score_first_deposit(&deposit("b", T0 + MIN, 0)).value, 0);
        assert_eq!(
            sc.score_first_deposit(&deposit("c", T0 + 2 * MIN, 0)).value,
            50
        );
        let s = sc.score_first_deposit(&deposit("d", T0 + 3 * MIN, 66));
        assert_eq!(s.value, 66 + 33);
        assert!(s.has(Signal::RegistrationCarryover) && s.quarantined);
        assert_eq!(s.escalations.len(), 1);
    }

    #[test]
    fn a_brand_policy_applies_to_that_brand_only_and_a_reload_applies_to_the_next_event() {
        let sc = scorer();
        let mut strict = FraudPolicy::builtin();
        strict.version = "strict.1".into();
        strict.datacenter_asn.points = 90;
        let policies =
            FraudPolicies::new(FraudPolicy::builtin(), [(brand(1), strict)]).expect("valid");
        let mut c = click("198.51.100.1", T0);
        c.asn = 14061;
        assert_eq!(sc.score_click(&c).value, 50);
        sc.replace_policies(Arc::new(policies));
        let s = sc.score_click(&c);
        // A hosting ASN is a weak signal: whatever its points, it never holds
        // a click on its own (VPN users); the population sweep judges links.
        assert_eq!(
            (s.value, s.quarantined, s.policy_version.as_str()),
            (90, false, "strict.1")
        );
        c.brand_id = brand(2);
        assert_eq!(sc.score_click(&c).value, 50);
    }

    #[test]
    fn a_score_serialises_with_signal_codes_and_escalation_scopes() {
        let sc = scorer();
        let s = (0..32)
            .map(|i| sc.score_click(&click("203.0.113.7", T0 + i * 1_000)))
            .last()
            .expect("scored");
        let json = serde_json::to_value(&s).expect("json");
        assert_eq!(json["value"], 60);
        assert_eq!(json["quarantined"], true);
        assert_eq!(json["hits"][0]["signal"], "ip_velocity");
        assert_eq!(
            json["hits"][0]["detail"],
            "32 clicks from 203.0.113.7 on link AbC123xyz0 in 10 min (limit 20)"
        );
        assert_eq!(json["escalations"][0]["scope"]["kind"], "link_ip");
        assert_eq!(json["escalations"][0]["scope"]["network"], "203.0.113.7/32");
        let back: Score = serde_json::from_value(json).expect("round trip");
        assert_eq!(back, s);
    }

    #[test]
    fn a_click_baseline_restores_velocity_after_a_restart_without_double_counting() {
        // After a restart, a new scorer gets ClickHouse's rows before the
        // cutoff (this instance's 15 earlier clicks plus another's 5).
        let sc = scorer();
        let cutoff = aligned_cutoff(T0 + 2 * MIN, MIN, CLICK_BUCKET_MS);
        let row = |ip: &str, n| ClickBaselineRow {
            brand_id: brand(1),
            link_code: ShortCode::parse("AbC123xyz0").expect("code"),
            ip: ip.parse().expect("ip"),
            bucket_start_ms: T0 / MIN * MIN,
            clicks: n,
        };
        let done =
            sc.absorb_click_baseline(cutoff, [row("203.0.113.7", 15), row("203.0.113.7", 5)]);
        assert_eq!(done.rows, 1, "rows of one key and bucket are summed");
        let s = sc.score_click(&click("203.0.113.7", T0 + 2 * MIN));
        assert!(s.has(Signal::IpVelocity), "21 clicks: {s:?}");
        // Refreshing with the same baseline does not double count.
        sc.absorb_click_baseline(cutoff, [row("203.0.113.7", 20)]);
        let s = sc.score_click(&click("203.0.113.7", T0 + 2 * MIN));
        assert_eq!(s.hits[0].detail.split(' ').next(), Some("22"));
    }

    #[test]
    fn a_registration_baseline_is_idempotent_and_counts_other_instances_players() {
        let sc = scorer();
        sc.score_registration(&registration("p1", "198.51.100.4", 1, T0));
        let row = |p: &str| RegistrationBaselineRow {
            brand_id: brand(1),
            brand_player_id: p.into(),
            registered_at_ms: T0,
            ip: Some("198.51.100.4".parse().expect("ip")),
            device_key: None,
        };
        assert_eq!(
            sc.absorb_registration_baseline([row("p1"), row("p2"), row("p3")]),
            3
        );
        sc.absorb_registration_baseline([row("p1"), row("p2"), row("p3")]);
        let s = sc.score_registration(&registration("p4", "198.51.100.4", 4, T0 + MIN));
        assert!(s.hits[0].detail.starts_with("4 players"), "{s:?}");
    }

    #[test]
    fn an_affiliate_baseline_restores_click_flooding_figures() {
        let sc = scorer();
        let cutoff = aligned_cutoff(T0, 0, AFFILIATE_BUCKET_MS);
        sc.absorb_affiliate_baseline(
            cutoff,
            [AffiliateBaselineRow {
                brand_id: brand(1),
                affiliate_id: affiliate(1),
                bucket_start_ms: cutoff - AFFILIATE_BUCKET_MS,
                registrations: 25,
                long_ctit: 20,
            }],
        );
        let mut r = registration("p1", "198.51.100.4", 1, T0);
        if let Some(c) = r.click.as_mut() {
            c.clicked_at_ms = T0 - 48 * 60 * MIN;
        }
        let s = sc.score_registration(&r);
        assert!(s.has(Signal::ClickFlooding), "{s:?}");
        assert!(s.hits.iter().any(|h| h.detail.contains("21 of 26")));
    }

    #[test]
    fn the_scorer_is_shared_across_threads_and_loses_no_counts() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Scorer>();
        let sc = Arc::new(scorer());
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let sc = sc.clone();
                std::thread::spawn(move || {
                    for i in 0..10 {
                        sc.score_click(&click("203.0.113.7", T0 + i));
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().expect("thread");
        }
        let s = sc.score_click(&click("203.0.113.7", T0 + 100));
        assert!(s.hits[0].detail.starts_with("41 clicks"), "{s:?}");
    }

    #[test]
    fn keys_older_than_the_longest_window_are_reused_without_counting_evictions() {
        let capacity = Capacity {
            registration_keys: 64,
            ..Capacity::small()
        };
        let sc = Scorer::new(Arc::new(FraudPolicies::builtin()), capacity);
        // One registration an hour for ten days, each from a new IP and
        // device: at most 24 IPs are inside the 24 h window, but all 240
        // devices inside the 30-day window, in tables of 64 keys.
        for i in 0..240u64 {
            let mut r = registration(
                &format!("p{i}"),
                &format!("198.51.{}.{}", i / 200, i % 200 + 1),
                0,
                T0 + i * 60 * MIN,
            );
            r.device_key = Hash128::parse(&format!("{:032x}", i + 1)).ok();
            sc.score_registration(&r);
        }
        let stats = sc.table_stats();
        assert_eq!(stats[2].name, "registration_ip");
        assert_eq!(stats[2].evictions, 0, "{:?}", stats[2]);
        assert!(stats[3].evictions > 0, "{:?}", stats[3]);
    }

    #[test]
    fn memory_and_key_counts_cover_every_table() {
        let sc = scorer();
        sc.score_click(&click("203.0.113.7", T0));
        let stats = sc.table_stats();
        let names: Vec<&str> = stats.iter().map(|s| s.name).collect();
        assert_eq!(
            names,
            [
                "click_ip",
                "click_subnet",
                "registration_ip",
                "registration_device",
                "deposit_device",
                "affiliate_ctit"
            ]
        );
        assert_eq!((stats[0].keys, stats[1].keys, stats[2].keys), (1, 1, 0));
        let total = sc.approx_memory_bytes();
        let planned = Capacity::small().approx_memory_bytes();
        assert!(
            total >= planned && total < planned + planned / 50,
            "{total} vs {planned}"
        );
        assert!(format!("{sc:?}").contains("click_ip"));
    }

    #[test]
    fn the_default_capacity_plans_about_270_mb() {
        let mb = Capacity::default().approx_memory_bytes() / 1_000_000;
        assert_eq!(mb, 269);
    }

    #[test]
    fn the_baseline_plan_follows_the_longest_windows_of_the_policies() {
        let plan = scorer().baseline_plan();
        assert_eq!(plan.click_bucket_ms, 60_000);
        assert_eq!(plan.click_lookback_ms, 10 * MIN);
        assert_eq!(plan.registration_lookback_ms, 30 * 24 * 60 * MIN);
        assert_eq!(plan.affiliate_lookback_ms, 30 * 24 * 60 * MIN);
        assert_eq!(aligned_cutoff(125_000, 0, MIN), 120_000);
        assert_eq!(aligned_cutoff(125_000, 60_000, MIN), 60_000);
        assert_eq!(aligned_cutoff(5_000, 60_000, MIN), 0);
    }
}
