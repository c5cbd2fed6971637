//! The population sweep's decision (pure): which groups of clicks on a link
//! converted so far below the link's (or the brand's) normal rate that they
//! cannot be people — a click farm spread thin over a /22, scripted traffic
//! out of a hosting network — judged by shape, not by rate.
//!
//! Owns the grouping (IPv4 /22 or IPv6 /48 per link; and all clicks of a
//! link from hosting networks), the baseline choice and the statistical test. Does not
//! query anything or read a clock: the caller aggregates stored clicks into
//! [`ClickTally`] rows (clicks older than the policy's `settle_minutes`,
//! within `lookback_hours`) and holds the unconverted clicks of each
//! [`Finding`]. See `docs/fraud.md`, "Conversion shortfall".

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;

use clickstitch_shared::{BrandId, ShortCode};
use serde::{Deserialize, Serialize};

use super::policy::FraudPolicies;
use super::signals::{Network, Signal, SignalHit};

/// Human clicks of one link from one address (or a /24 standing for its
/// addresses) and ASN, with how many of them a registration reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClickTally {
    /// The brand.
    pub brand_id: BrandId,
    /// The link.
    pub link_code: ShortCode,
    /// An address of the group (a /24's first address will do).
    pub ip: IpAddr,
    /// The network's ASN (0 unknown).
    pub asn: u32,
    /// Human clicks.
    pub clicks: u64,
    /// Of which reported by a registration.
    pub converted: u64,
}

/// Which clicks of a link a finding covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ClickGroup {
    /// Clicks from an IPv4 /22 or IPv6 /48.
    Block {
        /// The network.
        network: Network,
    },
    /// Clicks from any hosting / datacenter network (the ASNs the brand's
    /// `datacenter_asn` rule lists): the link's share of datacenter traffic,
    /// however many clouds a script is spread over.
    Hosting,
}

impl fmt::Display for ClickGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Block { network } => write!(f, "{network}"),
            Self::Hosting => f.write_str("hosting networks"),
        }
    }
}

/// A flagged group: hold its clicks that no registration reported.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// The brand.
    pub brand_id: BrandId,
    /// The link.
    pub link_code: ShortCode,
    /// Which clicks.
    pub group: ClickGroup,
    /// The group's clicks.
    pub clicks: u64,
    /// Of which converted.
    pub converted: u64,
    /// Conversions the baseline rate predicts.
    pub expected: f64,
    /// For [`ClickGroup::Hosting`]: the hosting ASNs its clicks came from
    /// (sorted); empty for a block.
    pub asns: Vec<u32>,
    /// The hit to add to each held click.
    pub hit: SignalHit,
}

