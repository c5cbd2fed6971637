//! The fraud signals: their stable codes ([`Signal`]), what a fired signal
//! records ([`SignalHit`]), the networks IPs are grouped by ([`Network`]),
//! and one small pure decision function per signal.
//!
//! Owns "given these facts and counts, does the signal fire, for how many
//! points, and how is that explained". Does not count anything (the scorer
//! asks the windows and passes counts in), read a clock or do IO.
//!
//! Points: a yes/no signal adds its policy `points`. A count signal (more
//! than `limit` events or players in a window) adds its `points` when the
//! count first exceeds the limit and scales with the count beyond it, up to
//! twice its points (and never above 100), see [`count_points`]. A
//! carry-over adds a percentage of the earlier stage's score.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use clickstitch_shared::bot::BotReason;
use clickstitch_shared::fingerprint::Hash128;
use clickstitch_shared::{AffiliateId, CountryCode, ShortCode};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::policy::{
    AsnRule, CarryRule, DistinctRule, FlatRule, FloodingRule, InjectionRule, VelocityRule,
};

/// A fraud signal. The serde form is the stable snake_case code stored with
/// every score ([`Signal::code`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Signal {
    /// Too many clicks from one IP (IPv6: /64) on one link.
    IpVelocity,
    /// Too many clicks from one /24 (IPv6: /48) on one link.
    SubnetVelocity,
    /// Too many distinct players registering from one IP.
    IpRegistrations,
    /// Too many distinct players registering from one device.
    DeviceRegistrations,
    /// Too many distinct players making a first deposit from one device.
    DeviceDeposits,
    /// The registration's device differs from the click's.
    FingerprintMismatch,
    /// The edge marked the click as a bot.
    BotUserAgent,
    /// The click or registration came from a hosting / datacenter ASN.
    DatacenterAsn,
    /// The registration came too soon after (or before) the click.
    ClickInjection,
    /// The affiliate's registrations mostly come long after the click.
    ClickFlooding,
    /// The registration's country differs from the click's.
    CountryMismatch,
    /// Part of the click's score, carried to its registration.
    ClickCarryover,
    /// Part of the registration's score, carried to the first deposit.
    RegistrationCarryover,
    /// A network's clicks on a link converted far below the link's (or the
    /// brand's) rate: a farm or script, found by the population sweep.
    ConversionShortfall,
}

impl Signal {
    /// Every signal.
    pub const ALL: [Signal; 14] = [
        Signal::IpVelocity,
        Signal::SubnetVelocity,
        Signal::IpRegistrations,
        Signal::DeviceRegistrations,
        Signal::DeviceDeposits,
        Signal::FingerprintMismatch,
        Signal::BotUserAgent,
        Signal::DatacenterAsn,
        Signal::ClickInjection,
        Signal::ClickFlooding,
        Signal::CountryMismatch,
        Signal::ClickCarryover,
        Signal::RegistrationCarryover,
        Signal::ConversionShortfall,
    ];

    /// The stable code, e.g. `ip_velocity`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::IpVelocity => "ip_velocity",
            Self::SubnetVelocity => "subnet_velocity",
            Self::IpRegistrations => "ip_registrations",
            Self::DeviceRegistrations => "device_registrations",
            Self::DeviceDeposits => "device_deposits",
            Self::FingerprintMismatch => "fingerprint_mismatch",
            Self::BotUserAgent => "bot_user_agent",
            Self::DatacenterAsn => "datacenter_asn",
            Self::ClickInjection => "click_injection",
            Self::ClickFlooding => "click_flooding",
            Self::CountryMismatch => "country_mismatch",
            Self::ClickCarryover => "click_carryover",
            Self::RegistrationCarryover => "registration_carryover",
            Self::ConversionShortfall => "conversion_shortfall",
        }
    }

    /// Whether the signal is strong evidence on its own. Weak signals —
    /// a hosting ASN (VPN users), several players on one IP (CGNAT, NAT
    /// families, campus Wi-Fi), header fingerprint or country differences
    /// between click and registration (travellers, a second device), and
    /// a carry-over of an earlier stage that was not itself held — add
    /// points and explanation, but no sum of them holds an event: a hold
    /// needs at least one strong signal (or a carry-over of a held stage).
    pub fn is_strong(&self) -> bool {
        !matches!(
            self,
            Self::IpRegistrations
                | Self::FingerprintMismatch
                | Self::DatacenterAsn
                | Self::CountryMismatch
                | Self::ClickCarryover
                | Self::RegistrationCarryover
        )
    }

    /// Parses a code.
    pub fn parse(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.code() == code)
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// One fired signal of a score: which, how many points, and why in words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignalHit {
    /// The signal.
    pub signal: Signal,
    /// Points it added (before the score's cap at 100).
    pub points: u8,
    /// Human-readable explanation, e.g. "23 clicks from 203.0.113.7 on link
    /// AbC123xyz0 in 10 min (limit 20)".
    pub detail: String,
}

