//! Identifiers: click ids (UUIDv7), short link codes (base62) and entity ids
//! (brands, affiliates, campaigns).
//!
//! Owns the formats and their parsing. Does not generate randomness or read a
//! clock: callers hand in the milliseconds and random bytes, so the edge (JS
//! `crypto.getRandomValues`) and the aggregator (OS RNG) share one format.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

/// Why an identifier did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// Not a UUID in canonical hyphenated form.
    #[error("not a UUID: {0:?}")]
    NotAUuid(String),
    /// A UUID, but not version 7 (click ids carry their timestamp).
    #[error("click id must be a UUIDv7, got version {0}")]
    NotVersion7(usize),
    /// A short code with characters outside `[0-9A-Za-z]` or of the wrong length.
    #[error("short code must be {min}..={max} base62 characters")]
    BadShortCode {
        /// Minimum length.
        min: usize,
        /// Maximum length.
        max: usize,
    },
}

/// The id of one human click: a UUIDv7 whose 48-bit timestamp is the click's
/// time in Unix milliseconds. Sorting click ids sorts clicks by time.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClickId(Uuid);

impl ClickId {
    /// Parses the canonical text form and insists on version 7.
    pub fn parse(text: &str) -> Result<Self, IdError> {
        let uuid = parse_canonical_uuid(text)?;
        Self::try_from(uuid)
    }

    /// The Unix millisecond timestamp carried in the id.
    pub fn timestamp_ms(&self) -> u64 {
        let b = self.0.as_bytes();
        u64::from_be_bytes([0, 0, b[0], b[1], b[2], b[3], b[4], b[5]])
    }

    /// The underlying UUID.
    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl TryFrom<Uuid> for ClickId {
    type Error = IdError;
    fn try_from(uuid: Uuid) -> Result<Self, IdError> {
        match uuid.get_version_num() {
            7 => Ok(Self(uuid)),
            v => Err(IdError::NotVersion7(v)),
        }
    }
}

impl fmt::Display for ClickId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.as_hyphenated().fmt(f)
    }
}

impl fmt::Debug for ClickId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClickId({self})")
    }
}

impl FromStr for ClickId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        Self::parse(s)
    }
}

impl Serialize for ClickId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ClickId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Makes UUIDv7 click ids that sort strictly by generation order within one
/// generator (one isolate / process), following RFC 9562 §6.2 method 1: the
/// 12-bit `rand_a` field is a counter seeded from randomness each new
/// millisecond, and a clock that stands still or steps back reuses the last
/// millisecond with the counter incremented.
#[derive(Debug, Clone, Default)]
pub struct ClickIdGenerator {
    last_ms: u64,
    counter: u16,
}

/// Largest value of the 12-bit counter.
const COUNTER_MAX: u16 = 0x0FFF;

impl ClickIdGenerator {
    /// A generator that has issued nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The next id for a click at `now_ms`, using `random` for the 74 random
    /// bits (the first 2 bytes seed the counter when a new millisecond starts).
    pub fn next_id(&mut self, now_ms: u64, random: [u8; 10]) -> ClickId {
        let now_ms = now_ms & 0xFFFF_FFFF_FFFF;
        if now_ms > self.last_ms {
            self.last_ms = now_ms;
            // Seed in the lower half so that many ids fit in the same ms.
            self.counter = u16::from_be_bytes([random[0], random[1]]) & 0x07FF;
        } else if self.counter < COUNTER_MAX {
            self.counter += 1;
        } else {
            // Counter exhausted: borrow the next millisecond (RFC 9562 allows
            // the timestamp to run slightly ahead to stay monotonic).
            self.last_ms += 1;
            self.counter = 0;
        }
        ClickId(build_v7(self.last_ms, self.counter, &random[2..10]))
    }
}

fn build_v7(ms: u64, counter: u16, rand_b: &[u8]) -> Uuid {
    let ts = ms.to_be_bytes();
    let mut b = [0u8; 16];
    b[..6].copy_from_slice(&ts[2..8]);
    b[6] = 0x70 | ((counter >> 8) as u8 & 0x0F);
    b[7] = (counter & 0xFF) as u8;
    b[8..16].copy_from_slice(rand_b);
    b[8] = 0x80 | (b[8] & 0x3F);
    Uuid::from_bytes(b)
}

fn parse_canonical_uuid(text: &str) -> Result<Uuid, IdError> {
    if text.len() != 36 {
        return Err(IdError::NotAUuid(truncate_for_error(text)));
    }
    Uuid::try_parse(text).map_err(|_| IdError::NotAUuid(truncate_for_error(text)))
}

fn truncate_for_error(text: &str) -> String {
    text.chars().take(64).collect()
}

/// The public code of a short link, e.g. `aZ3k9Qx2`: base62, long enough that
/// codes cannot be enumerated (62^8 ≈ 2·10^14 for generated codes).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ShortCode(String);

impl ShortCode {
    /// Shortest accepted code.
    pub const MIN_LEN: usize = 7;
    /// Longest accepted code.
    pub const MAX_LEN: usize = 32;
    /// Length of generated codes.
    pub const GENERATED_LEN: usize = 10;

    const ALPHABET: &'static [u8; 62] =
        b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

