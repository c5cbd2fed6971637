//! Country codes as Cloudflare reports them: ISO 3166-1 alpha-2, plus the
//! non-geographic codes `XX` (unknown) and `T1` (Tor exit node).
//!
//! Owns parsing and the "is this a real place" question; knows nothing about
//! which countries are restricted (that is [`crate::geo`]).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a country code did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("country must be a two-letter ISO 3166-1 alpha-2 code (or XX / T1), got {0:?}")]
pub struct CountryError(pub String);

/// A two-character upper-case country code.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CountryCode([u8; 2]);

impl CountryCode {
    /// Unknown country (Cloudflare's `XX`).
    pub const UNKNOWN: CountryCode = CountryCode(*b"XX");
    /// Tor exit node (Cloudflare's `T1`).
    pub const TOR: CountryCode = CountryCode(*b"T1");

    /// Parses `de`, `DE` or ` DE ` into `DE`; accepts `XX` and `T1`.
    pub fn parse(text: &str) -> Result<Self, CountryError> {
        let t = text.trim().as_bytes();
        match t {
            [a, b] if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() => {
                Ok(Self([a.to_ascii_uppercase(), b.to_ascii_uppercase()]))
            }
            [b'T' | b't', b'1'] => Ok(Self::TOR),
            _ => Err(CountryError(text.chars().take(16).collect())),
        }
    }

    /// Whether this names an actual territory rather than unknown / Tor.
    pub fn is_geographic(&self) -> bool {
        *self != Self::UNKNOWN && *self != Self::TOR
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        // Both bytes are ASCII by construction.
        std::str::from_utf8(&self.0).unwrap_or("XX")
    }
}

impl fmt::Display for CountryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for CountryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CountryCode({})", self.as_str())
    }
}

impl std::str::FromStr for CountryCode {
    type Err = CountryError;
    fn from_str(s: &str) -> Result<Self, CountryError> {
        Self::parse(s)
    }
}

impl Serialize for CountryCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for CountryCode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn country_codes_are_normalised_to_upper_case() {
        assert_eq!(
            CountryCode::parse("de").map(|c| c.to_string()),
            Ok("DE".into())
        );
        assert_eq!(
            CountryCode::parse(" gb ").map(|c| c.to_string()),
            Ok("GB".into())
        );
    }

    #[test]
    fn unknown_and_tor_parse_but_are_not_geographic() {
        let xx = CountryCode::parse("XX").expect("XX");
        let t1 = CountryCode::parse("t1").expect("T1");
        assert!(!xx.is_geographic() && !t1.is_geographic());
        assert!(CountryCode::parse("FR").expect("FR").is_geographic());
    }

    #[test]
    fn anything_else_is_refused() {
        for bad in ["", "D", "DEU", "1A", "D€", "🇩🇪"] {
            assert!(CountryCode::parse(bad).is_err(), "{bad}");
        }
    }
}
