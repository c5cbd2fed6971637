//! RevShare: from the credited NGR of an affiliate's players, month by
//! month, to the month's commission — per-brand negative carryover, then
//! the flat / tiered / ladder schedule.
//!
//! Owns, for one affiliate and one set of players (a "world", see
//! [`super::engine`]):
//!
//! 1. **Brand NGR**: for each brand, the month's credited NGR (each player
//!    statement's NGR × the affiliate's credit share, rounded half-to-even
//!    per statement), summed per player currency and converted once per
//!    currency with the month's FX table into the deal currency.
//! 2. **Carryover, per brand**: `net = NGR + carry_in`. If `net < 0` the
//!    brand's base is 0 and, when the deal version has negative carryover,
//!    `carry_out = net` (otherwise the loss is forgotten: NNCO). If
//!    `net ≥ 0`, base = net and nothing carries. Brands never offset each
//!    other. A month whose deal version has no RevShare, or NNCO, clears all
//!    carry.
//! 3. **Base** = Σ brand bases (≥ 0).
//! 4. **Schedule**: flat — `base × rate`; tiered — `base × rate of the
//!    highest tier whose from ≤ basis` (basis = the base, or the month's
//!    first-time depositors, each counting its credit share); ladder — each
//!    band's portion of the base at the band's rate, summed. Every line is
//!    rounded half-to-even once.
//!
//! Must not decide which players count (the engine does) nor write ledger
//! entries.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use clickstitch_shared::BrandId;

use clickstitch_domain::money::{Bps, Currency, Money, MoneyError};

use super::fx::{FxBook, FxError};
use super::plan::{Deal, Schedule, Step, TierBasis};
use super::time::Month;

/// One line of a schedule: a portion of the base at one rate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BandLine {
    /// The band's / tier's lower bound (minor units, or players for FTD
    /// tiers).
    pub from: i64,
    /// The next band's / tier's bound, if any.
    pub to: Option<i64>,
    /// The part of the base this line applies to.
    pub portion: Money,
    /// The rate.
    pub rate: Bps,
    /// `portion × rate`, rounded half-to-even.
    pub amount: Money,
}

/// The schedule applied to a month.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleOutcome {
    /// For tiered schedules: the tier reached (1 = first).
    pub tier: Option<u32>,
    /// The lines (one for flat and tiered).
    pub lines: Vec<BandLine>,
    /// Σ line amounts.
    pub commission: Money,
}

/// Applies `schedule` to a month's `base` (≥ 0) with `ftd_bps` first-time
/// depositors (10 000 = one player with full credit).
pub fn apply_schedule(
    schedule: &Schedule,
    base: Money,
    ftd_bps: i64,
) -> Result<ScheduleOutcome, MoneyError> {
    let line = |from, to, portion: Money, rate| -> Result<BandLine, MoneyError> {
        Ok(BandLine {
            from,
            to,
            portion,
            rate,
            amount: portion.apply(rate)?,
        })
    };
    match schedule {
        Schedule::Flat { rate } => {
            let l = line(0, None, base, *rate)?;
            Ok(ScheduleOutcome {
                tier: None,
                commission: l.amount,
                lines: vec![l],
            })
        }
        Schedule::Tiered { basis, tiers } => {
            let reached = |s: &Step| match basis {
                TierBasis::Ngr => base.minor() >= s.from,
                TierBasis::Ftd => i128::from(ftd_bps) >= i128::from(s.from) * 10_000,
            };
            let idx = tiers.iter().rposition(reached).unwrap_or(0);
            let Some(tier) = tiers.get(idx) else {
                return Ok(ScheduleOutcome {
                    tier: None,
                    lines: vec![],
                    commission: Money::zero(base.currency()),
                });
            };
            let to = tiers.get(idx + 1).map(|s| s.from);
            let l = line(tier.from, to, base, tier.rate)?;
            Ok(ScheduleOutcome {
                tier: Some(idx as u32 + 1),
                commission: l.amount,
                lines: vec![l],
            })
        }
        Schedule::Ladder { bands } => {
            let mut lines = Vec::new();
            let mut commission = Money::zero(base.currency());
            for (i, band) in bands.iter().enumerate() {
                let to = bands.get(i + 1).map(|s| s.from);
                let above = base.minor().saturating_sub(band.from);
                let portion = match to {
                    Some(t) => above.min(t - band.from),
                    None => above,
                };
                if portion <= 0 {
                    break;
                }
                let l = line(
                    band.from,
                    to,
                    Money::new(portion, base.currency()),
                    band.rate,
                )?;
                commission = commission.checked_add(&l.amount)?;
                lines.push(l);
            }
            Ok(ScheduleOutcome {
                tier: None,
                lines,
                commission,
            })
        }
    }
}

