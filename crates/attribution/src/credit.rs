//! Attribution models and how they split one registration's credit into
//! integer basis points that always sum to exactly 10 000.
//!
//! Owns [`Model`] (first-click, last-click, linear, time-decay,
//! position-based), the fixed-point `2^(-x)` used by time-decay, and the
//! apportionment rule that turns integer weights into basis points. Knows
//! nothing about clicks, brands or rules files: it sees touchpoint times in
//! milliseconds and returns one share per touchpoint. There are no floats
//! here: every weight is an integer and every share is exact.
//!
//! # Apportionment (the rounding remainder rule)
//!
//! Every model first gives each touchpoint an integer weight `w_i` (at least
//! one weight is positive). Touchpoint `i`'s exact share is
//! `10 000 · w_i / W` basis points with `W = Σ w_j`. Each touchpoint gets
//! the floor of its share; the basis points still missing (fewer than the
//! number of touchpoints) go one each to the touchpoints with the largest
//! fractional remainders, and among equal remainders to the **most recent**
//! touchpoint first (the later position in time order). This is the
//! largest-remainder (Hamilton) method: every share is the floor or the
//! ceiling of its exact value, the sum is exactly 10 000, and a touchpoint
//! with a larger weight never gets fewer basis points than one with a
//! smaller weight.

use std::fmt;

use serde::{Serialize, Serializer};

use clickstitch_domain::money::Bps;

/// All the credit of one attribution: 10 000 bps = 100 %.
pub const TOTAL_BPS: i64 = 10_000;

pub use clickstitch_domain::units::DAY_MS;

/// Longest half-life accepted, in days.
pub const MAX_HALF_LIFE_DAYS: u16 = 365;

/// Number of binary digits of the fractional part of `age / half_life` that
/// [`decay_weight`] uses; see [`DECAY_ONE`] for the resulting precision.
pub const DECAY_FRACTION_BITS: u32 = 32;

/// The weight of a touchpoint of age 0 in time-decay: 1.0 in unsigned
/// Q64 fixed point (64 fractional bits). Every time-decay weight is
/// `2^(-age/half_life)` in this scale, within a relative error below
/// 2^-31 (see [`decay_weight`]).
pub const DECAY_ONE: u128 = 1 << 64;

/// Why a model parameter was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    /// The half-life is 0 or longer than [`MAX_HALF_LIFE_DAYS`].
    #[error("half_life_days must be between 1 and {MAX_HALF_LIFE_DAYS}, got {0}")]
    BadHalfLife(u64),
    /// A position-based share outside 0..=10 000 or first + last above 10 000.
    #[error(
        "position-based first_bps and last_bps must each be 0..=10000 and sum to at most 10000, got {first} and {last}"
    )]
    BadPositionSplit {
        /// Share of the first touchpoint.
        first: i64,
        /// Share of the last touchpoint.
        last: i64,
    },
}

/// A time-decay half-life in whole days (1..=365).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HalfLife(u16);

impl HalfLife {
    /// A half-life of `days` days.
    pub fn from_days(days: u64) -> Result<Self, ModelError> {
        match u16::try_from(days) {
            Ok(d) if (1..=MAX_HALF_LIFE_DAYS).contains(&d) => Ok(Self(d)),
            _ => Err(ModelError::BadHalfLife(days)),
        }
    }

    /// The half-life in days.
    pub fn days(&self) -> u16 {
        self.0
    }

    /// The half-life in milliseconds.
    pub fn as_ms(&self) -> u64 {
        u64::from(self.0) * DAY_MS
    }
}

impl fmt::Debug for HalfLife {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HalfLife({}d)", self.0)
    }
}

/// The shares of the first and last touchpoints in the position-based
/// model; the rest goes to the touchpoints in between. Default 40 / 40
/// (so 20 % for the middle).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PositionSplit {
    first: Bps,
    last: Bps,
}

impl PositionSplit {
    /// `first` and `last` in basis points; each 0..=10 000, together at most
    /// 10 000.
    pub fn new(first: i64, last: i64) -> Result<Self, ModelError> {
        let bad = ModelError::BadPositionSplit { first, last };
        let f = Bps::share(first).map_err(|_| bad.clone())?;
        let l = Bps::share(last).map_err(|_| bad.clone())?;
        if first + last > TOTAL_BPS {
            return Err(bad);
        }
        Ok(Self { first: f, last: l })
    }

    /// Share of the first touchpoint.
    pub fn first(&self) -> Bps {
        self.first
    }

    /// Share of the last touchpoint.
    pub fn last(&self) -> Bps {
        self.last
    }

