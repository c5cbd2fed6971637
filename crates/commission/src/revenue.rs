//! Revenue: GGR and NGR of one player at one brand in one month, as a
//! statement of line items, under the brand's versioned NGR formula.
//!
//! Owns the formula and its rounding. Must not know about affiliates,
//! deals, credit shares or currencies other than the player's (the
//! statement is in the player's wallet currency; conversion happens later,
//! once per brand-month and currency, in [`super::revshare`]).
//!
//! # The formula (per player, brand and UTC month)
//!
//! With the month's events of the player at the brand:
//!
//! 1. `GGR = stakes − wins`
//! 2. `bonus cost` = sum of bonus costs
//! 3. `chargebacks` = sum of chargeback amounts
//! 4. `payment fee = round(deposits × payment_fee %)` — on the month's gross
//!    deposits
//! 5. `tax/levy = round(GGR × tax %)` — on GGR, signed (a negative GGR gives
//!    a negative tax, i.e. a credit)
//! 6. `net before admin fee = GGR − bonus cost − chargebacks − payment fee −
//!    tax/levy`
//! 7. `admin fee = round(net before admin fee × admin fee %)` — signed
//! 8. `NGR = net before admin fee − admin fee`
//!
//! `round` is half-to-even to the currency's minor unit, applied once per
//! line. The percentage lines are linear (signed), so a brand's NGR is the
//! sum of its players' NGR up to one minor unit per player and line, and
//! splitting a month's activity between players never changes the total.
//!
//! Each step is one [`NgrLine`] naming the events behind it; the lines add
//! up to NGR exactly.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use clickstitch_shared::BrandId;

use clickstitch_domain::money::{Bps, Currency, Money, MoneyError};

use super::facts::{BrandEventId, EventKind, PlayerFacts, PlayerId};
use super::time::Month;

/// Namespace of statement ids (UUIDv5 over the statement's content).
const STATEMENT_NAMESPACE: Uuid = Uuid::from_u128(0x3f0c_7a52_e1d4_4b6a_9c28_51ab_0e7d_c0a1);

/// Why a formula or a statement failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RevenueError {
    /// Not valid JSON for a formula.
    #[error("formula JSON: {0}")]
    Json(String),
    /// A formula needs at least one version.
    #[error("a formula needs at least one version")]
    NoVersions,
    /// Versions must increase with `effective_from`, both strictly.
    #[error("formula versions must have strictly increasing numbers and effective_from months")]
    VersionsOutOfOrder,
    /// A percentage outside 0..=10 000 bps.
    #[error("{field}: rate must be 0..=10000 bps, got {value}")]
    BadRate {
        /// Which field.
        field: &'static str,
        /// The value.
        value: i64,
    },
    /// Two formulas for one brand.
    #[error("brand {0} has two formulas")]
    DuplicateBrand(BrandId),
    /// No formula version in force for a brand-month with activity.
    #[error("no NGR formula for brand {brand} in {month}")]
    NoFormula {
        /// The brand.
        brand: BrandId,
        /// The month.
        month: Month,
    },
    /// Arithmetic overflow.
    #[error(transparent)]
    Money(#[from] MoneyError),
}

/// One version of a brand's NGR formula.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FormulaVersion {
    version: u32,
    effective_from: Month,
    payment_fee: Bps,
    tax: Bps,
    admin_fee: Bps,
}

impl FormulaVersion {
    /// The version number (recorded on statements and ledger rows).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// First month it applies to.
    pub fn effective_from(&self) -> Month {
        self.effective_from
    }

    /// Payment fee, on deposits.
    pub fn payment_fee(&self) -> Bps {
        self.payment_fee
    }

    /// Tax / levy, on GGR.
    pub fn tax(&self) -> Bps {
        self.tax
    }

    /// Admin fee, on the net before admin fee.
    pub fn admin_fee(&self) -> Bps {
        self.admin_fee
    }
}

