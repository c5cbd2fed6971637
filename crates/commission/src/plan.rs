//! Deals: an affiliate's commission terms, versioned by month, written by
//! operators as JSON and validated on parse ("parse, don't validate": a
//! [`Deal`] that exists is a valid one; fields are private).
//!
//! Owns the plan shapes (CPA, RevShare flat / tiered / ladder, Hybrid), the
//! sub-affiliate override levels, hold / clawback / minimum payout terms,
//! and which version applies to a month. Must not compute commissions
//! (that is [`super::cpa`], [`super::revshare`], [`super::engine`]).
//!
//! # JSON
//!
//! ```json
//! {
//!   "affiliate": "…uuid…",
//!   "currency": "EUR",
//!   "versions": [{
//!     "version": 1,
//!     "effective_from": "2026-01",
//!     "hold_days": 30,
//!     "clawback_days": 90,
//!     "min_payout": 10000,
//!     "brands": ["…uuid…"],
//!     "overrides": [1000, 500],
//!     "plan": {
//!       "type": "hybrid",
//!       "cpa": {
//!         "amounts": {"DE": 10000, "GB": 8000},
//!         "default_amount": null,
//!         "min_first_deposit": 2000,
//!         "first_deposit_within_days": 30,
//!         "min_total_deposits": 5000,
//!         "min_wagering": 10000
//!       },
//!       "revshare": {
//!         "negative_carryover": true,
//!         "schedule": {"type": "ladder", "bands": [
//!           {"from": 0, "rate_bps": 2500},
//!           {"from": 1000000, "rate_bps": 3500}
//!         ]}
//!       }
//!     }
//!   }]
//! }
//! ```
//!
//! Amounts are integers in minor units of the deal's `currency`; rates are
//! basis points (`2500` = 25 %). `brands` absent = all brands. `overrides[k]`
//! is what this affiliate earns on the commission of its descendants `k + 1`
//! levels below it. `plan.type` is `cpa`, `revshare` or `hybrid`;
//! `schedule.type` is `flat` (`rate_bps`), `tiered` (`basis`: `ngr` or
//! `ftd`, `tiers`) or `ladder` (`bands`). For `ftd` tiers, `from` counts
//! players.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use clickstitch_shared::{AffiliateId, BrandId, CountryCode};

use clickstitch_domain::money::{Bps, Currency, Money};

use super::time::Month;

/// Most sub-affiliate override levels a deal may configure.
pub const MAX_OVERRIDE_LEVELS: usize = 5;
/// Longest hold, clawback or first-deposit window, in days.
pub const MAX_DAYS: u32 = 3_650;

/// Why a deal was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// Not valid JSON for a deal.
    #[error("deal JSON: {0}")]
    Json(String),
    /// A deal needs at least one version.
    #[error("a deal needs at least one version")]
    NoVersions,
    /// Versions must increase with `effective_from`, both strictly.
    #[error("versions must have strictly increasing numbers and effective_from months")]
    VersionsOutOfOrder,
    /// A rate outside 0..=10 000 basis points.
    #[error("{field}: rate must be 0..=10000 bps, got {value}")]
    BadRate {
        /// Which field.
        field: &'static str,
        /// The value.
        value: i64,
    },
    /// A negative amount or threshold.
    #[error("{field} must not be negative, got {value}")]
    Negative {
        /// Which field.
        field: &'static str,
        /// The value.
        value: i64,
    },
    /// A day count out of range.
    #[error("{field} must be {min}..={MAX_DAYS} days, got {value}")]
    BadDays {
        /// Which field.
        field: &'static str,
        /// Smallest allowed.
        min: u32,
        /// The value.
        value: u32,
    },
    /// Too many override levels.
    #[error("at most {MAX_OVERRIDE_LEVELS} override levels, got {0}")]
    TooManyOverrideLevels(usize),
    /// A CPA plan that can pay nobody.
    #[error("a CPA plan needs per-country amounts or a default amount")]
    CpaWithoutAmounts,
    /// Tiers / bands must start at 0 and strictly increase.
    #[error("tiers and bands must start at 0 and strictly increase")]
    BadSteps,
    /// Ladder bands only make sense on an amount.
    #[error("an empty brand list would pay nothing; omit `brands` for all brands")]
    EmptyBrands,
    /// Two deals for one affiliate in a [`DealBook`].
    #[error("affiliate {0} has two deals")]
    DuplicateDeal(AffiliateId),
}