    /// Parses a code taken from a URL path.
    pub fn parse(text: &str) -> Result<Self, IdError> {
        let ok_len = (Self::MIN_LEN..=Self::MAX_LEN).contains(&text.len());
        if ok_len && text.bytes().all(|c| c.is_ascii_alphanumeric()) {
            Ok(Self(text.to_owned()))
        } else {
            Err(IdError::BadShortCode {
                min: Self::MIN_LEN,
                max: Self::MAX_LEN,
            })
        }
    }

    /// Builds a code of [`Self::GENERATED_LEN`] characters from uniformly
    /// random bytes. Bytes ≥ 248 are skipped (rejection sampling keeps every
    /// character equally likely); `None` if too few usable bytes were given,
    /// in which case the caller draws more.
    pub fn from_random_bytes(random: &[u8]) -> Option<Self> {
        let code: String = random
            .iter()
            .filter(|b| **b < 248)
            .take(Self::GENERATED_LEN)
            .map(|b| Self::ALPHABET[usize::from(*b % 62)] as char)
            .collect();
        (code.len() == Self::GENERATED_LEN).then_some(Self(code))
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ShortCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ShortCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ShortCode({})", self.0)
    }
}

impl Serialize for ShortCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for ShortCode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

macro_rules! entity_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(Uuid);

        impl $name {
            /// Parses the canonical hyphenated UUID form.
            pub fn parse(text: &str) -> Result<Self, IdError> {
                parse_canonical_uuid(text).map(Self)
            }

            /// The underlying UUID.
            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl From<Uuid> for $name {
            fn from(uuid: Uuid) -> Self {
                Self(uuid)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.as_hyphenated().fmt(f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.0)
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::parse(s)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                Self::parse(&text).map_err(serde::de::Error::custom)
            }
        }
    };
}

entity_id!(
    /// A brand (one casino / sportsbook site of the operator).
    BrandId
);
entity_id!(
    /// An affiliate account; may have a parent (it is then a sub-affiliate).
    AffiliateId
);
entity_id!(
    /// A campaign of one brand.
    CampaignId
);
entity_id!(
    /// An internal id for a record that is not a human click (bot visit,
    /// geo-blocked request): never shown to a brand.
    EventId
);

impl EventId {
    /// Builds a UUIDv7 event id the same way as click ids are built.
    pub fn from_click_id(id: ClickId) -> Self {
        Self(id.as_uuid())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_click_id_carries_its_millisecond_timestamp_and_version_7() {
        let mut g = ClickIdGenerator::new();
        let id = g.next_id(1_700_000_000_123, [7; 10]);
        assert_eq!(id.timestamp_ms(), 1_700_000_000_123);
        assert_eq!(id.as_uuid().get_version_num(), 7);
        assert_eq!(ClickId::parse(&id.to_string()), Ok(id));
    }

    #[test]
    fn a_uuid_of_another_version_is_not_a_click_id() {
        let v4 = "6f1c2d3e-4b5a-4c7d-8e9f-0a1b2c3d4e5f";
        assert_eq!(ClickId::parse(v4), Err(IdError::NotVersion7(4)));
        assert!(ClickId::parse("not-a-uuid").is_err());
        // Braced and simple forms are refused: one canonical spelling only.
        assert!(ClickId::parse("0190a1b20000700080000000000000001").is_err());
    }

    #[test]
    fn a_clock_that_steps_back_still_yields_increasing_ids() {
        let mut g = ClickIdGenerator::new();
        let a = g.next_id(2_000, [0xFF; 10]);
        let b = g.next_id(1_000, [0x00; 10]);
        let c = g.next_id(1_000, [0x00; 10]);
        assert!(a < b && b < c);
    }

    #[test]
    fn an_exhausted_counter_borrows_the_next_millisecond() {
        let mut g = ClickIdGenerator::new();
        let mut last = g.next_id(5_000, [0xFF; 10]);
        for _ in 0..10_000 {
            let next = g.next_id(5_000, [0xFF; 10]);
            assert!(next > last);
            last = next;
        }
        assert!(last.timestamp_ms() > 5_000);
    }

    #[test]
    fn generated_short_codes_are_base62_and_parse_back() {
        let bytes: Vec<u8> = (0u8..=255).collect();
        let code = ShortCode::from_random_bytes(&bytes).expect("enough bytes");
        assert_eq!(code.as_str().len(), ShortCode::GENERATED_LEN);
        assert_eq!(ShortCode::parse(code.as_str()), Ok(code));
        assert_eq!(ShortCode::from_random_bytes(&[250; 40]), None);
    }

    #[test]
    fn short_codes_refuse_path_tricks_and_short_guessable_values() {
        for bad in [
            "abc",
            "../etc/passwd",
            "abc def12",
            "ünïcödé12",
            "a%2Fb1234",
            "",
        ] {
            assert!(ShortCode::parse(bad).is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn ids_from_one_generator_sort_by_time_then_issue_order(
            steps in proptest::collection::vec((0u64..5, any::<[u8; 10]>()), 1..300)
        ) {
            let mut g = ClickIdGenerator::new();
            let mut now = 1_700_000_000_000u64;
            let mut prev: Option<ClickId> = None;
            for (advance, random) in steps {
                now += advance;
                let id = g.next_id(now, random);
                prop_assert!(id.timestamp_ms() >= now);
                if let Some(p) = prev {
                    prop_assert!(id > p, "{id} !> {p}");
                    prop_assert!(id.to_string() > p.to_string());
                }
                prev = Some(id);
            }
        }
    }
}
