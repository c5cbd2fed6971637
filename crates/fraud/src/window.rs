//! Bounded sliding-window state for fraud scoring: event counters in
//! time-bucketed rings ([`CounterTable`]), recent distinct members per key
//! ([`DistinctTable`]), the keyed hash that turns "(brand, link, IP)" and
//! the like into a `u64` key ([`KeyHasher`]) and the lock-sharded wrapper
//! ([`Sharded`]).
//!
//! Owns the memory layout, the lazy expiry, the eviction of the stalest keys
//! when a table is full and the merge of a baseline computed elsewhere
//! (ClickHouse aggregates) into local state. Knows nothing of what a key
//! means, of policies, of ClickHouse or HTTP, and reads no clock: every
//! operation takes the event time in milliseconds.
//!
//! # Layout and memory
//!
//! A table is a fixed array of slots allocated once (zeroed, so the OS backs
//! pages only when they are first written). Slots are grouped in sets of
//! [`WAYS`]; a key may live in either of **two** sets chosen by its hash
//! (two-choice hashing keeps the sets evenly filled), so a lookup compares at
//! most 16 keys. Key `0` marks an empty slot (the hasher never returns it).
//!
//! * [`CounterTable`] with a ring of `R` buckets: `8 + 4 + 2·R` bytes per key
//!   (key, newest bucket, `u16` counts). The scorer's click tables use
//!   R = 16 one-minute buckets: **44 bytes per key, 44 MB at 1 M keys**.
//! * [`DistinctTable`]: `8 + 4 + 8·`[`MEMBERS`] bytes per key (key, newest
//!   minute, [`MEMBERS`] × (member hash, minute)): **76 bytes per key, 76 MB
//!   at 1 M keys**.
//!
//! [`CounterTable::bytes_per_key`] and [`DistinctTable::bytes_per_key`]
//! report the exact figure; the unit tests check them against the
//! allocation.
//!
//! # Expiry and eviction
//!
//! Expiry is lazy: nothing is swept. A slot whose newest activity is older
//! than the table's horizon (the longest window in use) is *expired*; when
//! a new key needs a slot, an
//! empty slot of its two sets is used first, otherwise the slot with the
//! oldest activity of the 16 candidates is reused. Reusing an expired slot
//! loses nothing. Before evicting, one candidate may move to an empty or
//! expired slot of its other set (one cuckoo step). Reusing a live slot is
//! an *eviction* (counted, see [`CounterTable::evictions`]): the table is
//! too small for the traffic and the evicted key's windows restart from
//! zero. A table fills 90 % of its slots without an eviction and 95 % with
//! about one in 10 000 keys evicted (see the tests; 1 % at 100 %); size it
//! at about 1.2 × the number of keys live in one horizon.
//!
//! # Baselines (restart, several instances)
//!
//! Counter tables merge a baseline with [`CounterTable::absorb`]: the
//! baseline covers every bucket strictly before `cutoff` (a bucket index, so
//! bucket-aligned by construction); local buckets before the cutoff are
//! **replaced** by it (the baseline already contains what this instance
//! counted, plus every other instance's events), local buckets at or after
//! the cutoff are kept. Nothing is counted twice, and counts inflated by a
//! retried delivery are corrected by the next baseline. Distinct tables need
//! no cutoff: inserting a member twice is idempotent
//! ([`DistinctTable::absorb`]).

use std::hash::{Hash, Hasher};
use std::sync::Mutex;

/// Slots per set. A key may live in one of two sets, so 2 × `WAYS`
/// candidate slots.
pub const WAYS: usize = 8;

/// Distinct members a [`DistinctTable`] remembers per key; counts saturate
/// at this value.
pub const MEMBERS: usize = 8;

/// Key value of an empty slot. [`KeyHasher::key`] never returns it.
const EMPTY: u64 = 0;

/// A fast, seeded, non-cryptographic 64-bit hash of any `Hash` value: an
/// Fx-style multiply-rotate over 8-byte words, finished with MurmurHash3's
/// 64-bit mixer so that every output bit depends on every input bit.
///
/// Keys never leave the process, so the exact bytes `Hash` feeds it may
/// differ between Rust versions without harm. The seed makes slot placement
/// unpredictable to someone who does not know it (pass a random one in
/// production); it is not a defence against an attacker who does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyHasher {
    seed: u64,
}

impl KeyHasher {
    /// A hasher with this seed.
    pub const fn new(seed: u64) -> Self {
        Self { seed }
    }

    /// The 64-bit key of `value`; never 0.
    pub fn key<T: Hash + ?Sized>(&self, value: &T) -> u64 {
        let mut h = FoldHasher { state: self.seed };
        value.hash(&mut h);
        match h.finish() {
            EMPTY => 1,
            k => k,
        }
    }