impl Finding {
    /// Whether a click from `ip` in `asn` (on the finding's link) belongs
    /// to the flagged group.
    pub fn covers(&self, ip: Option<IpAddr>, asn: u32) -> bool {
        match self.group {
            ClickGroup::Block { network } => ip.is_some_and(|ip| network.contains(ip)),
            ClickGroup::Hosting => self.asns.binary_search(&asn).is_ok(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Count {
    clicks: u64,
    converted: u64,
}

impl Count {
    fn add(&mut self, clicks: u64, converted: u64) {
        self.clicks += clicks;
        self.converted += converted.min(clicks);
    }
}

/// A conversion rate's parts, with each network's share capped.
#[derive(Debug, Clone, Copy, Default)]
struct Rate {
    clicks: f64,
    converted: f64,
}

impl Rate {
    /// A group's share of a baseline: at most `cap` clicks, conversions
    /// scaled alike.
    fn capped(count: Count, cap: u32) -> Self {
        if count.clicks == 0 {
            return Self::default();
        }
        let clicks = count.clicks.min(u64::from(cap.max(1))) as f64;
        Self {
            clicks,
            converted: count.converted as f64 * clicks / count.clicks as f64,
        }
    }

    fn add(&mut self, other: Rate) {
        self.clicks += other.clicks;
        self.converted += other.converted;
    }

    fn minus(self, other: Rate) -> Rate {
        Rate {
            clicks: (self.clicks - other.clicks).max(0.0),
            converted: (self.converted - other.converted).max(0.0),
        }
    }
}

/// Upper bound on P(X ≤ k) for X ~ Binomial(n, p) with k < n·p, as its
/// natural logarithm: −n · KL(k/n ‖ p) (Chernoff). Conservative: the true
/// tail is smaller, so a group flagged by the bound is flagged by the
/// exact test too.
fn ln_tail_bound(n: u64, k: u64, p: f64) -> f64 {
    if n == 0 || p <= 0.0 {
        return 0.0;
    }
    let n_f = n as f64;
    let q = (k as f64 / n_f).min(1.0);
    if q >= p {
        return 0.0;
    }
    let p = p.min(1.0 - 1e-12);
    let left = if q > 0.0 { q * (q / p).ln() } else { 0.0 };
    let right = (1.0 - q) * ((1.0 - q) / (1.0 - p)).ln();
    -(n_f * (left + right))
}

/// Judges every group of `tallies` under each brand's policy
/// (`conversion_shortfall`, and `datacenter_asn` for which ASNs are
/// hosting networks). Deterministic: findings are sorted by brand, link and
/// group.
pub fn sweep(policies: &FraudPolicies, tallies: &[ClickTally]) -> Vec<Finding> {
    let mut groups: HashMap<(BrandId, &ShortCode, ClickGroup), Count> = HashMap::new();
    let mut hosting_asns: HashMap<(BrandId, &ShortCode), Vec<u32>> = HashMap::new();
    for t in tallies {
        let policy = policies.get(t.brand_id);
        let block = ClickGroup::Block {
            network: Network::block_of(t.ip),
        };
        groups
            .entry((t.brand_id, &t.link_code, block))
            .or_default()
            .add(t.clicks, t.converted);
        if policy.datacenter_asn.lists(t.asn) {
            groups
                .entry((t.brand_id, &t.link_code, ClickGroup::Hosting))
                .or_default()
                .add(t.clicks, t.converted);
            hosting_asns
                .entry((t.brand_id, &t.link_code))
                .or_default()
                .push(t.asn);
        }
    }
    // The baselines: every network counts at most `min_clicks` clicks (its
    // conversions scaled alike), so that a farm or a flood, however big,
    // barely moves the rate it is compared with.
    let mut brands: HashMap<BrandId, Rate> = HashMap::new();
    let mut links: HashMap<(BrandId, &ShortCode), Rate> = HashMap::new();
    for ((brand, link, group), count) in &groups {
        if let ClickGroup::Block { .. } = group {
            let cap = policies.get(*brand).conversion_shortfall.min_clicks;
            let rate = Rate::capped(*count, cap);
            brands.entry(*brand).or_default().add(rate);
            links.entry((*brand, *link)).or_default().add(rate);
        }
    }
    let mut out = Vec::new();
    for ((brand, link, group), count) in &groups {
        let (brand, link, group, count) = (*brand, *link, *group, *count);
        let rule = &policies.get(brand).conversion_shortfall;
        if rule.points == 0 || count.clicks < u64::from(rule.min_clicks) {
            continue;
        }
        // A block's own share is taken out of its baselines; hosting clicks
        // are spread over blocks, so their baselines stay whole.
        let (own, asns) = match group {
            ClickGroup::Block { .. } => (Rate::capped(count, rule.min_clicks), Vec::new()),
            ClickGroup::Hosting => {
                let mut asns = hosting_asns
                    .get(&(brand, link))
                    .cloned()
                    .unwrap_or_default();
                asns.sort_unstable();
                asns.dedup();
                (Rate::default(), asns)
            }
        };
        let link_rest = links
            .get(&(brand, link))
            .copied()
            .unwrap_or_default()
            .minus(own);
        let brand_rest = brands.get(&brand).copied().unwrap_or_default().minus(own);
        let min_base = f64::from(rule.min_baseline_clicks);
        let (base, of_what) = if link_rest.clicks >= min_base && link_rest.converted > 0.0 {
            (link_rest, "the rest of the link")
        } else if brand_rest.clicks >= min_base && brand_rest.converted > 0.0 {
            (brand_rest, "the rest of the brand")
        } else {
            continue;
        };
        let p = base.converted / base.clicks;
        let expected = count.clicks as f64 * p;
        let low = (count.converted as f64) * 100.0 <= expected * f64::from(rule.max_ratio_percent);
        let bound = ln_tail_bound(count.clicks, count.converted, p);
        let significant = bound <= -(f64::from(rule.confidence_nines) * std::f64::consts::LN_10);
        if !(low && significant) {
            continue;
        }
        out.push(Finding {
            brand_id: brand,
            link_code: link.clone(),
            group,
            clicks: count.clicks,
            converted: count.converted,
            expected,
            asns,
            hit: SignalHit {
                signal: Signal::ConversionShortfall,
                points: rule.points,
                detail: format!(
                    "{} clicks from {group} on link {link} in {} h led to {} registrations; \
                     {of_what} converts {:.1} % of clicks, so {:.1} were expected \
                     (chance of so few below 1e-{})",
                    count.clicks,
                    rule.lookback_hours,
                    count.converted,
                    p * 100.0,
                    expected,
                    rule.confidence_nines
                ),
            },
        });
    }
    out.sort_by(|a, b| {
        (a.brand_id, a.link_code.as_str(), group_order(&a.group)).cmp(&(
            b.brand_id,
            b.link_code.as_str(),
            group_order(&b.group),
        ))
    });
    out
}

fn group_order(g: &ClickGroup) -> (u8, String) {
    match g {
        ClickGroup::Block { network } => (0, network.to_string()),
        ClickGroup::Hosting => (1, String::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn brand() -> BrandId {
        BrandId::from(uuid::Uuid::from_u128(1))
    }

    fn link(s: &str) -> ShortCode {
        ShortCode::parse(s).expect("code")
    }

    fn tally(link_code: &str, ip: [u8; 4], asn: u32, clicks: u64, converted: u64) -> ClickTally {
        ClickTally {
            brand_id: brand(),
            link_code: link(link_code),
            ip: IpAddr::V4(Ipv4Addr::from(ip)),
            asn,
            clicks,
            converted,
        }
    }

    /// 1 000 ordinary clicks on the link from many networks, 18 % converting.
    fn ordinary(link_code: &str) -> Vec<ClickTally> {
        (0..250u32)
            .map(|i| {
                let ip = [81, (i % 200) as u8 + 1, (i / 200) as u8 * 10 + 1, 7];
                tally(link_code, ip, 3320, 4, u64::from(i % 25 < 18))
            })
            .collect()
    }

    #[test]
    fn a_farm_spread_over_a_slash_22_that_never_converts_is_found() {
        let mut t = ordinary("AbC123xyz0");
        for host in 0..200u32 {
            let ip = [93, 184, 216 + (host % 4) as u8, (host / 4) as u8 + 1];
            t.push(tally("AbC123xyz0", ip, 3320, 2, 0));
        }
        let found = sweep(&FraudPolicies::builtin(), &t);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].group.to_string(), "93.184.216.0/22");
        assert_eq!((found[0].clicks, found[0].converted), (400, 0));
        assert!(found[0].hit.detail.contains("led to 0 registrations"));
    }

    #[test]
    fn a_shared_address_whose_people_convert_normally_is_not_found() {
        let mut t = ordinary("AbC123xyz0");
        // A campus CGNAT: 150 clicks from three addresses, 25 registrations.
        t.push(tally("AbC123xyz0", [100, 64, 1, 1], 3320, 60, 10));
        t.push(tally("AbC123xyz0", [100, 64, 1, 2], 3320, 50, 8));
        t.push(tally("AbC123xyz0", [100, 64, 1, 3], 3320, 40, 7));
        assert!(sweep(&FraudPolicies::builtin(), &t).is_empty());
    }

    #[test]
    fn a_small_group_without_conversions_is_not_enough_evidence() {
        let mut t = ordinary("AbC123xyz0");
        t.push(tally("AbC123xyz0", [93, 184, 216, 1], 3320, 25, 0));
        assert!(sweep(&FraudPolicies::builtin(), &t).is_empty());
    }

    #[test]
    fn scripted_clicks_from_a_hosting_network_are_grouped_by_asn_across_blocks() {
        let mut t = ordinary("AbC123xyz0");
        // AS16509 (AWS) is in the hosting dataset: 120 clicks over 60 /22s.
        for i in 0..60u8 {
            t.push(tally(
                "AbC123xyz0",
                [3, i.wrapping_mul(4), 1, 1],
                16509,
                2,
                0,
            ));
        }
        let found = sweep(&FraudPolicies::builtin(), &t);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].group, ClickGroup::Hosting);
        assert_eq!(found[0].asns, [16509]);
        assert!(found[0].covers(None, 16509) && !found[0].covers(None, 3320));
    }

    #[test]
    fn a_farm_on_its_own_link_is_judged_against_the_brand() {
        let mut t = ordinary("AbC123xyz0");
        for host in 0..100u8 {
            t.push(tally("ZzZ987abc0", [93, 184, 216, host + 1], 3320, 1, 0));
        }
        let found = sweep(&FraudPolicies::builtin(), &t);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].hit.detail.contains("the rest of the brand"));
    }

    #[test]
    fn the_tail_bound_is_conservative_against_the_exact_binomial_tail() {
        // P(X = 0) for n = 70, p = 0.18 is 0.82^70.
        let exact = 70.0 * 0.82f64.ln();
        assert!((ln_tail_bound(70, 0, 0.18) - exact).abs() < 1e-9);
        // P(X ≤ 5) for n = 200, p = 0.18: exact ≈ 1e-11; the bound is above it.
        let bound = ln_tail_bound(200, 5, 0.18);
        assert!(
            bound > (2.5e-12f64).ln() && bound < (1e-6f64).ln(),
            "{bound}"
        );
        assert_eq!(ln_tail_bound(100, 30, 0.18), 0.0);
    }
}
