//! Prometheus metrics of the aggregator.
//!
//! This module owns the metric registry and its text rendering, nothing else:
//! the ingest, fraud and conversion code record into a shared [`Metrics`]
//! (one per process, behind the `Arc` of the application state), and the
//! `GET /metrics` route serves [`Metrics::try_render`] with [`CONTENT_TYPE`].
//! It must not talk to ClickHouse nor know about HTTP routing.
//!
//! Families (OpenMetrics text; counters carry the `_total` suffix):
//!
//! | family | type | labels |
//! |---|---|---|
//! | `clicks_total` | counter | `brand_id`, `verdict` |
//! | `fraud_score` | histogram, buckets 0, 10, …, 100 | `kind` |
//! | `fraud_score_avg` | gauge (running mean since start) | `kind` |
//! | `fraud_quarantined_total` | counter | `kind` |
//! | `fraud_review_decisions_total` | counter | `decision` |
//! | `conversion_latency_ms` | histogram, buckets 1 … 5000 ms | `event_type` |
//! | `fraud_window_keys`, `fraud_window_capacity`, `fraud_window_evictions` | gauge | `table` |
//! | `commission_runs_total` | counter | `outcome` (`ok`, `failed`) |
//! | `commission_problems` | gauge (problems of the latest run) | `kind` |
//! | `commission_reconcile_entries_total` | counter (entries a periodic full run booked that incremental runs missed) | `reason` (`late_change`) |
//! | `commission_held_players` | gauge (players of the latest run without attribution) | `reason` (`fraud_review`) |
//!
//! Label cardinality stays bounded: brands are few, every other label value is
//! an enum or a `&'static str` chosen by the caller. There are deliberately no
//! per-affiliate, per-player or per-IP labels.
//!
//! A family appears in the rendering only once something was recorded into
//! it (the client library leaves empty families out).

use std::fmt::{self, Write as _};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use clickstitch_shared::BrandId;
use prometheus_client::encoding::{
    EncodeLabelSet, EncodeLabelValue, EncodeMetric, LabelValueEncoder, MetricEncoder,
};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;

/// The `Content-Type` of [`Metrics::render`]'s output: OpenMetrics text 1.0.0
/// (Prometheus asks for it in its scrape `Accept` header).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Upper bounds of the `fraud_score` histogram buckets: 0, 10, 20, …, 100
/// (plus the implicit `+Inf`).
pub const FRAUD_SCORE_BUCKETS: [f64; 11] = [
    0.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 100.0,
];

/// Upper bounds, in milliseconds, of the `conversion_latency_ms` histogram
/// buckets (plus the implicit `+Inf`).
pub const CONVERSION_LATENCY_BUCKETS_MS: [f64; 12] = [
    1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0,
];

/// What ingest decided about one click: the `verdict` label of `clicks_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClickVerdict {
    /// A human click, stored and attributable.
    Human,
    /// Recognised as a bot (user agent or behaviour).
    Bot,
    /// A repeat of a click already stored.
    Duplicate,
    /// Held by fraud scoring until reviewed.
    Quarantined,
    /// From a country the brand does not accept.
    GeoBlocked,
}

impl ClickVerdict {
    /// Every verdict, in declaration order.
    pub const ALL: [Self; 5] = [
        Self::Human,
        Self::Bot,
        Self::Duplicate,
        Self::Quarantined,
        Self::GeoBlocked,
    ];

    /// The label value: `human`, `bot`, `duplicate`, `quarantined` or
    /// `geo_blocked`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Human => "human",
            Self::Bot => "bot",
            Self::Duplicate => "duplicate",
            Self::Quarantined => "quarantined",
            Self::GeoBlocked => "geo_blocked",
        }
    }
}

impl EncodeLabelValue for ClickVerdict {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> fmt::Result {
        encoder.write_str(self.as_str())
    }
}

/// What a fraud score was computed for: the `kind` label of the fraud
/// families.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScoredKind {
    /// A click.
    Click,
    /// A player registration.
    Registration,
    /// A player's first deposit.
    FirstDeposit,
}

impl ScoredKind {
    /// Every kind, in declaration order.
    pub const ALL: [Self; 3] = [Self::Click, Self::Registration, Self::FirstDeposit];

