//! The population sweep: every `fraud.sweep_interval_secs`, the stored
//! human clicks of the last `conversion_shortfall.lookback_hours` (older
//! than `settle_minutes`) are tallied per link, network and ASN; groups
//! that converted far below their baseline ([`crate::fraud::population`])
//! have their unconverted clicks held, each with the finding's signal,
//! points and sentence.
//!
//! Owns the IO around the pure decision: which windows to query per brand
//! policy, turning stored rows into tallies and holds, and the metrics. A
//! click is held once: clicks already held, and clicks a registration
//! reported, are left alone; a click whose stored score did not hold it is
//! escalated from that score, so its earlier signals stay listed. Brand
//! events still in the journal are shipped before a sweep reads. One bad
//! stored value (an unparsable link code or address) skips that row, never
//! the sweep.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use clickstitch_shared::{BrandId, ShortCode};
use uuid::Uuid;

use crate::fraud::{self, ClickGroup, ClickTally, Finding, FraudPolicies, SignalHit};
use crate::metrics::Metrics;
use crate::services::fraud::quarantine::{EntityKind, Quarantine};
use crate::store::fraud::{kind, FraudScoreRow, ScopeClickRow};
use crate::store::sweep::{BrandSet, ClickFilter};
use crate::store::writer::EventSink;
use crate::store::{Store, StoreError};

/// `escalated_by` of the rows the sweep writes.
pub const SWEEP_MARK: &str = "population_sweep";

/// Ids per `scores_of` query (keeps each query far below ClickHouse's
/// query size limit).
const IDS_PER_QUERY: usize = 1_000;

use clickstitch_domain::units::{HOUR_MS, MINUTE_MS};

/// What one sweep found and held.
#[derive(Debug, Clone, Default)]
pub struct SweepReport {
    /// The flagged groups.
    pub findings: Vec<Finding>,
    /// The rows written (clicks newly held).
    pub held: Vec<FraudScoreRow>,
    /// Stored tally rows skipped because a value did not parse.
    pub skipped_rows: usize,
}

/// The sweep service.
#[derive(Debug, Clone)]
pub struct PopulationSweep {
    quarantine: Arc<Quarantine>,
    store: Store,
    events: EventSink,
    metrics: Arc<Metrics>,
}

/// The brands sharing one (lookback, settle) window.
struct Window {
    lookback_hours: u32,
    settle_minutes: u32,
    brands: BrandSet,
}

/// One query per distinct window: the default policy's for every brand
/// without a different one, and one per other window.
fn windows(policies: &FraudPolicies) -> Vec<Window> {
    let of = |p: &fraud::FraudPolicy| {
        (
            p.conversion_shortfall.lookback_hours,
            p.conversion_shortfall.settle_minutes,
        )
    };
    let default = of(policies.default_policy());
    let mut others: HashMap<(u32, u32), Vec<Uuid>> = HashMap::new();
    for (brand, policy) in policies.brands() {
        if of(policy) != default {
            others.entry(of(policy)).or_default().push(brand.as_uuid());
        }
    }
    let mut excluded: Vec<Uuid> = others.values().flatten().copied().collect();
    excluded.sort_unstable();
    let mut out = vec![Window {
        lookback_hours: default.0,
        settle_minutes: default.1,
        brands: BrandSet::Except(excluded),
    }];
    let mut others: Vec<_> = others.into_iter().collect();
    others.sort_unstable();
    for ((lookback_hours, settle_minutes), mut brands) in others {
        brands.sort_unstable();
        out.push(Window {
            lookback_hours,
            settle_minutes,
            brands: BrandSet::Only(brands),
        });
    }
    out
}

/// The candidate query's coarse filter for a finding (refined by
/// [`Finding::covers`]).
fn click_filter(f: &Finding) -> ClickFilter {
    match f.group {
        ClickGroup::Block { network } => {
            let text = network.to_string();
            let prefix = match network.addr() {
                // A /22 lies inside its first two octets.
                IpAddr::V4(_) => text.split('.').take(2).collect::<Vec<_>>().join(".") + ".",
                // Textual IPv6 forms vary past the first group.
                IpAddr::V6(_) => text.split(':').next().unwrap_or_default().to_owned(),
            };
            ClickFilter::IpPrefix(prefix)
        }
        ClickGroup::Hosting => ClickFilter::Asns(f.asns.clone()),
    }
}