/// An IP network: an address with its prefix length, the host bits zeroed.
/// Shown and serialised as `203.0.113.0/24`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Network {
    addr: IpAddr,
    prefix: u8,
}

impl Network {
    /// The "one user" network of an address: an IPv4 address itself (/32),
    /// an IPv6 address's /64 (one household or phone rotates addresses
    /// inside its /64). IPv4-mapped IPv6 addresses count as IPv4.
    pub fn host_of(ip: IpAddr) -> Self {
        Self::of(ip, 32, 64)
    }

    /// The "one site" network of an address: IPv4 /24, IPv6 /48.
    pub fn subnet_of(ip: IpAddr) -> Self {
        Self::of(ip, 24, 48)
    }

    /// The "one operator block" of an address: IPv4 /22, IPv6 /48 (the
    /// population sweep's grouping: a farm spread over a /22 is one group).
    pub fn block_of(ip: IpAddr) -> Self {
        Self::of(ip, 22, 48)
    }

    fn of(ip: IpAddr, v4_prefix: u8, v6_prefix: u8) -> Self {
        match ip.to_canonical() {
            IpAddr::V4(v4) => Self::v4(v4, v4_prefix),
            IpAddr::V6(v6) => Self::v6(v6, v6_prefix),
        }
    }

    fn v4(v4: Ipv4Addr, prefix: u8) -> Self {
        let prefix = prefix.min(32);
        let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
        Self {
            addr: IpAddr::V4(Ipv4Addr::from(u32::from(v4) & mask)),
            prefix,
        }
    }

    fn v6(v6: Ipv6Addr, prefix: u8) -> Self {
        let prefix = prefix.min(128);
        let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
        Self {
            addr: IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask)),
            prefix,
        }
    }

    /// How explanations name it: a single IPv4 address bare, anything else
    /// with its prefix.
    pub fn host_label(&self) -> String {
        if self.prefix == 32 {
            self.addr.to_string()
        } else {
            self.to_string()
        }
    }

    /// Whether `ip` lies in this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let other = match ip.to_canonical() {
            IpAddr::V4(v4) => Self::v4(v4, self.prefix),
            IpAddr::V6(v6) => Self::v6(v6, self.prefix),
        };
        other == *self
    }

    /// The network address.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl fmt::Debug for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Network({self})")
    }
}

impl FromStr for Network {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("expected an IP network such as 203.0.113.0/24, got {s:?}");
        let (addr, prefix) = s.split_once('/').ok_or_else(bad)?;
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        let net = match addr {
            IpAddr::V4(v4) if (1..=32).contains(&prefix) => Self::v4(v4, prefix),
            IpAddr::V6(v6) if (1..=128).contains(&prefix) => Self::v6(v6, prefix),
            _ => return Err(bad()),
        };
        if net.addr == addr {
            Ok(net)
        } else {
            Err(bad())
        }
    }
}