    /// A 32-bit member id of `value` (for [`DistinctTable`]); never 0.
    pub fn member<T: Hash + ?Sized>(&self, value: &T) -> u32 {
        let k = self.key(value);
        match ((k >> 32) as u32) ^ (k as u32) {
            0 => 1,
            m => m,
        }
    }
}

struct FoldHasher {
    state: u64,
}

impl FoldHasher {
    #[inline]
    fn mix(&mut self, word: u64) {
        self.state = (self.state.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

impl Hasher for FoldHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.mix(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            // The length in the top bits tells "ab" from "ab\0".
            self.mix(u64::from_le_bytes(word) ^ ((rest.len() as u64) << 59));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.mix(u64::from(i));
    }

    fn write_u16(&mut self, i: u16) {
        self.mix(u64::from(i));
    }

    fn write_u32(&mut self, i: u32) {
        self.mix(u64::from(i));
    }

    fn write_u64(&mut self, i: u64) {
        self.mix(i);
    }

    fn write_usize(&mut self, i: usize) {
        self.mix(i as u64);
    }

    fn finish(&self) -> u64 {
        fmix64(self.state)
    }
}

/// MurmurHash3's 64-bit finaliser.
#[inline]
fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^= k >> 33;
    k
}

/// `x` mapped onto `0..n` by its high bits (Lemire's multiply-shift).
#[inline]
fn reduce(x: u64, n: usize) -> usize {
    ((u128::from(x) * n as u128) >> 64) as usize
}

/// The slot bookkeeping shared by both tables: keys, the newest activity per
/// slot (in the table's time unit) and the two-choice set placement.
#[derive(Debug)]
struct SlotIndex {
    sets: usize,
    keys: Vec<u64>,
    stamps: Vec<u32>,
    /// A slot is expired when `stamp + horizon <= now`.
    horizon: u64,
    occupied: usize,
    evictions: u64,
    /// Cuckoo steps that found nothing, in a row.
    cuckoo_misses: u32,
    /// Claims left that skip the cuckoo step (after many misses in a row).
    cuckoo_pause: u32,
}

/// After this many fruitless cuckoo steps in a row the table is full of
/// live keys: skip the step for [`CUCKOO_PAUSE`] claims, then try again.
/// Each step costs 16 × 8 random reads; at 65 000 clicks/s into a full
/// table it was 19 % of the aggregator's CPU.
const CUCKOO_MISSES: u32 = 8;
/// Claims that skip the cuckoo step after [`CUCKOO_MISSES`] misses.
const CUCKOO_PAUSE: u32 = 64;

impl SlotIndex {
    fn new(min_slots: usize, horizon: u64) -> Self {
        // At least two sets, so that the two choices can differ.
        let sets = min_slots.div_ceil(WAYS).max(2);
        Self {
            sets,
            keys: vec![EMPTY; sets * WAYS],
            stamps: vec![0; sets * WAYS],
            horizon,
            occupied: 0,
            evictions: 0,
            cuckoo_misses: 0,
            cuckoo_pause: 0,
        }
    }

    fn slots(&self) -> usize {
        self.keys.len()
    }

    /// The first slot of each of the key's two sets.
    #[inline]
    fn sets_of(&self, key: u64) -> (usize, usize) {
        // Independent of the high bits of `key`, which pick the shard.
        let m = fmix64(key ^ 0x9e37_79b9_7f4a_7c15);
        (
            reduce(m, self.sets) * WAYS,
            reduce(m.rotate_left(32), self.sets) * WAYS,
        )
    }

    #[inline]
    fn find(&self, key: u64) -> Option<usize> {
        let (a, b) = self.sets_of(key);
        (a..a + WAYS)
            .chain(b..b + WAYS)
            .find(|&i| self.keys[i] == key)
    }

    fn expired(&self, slot: usize, now: u64) -> bool {
        u64::from(self.stamps[slot]) + self.horizon <= now
    }