    /// Share of all the touchpoints in between together.
    pub fn middle(&self) -> i64 {
        TOTAL_BPS - self.first.get() - self.last.get()
    }
}

impl Default for PositionSplit {
    fn default() -> Self {
        Self {
            first: Bps::share(4_000).unwrap_or_else(|_| unreachable!("4000 is a share")),
            last: Bps::share(4_000).unwrap_or_else(|_| unreachable!("4000 is a share")),
        }
    }
}

impl fmt::Debug for PositionSplit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PositionSplit({}/{}/{})",
            self.first.get(),
            self.middle(),
            self.last.get()
        )
    }
}

/// How credit is shared among a player's touchpoints (in time order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Model {
    /// All credit to the earliest touchpoint.
    FirstClick,
    /// All credit to the most recent touchpoint.
    LastClick,
    /// Equal credit to every touchpoint.
    Linear,
    /// Weight `2^(-age/half_life)` per touchpoint, age measured from the
    /// most recent touchpoint (see [`decay_weight`]).
    TimeDecay {
        /// Age at which a touchpoint's weight is half that of a new one.
        half_life: HalfLife,
    },
    /// A fixed share to the first and the last touchpoint, the rest split
    /// equally among the ones in between (see [`Model::weights`] for one and
    /// two touchpoints).
    PositionBased {
        /// First / last shares.
        split: PositionSplit,
    },
}

impl Model {
    /// Stable text form for storage, e.g. `last_click`,
    /// `time_decay(half_life_days=7)`, `position_based(4000/2000/4000)`.
    pub fn label(&self) -> String {
        match self {
            Self::FirstClick => "first_click".into(),
            Self::LastClick => "last_click".into(),
            Self::Linear => "linear".into(),
            Self::TimeDecay { half_life } => {
                format!("time_decay(half_life_days={})", half_life.days())
            }
            Self::PositionBased { split } => format!(
                "position_based({}/{}/{})",
                split.first().get(),
                split.middle(),
                split.last().get()
            ),
        }
    }

    /// The integer weight of each touchpoint, given their click times in
    /// Unix ms in time order (oldest first). Empty in, empty out.
    ///
    /// - first-click: `[1, 0, …, 0]`; last-click: `[0, …, 0, 1]`;
    ///   linear: `[1, …, 1]`.
    /// - time-decay: [`decay_weight`] of each touchpoint's age relative to
    ///   the most recent one (the newest weighs exactly [`DECAY_ONE`]).
    /// - position-based with first share `F`, last share `L` and middle
    ///   `M = 10 000 − F − L`: one touchpoint → `[1]` (all credit); two →
    ///   `[2F + M, 2L + M]`, i.e. the middle share is split evenly between
    ///   them (50/50 for 40/20/40); `n ≥ 3` → `[F·(n−2), M, …, M, L·(n−2)]`,
    ///   i.e. exactly `F` and `L` for the ends and `M/(n−2)` each for the
    ///   middle.
    pub fn weights(&self, times_ms: &[u64]) -> Vec<u128> {
        let n = times_ms.len();
        if n == 0 {
            return Vec::new();
        }
        match self {
            Self::FirstClick => (0..n).map(|i| u128::from(i == 0)).collect(),
            Self::LastClick => (0..n).map(|i| u128::from(i + 1 == n)).collect(),
            Self::Linear => vec![1; n],
            Self::TimeDecay { half_life } => {
                let newest = times_ms.iter().copied().max().unwrap_or(0);
                times_ms
                    .iter()
                    .map(|t| decay_weight(newest.saturating_sub(*t), half_life.as_ms()))
                    .collect()
            }
            Self::PositionBased { split } => {
                let (f, l, m) = (
                    split.first().get().unsigned_abs(),
                    split.last().get().unsigned_abs(),
                    split.middle().unsigned_abs(),
                );
                let (f, l, m) = (u128::from(f), u128::from(l), u128::from(m));
                match n {
                    1 => vec![1],
                    2 => vec![2 * f + m, 2 * l + m],
                    _ => {
                        let inner = (n - 2) as u128;
                        let mut w = vec![m; n];
                        w[0] = f * inner;
                        w[n - 1] = l * inner;
                        w
                    }
                }
            }
        }
    }

    /// Each touchpoint's credit in basis points (summing to exactly
    /// 10 000), given click times in time order: [`Model::weights`] then
    /// [`apportion`]. Empty in, empty out.
    pub fn split(&self, times_ms: &[u64]) -> Vec<Bps> {
        apportion(&self.weights(times_ms))
    }
}

impl Serialize for Model {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.label())
    }
}