    /// The label value: `click`, `registration` or `first_deposit`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Click => "click",
            Self::Registration => "registration",
            Self::FirstDeposit => "first_deposit",
        }
    }
}

impl EncodeLabelValue for ScoredKind {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> fmt::Result {
        encoder.write_str(self.as_str())
    }
}

/// A brand as a label value (the hyphenated UUID), without allocating a
/// string per recorded click.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct BrandLabel(BrandId);

impl EncodeLabelValue for BrandLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> fmt::Result {
        write!(encoder, "{}", self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ClickLabels {
    brand_id: BrandLabel,
    verdict: ClickVerdict,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct KindLabels {
    kind: ScoredKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct HeldLabels {
    reason: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ProblemLabels {
    kind: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct DecisionLabels {
    decision: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct EventTypeLabels {
    event_type: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct LimitLabels {
    limit: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct GroupLabels {
    group: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct TableLabels {
    table: &'static str,
}

/// Exact running sum and count of the scores of one kind; rendered as the
/// gauge `sum / count`. Sum and count sit under one lock so a scrape never
/// sees one updated without the other.
#[derive(Debug, Default)]
struct ScoreAverage {
    tally: Mutex<ScoreTally>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct ScoreTally {
    sum: u64,
    count: u64,
}

impl ScoreAverage {
    fn record(&self, score: u8) {
        // A panic while holding this lock cannot leave the tally half
        // written (two plain integer stores), so a poisoned lock is usable.
        let mut tally = self.tally.lock().unwrap_or_else(PoisonError::into_inner);
        tally.sum = tally.sum.saturating_add(u64::from(score));
        tally.count = tally.count.saturating_add(1);
    }

    fn tally(&self) -> ScoreTally {
        *self.tally.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn average(&self) -> f64 {
        let ScoreTally { sum, count } = self.tally();
        if count == 0 {
            0.0
        } else {
            sum as f64 / count as f64
        }
    }
}

impl TypedMetric for ScoreAverage {
    const TYPE: MetricType = MetricType::Gauge;
}

impl EncodeMetric for ScoreAverage {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> fmt::Result {
        encoder.encode_gauge(&self.average())
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

fn fraud_score_histogram() -> Histogram {
    Histogram::new(FRAUD_SCORE_BUCKETS)
}

fn conversion_latency_histogram() -> Histogram {
    Histogram::new(CONVERSION_LATENCY_BUCKETS_MS)
}

/// A `u64` as an `i64` gauge value, saturating (the text encoder rejects
/// `u64` gauges above `i64::MAX`, which would fail the whole scrape).
fn gauge_value(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The aggregator's metric registry. Every recording method takes `&self`
/// and is cheap (an atomic add or a short lock); share one instance behind an
/// `Arc`.
pub struct Metrics {
    registry: Registry,
    clicks: Family<ClickLabels, Counter>,
    fraud_score: Family<KindLabels, Histogram>,
    fraud_score_avg: Family<KindLabels, ScoreAverage>,
    fraud_quarantined: Family<KindLabels, Counter>,
    fraud_review_decisions: Family<DecisionLabels, Counter>,
    conversion_latency: Family<EventTypeLabels, Histogram>,
    fraud_window_keys: Family<TableLabels, Gauge>,
    fraud_window_capacity: Family<TableLabels, Gauge>,
    fraud_window_evictions: Family<TableLabels, Gauge>,
    commission_runs: Family<OutcomeLabels, Counter>,
    commission_problems: Family<ProblemLabels, Gauge>,
    commission_held_players: Family<HeldLabels, Gauge>,
    commission_reconcile_entries: Family<HeldLabels, Counter>,
    fraud_sweep_held: Family<GroupLabels, Counter>,
    fraud_sweep_findings: Family<GroupLabels, Gauge>,
    rate_limited: Family<LimitLabels, Counter>,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every family registered and nothing recorded.
    pub fn new() -> Self {
        let clicks = Family::<ClickLabels, Counter>::default();
        let fraud_score = Family::<KindLabels, Histogram>::new_with_constructor(
            fraud_score_histogram as fn() -> Histogram,
        );
        let fraud_score_avg = Family::<KindLabels, ScoreAverage>::default();
        let fraud_quarantined = Family::<KindLabels, Counter>::default();
        let fraud_review_decisions = Family::<DecisionLabels, Counter>::default();
        let conversion_latency = Family::<EventTypeLabels, Histogram>::new_with_constructor(
            conversion_latency_histogram as fn() -> Histogram,
        );
        let fraud_window_keys = Family::<TableLabels, Gauge>::default();
        let fraud_window_capacity = Family::<TableLabels, Gauge>::default();
        let fraud_window_evictions = Family::<TableLabels, Gauge>::default();
        let commission_runs = Family::<OutcomeLabels, Counter>::default();
        let commission_problems = Family::<ProblemLabels, Gauge>::default();
        let commission_held_players = Family::<HeldLabels, Gauge>::default();
        let commission_reconcile_entries = Family::<HeldLabels, Counter>::default();
        let fraud_sweep_held = Family::<GroupLabels, Counter>::default();
        let fraud_sweep_findings = Family::<GroupLabels, Gauge>::default();
        let rate_limited = Family::<LimitLabels, Counter>::default();

        // Families are handles on shared state: the registry keeps one clone
        // for rendering, the struct keeps one for recording.
        let mut registry = Registry::default();
        registry.register(
            "clicks",
            "Clicks received, by brand and ingest verdict",
            clicks.clone(),
        );
        registry.register(
            "fraud_score",
            "Fraud scores computed (0 to 100), by what was scored",
            fraud_score.clone(),
        );
        registry.register(
            "fraud_score_avg",
            "Mean fraud score since start, by what was scored",
            fraud_score_avg.clone(),
        );
        registry.register(
            "fraud_quarantined",
            "Events quarantined by fraud scoring, by what was scored",
            fraud_quarantined.clone(),
        );
        registry.register(
            "fraud_review_decisions",
            "Manual fraud review decisions, by decision",
            fraud_review_decisions.clone(),
        );
        registry.register(
            "conversion_latency_ms",
            "Conversion latency in milliseconds, by brand event type",
            conversion_latency.clone(),
        );
        registry.register(
            "fraud_window_keys",
            "Keys currently held by a fraud sliding-window table",
            fraud_window_keys.clone(),
        );
        registry.register(
            "fraud_window_capacity",
            "Key capacity of a fraud sliding-window table",
            fraud_window_capacity.clone(),
        );
        registry.register(
            "fraud_window_evictions",
            "Keys evicted from a fraud sliding-window table since start (monotonic)",
            fraud_window_evictions.clone(),
        );
        registry.register(
            "commission_runs",
            "Commission job runs, by outcome (a run with problems is ok)",
            commission_runs.clone(),
        );
        registry.register(
            "commission_problems",
            "Problems of the latest commission run (players or affiliates held back), by kind",
            commission_problems.clone(),
        );
        registry.register(
            "commission_reconcile_entries",
            "Entries appended by periodic full commission runs that incremental runs had missed",
            commission_reconcile_entries.clone(),
        );
        registry.register(
            "commission_held_players",
            "Players of the latest commission run passed without attribution while their fraud review is open",
            commission_held_players.clone(),
        );

        registry.register(
            "fraud_sweep_held_clicks",
            "Clicks held by the population sweep, by group (`block`: an IPv4 /22 or IPv6 /48; `hosting`: a link's hosting-network traffic)",
            fraud_sweep_held.clone(),
        );
        registry.register(
            "fraud_sweep_findings",
            "Groups of clicks the latest population sweep flagged, by group",
            fraud_sweep_findings.clone(),
        );
        registry.register(
            "http_rate_limited",
            "Requests answered 429, by limit (`edge`, `operator`, `key`, `postback`, `failed_auth`)",
            rate_limited.clone(),
        );

        Self {
            registry,
            clicks,
            fraud_score,
            fraud_score_avg,
            fraud_quarantined,
            fraud_review_decisions,
            conversion_latency,
            fraud_window_keys,
            fraud_window_capacity,
            fraud_window_evictions,
            commission_runs,
            commission_problems,
            commission_held_players,
            commission_reconcile_entries,
            fraud_sweep_held,
            fraud_sweep_findings,
            rate_limited,
        }
    }

    /// Counts a request refused by a rate limit:
    /// `http_rate_limited_total{limit}`.
    pub fn rate_limited(&self, limit: &'static str) {
        self.rate_limited
            .get_or_create(&LimitLabels { limit })
            .inc();
    }

    /// Publishes one population sweep, per group kind (`block` or
    /// `hosting`): `fraud_sweep_held_clicks_total{group}` += the clicks it
    /// newly held (a click is held once, so never counted twice), and
    /// `fraud_sweep_findings{group}` = the groups it flagged (set, for both
    /// kinds, on every sweep).
    pub fn fraud_sweep(&self, by_group: [(&'static str, u64, u64); 2]) {
        for (group, findings, newly_held) in by_group {
            let labels = GroupLabels { group };
            self.fraud_sweep_held
                .get_or_create(&labels)
                .inc_by(newly_held);
            self.fraud_sweep_findings
                .get_or_create(&labels)
                .set(gauge_value(findings));
        }
    }

    /// Counts entries a periodic full run appended that incremental runs
    /// had missed: `commission_reconcile_entries_total` += `n`.
    pub fn commission_reconcile_entries(&self, n: u64) {
        self.commission_reconcile_entries
            .get_or_create(&HeldLabels {
                reason: "late_change",
            })
            .inc_by(n);
    }

    /// Counts one commission run: `commission_runs_total{outcome}` += 1
    /// (`ok` or `failed`).
    pub fn commission_run(&self, outcome: &'static str) {
        self.commission_runs
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    /// Publishes the problems of the latest commission run:
    /// `commission_problems{kind}` for every kind (zero included) and
    /// `commission_held_players`. Set, not added: a standing problem is
    /// counted once however many runs see it.
    pub fn set_commission_problems(
        &self,
        by_kind: impl IntoIterator<Item = (&'static str, u64)>,
        held_players: u64,
    ) {
        for (kind, n) in by_kind {
            self.commission_problems
                .get_or_create(&ProblemLabels { kind })
                .set(gauge_value(n));
        }
        self.commission_held_players
            .get_or_create(&HeldLabels {
                reason: "fraud_review",
            })
            .set(gauge_value(held_players));
    }

    /// Counts one click: `clicks_total{brand_id, verdict}` += 1.
    pub fn click(&self, brand: BrandId, verdict: ClickVerdict) {
        self.clicks(brand, verdict, 1);
    }

    /// Counts `n` clicks of one brand and verdict (a batch):
    /// `clicks_total{brand_id, verdict}` += `n`.
    pub fn clicks(&self, brand: BrandId, verdict: ClickVerdict, n: u64) {
        let labels = ClickLabels {
            brand_id: BrandLabel(brand),
            verdict,
        };
        self.clicks.get_or_create(&labels).inc_by(n);
    }

    /// Records one fraud score into `fraud_score{kind}` and the running mean
    /// `fraud_score_avg{kind}`.
    pub fn fraud_score(&self, kind: ScoredKind, score: u8) {
        let labels = KindLabels { kind };
        self.fraud_score
            .get_or_create(&labels)
            .observe(f64::from(score));
        self.fraud_score_avg.get_or_create(&labels).record(score);
    }

    /// Counts one event quarantined by fraud scoring:
    /// `fraud_quarantined_total{kind}` += 1.
    pub fn quarantined(&self, kind: ScoredKind) {
        self.fraud_quarantined
            .get_or_create(&KindLabels { kind })
            .inc();
    }

    /// Counts one manual review decision (e.g. `approved`, `rejected`):
    /// `fraud_review_decisions_total{decision}` += 1. Pass a fixed set of
    /// values, never free text.
    pub fn review_decision(&self, decision: &'static str) {
        self.fraud_review_decisions
            .get_or_create(&DecisionLabels { decision })
            .inc();
    }

    /// Records how long one brand event took to become a conversion, in
    /// milliseconds, into `conversion_latency_ms{event_type}`. Pass a fixed
    /// set of event types.
    pub fn conversion_latency(&self, event_type: &'static str, elapsed: Duration) {
        self.conversion_latency
            .get_or_create(&EventTypeLabels { event_type })
            .observe(elapsed.as_nanos() as f64 / 1e6);
    }

    /// Publishes the state of one fraud sliding-window table:
    /// `fraud_window_keys{table}`, `fraud_window_capacity{table}` and
    /// `fraud_window_evictions{table}` (the table's own running eviction
    /// count, so set rather than added). Values above `i64::MAX` saturate.
    pub fn set_fraud_window_state(
        &self,
        table: &'static str,
        keys: u64,
        capacity: u64,
        evictions: u64,
    ) {
        let labels = TableLabels { table };
        self.fraud_window_keys
            .get_or_create(&labels)
            .set(gauge_value(keys));
        self.fraud_window_capacity
            .get_or_create(&labels)
            .set(gauge_value(capacity));
        self.fraud_window_evictions
            .get_or_create(&labels)
            .set(gauge_value(evictions));
    }

    /// The OpenMetrics text exposition of every recorded family, ending in
    /// `# EOF`. Fails only if a metric cannot be encoded, which the types
    /// used here rule out.
    pub fn try_render(&self) -> Result<String, fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }

    /// As [`Metrics::try_render`]; on an (unexpected) encoding failure, logs
    /// it and returns an empty exposition (`# EOF` alone) rather than a
    /// truncated one.
    pub fn render(&self) -> String {
        match self.try_render() {
            Ok(text) => text,
            Err(e) => {
                tracing::error!(error = %e, "rendering the metrics failed");
                "# EOF\n".to_owned()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;

    const BRAND_A: &str = "0b9f8c1e-6a57-4d0c-9a35-3f1d2c9e7a01";
    const BRAND_B: &str = "5d2e4f60-1c3b-4e8a-8f7d-9b6a0c1d2e03";

    fn brand(text: &str) -> BrandId {
        BrandId::parse(text).expect("test brand ids are canonical UUIDs")
    }

    /// One sample line: metric name, labels, value.
    #[derive(Debug, Clone, PartialEq)]
    struct Sample {
        name: String,
        labels: BTreeMap<String, String>,
        value: f64,
    }

    /// A strict-enough reading of the OpenMetrics text this module renders:
    /// `# HELP` / `# TYPE` / `# UNIT` comments, sample lines
    /// `name{k="v",...} value`, and a final `# EOF`. Returns the declared
    /// families (name → type) and the samples; panics on anything else.
    fn parse(text: &str) -> (BTreeMap<String, String>, Vec<Sample>) {
        let body = text
            .strip_suffix("# EOF\n")
            .expect("the exposition ends with # EOF");
        let mut types = BTreeMap::new();
        let mut samples = Vec::new();
        for line in body.lines() {
            assert!(!line.contains("# EOF"), "EOF only at the end: {text}");
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("# TYPE name type");
                assert!(
                    ["counter", "gauge", "histogram"].contains(&kind),
                    "unexpected type in {line}"
                );
                assert!(types.insert(name.to_owned(), kind.to_owned()).is_none());
                continue;
            }
            if line.starts_with("# HELP ") || line.starts_with("# UNIT ") {
                continue;
            }
            assert!(!line.starts_with('#'), "unknown comment {line}");
            let (series, value) = line.rsplit_once(' ').expect("series value");
            let value = match value {
                "+Inf" => f64::INFINITY,
                v => v
                    .parse()
                    .unwrap_or_else(|_| panic!("numeric value in {line}")),
            };
            let (name, labels) = match series.split_once('{') {
                None => (series, BTreeMap::new()),
                Some((name, rest)) => {
                    let inner = rest.strip_suffix('}').expect("labels close with }");
                    let mut labels = BTreeMap::new();
                    for pair in inner.split(',') {
                        let (k, v) = pair.split_once('=').expect("label k=v");
                        let v = v
                            .strip_prefix('"')
                            .and_then(|v| v.strip_suffix('"'))
                            .expect("quoted label value");
                        assert!(labels.insert(k.to_owned(), v.to_owned()).is_none());
                    }
                    (name, labels)
                }
            };
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
                "metric name {name}"
            );
            samples.push(Sample {
                name: name.to_owned(),
                labels,
                value,
            });
        }
        for s in &samples {
            let family = [
                s.name.strip_suffix("_total"),
                s.name.strip_suffix("_bucket"),
                s.name.strip_suffix("_sum"),
                s.name.strip_suffix("_count"),
            ]
            .into_iter()
            .flatten()
            .find(|f| types.contains_key(*f))
            .unwrap_or(&s.name);
            assert!(types.contains_key(family), "undeclared family of {s:?}");
        }
        (types, samples)
    }

    /// The value of the one sample named `name` with exactly `labels`.
    fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
        let want: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let found: Vec<_> = samples
            .iter()
            .filter(|s| s.name == name && s.labels == want)
            .collect();
        assert_eq!(found.len(), 1, "one {name}{labels:?} in {samples:?}");
        found[0].value
    }

    fn rendered(m: &Metrics) -> (BTreeMap<String, String>, Vec<Sample>) {
        parse(&m.try_render().expect("rendering into a String succeeds"))
    }

    #[test]
    fn a_fresh_registry_renders_only_the_end_marker() {
        let m = Metrics::new();
        assert_eq!(m.render(), "# EOF\n");
    }

    #[test]
    fn a_recorded_click_is_counted_under_its_brand_and_verdict() {
        let m = Metrics::new();
        m.click(brand(BRAND_A), ClickVerdict::Human);
        m.click(brand(BRAND_A), ClickVerdict::Human);
        m.click(brand(BRAND_A), ClickVerdict::GeoBlocked);
        m.clicks(brand(BRAND_B), ClickVerdict::Bot, 40);
        m.clicks(brand(BRAND_B), ClickVerdict::Bot, 2);

        let (types, samples) = rendered(&m);
        assert_eq!(types.get("clicks").map(String::as_str), Some("counter"));
        let human = [("brand_id", BRAND_A), ("verdict", "human")];
        assert_eq!(value(&samples, "clicks_total", &human), 2.0);
        let geo = [("brand_id", BRAND_A), ("verdict", "geo_blocked")];
        assert_eq!(value(&samples, "clicks_total", &geo), 1.0);
        let bot = [("brand_id", BRAND_B), ("verdict", "bot")];
        assert_eq!(value(&samples, "clicks_total", &bot), 42.0);
        assert_eq!(
            samples.iter().filter(|s| s.name == "clicks_total").count(),
            3,
            "no series for combinations never recorded"
        );
    }

    #[test]
    fn every_verdict_and_kind_has_its_snake_case_label_value() {
        let verdicts: Vec<_> = ClickVerdict::ALL.iter().map(|v| v.as_str()).collect();
        assert_eq!(
            verdicts,
            ["human", "bot", "duplicate", "quarantined", "geo_blocked"]
        );
        let kinds: Vec<_> = ScoredKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(kinds, ["click", "registration", "first_deposit"]);

        let m = Metrics::new();
        for v in ClickVerdict::ALL {
            m.click(brand(BRAND_A), v);
        }
        let (_, samples) = rendered(&m);
        let rendered_verdicts: BTreeSet<_> = samples
            .iter()
            .filter(|s| s.name == "clicks_total")
            .map(|s| s.labels["verdict"].clone())
            .collect();
        let expected: BTreeSet<_> = verdicts.iter().map(|v| (*v).to_owned()).collect();
        assert_eq!(rendered_verdicts, expected);
    }

    #[test]
    fn fraud_scores_fill_cumulative_buckets_of_ten_points() {
        let m = Metrics::new();
        for score in [0, 5, 10, 35, 100] {
            m.fraud_score(ScoredKind::Click, score);
        }
        m.fraud_score(ScoredKind::Registration, 90);

        let (types, samples) = rendered(&m);
        assert_eq!(
            types.get("fraud_score").map(String::as_str),
            Some("histogram")
        );
        let bucket = |le: &str| {
            value(
                &samples,
                "fraud_score_bucket",
                &[("kind", "click"), ("le", le)],
            )
        };
        assert_eq!(bucket("0.0"), 1.0);
        assert_eq!(bucket("10.0"), 3.0);
        assert_eq!(bucket("20.0"), 3.0);
        assert_eq!(bucket("30.0"), 3.0);
        assert_eq!(bucket("40.0"), 4.0);
        assert_eq!(bucket("90.0"), 4.0);
        assert_eq!(bucket("100.0"), 5.0);
        assert_eq!(bucket("+Inf"), 5.0);
        let click = [("kind", "click")];
        assert_eq!(value(&samples, "fraud_score_count", &click), 5.0);
        assert_eq!(value(&samples, "fraud_score_sum", &click), 150.0);
        let les: Vec<_> = samples
            .iter()
            .filter(|s| s.name == "fraud_score_bucket" && s.labels["kind"] == "click")
            .map(|s| s.labels["le"].clone())
            .collect();
        assert_eq!(les.len(), 12, "0..=100 by ten and +Inf: {les:?}");
        let reg = [("kind", "registration"), ("le", "80.0")];
        assert_eq!(value(&samples, "fraud_score_bucket", &reg), 0.0);
        let reg = [("kind", "registration"), ("le", "90.0")];
        assert_eq!(value(&samples, "fraud_score_bucket", &reg), 1.0);
    }

    #[test]
    fn the_fraud_score_average_is_the_exact_mean_per_kind() {
        let m = Metrics::new();
        for score in [10, 20, 25] {
            m.fraud_score(ScoredKind::Click, score);
        }
        m.fraud_score(ScoredKind::FirstDeposit, 100);
        m.fraud_score(ScoredKind::FirstDeposit, 0);

        let (types, samples) = rendered(&m);
        assert_eq!(
            types.get("fraud_score_avg").map(String::as_str),
            Some("gauge")
        );
        let click = value(&samples, "fraud_score_avg", &[("kind", "click")]);
        assert!((click - 55.0 / 3.0).abs() < 1e-9, "click mean {click}");
        let deposit = value(&samples, "fraud_score_avg", &[("kind", "first_deposit")]);
        assert_eq!(deposit, 50.0);
        assert!(
            !samples
                .iter()
                .any(|s| s.name == "fraud_score_avg" && s.labels["kind"] == "registration"),
            "no average for a kind never scored"
        );
    }

    #[test]
    fn the_running_average_keeps_an_exact_integer_sum() {
        let avg = ScoreAverage::default();
        assert_eq!(avg.average(), 0.0, "no division by zero before any score");
        for score in [u8::MAX, 1, 0, 99] {
            avg.record(score);
        }
        assert_eq!(avg.tally(), ScoreTally { sum: 355, count: 4 });
        assert_eq!(avg.average(), 88.75);
    }

    #[test]
    fn quarantines_and_review_decisions_are_counted_by_label() {
        let m = Metrics::new();
        m.quarantined(ScoredKind::Registration);
        m.quarantined(ScoredKind::Registration);
        m.quarantined(ScoredKind::Click);
        m.review_decision("approved");
        m.review_decision("rejected");
        m.review_decision("rejected");

        let (types, samples) = rendered(&m);
        assert_eq!(
            types.get("fraud_quarantined").map(String::as_str),
            Some("counter")
        );
        assert_eq!(
            types.get("fraud_review_decisions").map(String::as_str),
            Some("counter")
        );
        let q = |kind| value(&samples, "fraud_quarantined_total", &[("kind", kind)]);
        assert_eq!(q("registration"), 2.0);
        assert_eq!(q("click"), 1.0);
        let d = |decision| {
            value(
                &samples,
                "fraud_review_decisions_total",
                &[("decision", decision)],
            )
        };
        assert_eq!(d("approved"), 1.0);
        assert_eq!(d("rejected"), 2.0);
    }

    #[test]
    fn conversion_latency_is_observed_in_milliseconds() {
        let m = Metrics::new();
        m.conversion_latency("registration", Duration::from_micros(1_500));
        m.conversion_latency("registration", Duration::from_millis(40));
        m.conversion_latency("registration", Duration::from_secs(7));
        m.conversion_latency("first_deposit", Duration::from_millis(1));

        let (types, samples) = rendered(&m);
        assert_eq!(
            types.get("conversion_latency_ms").map(String::as_str),
            Some("histogram")
        );
        let reg = |le: &str| {
            value(
                &samples,
                "conversion_latency_ms_bucket",
                &[("event_type", "registration"), ("le", le)],
            )
        };
        assert_eq!(reg("1.0"), 0.0);
        assert_eq!(reg("2.0"), 1.0);
        assert_eq!(reg("20.0"), 1.0);
        assert_eq!(reg("50.0"), 2.0);
        assert_eq!(reg("5000.0"), 2.0);
        assert_eq!(reg("+Inf"), 3.0);
        let labels = [("event_type", "registration")];
        assert_eq!(
            value(&samples, "conversion_latency_ms_sum", &labels),
            7041.5
        );
        assert_eq!(value(&samples, "conversion_latency_ms_count", &labels), 3.0);
        let first = [("event_type", "first_deposit"), ("le", "1.0")];
        assert_eq!(
            value(&samples, "conversion_latency_ms_bucket", &first),
            1.0,
            "a bucket's upper bound is inclusive"
        );
    }

    #[test]
    fn the_fraud_window_state_is_set_not_accumulated() {
        let m = Metrics::new();
        m.set_fraud_window_state("click_ip", 10, 1_000, 3);
        m.set_fraud_window_state("click_ip", 7, 1_000, 5);
        m.set_fraud_window_state("registration_device", u64::MAX, 500, 0);

        let (types, samples) = rendered(&m);
        for family in [
            "fraud_window_keys",
            "fraud_window_capacity",
            "fraud_window_evictions",
        ] {
            assert_eq!(types.get(family).map(String::as_str), Some("gauge"));
        }
        let ip = [("table", "click_ip")];
        assert_eq!(value(&samples, "fraud_window_keys", &ip), 7.0);
        assert_eq!(value(&samples, "fraud_window_capacity", &ip), 1_000.0);
        assert_eq!(value(&samples, "fraud_window_evictions", &ip), 5.0);
        let device = [("table", "registration_device")];
        assert_eq!(
            value(&samples, "fraud_window_keys", &device),
            i64::MAX as f64,
            "saturates instead of failing the scrape"
        );
    }

    #[test]
    fn a_full_rendering_parses_back_with_every_family_declared_once() {
        let m = Metrics::default();
        m.click(brand(BRAND_A), ClickVerdict::Duplicate);
        m.fraud_score(ScoredKind::Click, 60);
        m.quarantined(ScoredKind::FirstDeposit);
        m.review_decision("approved");
        m.conversion_latency("first_deposit", Duration::from_millis(250));
        m.set_fraud_window_state("affiliate_total", 1, 2, 0);
        m.commission_run("ok");
        m.set_commission_problems([("wrong_currency", 2), ("no_fx_table", 0)], 1);
        m.fraud_sweep([("block", 2, 900), ("hosting", 0, 0)]);

        let text = m.render();
        let (types, samples) = parse(&text);
        let declared: Vec<_> = types.keys().map(String::as_str).collect();
        assert_eq!(
            declared,
            [
                "clicks",
                "commission_held_players",
                "commission_problems",
                "commission_runs",
                "conversion_latency_ms",
                "fraud_quarantined",
                "fraud_review_decisions",
                "fraud_score",
                "fraud_score_avg",
                "fraud_sweep_findings",
                "fraud_sweep_held_clicks",
                "fraud_window_capacity",
                "fraud_window_evictions",
                "fraud_window_keys",
            ]
        );
        assert_eq!(text.matches("# HELP ").count(), 14);
        // clicks 1, latency 15 (sum, count, 12 bounds and +Inf), quarantined 1,
        // decisions 1, score 14 (sum, count, 11 bounds and +Inf), average 1,
        // window 3, commission runs 1, problems 2, held players 1, sweep 4
        // (two groups, two families).
        assert_eq!(samples.len(), 44, "{text}");
        assert!(
            samples.iter().all(|s| s.value.is_finite()),
            "no NaN or infinite sample values: {text}"
        );
    }

    #[test]
    fn metrics_can_be_shared_across_threads() {
        fn shareable<T: Send + Sync + 'static>() {}
        shareable::<Metrics>();

        let m = std::sync::Arc::new(Metrics::new());
        let other = std::sync::Arc::clone(&m);
        std::thread::spawn(move || other.click(brand(BRAND_B), ClickVerdict::Quarantined))
            .join()
            .expect("the recording thread does not panic");
        m.click(brand(BRAND_B), ClickVerdict::Quarantined);
        let (_, samples) = rendered(&m);
        let labels = [("brand_id", BRAND_B), ("verdict", "quarantined")];
        assert_eq!(value(&samples, "clicks_total", &labels), 2.0);
    }
}