    /// The key's slot, taking one if needed. A fresh slot's stamp is set to
    /// `now`; its payload is the caller's to reset, after moving the payload
    /// of a relocated key (`moved`, from → to) if there is one.
    ///
    /// A new key takes, in order: an empty slot of its emptier set; the
    /// stalest of its 16 candidates if that one has expired; the slot of a
    /// candidate that can move to an empty or expired slot of its own other
    /// set (one cuckoo step, which keeps a table nearly full without
    /// evictions); and otherwise the stalest candidate (an eviction).
    fn claim(&mut self, key: u64, now: u64) -> Claim {
        if let Some(slot) = self.find(key) {
            return Claim {
                slot,
                fresh: false,
                moved: None,
            };
        }
        let (a, b) = self.sets_of(key);
        let empty_in =
            |keys: &[u64], start: usize| (start..start + WAYS).find(|&i| keys[i] == EMPTY);
        let free = |keys: &[u64], start: usize| {
            keys[start..start + WAYS]
                .iter()
                .filter(|k| **k == EMPTY)
                .count()
        };
        let (free_a, free_b) = (free(&self.keys, a), free(&self.keys, b));
        let mut moved = None;
        let victim = if free_a > 0 && free_a >= free_b {
            empty_in(&self.keys, a).unwrap_or(a)
        } else if free_b > 0 {
            empty_in(&self.keys, b).unwrap_or(b)
        } else {
            let stalest = (a..a + WAYS)
                .chain(b..b + WAYS)
                .min_by_key(|&i| self.stamps[i])
                .unwrap_or(a);
            if self.expired(stalest, now) {
                // Expired slots are around again: cuckoo steps may pay off.
                self.cuckoo_pause = 0;
                self.cuckoo_misses = 0;
                stalest
            } else if self.cuckoo_pause > 0 {
                self.cuckoo_pause -= 1;
                stalest
            } else {
                let mut chosen = stalest;
                for i in (a..a + WAYS).chain(b..b + WAYS) {
                    let (x, y) = self.sets_of(self.keys[i]);
                    let own = i - i % WAYS;
                    let alt = if x == own { y } else { x };
                    if alt == own {
                        continue;
                    }
                    let target =
                        (alt..alt + WAYS).find(|&j| self.keys[j] == EMPTY || self.expired(j, now));
                    if let Some(to) = target {
                        if self.keys[to] == EMPTY {
                            self.occupied += 1;
                        }
                        self.keys[to] = self.keys[i];
                        self.stamps[to] = self.stamps[i];
                        moved = Some((i, to));
                        chosen = i;
                        break;
                    }
                }
                if moved.is_some() {
                    self.cuckoo_misses = 0;
                } else {
                    self.cuckoo_misses += 1;
                    if self.cuckoo_misses >= CUCKOO_MISSES {
                        self.cuckoo_misses = 0;
                        self.cuckoo_pause = CUCKOO_PAUSE;
                    }
                }
                chosen
            }
        };
        if moved.is_none() {
            if self.keys[victim] == EMPTY {
                self.occupied += 1;
            } else if !self.expired(victim, now) {
                self.evictions += 1;
            }
        }
        self.keys[victim] = key;
        self.stamps[victim] = clamp_u32(now);
        Claim {
            slot: victim,
            fresh: true,
            moved,
        }
    }
}

/// The outcome of [`SlotIndex::claim`].
struct Claim {
    slot: usize,
    fresh: bool,
    moved: Option<(usize, usize)>,
}

fn clamp_u32(v: u64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

/// Event counts per key in a ring of time buckets, for "how many events of
/// this key in the last `w` buckets".
///
/// A window of `w` buckets ending at time `t` sums the bucket containing `t`
/// and the `w − 1` before it, so it covers between `w − 1` and `w` bucket
/// lengths of history. Counts are `u16` per bucket and saturate.
#[derive(Debug)]
pub struct CounterTable {
    index: SlotIndex,
    ring: usize,
    bucket_ms: u64,
    counts: Vec<u16>,
}

/// What a baseline merge did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Absorbed {
    /// Rows merged.
    pub rows: u64,
    /// Rows ignored because their bucket is at or after the cutoff (local
    /// counts own that period).
    pub at_or_after_cutoff: u64,
    /// Rows ignored because their bucket is older than the table's horizon
    /// at the cutoff, or older than the key's ring.
    pub expired: u64,
}

impl std::ops::AddAssign for Absorbed {
    fn add_assign(&mut self, o: Self) {
        self.rows += o.rows;
        self.at_or_after_cutoff += o.at_or_after_cutoff;
        self.expired += o.expired;
    }
}

impl CounterTable {
    /// A table of at least `min_slots` keys, each with a ring of `ring`
    /// buckets of `bucket_ms`.
    pub fn new(min_slots: usize, ring: usize, bucket_ms: u64) -> Self {
        let ring = ring.max(1);
        let index = SlotIndex::new(min_slots, ring as u64);
        let counts = vec![0; index.slots() * ring];
        Self {
            index,
            ring,
            bucket_ms: bucket_ms.max(1),
            counts,
        }
    }

    /// The bucket index of a time (milliseconds since the epoch / bucket).
    pub fn bucket_of(&self, at_ms: u64) -> u64 {
        at_ms / self.bucket_ms
    }

    /// Bucket length in milliseconds.
    pub fn bucket_ms(&self) -> u64 {
        self.bucket_ms
    }