/// A brand's NGR formula, versioned by month. JSON:
/// `{"brand": "…", "versions": [{"version": 1, "effective_from": "2026-01",
/// "payment_fee_bps": 250, "tax_bps": 1000, "admin_fee_bps": 500}]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "FormulaSpec", into = "FormulaSpec")]
pub struct NgrFormula {
    brand: BrandId,
    versions: Vec<FormulaVersion>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FormulaSpec {
    brand: BrandId,
    versions: Vec<FormulaVersionSpec>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FormulaVersionSpec {
    version: u32,
    effective_from: Month,
    payment_fee_bps: i64,
    tax_bps: i64,
    admin_fee_bps: i64,
}

fn rate(field: &'static str, value: i64) -> Result<Bps, RevenueError> {
    Bps::share(value).map_err(|_| RevenueError::BadRate { field, value })
}

impl TryFrom<FormulaSpec> for NgrFormula {
    type Error = RevenueError;
    fn try_from(s: FormulaSpec) -> Result<Self, RevenueError> {
        let versions = s
            .versions
            .into_iter()
            .map(|v| {
                Ok(FormulaVersion {
                    version: v.version,
                    effective_from: v.effective_from,
                    payment_fee: rate("payment_fee_bps", v.payment_fee_bps)?,
                    tax: rate("tax_bps", v.tax_bps)?,
                    admin_fee: rate("admin_fee_bps", v.admin_fee_bps)?,
                })
            })
            .collect::<Result<Vec<_>, RevenueError>>()?;
        if versions.is_empty() {
            return Err(RevenueError::NoVersions);
        }
        if !versions
            .windows(2)
            .all(|w| w[0].version < w[1].version && w[0].effective_from < w[1].effective_from)
        {
            return Err(RevenueError::VersionsOutOfOrder);
        }
        Ok(Self {
            brand: s.brand,
            versions,
        })
    }
}

impl From<NgrFormula> for FormulaSpec {
    fn from(f: NgrFormula) -> Self {
        FormulaSpec {
            brand: f.brand,
            versions: f
                .versions
                .iter()
                .map(|v| FormulaVersionSpec {
                    version: v.version,
                    effective_from: v.effective_from,
                    payment_fee_bps: v.payment_fee.get(),
                    tax_bps: v.tax.get(),
                    admin_fee_bps: v.admin_fee.get(),
                })
                .collect(),
        }
    }
}

impl NgrFormula {
    /// Parses and validates a formula written as JSON.
    pub fn from_json(text: &str) -> Result<Self, RevenueError> {
        serde_json::from_str(text).map_err(|e| RevenueError::Json(e.to_string()))
    }

    /// The brand.
    pub fn brand(&self) -> BrandId {
        self.brand
    }

    /// The version in force in `month`.
    pub fn version_at(&self, month: Month) -> Option<&FormulaVersion> {
        self.versions
            .iter()
            .rev()
            .find(|v| v.effective_from <= month)
    }
}

/// All brands' formulas.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FormulaBook {
    formulas: BTreeMap<BrandId, NgrFormula>,
}

impl FormulaBook {
    /// Refuses two formulas for one brand.
    pub fn new(formulas: impl IntoIterator<Item = NgrFormula>) -> Result<Self, RevenueError> {
        let mut map = BTreeMap::new();
        for f in formulas {
            let b = f.brand;
            if map.insert(b, f).is_some() {
                return Err(RevenueError::DuplicateBrand(b));
            }
        }
        Ok(Self { formulas: map })
    }

    /// The version in force for a brand-month.
    pub fn version_at(&self, brand: BrandId, month: Month) -> Option<&FormulaVersion> {
        self.formulas.get(&brand).and_then(|f| f.version_at(month))
    }
}

/// What a statement line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LineKind {
    /// `+ stakes`.
    Stakes,
    /// `− wins`.
    Wins,
    /// `− bonus cost`.
    BonusCost,
    /// `− chargebacks`.
    Chargebacks,
    /// `− payment fee % × deposits`.
    PaymentFee,
    /// `− tax % × GGR`.
    TaxLevy,
    /// `− admin fee % × net before admin fee`.
    AdminFee,
}

