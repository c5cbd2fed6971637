//! Attribution (pure): which affiliates get credit for a player's
//! registration, by which model and rules version, and the KYC gate.
//!
//! Owns the touchpoint rule and the unattributed reasons ([`decide`]), the
//! credit models and their exact integer split ([`credit`]), the versioned
//! per-brand / per-jurisdiction rules ([`rules`]) and the KYC status
//! ([`kyc`]). No IO (the aggregator reads and hot-reloads the rules
//! directory), no clock: the caller looks clicks up, passes time in, and persists the
//! [`Decision`]. See `docs/attribution.md` for the rules format and worked
//! examples.
//!
//! Typical use by the events layer:
//!
//! ```text
//! let rules = store.current();                      // Arc<RuleSet>, one per event
//! let found = clicks_by_id(&registration.reported_click_ids).await?;
//! if let Some(q) = visitor_query(&registration, &found, &rules) {
//!     found.extend(clicks_by_fingerprint(&q).await?);
//! }
//! let decision = attribute(&registration, &found, &traffic_types, &rules);
//! persist(&decision).await?;                        // records decision.rules()
//! ```

#![warn(missing_docs)]

pub mod credit;
pub mod decide;
pub mod rules;

pub use clickstitch_domain::kyc;
pub use credit::{HalfLife, Model, PositionSplit};
pub use decide::{
    attribute, attribute_with, visitor_query, AffiliateCredit, Attribution, Basis, ClickCheck,
    Decision, ExcludedTouchpoint, FingerprintOutcome, FoundClick, Ineligibility, Origin,
    Registration, ReportedClick, Touchpoint, TrafficTypes, Unattributed, UnattributedReason,
    VisitorQuery,
};
pub use kyc::{AttributionStatus, CommissionEffect, KycEvent, KycTransition};
pub use rules::{Jurisdiction, RuleSet, Rules, RulesError, RulesRef, TrafficType};

#[cfg(test)]
mod tests;