    /// Sets the expiry horizon in buckets (1..=ring; the ring length at
    /// creation): a key with no event in that many buckets has expired and
    /// its slot is reused without counting an eviction. Set it to the
    /// longest window in use, so that `evictions` counts only keys some
    /// window could still read.
    pub fn set_horizon(&mut self, buckets: usize) {
        self.index.horizon = buckets.clamp(1, self.ring) as u64;
    }

    /// Buckets per ring: the longest window, in buckets.
    pub fn ring(&self) -> usize {
        self.ring
    }

    /// Counts one event of `key` at `at_ms` and returns the key's count in
    /// the `window` buckets ending at `at_ms`, this event included. An event
    /// older than the key's ring (a very late arrival) is not stored; the
    /// count is then what the ring still holds of its window.
    pub fn add(&mut self, key: u64, at_ms: u64, window: usize) -> u32 {
        let b = self.bucket_of(at_ms);
        let slot = self.slot_at(key, b, b);
        self.bump(slot, b, 1);
        self.window_sum(slot, b, window)
    }

    /// The key's count in the `window` buckets ending at `at_ms` (0 for an
    /// unknown key).
    pub fn count(&self, key: u64, at_ms: u64, window: usize) -> u32 {
        self.index.find(key).map_or(0, |slot| {
            self.window_sum(slot, self.bucket_of(at_ms), window)
        })
    }

    /// Merges baseline rows `(key, bucket index, count)` covering every
    /// bucket before `cutoff_bucket`: local counts in those buckets are
    /// replaced by the baseline's (a key without rows gets zero there);
    /// local counts at or after the cutoff are kept. Rows for the same key
    /// and bucket are summed.
    pub fn absorb(&mut self, cutoff_bucket: u64, rows: &[(u64, u64, u32)]) -> Absorbed {
        let mut done = Absorbed::default();
        for slot in 0..self.index.slots() {
            if self.index.keys[slot] != EMPTY && cutoff_bucket > 0 {
                let stamp = u64::from(self.index.stamps[slot]);
                let lo = (stamp + 1).saturating_sub(self.ring as u64);
                let hi = stamp.min(cutoff_bucket - 1);
                let base = slot * self.ring;
                for j in lo..=hi {
                    self.counts[base + (j % self.ring as u64) as usize] = 0;
                }
            }
        }
        for &(key, bucket, count) in rows {
            if bucket >= cutoff_bucket {
                done.at_or_after_cutoff += 1;
                continue;
            }
            if bucket + self.ring as u64 <= cutoff_bucket {
                done.expired += 1;
                continue;
            }
            let slot = self.slot_at(key, cutoff_bucket, bucket);
            if self.bump(slot, bucket, count) {
                done.rows += 1;
            } else {
                done.expired += 1;
            }
        }
        done
    }

    /// The key's slot with its ring advanced to `bucket` if that is newer.
    /// `now` judges whether a victim slot was expired.
    fn slot_at(&mut self, key: u64, now: u64, bucket: u64) -> usize {
        let Claim { slot, fresh, moved } = self.index.claim(key, now);
        let base = slot * self.ring;
        if let Some((from, to)) = moved {
            self.counts
                .copy_within(from * self.ring..(from + 1) * self.ring, to * self.ring);
        }
        if fresh {
            self.counts[base..base + self.ring].fill(0);
            self.index.stamps[slot] = clamp_u32(bucket);
        } else {
            let stamp = u64::from(self.index.stamps[slot]);
            if bucket > stamp {
                let steps = (bucket - stamp).min(self.ring as u64);
                for j in 1..=steps {
                    self.counts[base + ((stamp + j) % self.ring as u64) as usize] = 0;
                }
                self.index.stamps[slot] = clamp_u32(bucket);
            }
        }
        slot
    }

    /// Adds `n` to `bucket` if the ring still holds it.
    fn bump(&mut self, slot: usize, bucket: u64, n: u32) -> bool {
        let stamp = u64::from(self.index.stamps[slot]);
        if bucket > stamp || stamp - bucket >= self.ring as u64 {
            return false;
        }
        let cell = &mut self.counts[slot * self.ring + (bucket % self.ring as u64) as usize];
        *cell = u16::try_from(u32::from(*cell).saturating_add(n)).unwrap_or(u16::MAX);
        true
    }

    fn window_sum(&self, slot: usize, b: u64, window: usize) -> u32 {
        let stamp = u64::from(self.index.stamps[slot]);
        let window = window.clamp(1, self.ring) as u64;
        let newest = b.min(stamp);
        let lo = (b + 1)
            .saturating_sub(window)
            .max((stamp + 1).saturating_sub(self.ring as u64));
        if lo > newest {
            return 0;
        }
        let base = slot * self.ring;
        (lo..=newest)
            .map(|j| u32::from(self.counts[base + (j % self.ring as u64) as usize]))
            .sum()
    }