/// A conversion of one brand-month's NGR in one player currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conversion {
    /// Player-currency NGR.
    pub from: Money,
    /// In the deal currency.
    pub to: Money,
    /// FX table version.
    pub fx_version: u32,
}

/// One brand's line of a month.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrandBase {
    /// The brand.
    pub brand: BrandId,
    /// The month's credited NGR (deal currency).
    pub ngr: Money,
    /// Negative NGR carried in from earlier months (≤ 0).
    pub carry_in: Money,
    /// `max(0, ngr + carry_in)`.
    pub base: Money,
    /// Carried to the next month (≤ 0; 0 under NNCO).
    pub carry_out: Money,
    /// Currency conversions behind `ngr`.
    pub conversions: Vec<Conversion>,
}

/// One month's RevShare computation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonthCommission {
    /// The month.
    pub month: Month,
    /// The deal version in force.
    pub deal_version: u32,
    /// Whether negative carryover applied.
    pub negative_carryover: bool,
    /// Per brand.
    pub brands: Vec<BrandBase>,
    /// Σ brand bases.
    pub base: Money,
    /// First-time depositors (10 000 = one player).
    pub ftd_bps: i64,
    /// The schedule applied to `base`.
    pub schedule: ScheduleOutcome,
}

impl MonthCommission {
    /// The commission.
    pub fn commission(&self) -> Money {
        self.schedule.commission
    }

    /// FX table versions used.
    pub fn fx_versions(&self) -> BTreeSet<u32> {
        self.brands
            .iter()
            .flat_map(|b| b.conversions.iter().map(|c| c.fx_version))
            .collect()
    }
}

/// The credited NGR of one month, per brand and player currency.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MonthNgr {
    ngr: BTreeMap<BrandId, BTreeMap<Currency, i64>>,
    ftd_bps: i64,
}

impl MonthNgr {
    /// Adds a statement's credited NGR.
    pub fn add(&mut self, brand: BrandId, ngr: Money) -> Result<(), MoneyError> {
        let slot = self
            .ngr
            .entry(brand)
            .or_default()
            .entry(ngr.currency())
            .or_default();
        *slot = slot.checked_add(ngr.minor()).ok_or(MoneyError::Overflow)?;
        Ok(())
    }

    /// Adds a first-time depositor with `share` of the credit.
    pub fn add_ftd(&mut self, share: Bps) {
        self.ftd_bps = self.ftd_bps.saturating_add(share.get());
    }
}

