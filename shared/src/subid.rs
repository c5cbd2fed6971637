//! Sub-ids: the `sub1`..`sub5` values an affiliate appends to a short link
//! (`/aZ3k9Qx2?sub1=facebook&sub2=story`) to tag their own traffic.
//!
//! Owns reading them from a query string and sanitising them. Sanitising keeps
//! letters, digits and `-_.~:+|@,=!` and cuts at [`SubIds::MAX_CHARS`];
//! anything else is dropped. Values are percent-encoded again when they are
//! written into a destination (see [`crate::template`]).

use serde::{Deserialize, Serialize};

/// The five sanitised sub-ids of a click (empty when absent).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubIds([String; 5]);

impl SubIds {
    /// Longest kept value, in characters.
    pub const MAX_CHARS: usize = 100;

    /// Reads `sub1`..`sub5` from a raw query string (without the leading `?`).
    /// Repeated keys: the first one wins. Other keys are ignored.
    pub fn from_query(query: &str) -> Self {
        let mut subs: [Option<String>; 5] = Default::default();
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            let index = match key.as_ref() {
                "sub1" => 0,
                "sub2" => 1,
                "sub3" => 2,
                "sub4" => 3,
                "sub5" => 4,
                _ => continue,
            };
            if subs[index].is_none() {
                subs[index] = Some(sanitize(&value));
            }
        }
        Self(subs.map(Option::unwrap_or_default))
    }

    /// Builds from already-stored values, sanitising them again.
    pub fn from_values(values: [&str; 5]) -> Self {
        Self(values.map(sanitize))
    }

    /// The five values.
    pub fn as_strs(&self) -> [&str; 5] {
        [
            self.0[0].as_str(),
            self.0[1].as_str(),
            self.0[2].as_str(),
            self.0[3].as_str(),
            self.0[4].as_str(),
        ]
    }

    /// Whether every value is already in sanitised form.
    pub fn is_sanitized(values: [&str; 5]) -> bool {
        values.iter().all(|v| sanitize(v) == *v)
    }
}

fn sanitize(raw: &str) -> String {
    raw.trim()
        .chars()
        .filter(|c| c.is_alphanumeric() || "-_.~:+|@,=!".contains(*c))
        .take(SubIds::MAX_CHARS)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn sub_ids_are_read_from_the_query_string() {
        let s = SubIds::from_query("sub1=facebook&x=1&sub3=story%2042&sub1=second&sub5=");
        assert_eq!(s.as_strs(), ["facebook", "", "story42", "", ""]);
    }

    #[test]
    fn markup_and_control_characters_are_dropped_and_long_values_cut() {
        let long = "a".repeat(500);
        let q = format!("sub1=%3Cscript%3Ealert(1)%3C%2Fscript%3E&sub2=a%0Ab%00c&sub3={long}");
        let s = SubIds::from_query(&q);
        assert_eq!(s.as_strs()[0], "scriptalert1script");
        assert_eq!(s.as_strs()[1], "abc");
        assert_eq!(s.as_strs()[2].chars().count(), SubIds::MAX_CHARS);
    }

    proptest! {
        #[test]
        fn sanitised_values_are_stable_and_bounded(raw in any::<String>()) {
            let once = sanitize(&raw);
            prop_assert_eq!(sanitize(&once), once.clone());
            prop_assert!(once.chars().count() <= SubIds::MAX_CHARS);
            prop_assert!(!once.chars().any(|c| c.is_control() || c.is_whitespace() || "<>\"'&?#/%".contains(c)));
        }
    }
}