/// `2^-(2^-k)` for k = 1..=32 in Q64 (floor of the value × 2^64). Computed
/// with 80-digit decimal arithmetic; checked by
/// `the_decay_table_squares_back_to_one_half` below.
const FRACTION_FACTORS: [u128; DECAY_FRACTION_BITS as usize] = [
    0xb504f333f9de6484,
    0xd744fccad69d6af4,
    0xeac0c6e7dd24392e,
    0xf5257d152486cc2c,
    0xfa83b2db722a033a,
    0xfd3e0c0cf486c174,
    0xfe9e115c7b8f884b,
    0xff4ecb59511ec8a5,
    0xffa756521c8daed1,
    0xffd3a751c0f7e10b,
    0xffe9d2b2f7db2755,
    0xfff4e91bff1b8c3d,
    0xfffa747ea0040664,
    0xfffd3a3b7814eb53,
    0xfffe9d1cc60ddab1,
    0xffff4e8e25879bfa,
    0xffffa7470363f451,
    0xffffd3a37dda0313,
    0xffffe9d1bdf703ae,
    0xfffff4e8debe025e,
    0xfffffa746f4fa150,
    0xfffffd3a37a3f8b0,
    0xfffffe9d1bd1065a,
    0xffffff4e8de845ad,
    0xffffffa746f41376,
    0xffffffd3a37a05e3,
    0xffffffe9d1bd01fb,
    0xfffffff4e8de80c0,
    0xfffffffa746f4050,
    0xfffffffd3a37a024,
    0xfffffffe9d1bd011,
    0xffffffff4e8de808,
];

/// `2^(-age/half_life)` in Q64 fixed point ([`DECAY_ONE`] = 1.0), with
/// integers only.
///
/// `age/half_life = q + r/half_life` with `q` whole halvings. The fraction
/// `r/half_life` is expanded into its first [`DECAY_FRACTION_BITS`] binary
/// digits `b_1 b_2 …` by exact long division, and
/// `2^(-r/half_life) ≈ Π_{b_k = 1} 2^-(2^-k)` is multiplied out from a
/// table of Q64 constants, rounding each product down. The result is then
/// shifted right by `q` (so whole half-lives halve the weight exactly: no
/// fractional digits means no rounding at all).
///
/// Precision: cutting the fraction after 32 digits changes the exponent by
/// less than 2^-32 (a relative error below 1.7·10⁻¹⁰) and the at most 32
/// roundings of products at or above 0.5 add less than 2^-58; so the weight
/// before the shift is within a relative 2^-31 of the true value, and the
/// shift adds less than one unit of 2^-64. A touchpoint 64 or more
/// half-lives older than the newest weighs 0 (its true share is below
/// 10⁻¹⁵ bp). `half_life_ms` must be positive.
pub fn decay_weight(age_ms: u64, half_life_ms: u64) -> u128 {
    debug_assert!(half_life_ms > 0);
    let half_life_ms = half_life_ms.max(1);
    let halvings = age_ms / half_life_ms;
    if halvings >= 64 {
        return 0;
    }
    // Long division in u128: `rem < half_life_ms`, so `2·rem` cannot overflow.
    let divisor = u128::from(half_life_ms);
    let mut rem = u128::from(age_ms % half_life_ms);
    let mut acc = DECAY_ONE;
    for factor in FRACTION_FACTORS {
        if rem == 0 {
            break;
        }
        rem *= 2;
        if rem >= divisor {
            rem -= divisor;
            // acc ≤ 2^64 and factor < 2^64: the product fits in u128.
            acc = (acc * factor) >> 64;
        }
    }
    acc >> halvings
}