/// One line of a statement: its signed contribution to NGR and how it was
/// reached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NgrLine {
    /// What it is.
    pub kind: LineKind,
    /// Signed contribution to NGR (deductions are negative).
    pub amount: Money,
    /// For percentage lines: the amount the rate applies to.
    pub base: Option<Money>,
    /// For percentage lines: the rate.
    pub rate: Option<Bps>,
    /// The events behind the line (for percentage lines: behind the base).
    pub events: Vec<BrandEventId>,
}

/// How one player's NGR at one brand in one month was reached. Immutable:
/// its id is a UUIDv5 of its content, so a changed statement (late events,
/// new formula version) is a new statement with a new id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NgrStatement {
    /// UUIDv5 over the rest of the statement.
    pub id: Uuid,
    /// The player.
    pub player: PlayerId,
    /// The brand.
    pub brand: BrandId,
    /// The month.
    pub month: Month,
    /// The formula version used.
    pub formula_version: u32,
    /// The player's currency.
    pub currency: Currency,
    /// Gross deposits of the month (the payment fee base).
    pub deposits: Money,
    /// Stakes − wins.
    pub ggr: Money,
    /// The lines, in formula order; they sum to `ngr`.
    pub lines: Vec<NgrLine>,
    /// Net gaming revenue.
    pub ngr: Money,
}

#[derive(Default)]
struct Sums {
    stakes: i64,
    wins: i64,
    bonus: i64,
    chargebacks: i64,
    deposits: i64,
    game_events: Vec<BrandEventId>,
    bonus_events: Vec<BrandEventId>,
    chargeback_events: Vec<BrandEventId>,
    deposit_events: Vec<BrandEventId>,
}

fn add(acc: &mut i64, m: Money) -> Result<(), MoneyError> {
    *acc = acc.checked_add(m.minor()).ok_or(MoneyError::Overflow)?;
    Ok(())
}

/// The player's statements, one per month with money events (deposits,
/// game activity, bonus costs, chargebacks), oldest first.
pub fn statements(
    facts: &PlayerFacts,
    formulas: &FormulaBook,
) -> Result<Vec<NgrStatement>, RevenueError> {
    let mut months: BTreeMap<Month, Sums> = BTreeMap::new();
    for e in facts.events() {
        let sums = || Sums::default();
        match &e.kind {
            EventKind::Deposit { amount } => {
                let s = months.entry(e.at.month()).or_insert_with(sums);
                add(&mut s.deposits, *amount)?;
                s.deposit_events.push(e.id.clone());
            }
            EventKind::Game { stakes, wins } => {
                let s = months.entry(e.at.month()).or_insert_with(sums);
                add(&mut s.stakes, *stakes)?;
                add(&mut s.wins, *wins)?;
                s.game_events.push(e.id.clone());
            }
            EventKind::BonusCost { amount } => {
                let s = months.entry(e.at.month()).or_insert_with(sums);
                add(&mut s.bonus, *amount)?;
                s.bonus_events.push(e.id.clone());
            }
            EventKind::Chargeback { amount, .. } => {
                let s = months.entry(e.at.month()).or_insert_with(sums);
                add(&mut s.chargebacks, *amount)?;
                s.chargeback_events.push(e.id.clone());
            }
            EventKind::Kyc { .. } | EventKind::Flag { .. } | EventKind::FraudConfirmed => {}
        }
    }
    months
        .into_iter()
        .map(|(month, sums)| {
            let formula =
                formulas
                    .version_at(facts.brand(), month)
                    .ok_or(RevenueError::NoFormula {
                        brand: facts.brand(),
                        month,
                    })?;
            statement(
                facts.player(),
                facts.brand(),
                facts.currency(),
                month,
                formula,
                &sums,
            )
        })
        .collect()
}

