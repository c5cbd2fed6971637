//! A bounded, insertion-ordered map: the newest `capacity` keys are kept,
//! the oldest are forgotten first.
//!
//! Owns only the bounding rule. Used for the in-memory caches in front of
//! ClickHouse (answered events, stored attributions, recent clicks); knows
//! nothing of what they hold. Not synchronised: callers wrap it in a lock.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

/// Keeps at most `capacity` entries, evicting in insertion order.
#[derive(Debug)]
pub struct BoundedMap<K, V> {
    map: HashMap<K, V>,
    order: VecDeque<K>,
    capacity: usize,
}

impl<K: Eq + Hash + Clone, V> BoundedMap<K, V> {
    /// An empty map holding at most `capacity` (at least 1) entries.
    pub fn new(capacity: usize) -> Self {
        Self {
            map: HashMap::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    /// The value under `key`.
    pub fn get(&self, key: &K) -> Option<&V> {
        self.map.get(key)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Forgets `key` (a cache entry that is no longer true). Its place in
    /// the order is kept until it comes up for eviction, so a key removed
    /// and inserted again may be evicted a little early.
    pub fn remove(&mut self, key: &K) {
        self.map.remove(key);
    }

    /// Inserts or replaces; a replaced key keeps its place in the order.
    pub fn insert(&mut self, key: K, value: V) {
        self.insert_if(key, value, |_, _| true);
    }

    /// Inserts when the key is new, or replaces when `replace(old, new)`
    /// says so (e.g. only newer versions).
    pub fn insert_if(&mut self, key: K, value: V, replace: impl FnOnce(&V, &V) -> bool) {
        match self.map.get_mut(&key) {
            Some(old) => {
                if replace(old, &value) {
                    *old = value;
                }
            }
            None => {
                self.map.insert(key.clone(), value);
                self.order.push_back(key);
                while self.order.len() > self.capacity {
                    if let Some(oldest) = self.order.pop_front() {
                        self.map.remove(&oldest);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_key_is_forgotten_first() {
        let mut m = BoundedMap::new(2);
        m.insert(1, "a");
        m.insert(2, "b");
        m.insert(1, "a2");
        m.insert(3, "c");
        assert_eq!(m.get(&1), None);
        assert_eq!(m.get(&2), Some(&"b"));
        assert_eq!(m.get(&3), Some(&"c"));
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn a_conditional_insert_keeps_the_old_value_when_told_to() {
        let mut m = BoundedMap::new(10);
        m.insert("k", 5);
        m.insert_if("k", 3, |old, new| new > old);
        assert_eq!(m.get(&"k"), Some(&5));
        m.insert_if("k", 7, |old, new| new > old);
        assert_eq!(m.get(&"k"), Some(&7));
    }
}