/// What a tiered schedule's tier is chosen by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TierBasis {
    /// The month's RevShare base (NGR after carryover), minor units.
    Ngr,
    /// The number of first-time depositors in the month (credit-weighted).
    Ftd,
}

/// One tier or ladder band: applies from `from` (inclusive) up to the next
/// step's `from`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// Lower bound, inclusive: minor units of the deal currency, or a
    /// player count for FTD tiers.
    pub from: i64,
    /// The rate.
    pub rate: Bps,
}

/// How a month's RevShare base turns into commission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    /// One rate on the whole base.
    Flat {
        /// The rate.
        rate: Bps,
    },
    /// The whole base at the rate of the highest tier reached (`basis ≥
    /// from`, so a boundary hit exactly reaches the tier).
    Tiered {
        /// What picks the tier.
        basis: TierBasis,
        /// Tiers, ascending, the first from 0.
        tiers: Vec<Step>,
    },
    /// Each band of the base at its own rate (marginal, like income tax).
    Ladder {
        /// Bands, ascending, the first from 0.
        bands: Vec<Step>,
    },
}

/// CPA terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpaTerms {
    amounts: BTreeMap<CountryCode, Money>,
    default_amount: Option<Money>,
    min_first_deposit: Money,
    first_deposit_within_days: u32,
    min_total_deposits: Money,
    min_wagering: Money,
}

impl CpaTerms {
    /// The CPA for a registration country; `None` = country not eligible.
    pub fn amount_for(&self, country: CountryCode) -> Option<Money> {
        self.amounts.get(&country).copied().or(self.default_amount)
    }

    /// First deposit must be at least this.
    pub fn min_first_deposit(&self) -> Money {
        self.min_first_deposit
    }

    /// …and made within this many days of registration.
    pub fn first_deposit_within_days(&self) -> u32 {
        self.first_deposit_within_days
    }

    /// Cumulative deposits must reach this.
    pub fn min_total_deposits(&self) -> Money {
        self.min_total_deposits
    }

    /// Cumulative stakes must reach this.
    pub fn min_wagering(&self) -> Money {
        self.min_wagering
    }
}

/// RevShare terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevShareTerms {
    negative_carryover: bool,
    schedule: Schedule,
}

impl RevShareTerms {
    /// Whether a brand's negative month carries into its next month.
    pub fn negative_carryover(&self) -> bool {
        self.negative_carryover
    }

    /// The schedule.
    pub fn schedule(&self) -> &Schedule {
        &self.schedule
    }
}

/// The plan of a deal version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// CPA only.
    Cpa(CpaTerms),
    /// RevShare only.
    RevShare(RevShareTerms),
    /// CPA plus RevShare.
    Hybrid {
        /// The CPA part.
        cpa: CpaTerms,
        /// The RevShare part.
        revshare: RevShareTerms,
    },
}

impl Plan {
    /// The CPA part, if any.
    pub fn cpa(&self) -> Option<&CpaTerms> {
        match self {
            Plan::Cpa(c) | Plan::Hybrid { cpa: c, .. } => Some(c),
            Plan::RevShare(_) => None,
        }
    }

    /// The RevShare part, if any.
    pub fn revshare(&self) -> Option<&RevShareTerms> {
        match self {
            Plan::RevShare(r) | Plan::Hybrid { revshare: r, .. } => Some(r),
            Plan::Cpa(_) => None,
        }
    }
}

/// One version of a deal, in force from `effective_from` until the next
/// version's month.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DealVersion {
    version: u32,
    effective_from: Month,
    hold_days: u32,
    clawback_days: u32,
    min_payout: Money,
    brands: Option<BTreeSet<BrandId>>,
    overrides: Vec<Bps>,
    plan: Plan,
}

impl DealVersion {
    /// The version number (recorded on ledger rows).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// First month it applies to.
    pub fn effective_from(&self) -> Month {
        self.effective_from
    }

    /// Days after a period closes before its commission is payable.
    pub fn hold_days(&self) -> u32 {
        self.hold_days
    }

    /// Days after CPA qualification in which a chargeback or self-exclusion
    /// claws the CPA back.
    pub fn clawback_days(&self) -> u32 {
        self.clawback_days
    }

    /// Smallest payout; less rolls over to the next payout run.
    pub fn min_payout(&self) -> Money {
        self.min_payout
    }