/// Why a RevShare computation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RevShareError {
    /// Conversion failed.
    #[error(transparent)]
    Fx(#[from] FxError),
    /// Overflow.
    #[error(transparent)]
    Money(#[from] MoneyError),
}

/// Computes every month of `months` (ascending) for `deal`: months whose
/// deal version has no RevShare are absent from the result.
pub fn compute(
    deal: &Deal,
    months: &BTreeMap<Month, MonthNgr>,
    fx: &FxBook,
) -> Result<BTreeMap<Month, MonthCommission>, RevShareError> {
    let currency = deal.currency();
    let zero = Money::zero(currency);
    let mut carry: BTreeMap<BrandId, Money> = BTreeMap::new();
    let mut out = BTreeMap::new();
    for (&month, input) in months {
        let Some((version, terms)) = deal
            .version_at(month)
            .and_then(|v| v.plan().revshare().map(|r| (v, r)))
        else {
            carry.clear();
            continue;
        };
        let carryover = terms.negative_carryover();
        if !carryover {
            carry.clear();
        }
        let brands: BTreeSet<BrandId> = input.ngr.keys().chain(carry.keys()).copied().collect();
        let mut lines = Vec::new();
        let mut base = zero;
        for brand in brands {
            let mut ngr = zero;
            let mut conversions = Vec::new();
            for (&ccy, &minor) in input.ngr.get(&brand).into_iter().flatten() {
                let from = Money::new(minor, ccy);
                let c = fx.convert(from, currency, month)?;
                if let Some(fx_version) = c.fx_version {
                    conversions.push(Conversion {
                        from,
                        to: c.amount,
                        fx_version,
                    });
                }
                ngr = ngr.checked_add(&c.amount)?;
            }
            let carry_in = carry.get(&brand).copied().unwrap_or(zero);
            let net = ngr.checked_add(&carry_in)?;
            let (brand_base, carry_out) = if net.minor() < 0 {
                (zero, if carryover { net } else { zero })
            } else {
                (net, zero)
            };
            if carry_out.minor() < 0 {
                carry.insert(brand, carry_out);
            } else {
                carry.remove(&brand);
            }
            base = base.checked_add(&brand_base)?;
            lines.push(BrandBase {
                brand,
                ngr,
                carry_in,
                base: brand_base,
                carry_out,
                conversions,
            });
        }
        let schedule = apply_schedule(terms.schedule(), base, input.ftd_bps)?;
        out.insert(
            month,
            MonthCommission {
                month,
                deal_version: version.version(),
                negative_carryover: carryover,
                brands: lines,
                base,
                ftd_bps: input.ftd_bps,
                schedule,
            },
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eur(minor: i64) -> Money {
        Money::new(minor, Currency::parse("EUR").expect("EUR"))
    }

    fn steps(list: &[(i64, i64)]) -> Vec<Step> {
        list.iter()
            .map(|&(from, bps)| Step {
                from,
                rate: Bps::share(bps).expect("bps"),
            })
            .collect()
    }

    /// The worked example "tiered vs ladder" of docs/commissions.md.
    #[test]
    fn ladder_and_tiered_differ_on_the_same_base() {
        let table = steps(&[(0, 2_000), (500_000, 3_000), (1_000_000, 4_000)]);
        let tiered = Schedule::Tiered {
            basis: TierBasis::Ngr,
            tiers: table.clone(),
        };
        let ladder = Schedule::Ladder { bands: table };
        let base = eur(1_200_000);
        let t = apply_schedule(&tiered, base, 0).expect("tiered");
        assert_eq!(t.tier, Some(3));
        assert_eq!(t.commission, eur(480_000));
        let l = apply_schedule(&ladder, base, 0).expect("ladder");
        let parts: Vec<i64> = l.lines.iter().map(|b| b.amount.minor()).collect();
        assert_eq!(parts, vec![100_000, 150_000, 80_000]);
        assert_eq!(l.commission, eur(330_000));
    }

    #[test]
    fn a_tier_boundary_hit_exactly_reaches_the_tier() {
        let tiers = steps(&[(0, 2_500), (1_000_000, 3_500)]);
        let s = Schedule::Tiered {
            basis: TierBasis::Ngr,
            tiers,
        };
        let below = apply_schedule(&s, eur(999_999), 0).expect("below");
        assert_eq!((below.tier, below.commission), (Some(1), eur(250_000)));
        let exact = apply_schedule(&s, eur(1_000_000), 0).expect("exact");
        assert_eq!((exact.tier, exact.commission), (Some(2), eur(350_000)));
    }

    #[test]
    fn ftd_tiers_count_credit_weighted_players() {
        let s = Schedule::Tiered {
            basis: TierBasis::Ftd,
            tiers: steps(&[(0, 2_000), (3, 3_000)]),
        };
        // 2.5 players: tier 1; exactly 3: tier 2.
        let below = apply_schedule(&s, eur(100_000), 25_000).expect("below");
        assert_eq!(below.tier, Some(1));
        let exact = apply_schedule(&s, eur(100_000), 30_000).expect("exact");
        assert_eq!((exact.tier, exact.commission), (Some(2), eur(30_000)));
    }

    #[test]
    fn a_ladder_band_boundary_hit_exactly_fills_the_band_and_nothing_more() {
        let s = Schedule::Ladder {
            bands: steps(&[(0, 2_500), (1_000_000, 3_500)]),
        };
        let o = apply_schedule(&s, eur(1_000_000), 0).expect("ladder");
        assert_eq!(o.lines.len(), 1);
        assert_eq!(o.commission, eur(250_000));
        let zero = apply_schedule(&s, eur(0), 0).expect("zero");
        assert!(zero.lines.is_empty());
        assert_eq!(zero.commission, eur(0));
    }
}