    /// Slots in use (live or expired but not yet reused).
    pub fn len(&self) -> usize {
        self.index.occupied
    }

    /// Whether no slot is in use.
    pub fn is_empty(&self) -> bool {
        self.index.occupied == 0
    }

    /// Total slots.
    pub fn capacity(&self) -> usize {
        self.index.slots()
    }

    /// Live keys evicted to make room since creation.
    pub fn evictions(&self) -> u64 {
        self.index.evictions
    }

    /// Bytes per slot: key, newest bucket and the ring of `u16` counts.
    pub fn bytes_per_key(&self) -> usize {
        8 + 4 + 2 * self.ring
    }

    /// Bytes allocated for the slots.
    pub fn memory_bytes(&self) -> usize {
        self.index.keys.capacity() * 8
            + self.index.stamps.capacity() * 4
            + self.counts.capacity() * 2
    }
}

/// The distinct count of a key before and after an insert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DistinctCount {
    /// Distinct members in the window before this insert.
    pub before: u32,
    /// Distinct members in the window after it (saturates at [`MEMBERS`]).
    pub after: u32,
}

/// Up to [`MEMBERS`] recent distinct members per key with the minute each
/// was last seen, for "how many different players on this device in the
/// last `w` minutes". Members are 32-bit hashes ([`KeyHasher::member`]).
///
/// When a key already holds [`MEMBERS`] members, a new one replaces the
/// least recent; so the count is exact up to [`MEMBERS`] and saturates
/// there. Time resolution is one minute.
#[derive(Debug)]
pub struct DistinctTable {
    index: SlotIndex,
    members: Vec<u32>,
    minutes: Vec<u32>,
}

use clickstitch_domain::units::MINUTE_MS;

impl DistinctTable {
    /// Sets the expiry horizon in minutes (see
    /// [`CounterTable::set_horizon`]).
    pub fn set_horizon(&mut self, minutes: u32) {
        self.index.horizon = u64::from(minutes.max(1));
    }

    /// A table of at least `min_slots` keys whose windows are at most
    /// `horizon_minutes` long (the expiry horizon until
    /// [`DistinctTable::set_horizon`]).
    pub fn new(min_slots: usize, horizon_minutes: u32) -> Self {
        let index = SlotIndex::new(min_slots, u64::from(horizon_minutes.max(1)));
        let n = index.slots() * MEMBERS;
        Self {
            index,
            members: vec![0; n],
            minutes: vec![0; n],
        }
    }

    /// Records `member` for `key` at `at_ms` and returns the distinct count
    /// in the `window_minutes` ending at `at_ms` before and after. A member
    /// already present keeps one entry (its newest time), so re-inserting
    /// is idempotent.
    pub fn insert(
        &mut self,
        key: u64,
        member: u32,
        at_ms: u64,
        window_minutes: u32,
    ) -> DistinctCount {
        let now = at_ms / MINUTE_MS;
        let slot = self.slot_for(key, now);
        let before = self.count_slot(slot, now, window_minutes);
        self.upsert(slot, member.max(1), now);
        DistinctCount {
            before,
            after: self.count_slot(slot, now, window_minutes),
        }
    }

    /// The distinct count in the `window_minutes` ending at `at_ms`.
    pub fn count(&self, key: u64, at_ms: u64, window_minutes: u32) -> u32 {
        self.index.find(key).map_or(0, |slot| {
            self.count_slot(slot, at_ms / MINUTE_MS, window_minutes)
        })
    }

    /// Merges baseline rows `(key, member, at_ms)`: each is inserted like an
    /// event, which is idempotent, so rows this instance has already seen
    /// and rows seen in an earlier baseline change nothing.
    pub fn absorb(&mut self, rows: &[(u64, u32, u64)]) -> u64 {
        let mut n = 0;
        for &(key, member, at_ms) in rows {
            let now = at_ms / MINUTE_MS;
            let slot = self.slot_for(key, now);
            self.upsert(slot, member.max(1), now);
            n += 1;
        }
        n
    }

    fn slot_for(&mut self, key: u64, now: u64) -> usize {
        let Claim { slot, fresh, moved } = self.index.claim(key, now);
        if let Some((from, to)) = moved {
            let range = from * MEMBERS..(from + 1) * MEMBERS;
            self.members.copy_within(range.clone(), to * MEMBERS);
            self.minutes.copy_within(range, to * MEMBERS);
        }
        if fresh {
            let base = slot * MEMBERS;
            self.members[base..base + MEMBERS].fill(0);
            self.minutes[base..base + MEMBERS].fill(0);
        }
        slot
    }

