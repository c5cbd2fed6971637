//! Presence filters: "certainly never seen" answers without asking
//! ClickHouse.
//!
//! Owns two Bloom-filter structures. [`PresenceFilter`] answers "was this
//! key possibly added?" — a `false` is certain, a `true` may be wrong with
//! the configured false-positive rate (then the caller asks ClickHouse, so
//! a false positive costs a query, never a wrong answer). [`RepeatFilter`]
//! answers "was this key possibly added more than once?" with the same
//! guarantee. Lock-free (atomic bit sets), fixed memory: about 1.2 bytes
//! per expected key at ≈ 1 % false positives. Blocked: all probes of a key
//! fall in one 64-byte block, so a lookup costs one cache miss, not seven
//! (a plain Bloom filter's inserts were 7 % of click ingest's CPU). Past the expected number of
//! keys the false-positive rate grows, which again only costs queries.
//! Knows nothing of what the keys mean.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

/// Bits per expected key (≈ 1 % false positives with 7 probes).
const BITS_PER_KEY: usize = 10;
/// Probes per key.
const PROBES: u64 = 7;

/// Words per block (one 64-byte cache line).
const BLOCK_WORDS: usize = 8;

/// A blocked Bloom filter over hashable keys.
#[derive(Debug)]
pub struct PresenceFilter {
    words: Vec<AtomicU64>,
    blocks: u64,
}

fn hash_of<K: Hash + ?Sized>(key: &K) -> u64 {
    let mut h = DefaultHasher::new();
    key.hash(&mut h);
    h.finish()
}

impl PresenceFilter {
    /// A filter sized for `expected_keys` keys.
    pub fn with_capacity(expected_keys: usize) -> Self {
        let bits = (expected_keys.max(1024) * BITS_PER_KEY).next_power_of_two();
        let words = bits / 64;
        Self {
            words: (0..words).map(|_| AtomicU64::new(0)).collect(),
            blocks: (words / BLOCK_WORDS) as u64,
        }
    }

    /// Memory held by the bit set, bytes.
    pub fn bytes(&self) -> usize {
        self.words.len() * 8
    }

    fn probes(&self, hash: u64) -> impl Iterator<Item = (usize, u64)> + '_ {
        // The block from the hash; the bit positions inside its 512 bits
        // from a remix of it, 9 bits each.
        let base = (hash % self.blocks) as usize * BLOCK_WORDS;
        let bits = (hash ^ (hash >> 29)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        (0..PROBES).map(move |i| {
            let bit = (bits >> (i * 9)) & 511;
            (base + (bit / 64) as usize, 1u64 << (bit % 64))
        })
    }

    /// Adds a key; returns whether it was possibly present before.
    pub fn insert<K: Hash + ?Sized>(&self, key: &K) -> bool {
        let mut present = true;
        for (word, mask) in self.probes(hash_of(key)) {
            let before = self.words[word].fetch_or(mask, Ordering::Relaxed);
            present &= before & mask != 0;
        }
        present
    }

    /// Whether the key was possibly added (`false` is certain).
    pub fn contains<K: Hash + ?Sized>(&self, key: &K) -> bool {
        let hash = hash_of(key);
        self.probes(hash)
            .all(|(word, mask)| self.words[word].load(Ordering::Relaxed) & mask != 0)
    }
}

/// Tells keys seen at most once from keys possibly seen more often.
#[derive(Debug)]
pub struct RepeatFilter {
    once: PresenceFilter,
    again: PresenceFilter,
}

impl RepeatFilter {
    /// A filter sized for `expected_keys` distinct keys.
    pub fn with_capacity(expected_keys: usize) -> Self {
        Self {
            once: PresenceFilter::with_capacity(expected_keys),
            again: PresenceFilter::with_capacity(expected_keys),
        }
    }

    /// Memory held, bytes.
    pub fn bytes(&self) -> usize {
        self.once.bytes() + self.again.bytes()
    }

    /// Records `count` occurrences of `key`.
    pub fn add<K: Hash + ?Sized>(&self, key: &K, count: u64) {
        if count == 0 {
            return;
        }
        let seen = self.once.insert(key);
        if seen || count > 1 {
            self.again.insert(key);
        }
    }

    /// Whether the key was possibly added more than once (`false` is
    /// certain: at most one occurrence was recorded).
    pub fn maybe_repeated<K: Hash + ?Sized>(&self, key: &K) -> bool {
        self.again.contains(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn an_added_key_is_always_reported_present(keys in proptest::collection::vec(any::<u64>(), 1..500)) {
            let f = PresenceFilter::with_capacity(100);
            for k in &keys {
                f.insert(k);
            }
            for k in &keys {
                prop_assert!(f.contains(k));
            }
        }

        #[test]
        fn a_key_added_twice_is_always_reported_repeated(keys in proptest::collection::vec(any::<u32>(), 1..300)) {
            let f = RepeatFilter::with_capacity(100);
            for k in &keys {
                f.add(k, 1);
            }
            let mut counts = std::collections::HashMap::new();
            for k in &keys {
                *counts.entry(k).or_insert(0) += 1;
            }
            for (k, n) in counts {
                if n > 1 {
                    prop_assert!(f.maybe_repeated(k));
                }
            }
        }
    }

    #[test]
    fn false_positives_stay_near_one_percent_at_capacity() {
        let f = PresenceFilter::with_capacity(100_000);
        for k in 0..100_000u64 {
            f.insert(&k);
        }
        let wrong = (1_000_000..1_100_000u64).filter(|k| f.contains(k)).count();
        assert!(wrong < 2_000, "{wrong} false positives in 100 000");
    }

    #[test]
    fn a_key_seen_once_is_not_repeated_and_a_counted_key_is() {
        let f = RepeatFilter::with_capacity(1000);
        f.add("one", 1);
        f.add("bulk", 3);
        assert!(!f.maybe_repeated("one"));
        assert!(f.maybe_repeated("bulk"));
        assert!(!f.maybe_repeated("never"));
    }
}