/// The row holding a click for a finding: its stored score (or a fresh
/// one) with the finding's hit added, at least the brand's threshold.
fn held_row(
    base: Option<FraudScoreRow>,
    click: &ScopeClickRow,
    f: &Finding,
    threshold: u8,
    policy_version: &str,
    now_ms: u64,
) -> FraudScoreRow {
    let mut row = base.unwrap_or_else(|| FraudScoreRow {
        brand_id: f.brand_id.as_uuid(),
        entity_kind: kind::CLICK,
        entity_id: click.click_id.to_string(),
        brand_player_id: String::new(),
        affiliate_id: Some(click.affiliate_id),
        link_code: f.link_code.to_string(),
        occurred_at: u32::try_from(click.clicked_at_ms / 1000).unwrap_or(u32::MAX),
        occurred_at_ms: click.clicked_at_ms,
        click_at_ms: click.clicked_at_ms,
        ip: click.ip.clone(),
        device_fingerprint: String::new(),
        device_key: String::new(),
        score: 0,
        quarantined: 0,
        policy_version: policy_version.to_owned(),
        signals: "[]".into(),
        escalated_by: String::new(),
        scored_at: 0,
        scored_at_ms: 0,
    });
    let mut hits: Vec<SignalHit> = serde_json::from_str(&row.signals).unwrap_or_default();
    hits.push(f.hit.clone());
    row.signals = serde_json::to_string(&hits).unwrap_or_else(|_| "[]".into());
    row.score = row
        .score
        .saturating_add(f.hit.points)
        .min(100)
        .max(threshold);
    row.quarantined = 1;
    row.escalated_by = SWEEP_MARK.to_owned();
    if row.policy_version.is_empty() {
        row.policy_version = policy_version.to_owned();
    }
    // Newer than the stored score (ReplacingMergeTree keeps the newest).
    row.scored_at = u32::try_from(now_ms / 1000).unwrap_or(u32::MAX);
    row.scored_at_ms = now_ms.max(row.scored_at_ms + 1);
    row
}