    fn upsert(&mut self, slot: usize, member: u32, now: u64) {
        let base = slot * MEMBERS;
        let now32 = clamp_u32(now);
        let entries = base..base + MEMBERS;
        if let Some(i) = entries.clone().find(|&i| self.members[i] == member) {
            self.minutes[i] = self.minutes[i].max(now32);
        } else {
            let victim = entries
                .clone()
                .find(|&i| self.members[i] == 0)
                .or_else(|| entries.min_by_key(|&i| self.minutes[i]));
            if let Some(v) = victim {
                // A late row older than every member of a full key is
                // dropped rather than displacing a newer member.
                if self.members[v] == 0 || self.minutes[v] <= now32 {
                    self.members[v] = member;
                    self.minutes[v] = now32;
                }
            }
        }
        if now32 > self.index.stamps[slot] {
            self.index.stamps[slot] = now32;
        }
    }

    fn count_slot(&self, slot: usize, now: u64, window_minutes: u32) -> u32 {
        let base = slot * MEMBERS;
        let oldest = now.saturating_sub(u64::from(window_minutes.max(1)));
        (base..base + MEMBERS)
            .filter(|&i| {
                let t = u64::from(self.minutes[i]);
                self.members[i] != 0 && t > oldest && t <= now
            })
            .count() as u32
    }

    /// Slots in use (live or expired but not yet reused).
    pub fn len(&self) -> usize {
        self.index.occupied
    }

    /// Whether no slot is in use.
    pub fn is_empty(&self) -> bool {
        self.index.occupied == 0
    }

    /// Total slots.
    pub fn capacity(&self) -> usize {
        self.index.slots()
    }

    /// Live keys evicted to make room since creation.
    pub fn evictions(&self) -> u64 {
        self.index.evictions
    }

    /// Bytes per slot: key, newest minute and [`MEMBERS`] × (member, minute).
    pub fn bytes_per_key(&self) -> usize {
        8 + 4 + 8 * MEMBERS
    }

    /// Bytes allocated for the slots.
    pub fn memory_bytes(&self) -> usize {
        self.index.keys.capacity() * 8
            + self.index.stamps.capacity() * 4
            + (self.members.capacity() + self.minutes.capacity()) * 4
    }
}

/// A table split into independently locked shards by the key's high bits,
/// so concurrent requests rarely wait for each other. Each operation locks
/// one shard for the duration of a table call (well under a microsecond).
#[derive(Debug)]
pub struct Sharded<T> {
    shards: Box<[Mutex<T>]>,
}

/// Keys per shard below which fewer shards are used (small test tables).
const MIN_KEYS_PER_SHARD: usize = 4096;

/// Most shards per table.
pub const MAX_SHARDS: usize = 64;

impl<T> Sharded<T> {
    /// A table of about `capacity` keys in total: `make(keys_per_shard)`
    /// builds each shard.
    pub fn new(capacity: usize, mut make: impl FnMut(usize) -> T) -> Self {
        let n = (capacity / MIN_KEYS_PER_SHARD).clamp(1, MAX_SHARDS);
        let per_shard = capacity.div_ceil(n).max(1);
        Self {
            shards: (0..n).map(|_| Mutex::new(make(per_shard))).collect(),
        }
    }

    /// Number of shards.
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// The shard a key belongs to.
    pub fn shard_of(&self, key: u64) -> usize {
        reduce(key, self.shards.len())
    }

    /// Runs `f` on the key's shard under its lock.
    pub fn with<R>(&self, key: u64, f: impl FnOnce(&mut T) -> R) -> R {
        self.with_shard(self.shard_of(key), f)
    }

    /// Runs `f` on every shard in turn, each under its lock.
    pub fn each(&self, mut f: impl FnMut(&mut T)) {
        for i in 0..self.shards.len() {
            self.with_shard(i, &mut f);
        }
    }

