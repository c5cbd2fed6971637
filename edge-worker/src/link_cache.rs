//! In-isolate cache of link definitions, with stale-while-revalidate.
//!
//! Owns the freshness rules. A fetched definition is *fresh* for the TTL;
//! after that it is *stale*: still served at once (a redirect never waits
//! for the aggregator when the link is known) while the runtime refreshes
//! it in the background, and kept for [`KEEP_STALE_MS`] so known links keep
//! redirecting through an aggregator outage. Unknown codes are remembered
//! for [`NEGATIVE_TTL_MS`] so a scan of random codes does not reach the
//! aggregator on every request. Memory is bounded (least recently fetched
//! entries go first). Does no IO: the runtime fetches and calls `insert`.

use std::collections::HashMap;
use std::sync::Arc;

use clickstitch_shared::{LinkDefinition, ShortCode};

/// How long a stale definition is kept for use during outages.
pub const KEEP_STALE_MS: u64 = 7 * 24 * 60 * 60 * 1000;
/// How long an unknown code is remembered as unknown.
pub const NEGATIVE_TTL_MS: u64 = 10_000;

/// What the cache knows about a code.
#[derive(Debug, Clone, PartialEq)]
pub enum Lookup {
    /// Serve this; no refresh needed.
    Fresh(Arc<LinkDefinition>),
    /// Serve this, and refresh in the background.
    Stale(Arc<LinkDefinition>),
    /// Recently confirmed unknown: answer 404 without asking.
    KnownMissing,
    /// Never seen (or forgotten): fetch before answering.
    Unknown,
}

#[derive(Debug, Clone)]
struct Entry {
    definition: Option<Arc<LinkDefinition>>,
    fetched_at_ms: u64,
}

/// The cache.
#[derive(Debug)]
pub struct LinkCache {
    entries: HashMap<ShortCode, Entry>,
    fresh_for_ms: u64,
    capacity: usize,
}

impl LinkCache {
    /// A cache treating entries as fresh for `fresh_for_ms`.
    pub fn new(fresh_for_ms: u64, capacity: usize) -> Self {
        Self {
            entries: HashMap::new(),
            fresh_for_ms,
            capacity: capacity.max(1),
        }
    }

    /// What to do for `code` at `now_ms`.
    pub fn lookup(&self, code: &ShortCode, now_ms: u64) -> Lookup {
        let Some(entry) = self.entries.get(code) else {
            return Lookup::Unknown;
        };
        let age = now_ms.saturating_sub(entry.fetched_at_ms);
        match &entry.definition {
            Some(def) if age < self.fresh_for_ms => Lookup::Fresh(Arc::clone(def)),
            Some(def) if age < KEEP_STALE_MS => Lookup::Stale(Arc::clone(def)),
            None if age < NEGATIVE_TTL_MS => Lookup::KnownMissing,
            _ => Lookup::Unknown,
        }
    }

    /// Records the aggregator's answer (`None`: no such active link).
    pub fn insert(&mut self, code: ShortCode, definition: Option<LinkDefinition>, now_ms: u64) {
        if self.entries.len() >= self.capacity && !self.entries.contains_key(&code) {
            self.evict_oldest();
        }
        self.entries.insert(
            code,
            Entry {
                definition: definition.map(Arc::new),
                fetched_at_ms: now_ms,
            },
        );
    }

    /// A failed refresh keeps a stale entry as it is (it stays usable).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn evict_oldest(&mut self) {
        // Eviction is rare (capacity is large); a linear scan keeps the
        // structure simple and the hot path (lookup) a single hash probe.
        if let Some(oldest) = self
            .entries
            .iter()
            .min_by_key(|(_, e)| e.fetched_at_ms)
            .map(|(k, _)| k.clone())
        {
            self.entries.remove(&oldest);
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn definition(code: &str) -> LinkDefinition {
        serde_json::from_value(serde_json::json!({
            "code": code,
            "brand_id": "0190a1b2-0000-7000-8000-000000000001",
            "affiliate_id": "0190a1b2-0000-7000-8000-000000000002",
            "sub_affiliate_id": null,
            "campaign_id": "0190a1b2-0000-7000-8000-000000000003",
            "destination": "https://brand.example/?c={click_id}",
            "jurisdiction": {"name": "MGA", "restricted_countries": ["US"]},
            "version": 1
        }))
        .expect("valid definition")
    }

    fn code(s: &str) -> ShortCode {
        ShortCode::parse(s).expect("valid")
    }

    #[test]
    fn a_definition_is_fresh_then_stale_then_forgotten() {
        let mut cache = LinkCache::new(60_000, 10);
        let def = definition("abcdefg1");
        cache.insert(code("abcdefg1"), Some(def.clone()), 0);
        assert_eq!(
            cache.lookup(&code("abcdefg1"), 59_999),
            Lookup::Fresh(Arc::new(def.clone()))
        );
        assert_eq!(
            cache.lookup(&code("abcdefg1"), 60_000),
            Lookup::Stale(Arc::new(def))
        );
        assert_eq!(
            cache.lookup(&code("abcdefg1"), KEEP_STALE_MS),
            Lookup::Unknown
        );
        assert_eq!(cache.lookup(&code("zzzzzzz1"), 0), Lookup::Unknown);
    }

    #[test]
    fn unknown_codes_are_remembered_briefly() {
        let mut cache = LinkCache::new(60_000, 10);
        cache.insert(code("abcdefg1"), None, 0);
        assert_eq!(cache.lookup(&code("abcdefg1"), 1), Lookup::KnownMissing);
        assert_eq!(
            cache.lookup(&code("abcdefg1"), NEGATIVE_TTL_MS),
            Lookup::Unknown
        );
    }

    #[test]
    fn the_cache_is_bounded_and_drops_the_oldest_fetch() {
        let mut cache = LinkCache::new(60_000, 2);
        cache.insert(code("abcdefg1"), None, 1);
        cache.insert(code("abcdefg2"), None, 2);
        cache.insert(code("abcdefg3"), None, 3);
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.lookup(&code("abcdefg1"), 4), Lookup::Unknown);
    }
}
