//! Money: integer minor units of one currency, percentages in basis points,
//! and a versioned FX table. There are no floats anywhere in this module.
//!
//! Owns the arithmetic and its rounding. Amounts of different currencies are
//! never added: [`Money::checked_add`] refuses, and conversion goes through
//! [`FxTable::convert`], whose version is recorded by whoever converts.
//! Rounding is explicit and always half-to-even ("banker's rounding"), so
//! splitting and summing many small amounts does not drift one way.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a money operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    /// Not an ISO 4217 code of a currency with a minor unit.
    #[error("currency must be an ISO 4217 currency code such as \"EUR\", got {0:?}")]
    BadCurrency(String),
    /// Two different currencies in one sum.
    #[error("cannot combine {0} and {1} without an FX conversion")]
    CurrencyMismatch(Currency, Currency),
    /// The result does not fit in 64 bits of minor units.
    #[error("amount overflow")]
    Overflow,
    /// The FX table has no rate for the pair.
    #[error("FX table {version} has no rate {from} -> {to}")]
    NoRate {
        /// Table version.
        version: u32,
        /// Source currency.
        from: Currency,
        /// Target currency.
        to: Currency,
    },
    /// A basis-point value outside 0..=10000 where a share is required.
    #[error("percentage must be between 0 and 100% (0..=10000 basis points), got {0}")]
    BadShare(i64),
}

/// An ISO 4217 currency code, with its number of minor-unit digits.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Currency([u8; 3]);

impl Currency {
    /// "No currency" (ISO 4217 `XXX`): the wallet of a player with no money
    /// events yet. Never accepted from a request.
    pub const NONE: Currency = Currency(*b"XXX");

    /// Parses an active ISO 4217 code of a currency with a minor unit
    /// (`EUR`, `usd` → `USD`, `JPY`), checked against the `iso_currency`
    /// crate's table. Made-up codes (`ZZZ`) and codes that are not money
    /// (`XXX`, `XAU`, `XTS`) are refused.
    pub fn parse(text: &str) -> Result<Self, MoneyError> {
        let bad = || MoneyError::BadCurrency(text.chars().take(16).collect());
        let upper = text.trim().to_ascii_uppercase();
        let iso = iso_currency::Currency::from_code(&upper).ok_or_else(bad)?;
        if iso.exponent().is_none() {
            return Err(bad());
        }
        match upper.as_bytes() {
            [a, b, c] => Ok(Self([*a, *b, *c])),
            _ => Err(bad()),
        }
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("XXX")
    }

    /// Digits after the decimal point (ISO 4217 exponent): 0 for JPY, KRW,
    /// …; 3 for BHD, KWD, …; 2 for most.
    pub fn minor_digits(&self) -> u32 {
        iso_currency::Currency::from_code(self.as_str())
            .and_then(|c| c.exponent())
            .map_or(2, u32::from)
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Currency({})", self.as_str())
    }
}

impl Serialize for Currency {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let t = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::parse(&t).map_err(serde::de::Error::custom)
    }
}

/// An amount in minor units (cents, pence, …) of one currency. May be
/// negative (losses, reversals).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Money {
    minor: i64,
    currency: Currency,
}

impl Money {
    /// `minor` units of `currency`.
    pub fn new(minor: i64, currency: Currency) -> Self {
        Self { minor, currency }
    }

    /// Zero of `currency`.
    pub fn zero(currency: Currency) -> Self {
        Self::new(0, currency)
    }

    /// Minor units.
    pub fn minor(&self) -> i64 {
        self.minor
    }

    /// Currency.
    pub fn currency(&self) -> Currency {
        self.currency
    }

    fn same(&self, other: &Money) -> Result<(), MoneyError> {
        if self.currency == other.currency {
            Ok(())
        } else {
            Err(MoneyError::CurrencyMismatch(self.currency, other.currency))
        }
    }

    /// `self + other`, same currency only.
    pub fn checked_add(&self, other: &Money) -> Result<Money, MoneyError> {
        self.same(other)?;
        let minor = self
            .minor
            .checked_add(other.minor)
            .ok_or(MoneyError::Overflow)?;
        Ok(Money::new(minor, self.currency))
    }