    /// Runs `f` on shard `index` under its lock.
    pub fn with_shard<R>(&self, index: usize, f: impl FnOnce(&mut T) -> R) -> R {
        // A panic inside a table call cannot leave a slot half written in a
        // way later calls would misread (every field is a plain number), so
        // a poisoned lock is used as is.
        let mut guard = self.shards[index]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut guard)
    }

    /// Sums `f` over every shard (each locked in turn).
    pub fn sum(&self, f: impl Fn(&T) -> u64) -> u64 {
        (0..self.shards.len())
            .map(|i| self.with_shard(i, |t| f(t)))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: u64 = 60_000;
    const T0: u64 = 1_790_000_000_000;

    #[test]
    fn the_key_hasher_is_deterministic_per_seed_and_never_returns_zero() {
        let h = KeyHasher::new(7);
        assert_eq!(h.key(&("a", 1u32)), h.key(&("a", 1u32)));
        assert_ne!(h.key(&("a", 1u32)), h.key(&("a", 2u32)));
        assert_ne!(h.key(&"ab"), h.key(&"ab\0"));
        assert_ne!(KeyHasher::new(8).key(&"a"), h.key(&"a"));
        assert!((0u32..10_000).all(|i| h.key(&i) != 0 && h.member(&i) != 0));
    }

    #[test]
    fn a_counter_counts_events_inside_its_sliding_window_only() {
        let mut t = CounterTable::new(64, 16, MIN);
        for i in 0..5 {
            assert_eq!(t.add(42, T0 + i * MIN, 10), (i + 1) as u32);
        }
        // Ten minutes after the first event its bucket has left a 10-bucket
        // window: buckets T0+1..=T0+10 hold 4 events.
        assert_eq!(t.count(42, T0 + 10 * MIN, 10), 4);
        assert_eq!(t.count(42, T0 + 14 * MIN, 10), 0);
        assert_eq!(t.count(7, T0, 10), 0, "unknown key");
    }

    #[test]
    fn a_late_event_is_counted_in_its_own_window_not_the_newest() {
        let mut t = CounterTable::new(64, 16, MIN);
        t.add(1, T0 + 12 * MIN, 10);
        // An event from 12 minutes earlier: its 10-minute window does not
        // reach the newer event, but the ring still stores it.
        assert_eq!(t.add(1, T0, 10), 1);
        assert_eq!(t.count(1, T0 + 12 * MIN, 16), 2);
        // Older than the whole ring: not stored.
        assert_eq!(t.add(1, T0 - 30 * MIN, 10), 0);
    }

    #[test]
    fn counts_saturate_instead_of_wrapping() {
        let mut t = CounterTable::new(16, 4, MIN);
        let rows = [(5u64, T0 / MIN, 70_000u32)];
        t.absorb(T0 / MIN + 1, &rows);
        assert_eq!(t.count(5, T0, 1), u32::from(u16::MAX));
    }

    #[test]
    fn a_baseline_replaces_local_counts_before_the_cutoff_and_keeps_later_ones() {
        let mut t = CounterTable::new(64, 16, MIN);
        // This instance saw 3 events at minute 0 and 2 at minute 5.
        for _ in 0..3 {
            t.add(9, T0, 16);
        }
        for _ in 0..2 {
            t.add(9, T0 + 5 * MIN, 16);
        }
        // ClickHouse (all instances) has 10 events at minute 0, including
        // this instance's 3; the cutoff is minute 5.
        let b0 = T0 / MIN;
        let done = t.absorb(
            b0 + 5,
            &[
                (9, b0, 10),
                (9, b0 + 5, 99),
                (9, b0 - 40, 1),
                (11, b0 + 1, 4),
            ],
        );
        assert_eq!(
            done,
            Absorbed {
                rows: 2,
                at_or_after_cutoff: 1,
                expired: 1
            }
        );
        assert_eq!(
            t.count(9, T0 + 5 * MIN, 16),
            12,
            "10 from the baseline + 2 local"
        );
        assert_eq!(
            t.count(11, T0 + 5 * MIN, 16),
            4,
            "a key only the baseline knew"
        );
        // Absorbing the same baseline again changes nothing.
        t.absorb(b0 + 5, &[(9, b0, 10), (11, b0 + 1, 4)]);
        assert_eq!(t.count(9, T0 + 5 * MIN, 16), 12);
        assert_eq!(t.count(11, T0 + 5 * MIN, 16), 4);
    }

    #[test]
    fn a_key_missing_from_the_baseline_loses_its_counts_before_the_cutoff() {
        let mut t = CounterTable::new(64, 16, MIN);
        t.add(3, T0, 16);
        t.add(3, T0, 16);
        t.add(3, T0 + 3 * MIN, 16);
        t.absorb(T0 / MIN + 2, &[]);
        assert_eq!(t.count(3, T0 + 3 * MIN, 16), 1);
    }

    #[test]
    fn distinct_members_count_once_and_expire_with_the_window() {
        let mut t = DistinctTable::new(64, 7 * 24 * 60);
        let day = 24 * 60;
        assert_eq!(t.insert(1, 100, T0, day).after, 1);
        assert_eq!(
            t.insert(1, 100, T0 + MIN, day),
            DistinctCount {
                before: 1,
                after: 1
            },
            "the same member again"
        );
        assert_eq!(t.insert(1, 200, T0 + 2 * MIN, day).after, 2);
        assert_eq!(t.count(1, T0 + 24 * 60 * MIN + MIN, day), 1);
        assert_eq!(t.count(1, T0 + 3 * 24 * 60 * MIN, day), 0);
    }

    #[test]
    fn a_distinct_count_saturates_at_the_member_capacity() {
        let mut t = DistinctTable::new(64, 60);
        for m in 1..=20u32 {
            t.insert(1, m, T0 + u64::from(m) * 1000, 60);
        }
        assert_eq!(t.count(1, T0 + 30_000, 60), MEMBERS as u32);
    }

    #[test]
    fn a_distinct_baseline_is_idempotent() {
        let mut t = DistinctTable::new(64, 24 * 60);
        t.insert(4, 1, T0, 24 * 60);
        let rows = [(4, 1, T0), (4, 2, T0 + MIN), (4, 3, T0 + 2 * MIN)];
        assert_eq!(t.absorb(&rows), 3);
        t.absorb(&rows);
        assert_eq!(t.count(4, T0 + 3 * MIN, 24 * 60), 3);
    }

    #[test]
    fn bytes_per_key_match_the_allocation_and_give_44_and_76_mb_at_one_million_keys() {
        let counters = CounterTable::new(1_000_000, 16, MIN);
        assert!(counters.capacity() >= 1_000_000);
        assert_eq!(counters.bytes_per_key(), 44);
        assert_eq!(
            counters.memory_bytes(),
            counters.capacity() * counters.bytes_per_key()
        );
        assert!(counters.memory_bytes() <= 44_000_000 + 44 * WAYS);

        let distinct = DistinctTable::new(1_000_000, 60);
        assert_eq!(distinct.bytes_per_key(), 76);
        assert_eq!(
            distinct.memory_bytes(),
            distinct.capacity() * distinct.bytes_per_key()
        );
        assert!(distinct.memory_bytes() <= 76_000_000 + 76 * WAYS);
    }

    #[test]
    fn a_table_holds_ninety_percent_of_its_slots_without_evictions_and_95_percent_with_almost_none()
    {
        let h = KeyHasher::new(1);
        for (percent, most) in [(90, 0), (95, 10)] {
            let mut t = CounterTable::new(100_000, 16, MIN);
            let n = t.capacity() as u64 * percent / 100;
            for i in 0..n {
                t.add(h.key(&i), T0, 10);
            }
            assert!(
                t.evictions() <= most,
                "{percent} %: {} evictions",
                t.evictions()
            );
            assert_eq!(t.len() as u64 + t.evictions(), n);
        }
    }

    #[test]
    fn a_full_table_evicts_the_stalest_keys_and_reuses_expired_slots_first() {
        let h = KeyHasher::new(2);
        let mut t = CounterTable::new(1024, 16, MIN);
        let cap = t.capacity() as u64;
        // Fill at minute 0, then one key active at minute 2, then twice the
        // capacity of keys at minute 1: those evict the minute-0 keys and
        // each other, never the freshest key.
        for i in 0..cap {
            t.add(h.key(&i), T0, 10);
        }
        let survivor = h.key(&u64::MAX);
        t.add(survivor, T0 + 2 * MIN, 10);
        for i in cap..cap * 3 {
            t.add(h.key(&i), T0 + MIN, 10);
        }
        assert!(t.evictions() > cap);
        assert_eq!(t.count(survivor, T0 + 2 * MIN, 10), 1);
        assert_eq!(
            t.count(h.key(&0u64), T0 + MIN, 10),
            0,
            "a stale key is gone"
        );
        // 20 minutes later every key has expired: new keys reuse their
        // slots without counting evictions.
        let evicted = t.evictions();
        for i in 0..cap * 9 / 10 {
            t.add(h.key(&(i + 10 * cap)), T0 + 20 * MIN, 10);
        }
        assert_eq!(t.evictions(), evicted);
        assert!(t.len() as u64 <= cap);
    }

    #[test]
    fn shards_split_the_capacity_and_every_key_maps_to_one_shard() {
        let s = Sharded::new(1_000_000, |n| CounterTable::new(n, 16, MIN));
        assert_eq!(s.shard_count(), MAX_SHARDS);
        let total = s.sum(|t| t.capacity() as u64);
        assert!((1_000_000..1_000_000 + 64 * WAYS as u64).contains(&total));
        let h = KeyHasher::new(3);
        let mut used = vec![0u32; s.shard_count()];
        for i in 0..64_000u64 {
            used[s.shard_of(h.key(&i))] += 1;
        }
        assert!(used.iter().all(|&n| (700..1300).contains(&n)), "{used:?}");
        assert_eq!(Sharded::new(1000, |n| n).shard_count(), 1);
    }
}