    /// Whether players of `brand` earn under this version.
    pub fn covers(&self, brand: BrandId) -> bool {
        self.brands.as_ref().is_none_or(|b| b.contains(&brand))
    }

    /// Override rate on descendants `level` levels below (1 = children).
    pub fn override_rate(&self, level: usize) -> Option<Bps> {
        level
            .checked_sub(1)
            .and_then(|i| self.overrides.get(i))
            .copied()
    }

    /// The plan.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }
}

/// An affiliate's deal: one currency, versions ordered by month.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "DealSpec", into = "DealSpec")]
pub struct Deal {
    affiliate: AffiliateId,
    currency: Currency,
    versions: Vec<DealVersion>,
}

impl Deal {
    /// Parses and validates a deal written as JSON.
    pub fn from_json(text: &str) -> Result<Self, PlanError> {
        let spec: DealSpec =
            serde_json::from_str(text).map_err(|e| PlanError::Json(e.to_string()))?;
        Self::try_from(spec)
    }

    /// The JSON form (what [`Deal::from_json`] reads).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(&DealSpec::from(self.clone()))
            .unwrap_or_else(|e| unreachable!("a deal always serialises: {e}"))
    }

    /// The affiliate.
    pub fn affiliate(&self) -> AffiliateId {
        self.affiliate
    }

    /// The deal currency: every commission of this affiliate is in it.
    pub fn currency(&self) -> Currency {
        self.currency
    }

    /// All versions, oldest first.
    pub fn versions(&self) -> &[DealVersion] {
        &self.versions
    }

    /// The version in force in `month` (the latest with `effective_from ≤
    /// month`); `None` before the first.
    pub fn version_at(&self, month: Month) -> Option<&DealVersion> {
        self.versions
            .iter()
            .rev()
            .find(|v| v.effective_from <= month)
    }
}

/// All deals, one per affiliate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DealBook {
    deals: BTreeMap<AffiliateId, Deal>,
}

impl DealBook {
    /// Refuses two deals for one affiliate.
    pub fn new(deals: impl IntoIterator<Item = Deal>) -> Result<Self, PlanError> {
        let mut map = BTreeMap::new();
        for d in deals {
            let a = d.affiliate;
            if map.insert(a, d).is_some() {
                return Err(PlanError::DuplicateDeal(a));
            }
        }
        Ok(Self { deals: map })
    }

    /// The affiliate's deal.
    pub fn get(&self, affiliate: AffiliateId) -> Option<&Deal> {
        self.deals.get(&affiliate)
    }

    /// All deals by affiliate.
    pub fn iter(&self) -> impl Iterator<Item = &Deal> {
        self.deals.values()
    }
}