impl PopulationSweep {
    /// A sweep holding through `quarantine`; `events` is where brand
    /// events are written (a registration still in the journal must reach
    /// ClickHouse before its clicks are judged unconverted).
    pub fn new(
        quarantine: Arc<Quarantine>,
        store: Store,
        events: EventSink,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            quarantine,
            store,
            events,
            metrics,
        }
    }

    /// One sweep at `now_ms`: first waits until every brand event
    /// acknowledged so far is in ClickHouse.
    pub async fn run_once(&self, now_ms: u64) -> Result<SweepReport, StoreError> {
        self.events.all_in_clickhouse().await?;
        let policies = self.quarantine.scorer().policies();
        let mut report = SweepReport::default();
        // (group kind, findings, clicks newly held) for the metrics.
        let mut by_group = [("block", 0u64, 0u64), ("hosting", 0, 0)];
        for w in windows(&policies) {
            let from = now_ms.saturating_sub(u64::from(w.lookback_hours) * HOUR_MS);
            let to = now_ms.saturating_sub(u64::from(w.settle_minutes) * MINUTE_MS);
            if from >= to {
                continue;
            }
            let rows = self.store.click_tallies(&w.brands, from, to).await?;
            let mut tallies = Vec::with_capacity(rows.len());
            for r in rows {
                let (Ok(link_code), Ok(ip)) =
                    (ShortCode::parse(&r.link_code), r.network.parse::<IpAddr>())
                else {
                    report.skipped_rows += 1;
                    continue;
                };
                tallies.push(ClickTally {
                    brand_id: BrandId::from(r.brand_id),
                    link_code,
                    ip,
                    asn: r.asn,
                    clicks: r.clicks,
                    converted: r.converted,
                });
            }
            for f in fraud::sweep(&policies, &tallies) {
                let held = self.hold_finding(&f, &policies, from, to, now_ms).await?;
                let slot = &mut by_group[usize::from(f.group == ClickGroup::Hosting)];
                slot.1 += 1;
                slot.2 += held.len() as u64;
                report.held.extend(held);
                report.findings.push(f);
            }
        }
        if report.skipped_rows > 0 {
            tracing::warn!(
                skipped = report.skipped_rows,
                "population sweep: stored clicks with an unreadable link code or address were left out"
            );
        }
        self.metrics.fraud_sweep(by_group);
        Ok(report)
    }

    /// Holds the unconverted clicks of one finding that are not held yet.
    async fn hold_finding(
        &self,
        f: &Finding,
        policies: &FraudPolicies,
        from_ms: u64,
        to_ms: u64,
        now_ms: u64,
    ) -> Result<Vec<FraudScoreRow>, StoreError> {
        let brand = f.brand_id.as_uuid();
        let clicks: Vec<ScopeClickRow> = self
            .store
            .unreported_clicks(
                brand,
                f.link_code.as_str(),
                &click_filter(f),
                from_ms,
                to_ms,
            )
            .await?
            .into_iter()
            .filter(|c| f.covers(c.ip.parse().ok(), c.asn))
            .filter(|c| {
                !self
                    .quarantine
                    .is_held(f.brand_id, EntityKind::Click, &c.click_id.to_string())
            })
            .collect();
        let policy = policies.get(f.brand_id);
        let mut rows = Vec::with_capacity(clicks.len());
        for chunk in clicks.chunks(IDS_PER_QUERY) {
            let ids: Vec<String> = chunk.iter().map(|c| c.click_id.to_string()).collect();
            let mut stored: HashMap<String, FraudScoreRow> = self
                .store
                .scores_of(brand, kind::CLICK, &ids)
                .await?
                .into_iter()
                .map(|r| (r.entity_id.clone(), r))
                .collect();
            for (c, id) in chunk.iter().zip(&ids) {
                let base = stored.remove(id);
                if base.as_ref().is_some_and(|b| b.quarantined == 1) {
                    continue;
                }
                rows.push(held_row(
                    base,
                    c,
                    f,
                    policy.quarantine_threshold,
                    &policy.version,
                    now_ms,
                ));
            }
        }
        self.store.save_scores(&rows).await?;
        self.quarantine.hold(&rows);
        if !rows.is_empty() {
            tracing::info!(
                brand = %f.brand_id,
                link = %f.link_code,
                group = %f.group,
                clicks = f.clicks,
                converted = f.converted,
                held = rows.len(),
                "population sweep held clicks"
            );
        }
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fraud::{FraudPolicy, Network, Signal};

    fn finding(group: ClickGroup, asns: Vec<u32>) -> Finding {
        Finding {
            brand_id: BrandId::from(Uuid::from_u128(1)),
            link_code: ShortCode::parse("AbC123xyz0").expect("code"),
            group,
            clicks: 400,
            converted: 0,
            expected: 72.0,
            asns,
            hit: SignalHit {
                signal: Signal::ConversionShortfall,
                points: 70,
                detail: "400 clicks led to 0 registrations".into(),
            },
        }
    }

    fn click() -> ScopeClickRow {
        ScopeClickRow {
            click_id: Uuid::from_u128(7),
            clicked_at_ms: 1_790_000_000_000,
            affiliate_id: Uuid::from_u128(2),
            ip: "93.184.217.9".into(),
            asn: 3320,
        }
    }

    #[test]
    fn a_block_is_queried_by_its_first_two_octets_and_hosting_by_its_asns() {
        let block = ClickGroup::Block {
            network: Network::block_of("93.184.217.9".parse().expect("ip")),
        };
        assert_eq!(
            click_filter(&finding(block, vec![])),
            ClickFilter::IpPrefix("93.184.".into())
        );
        assert_eq!(
            click_filter(&finding(ClickGroup::Hosting, vec![16509, 24940])),
            ClickFilter::Asns(vec![16509, 24940])
        );
    }

    #[test]
    fn a_held_click_keeps_its_earlier_signals_and_reaches_the_threshold() {
        let f = finding(ClickGroup::Hosting, vec![16509]);
        let mut stored = held_row(None, &click(), &f, 60, "v1", 5);
        stored.quarantined = 0;
        stored.score = 20;
        stored.signals = r#"[{"signal":"datacenter_asn","points":20,"detail":"AS16509"}]"#.into();
        let row = held_row(Some(stored), &click(), &f, 60, "v1", 10);
        assert_eq!((row.score, row.quarantined), (90, 1));
        assert!(
            row.signals.contains("datacenter_asn") && row.signals.contains("conversion_shortfall")
        );
        assert_eq!(row.escalated_by, SWEEP_MARK);
        assert!(row.scored_at_ms > 5);
        let fresh = held_row(None, &click(), &f, 95, "v1", 10);
        assert_eq!(fresh.score, 95, "at least the threshold");
    }

    #[test]
    fn brands_with_their_own_window_get_their_own_query() {
        let brand = BrandId::from(Uuid::from_u128(3));
        let mut own = FraudPolicy::builtin();
        own.conversion_shortfall.lookback_hours = 24;
        let same = FraudPolicy::builtin();
        let policies = FraudPolicies::new(
            FraudPolicy::builtin(),
            [(brand, own), (BrandId::from(Uuid::from_u128(4)), same)],
        )
        .expect("valid");
        let w = windows(&policies);
        assert_eq!(w.len(), 2);
        assert_eq!(w[0].brands, BrandSet::Except(vec![brand.as_uuid()]));
        assert_eq!(
            (w[1].lookback_hours, &w[1].brands),
            (24, &BrandSet::Only(vec![brand.as_uuid()]))
        );
    }
}
