//! Duplicate-click detection: the same visitor (identity hash of IP + user
//! agent) on the same link within an hour.
//!
//! Owns a bounded, in-isolate memory of recent (identity, link) pairs. An
//! isolate sees only its own traffic, so this marks the repeats it sees;
//! the stored `identity_hash` lets reports count exact uniques across all
//! isolates (see docs/clickhouse.md). Memory is bounded by `capacity`: the
//! oldest entries go first.

use std::collections::{HashMap, VecDeque};

use clickstitch_shared::fingerprint::Hash128;
use clickstitch_shared::ShortCode;

/// The duplicate window.
pub const WINDOW_MS: u64 = 60 * 60 * 1000;

/// Recent visitors per link.
#[derive(Debug)]
pub struct DuplicateFilter {
    last_seen: HashMap<(Hash128, ShortCode), u64>,
    order: VecDeque<((Hash128, ShortCode), u64)>,
    capacity: usize,
}

impl DuplicateFilter {
    /// A filter remembering at most `capacity` pairs.
    pub fn new(capacity: usize) -> Self {
        Self {
            last_seen: HashMap::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    /// Records a click at `now_ms` and says whether the same identity
    /// clicked the same link within the previous [`WINDOW_MS`].
    pub fn observe(&mut self, identity: Hash128, link: &ShortCode, now_ms: u64) -> bool {
        self.evict(now_ms);
        let key = (identity, link.clone());
        let duplicate = self
            .last_seen
            .get(&key)
            .is_some_and(|seen| now_ms.saturating_sub(*seen) < WINDOW_MS);
        self.last_seen.insert(key.clone(), now_ms);
        self.order.push_back((key, now_ms));
        duplicate
    }

    /// Number of pairs remembered.
    pub fn len(&self) -> usize {
        self.last_seen.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.last_seen.is_empty()
    }

    fn evict(&mut self, now_ms: u64) {
        while let Some((key, at)) = self.order.front() {
            let expired = now_ms.saturating_sub(*at) >= WINDOW_MS;
            let over =
                self.last_seen.len() >= self.capacity || self.order.len() > 2 * self.capacity;
            if !expired && !over {
                break;
            }
            // Only forget the pair if this queue entry is its latest sighting.
            if self.last_seen.get(key) == Some(at) {
                self.last_seen.remove(key);
            }
            self.order.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clickstitch_shared::fingerprint::identity_hash;

    fn code(s: &str) -> ShortCode {
        ShortCode::parse(s).expect("valid code")
    }

    #[test]
    fn a_repeat_within_the_hour_is_a_duplicate_and_after_it_is_not() {
        let mut f = DuplicateFilter::new(100);
        let who = identity_hash(b"k", "1.2.3.4", "UA");
        let link = code("abcdefg1");
        assert!(!f.observe(who, &link, 0));
        assert!(f.observe(who, &link, 59 * 60 * 1000));
        assert!(!f.observe(who, &link, 59 * 60 * 1000 + WINDOW_MS));
    }

    #[test]
    fn other_links_and_other_visitors_are_not_duplicates() {
        let mut f = DuplicateFilter::new(100);
        let a = identity_hash(b"k", "1.2.3.4", "UA");
        let b = identity_hash(b"k", "1.2.3.5", "UA");
        assert!(!f.observe(a, &code("abcdefg1"), 0));
        assert!(!f.observe(a, &code("abcdefg2"), 1));
        assert!(!f.observe(b, &code("abcdefg1"), 2));
    }

    #[test]
    fn memory_stays_bounded() {
        let mut f = DuplicateFilter::new(1000);
        for i in 0..100_000u32 {
            let who = identity_hash(b"k", &i.to_string(), "UA");
            f.observe(who, &code("abcdefg1"), u64::from(i));
        }
        assert!(f.len() <= 1000);
    }
}