    /// `self - other`, same currency only.
    pub fn checked_sub(&self, other: &Money) -> Result<Money, MoneyError> {
        self.same(other)?;
        let minor = self
            .minor
            .checked_sub(other.minor)
            .ok_or(MoneyError::Overflow)?;
        Ok(Money::new(minor, self.currency))
    }

    /// `-self`.
    pub fn negated(&self) -> Result<Money, MoneyError> {
        Ok(Money::new(
            self.minor.checked_neg().ok_or(MoneyError::Overflow)?,
            self.currency,
        ))
    }

    /// `self × rate`, rounded half-to-even to minor units.
    pub fn apply(&self, rate: Bps) -> Result<Money, MoneyError> {
        let minor = round_half_even(i128::from(self.minor) * i128::from(rate.0), 10_000)?;
        Ok(Money::new(minor, self.currency))
    }

    /// Sums amounts of one currency (`zero` when empty).
    pub fn sum<'a>(
        currency: Currency,
        items: impl IntoIterator<Item = &'a Money>,
    ) -> Result<Money, MoneyError> {
        items
            .into_iter()
            .try_fold(Money::zero(currency), |acc, m| acc.checked_add(m))
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = self.currency.minor_digits();
        let scale = 10i64.pow(digits);
        let sign = if self.minor < 0 { "-" } else { "" };
        let abs = self.minor.unsigned_abs();
        if digits == 0 {
            write!(f, "{sign}{abs} {}", self.currency)
        } else {
            let scale = scale.unsigned_abs();
            write!(
                f,
                "{sign}{}.{:0width$} {}",
                abs / scale,
                abs % scale,
                self.currency,
                width = digits as usize
            )
        }
    }
}

impl fmt::Debug for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Money({self})")
    }
}

/// Divides `numerator / denominator` (denominator > 0), rounding half to even.
pub fn round_half_even(numerator: i128, denominator: i128) -> Result<i64, MoneyError> {
    debug_assert!(denominator > 0);
    let q = numerator.div_euclid(denominator);
    let r = numerator.rem_euclid(denominator);
    let twice = r * 2;
    let rounded = if twice > denominator || (twice == denominator && q % 2 != 0) {
        q + 1
    } else {
        q
    };
    i64::try_from(rounded).map_err(|_| MoneyError::Overflow)
}

/// A rate in basis points: 1 bp = 0.01 %, 10 000 bp = 100 %.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Bps(i64);

impl Bps {
    /// A share of a whole: 0..=10 000.
    pub fn share(bps: i64) -> Result<Self, MoneyError> {
        if (0..=10_000).contains(&bps) {
            Ok(Self(bps))
        } else {
            Err(MoneyError::BadShare(bps))
        }
    }

    /// The value in basis points.
    pub fn get(&self) -> i64 {
        self.0
    }
}

impl fmt::Debug for Bps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:02}%", self.0 / 100, self.0 % 100)
    }
}

/// One FX rate as an exact fraction: 1 unit of `from` = numerator /
/// denominator units of `to` (major units; minor digits are handled).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rate {
    /// Numerator (> 0).
    pub numerator: i64,
    /// Denominator (> 0).
    pub denominator: i64,
}

/// A versioned set of FX rates. Every conversion names the version used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FxTable {
    /// Monotonic version.
    pub version: u32,
    rates: BTreeMap<(Currency, Currency), Rate>,
}

impl FxTable {
    /// An empty table.
    pub fn new(version: u32) -> Self {
        Self {
            version,
            rates: BTreeMap::new(),
        }
    }

    /// Adds a rate (and nothing implicit: the reverse rate must be added too
    /// if needed, as operators publish both).
    pub fn with_rate(mut self, from: Currency, to: Currency, rate: Rate) -> Self {
        self.rates.insert((from, to), rate);
        self
    }