impl Serialize for Network {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Network {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Points of a count signal: 0 up to `limit`; above it, `points ×
/// count / (limit + 1)` (so exactly `points` at the first count over the
/// limit, growing linearly), capped at twice `points` and at 100. Integer
/// arithmetic, rounded down.
pub fn count_points(points: u8, limit: u32, count: u32) -> u8 {
    if count <= limit || points == 0 {
        return 0;
    }
    let scaled = u64::from(points) * u64::from(count) / (u64::from(limit) + 1);
    let capped = scaled.min(2 * u64::from(points)).min(100);
    u8::try_from(capped).unwrap_or(100)
}

/// The smallest count at which a count signal alone reaches `threshold`
/// points, if it ever does.
pub fn quarantine_count(points: u8, limit: u32, threshold: u8) -> Option<u32> {
    let max = count_points(points, limit, u32::MAX);
    if max < threshold {
        return None;
    }
    // points × c / (limit + 1) >= threshold  ⇔  c >= ceil(threshold × (limit + 1) / points)
    let need = (u64::from(threshold) * (u64::from(limit) + 1)).div_ceil(u64::from(points));
    let c = u32::try_from(need.max(u64::from(limit) + 1)).unwrap_or(u32::MAX);
    Some(c)
}

fn shown(count: u32, saturated_at: Option<u32>) -> String {
    match saturated_at {
        Some(max) if count >= max => format!("{count} or more"),
        _ => count.to_string(),
    }
}

/// A click the edge marked as a bot scores the bot weight.
pub fn bot_user_agent(rule: &FlatRule, bot: Option<BotReason>) -> Option<SignalHit> {
    let reason = bot?;
    (rule.points > 0).then(|| SignalHit {
        signal: Signal::BotUserAgent,
        points: rule.points,
        detail: format!("the edge marked the click as a bot ({})", reason.as_str()),
    })
}

/// A listed hosting / datacenter ASN scores the datacenter weight (ASN 0,
/// unknown, never does).
pub fn datacenter_asn(rule: &AsnRule, asn: u32) -> Option<SignalHit> {
    (rule.points > 0 && rule.lists(asn)).then(|| SignalHit {
        signal: Signal::DatacenterAsn,
        points: rule.points,
        detail: format!("AS{asn} is a hosting / datacenter network"),
    })
}

/// More than `limit` clicks from one IP on one link in the window.
pub fn ip_velocity(
    rule: &VelocityRule,
    clicks: u32,
    ip: Network,
    link: &ShortCode,
) -> Option<SignalHit> {
    let points = count_points(rule.points, rule.limit, clicks);
    let who = ip.host_label();
    (points > 0).then(|| SignalHit {
        signal: Signal::IpVelocity,
        points,
        detail: format!(
            "{clicks} clicks from {who} on link {link} in {} min (limit {})",
            rule.window_minutes, rule.limit
        ),
    })
}

/// More than `limit` clicks from one /24 (IPv6: /48) on one link in the
/// window.
pub fn subnet_velocity(
    rule: &VelocityRule,
    clicks: u32,
    subnet: Network,
    link: &ShortCode,
) -> Option<SignalHit> {
    let points = count_points(rule.points, rule.limit, clicks);
    (points > 0).then(|| SignalHit {
        signal: Signal::SubnetVelocity,
        points,
        detail: format!(
            "{clicks} clicks from {subnet} on link {link} in {} min (limit {})",
            rule.window_minutes, rule.limit
        ),
    })
}

/// The hit of a distinct-player count over its limit: "`n` players
/// `action` from `source` in `h` h (limit `l`)".
fn distinct_hit(
    signal: Signal,
    rule: &DistinctRule,
    players: u32,
    saturated_at: Option<u32>,
    action: &str,
    source: impl fmt::Display,
) -> Option<SignalHit> {
    let points = count_points(rule.points, rule.limit, players);
    (points > 0).then(|| SignalHit {
        signal,
        points,
        detail: format!(
            "{} players {action} from {source} in {} h (limit {})",
            shown(players, saturated_at),
            rule.window_hours,
            rule.limit
        ),
    })
}

/// More than `limit` distinct players registered from one IP in the window
/// (`saturated_at`: the count cannot go higher, it is shown as "n or more").
pub fn ip_registrations(
    rule: &DistinctRule,
    players: u32,
    saturated_at: Option<u32>,
    ip: Network,
) -> Option<SignalHit> {
    distinct_hit(
        Signal::IpRegistrations,
        rule,
        players,
        saturated_at,
        "registered",
        ip.host_label(),
    )
}

/// More than `limit` distinct players registered from one device in the
/// window (bonus abuse, multi-accounting).
pub fn device_registrations(
    rule: &DistinctRule,
    players: u32,
    saturated_at: Option<u32>,
    device: Hash128,
) -> Option<SignalHit> {
    distinct_hit(
        Signal::DeviceRegistrations,
        rule,
        players,
        saturated_at,
        "registered",
        format_args!("device {device}"),
    )
}

/// More than `limit` distinct players made a first deposit from one device
/// in the window.
pub fn device_deposits(
    rule: &DistinctRule,
    players: u32,
    saturated_at: Option<u32>,
    device: Hash128,
) -> Option<SignalHit> {
    distinct_hit(
        Signal::DeviceDeposits,
        rule,
        players,
        saturated_at,
        "made a first deposit",
        format_args!("device {device}"),
    )
}

/// The registration's device fingerprint differs from the click's (only
/// when the registration reports one).
pub fn fingerprint_mismatch(
    rule: &FlatRule,
    click: Hash128,
    registration: Option<Hash128>,
) -> Option<SignalHit> {
    let registration = registration?;
    (rule.points > 0 && click != registration).then(|| SignalHit {
        signal: Signal::FingerprintMismatch,
        points: rule.points,
        detail: format!("registered from device {registration}, clicked from device {click}"),
    })
}

/// The registration's country differs from the click's. Unknown (`XX`) and
/// Tor (`T1`) on either side do not count as a difference.
pub fn country_mismatch(
    rule: &FlatRule,
    click: CountryCode,
    registration: CountryCode,
) -> Option<SignalHit> {
    let comparable = click.is_geographic() && registration.is_geographic();
    (rule.points > 0 && comparable && click != registration).then(|| SignalHit {
        signal: Signal::CountryMismatch,
        points: rule.points,
        detail: format!("clicked from {click}, registered in {registration}"),
    })
}

/// The registration came less than `min_ctit_secs` after the click, or
/// before it: the click was injected at the last moment to steal the
/// attribution.
pub fn click_injection(
    rule: &InjectionRule,
    clicked_at_ms: u64,
    registered_at_ms: u64,
) -> Option<SignalHit> {
    if rule.points == 0 {
        return None;
    }
    let min_ms = u64::from(rule.min_ctit_secs) * 1000;
    let detail = if registered_at_ms < clicked_at_ms {
        format!(
            "the click came {} s after the registration",
            (clicked_at_ms - registered_at_ms).div_ceil(1000)
        )
    } else if registered_at_ms - clicked_at_ms < min_ms {
        format!(
            "registered {} s after the click (minimum {} s)",
            (registered_at_ms - clicked_at_ms) / 1000,
            rule.min_ctit_secs
        )
    } else {
        return None;
    };
    Some(SignalHit {
        signal: Signal::ClickInjection,
        points: rule.points,
        detail,
    })
}

/// An affiliate's registrations (with a click) in the flooding window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AffiliateCtit {
    /// Registrations with a click.
    pub registrations: u32,
    /// Of which more than `long_ctit_hours` after the click.
    pub long_ctit: u32,
}

impl AffiliateCtit {
    /// Whether these figures flag the affiliate: at least
    /// `min_registrations`, and a long share above the maximum.
    pub fn flagged(&self, rule: &FloodingRule) -> bool {
        self.registrations >= rule.min_registrations
            && u64::from(self.long_ctit) * 100
                > u64::from(rule.max_long_share_percent) * u64::from(self.registrations)
    }
}

/// A registration that came more than `long_ctit_hours` after its click,
/// through an affiliate most of whose registrations do: the click was most
/// likely sprayed, and the player organic. Short-CTIT registrations of the
/// same affiliate are not penalised.
pub fn click_flooding(
    rule: &FloodingRule,
    ctit_ms: u64,
    affiliate: AffiliateId,
    stats: AffiliateCtit,
) -> Option<SignalHit> {
    let long = ctit_ms > u64::from(rule.long_ctit_hours) * 3_600_000;
    (rule.points > 0 && long && stats.flagged(rule)).then(|| SignalHit {
        signal: Signal::ClickFlooding,
        points: rule.points,
        detail: format!(
            "affiliate {affiliate}: {} of {} registrations in {} days came more than {} h after the click ({}%, limit {}% once {} registrations); this one after {} h",
            stats.long_ctit,
            stats.registrations,
            rule.window_days,
            rule.long_ctit_hours,
            u64::from(stats.long_ctit) * 100 / u64::from(stats.registrations.max(1)),
            rule.max_long_share_percent,
            rule.min_registrations,
            ctit_ms / 3_600_000
        ),
    })
}

fn carried(rule: &CarryRule, earlier: u8) -> u8 {
    u8::try_from(u32::from(earlier.min(100)) * u32::from(rule.percent.min(100)) / 100)
        .unwrap_or(100)
}

/// `percent` of the attributed click's score, added to the registration.
pub fn click_carryover(rule: &CarryRule, click_score: u8) -> Option<SignalHit> {
    let points = carried(rule, click_score);
    (points > 0).then(|| SignalHit {
        signal: Signal::ClickCarryover,
        points,
        detail: format!(
            "the click scored {click_score}; {}% carried over",
            rule.percent
        ),
    })
}

/// `percent` of the registration's score, added to the first deposit.
pub fn registration_carryover(rule: &CarryRule, registration_score: u8) -> Option<SignalHit> {
    let points = carried(rule, registration_score);
    (points > 0).then(|| SignalHit {
        signal: Signal::RegistrationCarryover,
        points,
        detail: format!(
            "the registration scored {registration_score}; {}% carried over",
            rule.percent
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::FraudPolicy;

    fn policy() -> FraudPolicy {
        FraudPolicy::builtin()
    }

    fn link() -> ShortCode {
        ShortCode::parse("AbC123xyz0").expect("code")
    }

    fn fp(n: u8) -> Hash128 {
        Hash128::parse(&format!("{n:02x}").repeat(16)).expect("hash")
    }

    fn cc(s: &str) -> CountryCode {
        CountryCode::parse(s).expect("country")
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn every_signal_serialises_as_its_stable_code() {
        for s in Signal::ALL {
            let json = serde_json::to_string(&s).expect("json");
            assert_eq!(json, format!("\"{}\"", s.code()));
            assert_eq!(Signal::parse(s.code()), Some(s));
        }
    }

    #[test]
    fn a_count_signal_scores_its_weight_just_over_the_limit_and_at_most_double() {
        assert_eq!(count_points(40, 20, 20), 0);
        assert_eq!(count_points(40, 20, 21), 40);
        assert_eq!(count_points(40, 20, 31), 59);
        assert_eq!(count_points(40, 20, 32), 60);
        assert_eq!(count_points(40, 20, 1000), 80);
        assert_eq!(count_points(70, 1, 1000), 100);
        assert_eq!(count_points(0, 1, 1000), 0);
    }

    #[test]
    fn the_quarantine_count_is_the_first_count_whose_points_reach_the_threshold() {
        for (points, limit) in [(40, 20), (40, 60), (30, 3), (50, 2), (100, 1), (61, 5)] {
            let c = quarantine_count(points, limit, 60).expect("reachable");
            assert!(count_points(points, limit, c) >= 60, "{points} {limit} {c}");
            assert!(
                count_points(points, limit, c - 1) < 60,
                "{points} {limit} {c}"
            );
        }
        assert_eq!(quarantine_count(40, 20, 60), Some(32));
        assert_eq!(quarantine_count(40, 60, 60), Some(92));
        assert_eq!(quarantine_count(50, 2, 60), Some(4));
        assert_eq!(quarantine_count(25, 2, 60), None, "never above 50");
    }

    #[test]
    fn a_click_the_edge_marked_as_a_bot_scores_the_bot_weight() {
        let p = policy();
        let hit = bot_user_agent(&p.bot_user_agent, Some(BotReason::KnownBot)).expect("hit");
        assert_eq!((hit.signal, hit.points), (Signal::BotUserAgent, 100));
        assert!(hit.detail.contains("known_bot"));
        assert_eq!(bot_user_agent(&p.bot_user_agent, None), None);
    }

    #[test]
    fn a_click_from_a_hosting_asn_scores_the_datacenter_weight() {
        let p = policy();
        let hit = datacenter_asn(&p.datacenter_asn, 16509).expect("aws");
        assert_eq!((hit.signal, hit.points), (Signal::DatacenterAsn, 50));
        assert_eq!(hit.detail, "AS16509 is a hosting / datacenter network");
        assert_eq!(
            datacenter_asn(&p.datacenter_asn, 3320),
            None,
            "Deutsche Telekom"
        );
        assert_eq!(datacenter_asn(&p.datacenter_asn, 0), None, "unknown");
    }

    #[test]
    fn more_clicks_than_the_limit_from_one_ip_on_a_link_fire_ip_velocity() {
        let p = policy();
        let ip = Network::host_of(ip("203.0.113.7"));
        assert_eq!(ip_velocity(&p.ip_velocity, 20, ip, &link()), None);
        let hit = ip_velocity(&p.ip_velocity, 23, ip, &link()).expect("hit");
        assert_eq!(hit.points, 43);
        assert_eq!(
            hit.detail,
            "23 clicks from 203.0.113.7 on link AbC123xyz0 in 10 min (limit 20)"
        );
    }

    #[test]
    fn more_clicks_than_the_limit_from_one_slash_24_fire_subnet_velocity() {
        let p = policy();
        let net = Network::subnet_of(ip("203.0.113.7"));
        assert_eq!(subnet_velocity(&p.subnet_velocity, 60, net, &link()), None);
        let hit = subnet_velocity(&p.subnet_velocity, 61, net, &link()).expect("hit");
        assert_eq!(hit.points, 40);
        assert!(hit
            .detail
            .starts_with("61 clicks from 203.0.113.0/24 on link AbC123xyz0"));
    }

    #[test]
    fn ipv6_addresses_group_by_slash_64_per_user_and_slash_48_per_site() {
        let a = ip("2001:db8:1:2:aaaa::1");
        let b = ip("2001:db8:1:2:bbbb::2");
        let c = ip("2001:db8:1:3::1");
        assert_eq!(Network::host_of(a), Network::host_of(b));
        assert_ne!(Network::host_of(a), Network::host_of(c));
        assert_eq!(Network::subnet_of(a), Network::subnet_of(c));
        assert_eq!(Network::host_of(a).to_string(), "2001:db8:1:2::/64");
        assert_eq!(Network::subnet_of(a).to_string(), "2001:db8:1::/48");
        assert!(Network::subnet_of(a).contains(c));
        let mapped = ip("::ffff:203.0.113.9");
        assert_eq!(
            Network::host_of(mapped),
            Network::host_of(ip("203.0.113.9"))
        );
    }

    #[test]
    fn a_network_round_trips_through_its_text_form() {
        for text in ["203.0.113.0/24", "203.0.113.7/32", "2001:db8:1::/48"] {
            let n: Network = text.parse().expect("parse");
            assert_eq!(n.to_string(), text);
        }
        assert!(
            "203.0.113.7/24".parse::<Network>().is_err(),
            "host bits set"
        );
        assert!("203.0.113.0/33".parse::<Network>().is_err());
        let wide: Network = "203.0.0.0/16".parse().expect("any prefix");
        assert!(wide.contains(ip("203.0.113.7")));
        assert!(!wide.contains(ip("2001:db8::1")));
    }

    #[test]
    fn more_players_than_the_limit_registering_from_one_ip_fire_ip_registrations() {
        let p = policy();
        let net = Network::host_of(ip("198.51.100.4"));
        assert_eq!(ip_registrations(&p.ip_registrations, 3, None, net), None);
        let hit = ip_registrations(&p.ip_registrations, 4, None, net).expect("hit");
        assert_eq!(hit.points, 30);
        assert_eq!(
            hit.detail,
            "4 players registered from 198.51.100.4 in 24 h (limit 3)"
        );
        let sat = ip_registrations(&p.ip_registrations, 8, Some(8), net).expect("hit");
        assert!(
            sat.detail.starts_with("8 or more players"),
            "{}",
            sat.detail
        );
    }

    #[test]
    fn a_third_player_on_one_device_fires_device_registrations_and_a_fourth_quarantines() {
        let p = policy();
        let r = &p.device_registrations;
        assert_eq!(device_registrations(r, 2, None, fp(1)), None);
        assert_eq!(
            device_registrations(r, 3, None, fp(1)).expect("hit").points,
            50
        );
        assert_eq!(
            device_registrations(r, 4, None, fp(1)).expect("hit").points,
            66
        );
    }

    #[test]
    fn first_deposits_of_several_players_from_one_device_fire_device_deposits() {
        let p = policy();
        let hit = device_deposits(&p.device_deposits, 3, None, fp(2)).expect("hit");
        assert_eq!((hit.signal, hit.points), (Signal::DeviceDeposits, 50));
        assert!(hit.detail.contains("first deposit"));
    }

    #[test]
    fn a_registration_from_another_device_than_the_click_fires_fingerprint_mismatch() {
        let p = policy();
        let r = &p.fingerprint_mismatch;
        assert_eq!(fingerprint_mismatch(r, fp(1), Some(fp(1))), None);
        assert_eq!(fingerprint_mismatch(r, fp(1), None), None, "not reported");
        assert_eq!(
            fingerprint_mismatch(r, fp(1), Some(fp(2)))
                .expect("hit")
                .points,
            20
        );
    }

    #[test]
    fn a_registration_in_another_country_than_the_click_fires_country_mismatch() {
        let p = policy();
        let r = &p.country_mismatch;
        let hit = country_mismatch(r, cc("DE"), cc("FR")).expect("hit");
        assert_eq!(hit.detail, "clicked from DE, registered in FR");
        assert_eq!(country_mismatch(r, cc("DE"), cc("de")), None);
        assert_eq!(country_mismatch(r, CountryCode::UNKNOWN, cc("FR")), None);
        assert_eq!(country_mismatch(r, cc("DE"), CountryCode::TOR), None);
    }

    #[test]
    fn a_registration_two_seconds_after_the_click_is_click_injection() {
        let p = policy();
        let r = &p.click_injection;
        let hit = click_injection(r, 1_000_000, 1_002_000).expect("hit");
        assert_eq!((hit.signal, hit.points), (Signal::ClickInjection, 70));
        assert_eq!(hit.detail, "registered 2 s after the click (minimum 10 s)");
        assert_eq!(
            click_injection(r, 1_000_000, 1_010_000),
            None,
            "exactly 10 s"
        );
        let before = click_injection(r, 1_005_000, 1_000_000).expect("click after");
        assert_eq!(before.detail, "the click came 5 s after the registration");
    }

    #[test]
    fn a_long_ctit_registration_of_an_affiliate_with_mostly_long_ctits_is_click_flooding() {
        let p = policy();
        let r = &p.click_flooding;
        let aff = AffiliateId::from(uuid::Uuid::from_u128(7));
        let day = 86_400_000;
        let flagged = AffiliateCtit {
            registrations: 20,
            long_ctit: 13,
        };
        let hit = click_flooding(r, 2 * day, aff, flagged).expect("hit");
        assert_eq!(hit.points, 60);
        assert!(
            hit.detail.contains("13 of 20 registrations"),
            "{}",
            hit.detail
        );
        assert_eq!(
            click_flooding(r, day / 2, aff, flagged),
            None,
            "own CTIT short"
        );
        let too_few = AffiliateCtit {
            registrations: 19,
            long_ctit: 19,
        };
        assert_eq!(click_flooding(r, 2 * day, aff, too_few), None);
        let normal = AffiliateCtit {
            registrations: 100,
            long_ctit: 60,
        };
        assert_eq!(
            click_flooding(r, 2 * day, aff, normal),
            None,
            "60% is not above 60%"
        );
    }

    #[test]
    fn half_of_an_earlier_score_carries_over_by_default() {
        let p = policy();
        assert_eq!(click_carryover(&p.click_carryover, 0), None);
        assert_eq!(
            click_carryover(&p.click_carryover, 81).expect("hit").points,
            40
        );
        let hit = registration_carryover(&p.registration_carryover, 70).expect("hit");
        assert_eq!(
            (hit.signal, hit.points),
            (Signal::RegistrationCarryover, 35)
        );
    }
}