// ---- JSON shapes (unvalidated) ----

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DealSpec {
    affiliate: AffiliateId,
    currency: Currency,
    versions: Vec<DealVersionSpec>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DealVersionSpec {
    version: u32,
    effective_from: Month,
    hold_days: u32,
    clawback_days: u32,
    min_payout: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    brands: Option<Vec<BrandId>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    overrides: Vec<i64>,
    plan: PlanSpec,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum PlanSpec {
    Cpa {
        cpa: CpaSpec,
    },
    Revshare {
        revshare: RevShareSpec,
    },
    Hybrid {
        cpa: CpaSpec,
        revshare: RevShareSpec,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CpaSpec {
    #[serde(default)]
    amounts: BTreeMap<CountryCode, i64>,
    #[serde(default)]
    default_amount: Option<i64>,
    min_first_deposit: i64,
    first_deposit_within_days: u32,
    min_total_deposits: i64,
    min_wagering: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RevShareSpec {
    negative_carryover: bool,
    schedule: ScheduleSpec,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ScheduleSpec {
    Flat {
        rate_bps: i64,
    },
    Tiered {
        basis: TierBasis,
        tiers: Vec<StepSpec>,
    },
    Ladder {
        bands: Vec<StepSpec>,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StepSpec {
    from: i64,
    rate_bps: i64,
}

fn rate(field: &'static str, value: i64) -> Result<Bps, PlanError> {
    Bps::share(value).map_err(|_| PlanError::BadRate { field, value })
}

fn amount(field: &'static str, value: i64, currency: Currency) -> Result<Money, PlanError> {
    if value < 0 {
        return Err(PlanError::Negative { field, value });
    }
    Ok(Money::new(value, currency))
}

fn days(field: &'static str, value: u32, min: u32) -> Result<u32, PlanError> {
    if (min..=MAX_DAYS).contains(&value) {
        Ok(value)
    } else {
        Err(PlanError::BadDays { field, min, value })
    }
}

fn steps(field: &'static str, spec: Vec<StepSpec>) -> Result<Vec<Step>, PlanError> {
    let out = spec
        .into_iter()
        .map(|s| {
            Ok(Step {
                from: s.from,
                rate: rate(field, s.rate_bps)?,
            })
        })
        .collect::<Result<Vec<_>, PlanError>>()?;
    let starts_at_zero = out.first().is_some_and(|s| s.from == 0);
    let ascending = out.windows(2).all(|w| w[0].from < w[1].from);
    if starts_at_zero && ascending {
        Ok(out)
    } else {
        Err(PlanError::BadSteps)
    }
}

fn cpa_terms(s: CpaSpec, c: Currency) -> Result<CpaTerms, PlanError> {
    let amounts = s
        .amounts
        .into_iter()
        .map(|(country, v)| Ok((country, amount("cpa.amounts", v, c)?)))
        .collect::<Result<BTreeMap<_, _>, PlanError>>()?;
    let default_amount = s
        .default_amount
        .map(|v| amount("cpa.default_amount", v, c))
        .transpose()?;
    if amounts.is_empty() && default_amount.is_none() {
        return Err(PlanError::CpaWithoutAmounts);
    }
    Ok(CpaTerms {
        amounts,
        default_amount,
        min_first_deposit: amount("cpa.min_first_deposit", s.min_first_deposit, c)?,
        first_deposit_within_days: days(
            "cpa.first_deposit_within_days",
            s.first_deposit_within_days,
            1,
        )?,
        min_total_deposits: amount("cpa.min_total_deposits", s.min_total_deposits, c)?,
        min_wagering: amount("cpa.min_wagering", s.min_wagering, c)?,
    })
}

fn revshare_terms(s: RevShareSpec) -> Result<RevShareTerms, PlanError> {
    let schedule = match s.schedule {
        ScheduleSpec::Flat { rate_bps } => Schedule::Flat {
            rate: rate("schedule.rate_bps", rate_bps)?,
        },
        ScheduleSpec::Tiered { basis, tiers } => Schedule::Tiered {
            basis,
            tiers: steps("schedule.tiers", tiers)?,
        },
        ScheduleSpec::Ladder { bands } => Schedule::Ladder {
            bands: steps("schedule.bands", bands)?,
        },
    };
    Ok(RevShareTerms {
        negative_carryover: s.negative_carryover,
        schedule,
    })
}

impl TryFrom<DealSpec> for Deal {
    type Error = PlanError;
    fn try_from(spec: DealSpec) -> Result<Self, PlanError> {
        let c = spec.currency;
        let mut versions = Vec::with_capacity(spec.versions.len());
        for v in spec.versions {
            if v.overrides.len() > MAX_OVERRIDE_LEVELS {
                return Err(PlanError::TooManyOverrideLevels(v.overrides.len()));
            }
            let brands = match v.brands {
                Some(b) if b.is_empty() => return Err(PlanError::EmptyBrands),
                Some(b) => Some(b.into_iter().collect()),
                None => None,
            };
            versions.push(DealVersion {
                version: v.version,
                effective_from: v.effective_from,
                hold_days: days("hold_days", v.hold_days, 0)?,
                clawback_days: days("clawback_days", v.clawback_days, 0)?,
                min_payout: amount("min_payout", v.min_payout, c)?,
                brands,
                overrides: v
                    .overrides
                    .into_iter()
                    .map(|o| rate("overrides", o))
                    .collect::<Result<_, _>>()?,
                plan: match v.plan {
                    PlanSpec::Cpa { cpa } => Plan::Cpa(cpa_terms(cpa, c)?),
                    PlanSpec::Revshare { revshare } => Plan::RevShare(revshare_terms(revshare)?),
                    PlanSpec::Hybrid { cpa, revshare } => Plan::Hybrid {
                        cpa: cpa_terms(cpa, c)?,
                        revshare: revshare_terms(revshare)?,
                    },
                },
            });
        }
        if versions.is_empty() {
            return Err(PlanError::NoVersions);
        }
        let ordered = versions
            .windows(2)
            .all(|w| w[0].version < w[1].version && w[0].effective_from < w[1].effective_from);
        if !ordered {
            return Err(PlanError::VersionsOutOfOrder);
        }
        Ok(Deal {
            affiliate: spec.affiliate,
            currency: c,
            versions,
        })
    }
}

fn step_specs(steps: &[Step]) -> Vec<StepSpec> {
    steps
        .iter()
        .map(|s| StepSpec {
            from: s.from,
            rate_bps: s.rate.get(),
        })
        .collect()
}

fn cpa_spec(c: &CpaTerms) -> CpaSpec {
    CpaSpec {
        amounts: c.amounts.iter().map(|(k, v)| (*k, v.minor())).collect(),
        default_amount: c.default_amount.map(|m| m.minor()),
        min_first_deposit: c.min_first_deposit.minor(),
        first_deposit_within_days: c.first_deposit_within_days,
        min_total_deposits: c.min_total_deposits.minor(),
        min_wagering: c.min_wagering.minor(),
    }
}

fn revshare_spec(r: &RevShareTerms) -> RevShareSpec {
    RevShareSpec {
        negative_carryover: r.negative_carryover,
        schedule: match &r.schedule {
            Schedule::Flat { rate } => ScheduleSpec::Flat {
                rate_bps: rate.get(),
            },
            Schedule::Tiered { basis, tiers } => ScheduleSpec::Tiered {
                basis: *basis,
                tiers: step_specs(tiers),
            },
            Schedule::Ladder { bands } => ScheduleSpec::Ladder {
                bands: step_specs(bands),
            },
        },
    }
}

impl From<Deal> for DealSpec {
    fn from(d: Deal) -> Self {
        DealSpec {
            affiliate: d.affiliate,
            currency: d.currency,
            versions: d
                .versions
                .iter()
                .map(|v| DealVersionSpec {
                    version: v.version,
                    effective_from: v.effective_from,
                    hold_days: v.hold_days,
                    clawback_days: v.clawback_days,
                    min_payout: v.min_payout.minor(),
                    brands: v.brands.as_ref().map(|b| b.iter().copied().collect()),
                    overrides: v.overrides.iter().map(Bps::get).collect(),
                    plan: match &v.plan {
                        Plan::Cpa(c) => PlanSpec::Cpa { cpa: cpa_spec(c) },
                        Plan::RevShare(r) => PlanSpec::Revshare {
                            revshare: revshare_spec(r),
                        },
                        Plan::Hybrid { cpa, revshare } => PlanSpec::Hybrid {
                            cpa: cpa_spec(cpa),
                            revshare: revshare_spec(revshare),
                        },
                    },
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = r#"{
      "affiliate": "00000000-0000-0000-0000-00000000000a",
      "currency": "EUR",
      "versions": [{
        "version": 1, "effective_from": "2026-01", "hold_days": 30, "clawback_days": 90,
        "min_payout": 10000, "overrides": [1000, 500],
        "plan": {"type": "hybrid",
          "cpa": {"amounts": {"DE": 10000}, "min_first_deposit": 2000,
                  "first_deposit_within_days": 30, "min_total_deposits": 5000, "min_wagering": 10000},
          "revshare": {"negative_carryover": true,
                       "schedule": {"type": "ladder", "bands": [{"from": 0, "rate_bps": 2500}, {"from": 1000000, "rate_bps": 3500}]}}}
      }, {
        "version": 2, "effective_from": "2026-04", "hold_days": 30, "clawback_days": 90,
        "min_payout": 10000,
        "plan": {"type": "revshare", "revshare": {"negative_carryover": false,
                 "schedule": {"type": "flat", "rate_bps": 3000}}}
      }]
    }"#;

    fn month(s: &str) -> Month {
        Month::parse(s).expect("month")
    }

    #[test]
    fn a_deal_parses_from_json_and_picks_the_version_in_force() {
        let deal = Deal::from_json(HYBRID).expect("deal");
        assert!(deal.version_at(month("2025-12")).is_none());
        let v1 = deal.version_at(month("2026-03")).expect("v1");
        assert_eq!(v1.version(), 1);
        assert!(v1.plan().cpa().is_some() && v1.plan().revshare().is_some());
        assert_eq!(v1.override_rate(2).map(|b| b.get()), Some(500));
        assert_eq!(v1.override_rate(3), None);
        assert_eq!(v1.override_rate(0), None);
        let v2 = deal.version_at(month("2027-01")).expect("v2");
        assert_eq!(v2.version(), 2);
        assert!(v2.plan().cpa().is_none());
    }

    /// The deal of docs/commissions.md, "Deals".
    #[test]
    fn the_documented_example_deal_parses() {
        let json = r#"{
          "affiliate": "0190a1b2-0000-7000-8000-0000000000a1",
          "currency": "EUR",
          "versions": [{
            "version": 1,
            "effective_from": "2026-01",
            "hold_days": 30,
            "clawback_days": 90,
            "min_payout": 10000,
            "brands": ["0190a1b2-0000-7000-8000-000000000001"],
            "overrides": [1000, 500],
            "plan": {
              "type": "hybrid",
              "cpa": {
                "amounts": {"DE": 10000, "GB": 8000},
                "default_amount": null,
                "min_first_deposit": 2000,
                "first_deposit_within_days": 30,
                "min_total_deposits": 5000,
                "min_wagering": 10000
              },
              "revshare": {
                "negative_carryover": true,
                "schedule": {"type": "ladder", "bands": [
                  {"from": 0, "rate_bps": 2500},
                  {"from": 1000000, "rate_bps": 3500}
                ]}
              }
            }
          }]
        }"#;
        let deal = Deal::from_json(json).expect("documented deal");
        let v = deal.version_at(month("2026-06")).expect("version");
        let brand = BrandId::parse("0190a1b2-0000-7000-8000-000000000001").expect("brand");
        let other = BrandId::parse("0190a1b2-0000-7000-8000-000000000002").expect("brand");
        assert!(v.covers(brand) && !v.covers(other));
        assert_eq!(v.min_payout().minor(), 10_000);
    }

    #[test]
    fn a_deal_round_trips_through_json() {
        let deal = Deal::from_json(HYBRID).expect("deal");
        let again = Deal::from_json(&deal.to_json()).expect("again");
        assert_eq!(deal, again);
        let via_serde: Deal = serde_json::from_str(HYBRID).expect("serde");
        assert_eq!(deal, via_serde);
    }

    #[test]
    fn invalid_deals_are_refused_with_the_reason() {
        let bad_rate = HYBRID.replace("\"rate_bps\": 3000", "\"rate_bps\": 10001");
        assert_eq!(
            Deal::from_json(&bad_rate),
            Err(PlanError::BadRate {
                field: "schedule.rate_bps",
                value: 10_001
            })
        );
        let unordered = HYBRID.replace(
            "\"effective_from\": \"2026-04\"",
            "\"effective_from\": \"2026-01\"",
        );
        assert_eq!(
            Deal::from_json(&unordered),
            Err(PlanError::VersionsOutOfOrder)
        );
        let not_from_zero = HYBRID.replace("{\"from\": 0, \"rate_bps\": 2500}, ", "");
        assert_eq!(Deal::from_json(&not_from_zero), Err(PlanError::BadSteps));
        let negative = HYBRID.replace("\"min_wagering\": 10000", "\"min_wagering\": -1");
        assert!(matches!(
            Deal::from_json(&negative),
            Err(PlanError::Negative { .. })
        ));
        let no_amounts = HYBRID.replace("\"amounts\": {\"DE\": 10000}, ", "");
        assert_eq!(
            Deal::from_json(&no_amounts),
            Err(PlanError::CpaWithoutAmounts)
        );
        let typo = HYBRID.replacen("\"hold_days\"", "\"hold_dayz\"", 1);
        assert!(matches!(Deal::from_json(&typo), Err(PlanError::Json(_))));
    }

    #[test]
    fn cpa_amounts_differ_by_country_and_unknown_countries_are_not_eligible() {
        let deal = Deal::from_json(HYBRID).expect("deal");
        let cpa = deal
            .version_at(month("2026-01"))
            .and_then(|v| v.plan().cpa())
            .expect("cpa");
        let de = CountryCode::parse("DE").expect("DE");
        let fr = CountryCode::parse("FR").expect("FR");
        assert_eq!(cpa.amount_for(de).map(|m| m.minor()), Some(10_000));
        assert_eq!(cpa.amount_for(fr), None);
    }

    #[test]
    fn a_deal_book_refuses_two_deals_for_one_affiliate() {
        let deal = Deal::from_json(HYBRID).expect("deal");
        let a = deal.affiliate();
        assert_eq!(
            DealBook::new([deal.clone(), deal]),
            Err(PlanError::DuplicateDeal(a))
        );
    }
}