/// Turns integer weights into basis points summing to exactly 10 000 by the
/// largest-remainder rule described in the module docs (ties go to the
/// later touchpoint). Empty in, empty out; if every weight is 0 the whole
/// credit goes to the last touchpoint (no model produces that).
pub fn apportion(weights: &[u128]) -> Vec<Bps> {
    let n = weights.len();
    if n == 0 {
        return Vec::new();
    }
    let total_weight: u128 = weights.iter().sum();
    let total = TOTAL_BPS.unsigned_abs() as u128;
    let (mut shares, remainders): (Vec<u128>, Vec<u128>) = if total_weight == 0 {
        let mut s = vec![0; n];
        s[n - 1] = total;
        (s, vec![0; n])
    } else {
        weights
            .iter()
            .map(|w| {
                let scaled = w * total;
                (scaled / total_weight, scaled % total_weight)
            })
            .unzip()
    };
    let given: u128 = shares.iter().sum();
    let missing = usize::try_from(total - given).unwrap_or(0);
    let mut order: Vec<usize> = (0..n).collect();
    // Largest remainder first; among equals, the later touchpoint first.
    order.sort_by(|a, b| remainders[*b].cmp(&remainders[*a]).then(b.cmp(a)));
    for i in order.into_iter().take(missing) {
        shares[i] += 1;
    }
    shares
        .into_iter()
        .map(|s| {
            let bps = i64::try_from(s).unwrap_or(TOTAL_BPS);
            Bps::share(bps).unwrap_or_else(|_| unreachable!("a share never exceeds the total"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const H: u64 = 7 * DAY_MS;

    fn bps(shares: &[Bps]) -> Vec<i64> {
        shares.iter().map(Bps::get).collect()
    }

    fn decay(days: u64) -> Model {
        Model::TimeDecay {
            half_life: HalfLife::from_days(days).expect("half-life"),
        }
    }

    fn position() -> Model {
        Model::PositionBased {
            split: PositionSplit::default(),
        }
    }

    fn all_models() -> [Model; 5] {
        [
            Model::FirstClick,
            Model::LastClick,
            Model::Linear,
            decay(7),
            position(),
        ]
    }

    /// Touchpoints at day 0, 10, 20, … (oldest first).
    fn times(n: u64) -> Vec<u64> {
        (0..n)
            .map(|i| 1_700_000_000_000 + i * 10 * DAY_MS)
            .collect()
    }

    #[test]
    fn every_model_gives_a_single_touchpoint_all_the_credit() {
        for model in all_models() {
            assert_eq!(bps(&model.split(&times(1))), [10_000], "{model:?}");
        }
    }

    #[test]
    fn no_touchpoints_get_no_shares() {
        for model in all_models() {
            assert!(model.split(&[]).is_empty());
        }
    }

    #[test]
    fn first_click_gives_everything_to_the_earliest_of_two_and_of_three() {
        assert_eq!(bps(&Model::FirstClick.split(&times(2))), [10_000, 0]);
        assert_eq!(bps(&Model::FirstClick.split(&times(3))), [10_000, 0, 0]);
    }

    #[test]
    fn last_click_gives_everything_to_the_most_recent_of_two_and_of_three() {
        assert_eq!(bps(&Model::LastClick.split(&times(2))), [0, 10_000]);
        assert_eq!(bps(&Model::LastClick.split(&times(3))), [0, 0, 10_000]);
    }

    #[test]
    fn linear_splits_evenly_and_the_remainder_goes_to_the_most_recent() {
        assert_eq!(bps(&Model::Linear.split(&times(2))), [5_000, 5_000]);
        assert_eq!(bps(&Model::Linear.split(&times(3))), [3_333, 3_333, 3_334]);
        assert_eq!(
            bps(&Model::Linear.split(&times(6))),
            [1_666, 1_666, 1_667, 1_667, 1_667, 1_667]
        );
    }

    #[test]
    fn position_based_is_all_for_one_half_each_for_two_and_40_20_40_for_three() {
        assert_eq!(bps(&position().split(&times(1))), [10_000]);
        assert_eq!(bps(&position().split(&times(2))), [5_000, 5_000]);
        assert_eq!(bps(&position().split(&times(3))), [4_000, 2_000, 4_000]);
        assert_eq!(
            bps(&position().split(&times(5))),
            [4_000, 666, 667, 667, 4_000]
        );
    }

    #[test]
    fn position_based_with_an_uneven_split_shares_the_middle_evenly_between_two() {
        // 30/20/50: with two touchpoints the middle 20 % is halved → 40/60.
        let m = Model::PositionBased {
            split: PositionSplit::new(3_000, 5_000).expect("split"),
        };
        assert_eq!(bps(&m.split(&times(2))), [4_000, 6_000]);
        // 30/15/55 → an odd middle: 37.5 / 62.5, the half point to the latest.
        let m = Model::PositionBased {
            split: PositionSplit::new(3_000, 5_499).expect("split"),
        };
        assert_eq!(bps(&m.split(&times(2))), [3_750, 6_250]);
    }

    #[test]
    fn bad_model_parameters_are_refused() {
        assert!(HalfLife::from_days(0).is_err());
        assert!(HalfLife::from_days(366).is_err());
        assert!(PositionSplit::new(6_000, 5_000).is_err());
        assert!(PositionSplit::new(-1, 5_000).is_err());
        assert!(PositionSplit::new(10_000, 0).is_ok());
    }

    #[test]
    fn time_decay_halves_credit_per_half_life_exactly() {
        assert_eq!(decay_weight(0, H), DECAY_ONE);
        assert_eq!(decay_weight(H, H), DECAY_ONE / 2);
        assert_eq!(decay_weight(3 * H, H), DECAY_ONE / 8);
        assert_eq!(decay_weight(64 * H, H), 0);
        // Ages 14, 7, 0 days → weights 1/4 : 1/2 : 1 = 1 : 2 : 4.
        let t0 = 1_700_000_000_000;
        let shares = decay(7).split(&[t0, t0 + H, t0 + 2 * H]);
        assert_eq!(bps(&shares), [1_429, 2_857, 5_714]);
        // One half-life apart: 1/3 and 2/3.
        assert_eq!(bps(&decay(7).split(&[t0, t0 + H])), [3_333, 6_667]);
    }

    #[test]
    fn time_decay_favours_recent_clicks() {
        let t0 = 1_700_000_000_000;
        // Half a half-life apart: 1 : 2^-0.5 → 58.58 % / 41.42 %.
        let shares = decay(7).split(&[t0, t0 + H / 2]);
        assert_eq!(bps(&shares), [4_142, 5_858]);
        let shares = decay(7).split(&[t0, t0 + DAY_MS, t0 + 5 * DAY_MS, t0 + 6 * DAY_MS]);
        assert!(shares.windows(2).all(|w| w[0] < w[1]), "{shares:?}");
    }

    #[test]
    fn the_decay_table_squares_back_to_one_half() {
        // c_k = 2^-(2^-k): squaring c_k k times must give 1/2. Squaring
        // doubles a relative error, so after k squarings a constant that is
        // right to one unit is off by at most about 2^(k+1) units.
        for (i, c) in FRACTION_FACTORS.iter().enumerate() {
            let mut v = *c;
            for _ in 0..=i {
                v = (v * v) >> 64;
            }
            let half = DECAY_ONE / 2;
            let err = half.abs_diff(v);
            assert!(err <= 1 << (i + 3), "k={} err={err}", i + 1);
        }
    }

    /// Reference value of 2^(-age/h) with floats: only in tests, as an oracle.
    fn reference(age: u64, h: u64) -> f64 {
        (-(age as f64) / (h as f64)).exp2()
    }

    proptest! {
        #[test]
        fn weights_always_sum_to_exactly_10000_bps(
            gaps in proptest::collection::vec(0u64..40 * DAY_MS, 1..40),
            half_life in 1u64..=30,
            first in 0i64..=10_000,
            last_frac in 0i64..=10_000,
        ) {
            let mut t = 1_700_000_000_000u64;
            let times: Vec<u64> = gaps.iter().map(|g| { t += g; t }).collect();
            let last = (10_000 - first) * last_frac / 10_000;
            let models = [
                Model::FirstClick,
                Model::LastClick,
                Model::Linear,
                decay(half_life),
                Model::PositionBased { split: PositionSplit::new(first, last).expect("split") },
            ];
            for model in models {
                let shares = model.split(&times);
                prop_assert_eq!(shares.len(), times.len());
                prop_assert_eq!(shares.iter().map(Bps::get).sum::<i64>(), 10_000, "{:?}", model);
                // Every share is the floor or ceiling of its exact value.
                let w = model.weights(&times);
                let total: u128 = w.iter().sum();
                for (s, w) in shares.iter().zip(&w) {
                    let exact_floor = (w * 10_000 / total) as i64;
                    prop_assert!(s.get() == exact_floor || s.get() == exact_floor + 1);
                }
            }
        }

        #[test]
        fn time_decay_weights_match_the_exponential_within_the_stated_precision(
            age in 0u64..200 * DAY_MS,
            half_life in 1u64..=365,
        ) {
            let h = half_life * DAY_MS;
            let got = decay_weight(age, h) as f64 / DECAY_ONE as f64;
            let want = reference(age, h);
            // Relative 2^-31, plus one unit of 2^-64 from the final shift.
            prop_assert!((got - want).abs() <= want * 2f64.powi(-31) + 2f64.powi(-63), "{got} {want}");
        }

        #[test]
        fn time_decay_credit_never_decreases_towards_the_most_recent_click(
            gaps in proptest::collection::vec(0u64..20 * DAY_MS, 1..20),
            half_life in 1u64..=30,
        ) {
            let mut t = 1_700_000_000_000u64;
            let times: Vec<u64> = gaps.iter().map(|g| { t += g; t }).collect();
            let shares = decay(half_life).split(&times);
            prop_assert!(shares.windows(2).all(|w| w[0] <= w[1]), "{:?}", shares);
        }
    }
}