    /// Converts, rounding half to even in the target's minor units.
    pub fn convert(&self, amount: Money, to: Currency) -> Result<Money, MoneyError> {
        if amount.currency() == to {
            return Ok(amount);
        }
        let rate = self
            .rates
            .get(&(amount.currency(), to))
            .ok_or(MoneyError::NoRate {
                version: self.version,
                from: amount.currency(),
                to,
            })?;
        let from_scale = 10i128.pow(amount.currency().minor_digits());
        let to_scale = 10i128.pow(to.minor_digits());
        let numerator = i128::from(amount.minor()) * i128::from(rate.numerator) * to_scale;
        let denominator = i128::from(rate.denominator) * from_scale;
        Ok(Money::new(round_half_even(numerator, denominator)?, to))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn eur() -> Currency {
        Currency::parse("EUR").expect("EUR")
    }

    fn usd() -> Currency {
        Currency::parse("usd").expect("USD")
    }

    #[test]
    fn amounts_print_in_major_units_with_the_currency_digits() {
        assert_eq!(Money::new(123_456, eur()).to_string(), "1234.56 EUR");
        assert_eq!(Money::new(-5, eur()).to_string(), "-0.05 EUR");
        assert_eq!(
            Money::new(1500, Currency::parse("JPY").expect("JPY")).to_string(),
            "1500 JPY"
        );
        assert_eq!(
            Money::new(1500, Currency::parse("KWD").expect("KWD")).to_string(),
            "1.500 KWD"
        );
    }

    #[test]
    fn different_currencies_are_never_added() {
        let err = Money::new(1, eur()).checked_add(&Money::new(1, usd()));
        assert_eq!(err, Err(MoneyError::CurrencyMismatch(eur(), usd())));
    }

    #[test]
    fn percentages_round_half_to_even() {
        // 25% of 0.10 = 0.025 → 0.02 (2 is even); 25% of 0.30 = 0.075 → 0.08.
        let q = Bps::share(2_500).expect("25%");
        assert_eq!(Money::new(10, eur()).apply(q).map(|m| m.minor()), Ok(2));
        assert_eq!(Money::new(30, eur()).apply(q).map(|m| m.minor()), Ok(8));
        assert_eq!(Money::new(-30, eur()).apply(q).map(|m| m.minor()), Ok(-8));
        assert!(Bps::share(10_001).is_err());
    }

    #[test]
    fn fx_conversion_uses_exact_fractions_and_names_its_version() {
        let fx = FxTable::new(7).with_rate(
            usd(),
            eur(),
            Rate {
                numerator: 92,
                denominator: 100,
            },
        );
        assert_eq!(
            fx.convert(Money::new(10_000, usd()), eur()),
            Ok(Money::new(9_200, eur()))
        );
        assert_eq!(
            fx.convert(Money::new(1, eur()), usd()),
            Err(MoneyError::NoRate {
                version: 7,
                from: eur(),
                to: usd()
            })
        );
        let jpy = Currency::parse("JPY").expect("JPY");
        let fx = fx.with_rate(
            eur(),
            jpy,
            Rate {
                numerator: 16_250,
                denominator: 100,
            },
        );
        // 10.00 EUR × 162.5 = 1625 JPY (0 minor digits).
        assert_eq!(
            fx.convert(Money::new(1_000, eur()), jpy),
            Ok(Money::new(1_625, jpy))
        );
    }

    proptest! {
        #[test]
        fn half_even_rounding_is_within_half_a_unit(n in -1_000_000_000i64..1_000_000_000, d in 1i64..100_000) {
            let r = round_half_even(i128::from(n), i128::from(d)).expect("fits");
            // |r·d − n| ≤ d/2
            let err = (i128::from(r) * i128::from(d) - i128::from(n)).abs();
            prop_assert!(err * 2 <= i128::from(d));
        }

        #[test]
        fn a_share_and_its_complement_add_back_to_the_whole_within_one_unit(minor in -1_000_000_000i64..1_000_000_000, bps in 0i64..=10_000) {
            let m = Money::new(minor, Currency::parse("EUR").expect("EUR"));
            let a = m.apply(Bps::share(bps).expect("share")).expect("a");
            let b = m.apply(Bps::share(10_000 - bps).expect("share")).expect("b");
            prop_assert!((a.minor() + b.minor() - minor).abs() <= 1);
        }
    }
}