fn statement(
    player: PlayerId,
    brand: BrandId,
    currency: Currency,
    month: Month,
    formula: &FormulaVersion,
    s: &Sums,
) -> Result<NgrStatement, RevenueError> {
    let m = |minor| Money::new(minor, currency);
    let stakes = m(s.stakes);
    let wins = m(s.wins);
    let ggr = stakes.checked_sub(&wins)?;
    let bonus = m(s.bonus);
    let chargebacks = m(s.chargebacks);
    let deposits = m(s.deposits);
    let payment_fee = deposits.apply(formula.payment_fee)?;
    let tax = ggr.apply(formula.tax)?;
    let net_before_admin = ggr
        .checked_sub(&bonus)?
        .checked_sub(&chargebacks)?
        .checked_sub(&payment_fee)?
        .checked_sub(&tax)?;
    let admin_fee = net_before_admin.apply(formula.admin_fee)?;
    let ngr = net_before_admin.checked_sub(&admin_fee)?;
    let line = |kind, amount: Money, base, rate, events: &Vec<BrandEventId>| NgrLine {
        kind,
        amount,
        base,
        rate,
        events: events.clone(),
    };
    let lines = vec![
        line(LineKind::Stakes, stakes, None, None, &s.game_events),
        line(LineKind::Wins, wins.negated()?, None, None, &s.game_events),
        line(
            LineKind::BonusCost,
            bonus.negated()?,
            None,
            None,
            &s.bonus_events,
        ),
        line(
            LineKind::Chargebacks,
            chargebacks.negated()?,
            None,
            None,
            &s.chargeback_events,
        ),
        line(
            LineKind::PaymentFee,
            payment_fee.negated()?,
            Some(deposits),
            Some(formula.payment_fee),
            &s.deposit_events,
        ),
        line(
            LineKind::TaxLevy,
            tax.negated()?,
            Some(ggr),
            Some(formula.tax),
            &s.game_events,
        ),
        line(
            LineKind::AdminFee,
            admin_fee.negated()?,
            Some(net_before_admin),
            Some(formula.admin_fee),
            &Vec::new(),
        ),
    ];
    let mut st = NgrStatement {
        id: Uuid::nil(),
        player,
        brand,
        month,
        formula_version: formula.version,
        currency,
        deposits,
        ggr,
        lines,
        ngr,
    };
    let bytes = serde_json::to_vec(&st)
        .unwrap_or_else(|e| unreachable!("a statement always serialises: {e}"));
    st.id = Uuid::new_v5(&STATEMENT_NAMESPACE, &bytes);
    Ok(st)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::{PlayerEvent, Registration};
    use crate::time::Timestamp;
    use clickstitch_shared::CountryCode;

    fn eur() -> Currency {
        Currency::parse("EUR").expect("EUR")
    }

    fn formula() -> FormulaBook {
        let f = NgrFormula::from_json(
            r#"{"brand": "00000000-0000-0000-0000-0000000000b1", "versions": [
                {"version": 3, "effective_from": "2026-01", "payment_fee_bps": 250, "tax_bps": 1000, "admin_fee_bps": 500}]}"#,
        )
        .expect("formula");
        FormulaBook::new([f]).expect("book")
    }

    fn ev(id: &str, day: u8, kind: EventKind) -> PlayerEvent {
        PlayerEvent {
            id: BrandEventId::new(id).expect("id"),
            at: Timestamp::utc(2026, 1, day, 12, 0).expect("t"),
            kind,
        }
    }

    /// The worked example "NGR line items" of docs/commissions.md.
    #[test]
    fn ngr_line_items_follow_the_documented_formula() {
        let e = |minor| Money::new(minor, eur());
        let facts = PlayerFacts::new(
            PlayerId::from(Uuid::from_u128(1)),
            BrandId::from(Uuid::from_u128(0xb1)),
            eur(),
            Registration {
                event: BrandEventId::new("reg").expect("id"),
                at: Timestamp::utc(2026, 1, 1, 0, 0).expect("t"),
                country: CountryCode::parse("DE").expect("DE"),
                recorded_at: None,
            },
            None,
            vec![
                ev("dep-1", 2, EventKind::Deposit { amount: e(50_000) }),
                ev(
                    "game-1",
                    3,
                    EventKind::Game {
                        stakes: e(200_000),
                        wins: e(170_000),
                    },
                ),
                ev("bonus-1", 4, EventKind::BonusCost { amount: e(2_000) }),
                ev(
                    "cb-1",
                    5,
                    EventKind::Chargeback {
                        amount: e(1_000),
                        deposit: None,
                    },
                ),
            ],
        )
        .expect("facts");
        let st = statements(&facts, &formula()).expect("statements");
        assert_eq!(st.len(), 1);
        let s = &st[0];
        let amounts: Vec<(LineKind, i64)> =
            s.lines.iter().map(|l| (l.kind, l.amount.minor())).collect();
        assert_eq!(
            amounts,
            vec![
                (LineKind::Stakes, 200_000),
                (LineKind::Wins, -170_000),
                (LineKind::BonusCost, -2_000),
                (LineKind::Chargebacks, -1_000),
                (LineKind::PaymentFee, -1_250),
                (LineKind::TaxLevy, -3_000),
                (LineKind::AdminFee, -1_138),
            ]
        );
        assert_eq!(s.ggr.minor(), 30_000);
        assert_eq!(s.ngr.minor(), 21_612);
        assert_eq!(
            s.lines.iter().map(|l| l.amount.minor()).sum::<i64>(),
            21_612
        );
        assert_eq!(s.formula_version, 3);
        // The admin fee base is the net before admin fee: 227.50 EUR.
        assert_eq!(s.lines[6].base.map(|b| b.minor()), Some(22_750));
        // Same content, same id.
        assert_eq!(statements(&facts, &formula()).expect("again")[0].id, s.id);
    }

    #[test]
    fn a_losing_month_gives_a_negative_ngr_with_signed_tax_and_admin_fee() {
        let e = |minor| Money::new(minor, eur());
        let facts = PlayerFacts::new(
            PlayerId::from(Uuid::from_u128(1)),
            BrandId::from(Uuid::from_u128(0xb1)),
            eur(),
            Registration {
                event: BrandEventId::new("reg").expect("id"),
                at: Timestamp::utc(2026, 1, 1, 0, 0).expect("t"),
                country: CountryCode::parse("DE").expect("DE"),
                recorded_at: None,
            },
            None,
            vec![ev(
                "game-1",
                3,
                EventKind::Game {
                    stakes: e(10_000),
                    wins: e(30_000),
                },
            )],
        )
        .expect("facts");
        let s = &statements(&facts, &formula()).expect("statements")[0];
        // GGR −200.00; tax −(−20.00) = +20.00; net −180.00; admin +9.00.
        assert_eq!(s.ggr.minor(), -20_000);
        assert_eq!(s.lines[5].amount.minor(), 2_000);
        assert_eq!(s.lines[6].amount.minor(), 900);
        assert_eq!(s.ngr.minor(), -17_100);
    }

    #[test]
    fn a_month_without_a_formula_is_an_error() {
        let facts = PlayerFacts::new(
            PlayerId::from(Uuid::from_u128(1)),
            BrandId::from(Uuid::from_u128(0xb2)),
            eur(),
            Registration {
                event: BrandEventId::new("reg").expect("id"),
                at: Timestamp::utc(2026, 1, 1, 0, 0).expect("t"),
                country: CountryCode::parse("DE").expect("DE"),
                recorded_at: None,
            },
            None,
            vec![ev(
                "dep",
                2,
                EventKind::Deposit {
                    amount: Money::new(1, eur()),
                },
            )],
        )
        .expect("facts");
        assert!(matches!(
            statements(&facts, &formula()),
            Err(RevenueError::NoFormula { .. })
        ));
    }
}
