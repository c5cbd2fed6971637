//! Fraud scoring (pure): every click, registration and first deposit is
//! scored 0–100 as it arrives at the aggregator, from signals over sliding
//! windows (IP / subnet click velocity, players per IP and per device), the
//! facts of the event (bot, hosting ASN, click-to-registration time,
//! device and country against the click) and the affiliate's pattern (click
//! flooding). Every score keeps its contributing signals with their points
//! and a human-readable explanation; at or above the brand's quarantine
//! threshold the event is quarantined.
//!
//! Owns the signals and their weights ([`signals`]), the versioned per-brand
//! policy and its loader ([`policy`]: the only IO here, and it only reads
//! the policy directory), the bounded window state ([`window`]), the scorer
//! that ties them together ([`scorer`]) and a seeded traffic generator for
//! scenario tests ([`scenario`]). Must not touch ClickHouse or HTTP, and
//! reads no clock: event times are passed in (`*_at_ms`, ms since the
//! epoch), and the caller queries the ClickHouse baselines and hands the
//! rows in. See `docs/fraud.md`.
//!
//! Typical use by the ingest and events layers:
//!
//! ```text
//! let scorer = Scorer::with_seed(Arc::new(FraudPolicies::load_dir(dir)?), Capacity::default(), random_seed);
//! scorer.absorb_click_baseline(cutoff, rows_from_clickhouse);   // startup, then periodically
//! let score = scorer.score_click(&facts);                      // per click, ~1 µs
//! store(click, score.value, score.quarantined, serde_json::to_string(&score.hits)?);
//! for e in &score.escalations { quarantine_earlier(e).await?; } // rare
//! ```

#![warn(missing_docs)]

pub mod policy;
pub mod population;
#[cfg(any(test, feature = "scenario"))]
pub mod scenario;
pub mod scorer;
pub mod signals;
pub mod window;

pub use policy::{
    AsnRule, CarryRule, DistinctRule, FlatRule, FloodingRule, FraudPolicies, FraudPolicy,
    InjectionRule, PolicyError, PolicyLoadError, ShortfallRule, VelocityRule, BUILTIN_VERSION,
    DEFAULT_DATACENTER_ASNS,
};
pub use population::{sweep, ClickGroup, ClickTally, Finding};
pub use scorer::{
    aligned_cutoff, AffiliateBaselineRow, BaselinePlan, Capacity, ClickBaselineRow, ClickContext,
    ClickFacts, Escalation, EscalationScope, FirstDepositBaselineRow, FirstDepositFacts,
    RegistrationBaselineRow, RegistrationFacts, Score, Scorer, TableStats, AFFILIATE_BUCKET_MS,
    CLICK_BUCKET_MS,
};
pub use signals::{Network, Signal, SignalHit};
pub use window::Absorbed;
