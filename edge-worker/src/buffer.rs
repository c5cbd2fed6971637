//! Direct-delivery buffer: records waiting in the isolate to be posted to
//! the aggregator in batches, and the one flusher posting them.
//!
//! Owns batching, the flusher's lease, requeueing and the retry backoff. A
//! record leaves the buffer only once the aggregator stored (or refused) its
//! batch: a failed batch goes back to the front, so order is kept and nothing
//! is dropped while the aggregator is down, up to `capacity` records (beyond
//! that the oldest are dropped and counted: an isolate's memory is finite; use
//! queue delivery for durability).
//!
//! At most one flusher posts at a time. It holds a lease that it renews on
//! every step; a flusher that stopped renewing (the runtime cancelled its
//! `waitUntil`, as Cloudflare does 30 s after the response) is replaced by the
//! next push, and its batch goes back to the front. The flusher keeps retrying
//! with capped exponential backoff for as long as records wait, so a buffer
//! filled during an outage drains without new traffic. Does no IO and reads no
//! clock: the runtime passes the time and runs the steps.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use clickstitch_shared::{ClickBatch, RawClick, RawGeoBlock};

/// One record leaving the edge (also the queue message body).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EdgeRecord {
    /// A human or bot click.
    Click(Box<RawClick>),
    /// A geo-blocked request.
    GeoBlock(RawGeoBlock),
}

/// Builds the aggregator's batch body from records.
pub fn to_batch(records: impl IntoIterator<Item = EdgeRecord>) -> ClickBatch {
    let mut batch = ClickBatch::default();
    for r in records {
        match r {
            EdgeRecord::Click(c) => batch.clicks.push(*c),
            EdgeRecord::GeoBlock(g) => batch.geo_blocks.push(g),
        }
    }
    batch
}

/// The first retry waits this long; each further failure doubles it.
pub const FIRST_RETRY_MS: u64 = 250;

/// How long to wait before posting again after `failures` consecutive failed
/// batches (1 or more): 250 ms, 500 ms, 1 s, 2 s, … capped at `max_ms`.
pub fn retry_delay_ms(failures: u32, max_ms: u64) -> u64 {
    let doublings = failures.saturating_sub(1).min(32);
    FIRST_RETRY_MS.saturating_mul(1u64 << doublings).min(max_ms)
}

/// How the flusher batches and retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlushPolicy {
    /// Records per batch; a batch this full is posted at once.
    pub max_records: usize,
    /// How long a smaller batch may wait for more records (0: post at once).
    pub linger_ms: u64,
    /// Cap of the retry backoff.
    pub retry_max_ms: u64,
    /// A flusher that has not renewed its lease for this long is presumed
    /// gone and replaced. Must exceed the longest single step (an aggregator
    /// call's timeout, a retry wait, the linger).
    pub lease_ms: u64,
}

/// Identifies the flusher that holds the lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlusherId(u64);

/// What a flusher does next.
#[derive(Debug, Clone, PartialEq)]
pub enum FlushStep {
    /// Post these records, then report with [`ClickBuffer::finish`].
    Send {
        /// The batch's number.
        batch: u64,
        /// Copies of the records (they stay in the buffer until finished).
        records: Vec<EdgeRecord>,
    },
    /// Sleep this many milliseconds, then ask again.
    Wait(u64),
    /// Stop: nothing waits (the lease is released), or another flusher
    /// took over.
    Done,
}

/// What the aggregator did with a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchResult {
    /// Stored (2xx).
    Stored,
    /// Refused for good (400, 413, 422): dropped, never retried.
    Refused,
    /// Not stored (unreachable, 5xx, timeout): retried.
    Failed,
}

#[derive(Debug)]
struct Lease {
    flusher: u64,
    renewed_at_ms: u64,
}

#[derive(Debug)]
struct InFlight {
    batch: u64,
    records: Vec<EdgeRecord>,
    first_pending_at_ms: u64,
}

/// Pending records and the flusher's state.
#[derive(Debug)]
pub struct ClickBuffer {
    pending: VecDeque<EdgeRecord>,
    first_pending_at_ms: Option<u64>,
    in_flight: Option<InFlight>,
    lease: Option<Lease>,
    next_number: u64,
    failures: u32,
    retry_at_ms: Option<u64>,
    capacity: usize,
    dropped: u64,
}

impl ClickBuffer {
    /// A buffer holding at most `capacity` waiting records (plus one batch
    /// in flight).
    pub fn new(capacity: usize) -> Self {
        Self {
            pending: VecDeque::new(),
            first_pending_at_ms: None,
            in_flight: None,
            lease: None,
            next_number: 0,
            failures: 0,
            retry_at_ms: None,
            capacity: capacity.max(1),
            dropped: 0,
        }
    }

    /// Adds a record. Returns a flusher to start when none holds a live
    /// lease (the caller must run it: [`ClickBuffer::next_step`] until
    /// [`FlushStep::Done`]).
    pub fn push(
        &mut self,
        record: EdgeRecord,
        now_ms: u64,
        policy: &FlushPolicy,
    ) -> Option<FlusherId> {
        if self.pending.len() >= self.capacity {
            self.pending.pop_front();
            self.dropped += 1;
        }
        self.pending.push_back(record);
        self.first_pending_at_ms.get_or_insert(now_ms);
        self.claim(now_ms, policy)
    }

    /// A new flusher if records wait and no flusher holds a live lease. A
    /// stale lease is broken: its batch in flight goes back to the front.
    pub fn claim(&mut self, now_ms: u64, policy: &FlushPolicy) -> Option<FlusherId> {
        if let Some(lease) = &self.lease {
            if now_ms.saturating_sub(lease.renewed_at_ms) <= policy.lease_ms {
                return None;
            }
            self.lease = None;
            self.return_in_flight();
        }
        if self.pending.is_empty() {
            return None;
        }
        self.next_number += 1;
        self.lease = Some(Lease {
            flusher: self.next_number,
            renewed_at_ms: now_ms,
        });
        Some(FlusherId(self.next_number))
    }

    /// The flusher's next step at `now_ms` (renews its lease).
    pub fn next_step(
        &mut self,
        flusher: FlusherId,
        now_ms: u64,
        policy: &FlushPolicy,
    ) -> FlushStep {
        if !self.renew(flusher, now_ms) {
            return FlushStep::Done;
        }
        // A batch still in flight here was abandoned by this flusher.
        self.return_in_flight();
        if let Some(at) = self.retry_at_ms {
            if at > now_ms {
                return FlushStep::Wait(at - now_ms);
            }
            self.retry_at_ms = None;
        }
        let Some(first_at) = self
            .first_pending_at_ms
            .filter(|_| !self.pending.is_empty())
        else {
            self.lease = None;
            self.failures = 0;
            return FlushStep::Done;
        };
        let age = now_ms.saturating_sub(first_at);
        if self.pending.len() < policy.max_records.max(1) && age < policy.linger_ms {
            return FlushStep::Wait(policy.linger_ms - age);
        }
        let n = policy.max_records.max(1).min(self.pending.len());
        let records: Vec<EdgeRecord> = self.pending.drain(..n).collect();
        self.first_pending_at_ms = if self.pending.is_empty() {
            None
        } else {
            Some(now_ms)
        };
        self.next_number += 1;
        let batch = self.next_number;
        self.in_flight = Some(InFlight {
            batch,
            records: records.clone(),
            first_pending_at_ms: first_at,
        });
        FlushStep::Send { batch, records }
    }

    /// Reports what became of `batch`. Returns the number of consecutive
    /// failures so far (0 after a success). A batch that is no longer in
    /// flight (its flusher lost the lease) changes nothing: its records were
    /// requeued and will be posted again, which the aggregator deduplicates.
    pub fn finish(
        &mut self,
        flusher: FlusherId,
        batch: u64,
        result: BatchResult,
        now_ms: u64,
        policy: &FlushPolicy,
    ) -> u32 {
        self.renew(flusher, now_ms);
        if self.in_flight.as_ref().is_none_or(|f| f.batch != batch) {
            return self.failures;
        }
        match result {
            BatchResult::Stored | BatchResult::Refused => {
                self.in_flight = None;
                self.failures = 0;
                self.retry_at_ms = None;
            }
            BatchResult::Failed => {
                self.return_in_flight();
                self.failures = self.failures.saturating_add(1);
                self.retry_at_ms =
                    Some(now_ms + retry_delay_ms(self.failures, policy.retry_max_ms));
            }
        }
        self.failures
    }

    fn renew(&mut self, flusher: FlusherId, now_ms: u64) -> bool {
        match &mut self.lease {
            Some(lease) if lease.flusher == flusher.0 => {
                lease.renewed_at_ms = now_ms;
                true
            }
            _ => false,
        }
    }

    /// Puts the batch in flight back at the front, keeping order.
    fn return_in_flight(&mut self) {
        let Some(flight) = self.in_flight.take() else {
            return;
        };
        for r in flight.records.into_iter().rev() {
            if self.pending.len() >= self.capacity {
                self.dropped += 1;
                continue;
            }
            self.pending.push_front(r);
        }
        if !self.pending.is_empty() {
            let first = self
                .first_pending_at_ms
                .map_or(flight.first_pending_at_ms, |t| {
                    t.min(flight.first_pending_at_ms)
                });
            self.first_pending_at_ms = Some(first);
        }
    }

    /// Whether a new answer should wait before it is sent: more than
    /// `max_unstored` records (`> 0`) are not stored yet while the aggregator
    /// is taking batches (its last answer was not a failure). Answers that
    /// wait while the flusher catches up keep the clicks answered but not
    /// stored at `max_unstored` at most, which is what a shutdown can lose.
    /// During an outage answers never wait: redirects must not depend on the
    /// aggregator.
    pub fn answer_must_wait(&self, max_unstored: usize) -> bool {
        max_unstored > 0 && self.failures == 0 && self.len() > max_unstored
    }

    /// Records not yet stored: waiting, plus the batch in flight.
    pub fn len(&self) -> usize {
        self.pending.len() + self.in_flight.as_ref().map_or(0, |f| f.records.len())
    }

    /// Whether nothing waits and nothing is in flight.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Records dropped because the buffer was full.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: FlushPolicy = FlushPolicy {
        max_records: 3,
        linger_ms: 0,
        retry_max_ms: 2_000,
        lease_ms: 20_000,
    };

    fn rec(i: u64) -> EdgeRecord {
        EdgeRecord::Click(Box::new(RawClick {
            clicked_at_ms: i,
            ..Default::default()
        }))
    }

    fn ms(r: &EdgeRecord) -> u64 {
        match r {
            EdgeRecord::Click(c) => c.clicked_at_ms,
            EdgeRecord::GeoBlock(g) => g.blocked_at_ms,
        }
    }

    fn send(step: FlushStep) -> (u64, Vec<u64>) {
        match step {
            FlushStep::Send { batch, records } => (batch, records.iter().map(ms).collect()),
            other => panic!("expected a batch, got {other:?}"),
        }
    }

    #[test]
    fn the_retry_backoff_doubles_from_a_quarter_second_up_to_its_cap() {
        let delays: Vec<u64> = (1..=7).map(|n| retry_delay_ms(n, 2_000)).collect();
        assert_eq!(delays, [250, 500, 1_000, 2_000, 2_000, 2_000, 2_000]);
        assert_eq!(retry_delay_ms(u32::MAX, 5_000), 5_000);
        assert_eq!(retry_delay_ms(1, 100), 100);
    }

    #[test]
    fn the_first_push_starts_one_flusher_and_later_pushes_join_its_batches() {
        let mut b = ClickBuffer::new(100);
        let f = b.push(rec(1), 0, &POLICY).expect("a flusher starts");
        assert_eq!(b.push(rec(2), 0, &POLICY), None);
        assert_eq!(send(b.next_step(f, 0, &POLICY)).1, [1, 2]);
        // Records answered while the batch is in flight wait for the next one.
        assert_eq!(b.push(rec(3), 1, &POLICY), None);
        assert_eq!(b.len(), 3);
    }

    #[test]
    fn a_flusher_sends_batches_until_the_buffer_is_empty_then_releases_its_lease() {
        let mut b = ClickBuffer::new(100);
        let f = b.push(rec(0), 0, &POLICY).expect("flusher");
        for i in 1..5 {
            assert_eq!(b.push(rec(i), 0, &POLICY), None);
        }
        let (first, records) = send(b.next_step(f, 0, &POLICY));
        assert_eq!(records, [0, 1, 2]);
        assert_eq!(b.finish(f, first, BatchResult::Stored, 5, &POLICY), 0);
        let (second, records) = send(b.next_step(f, 5, &POLICY));
        assert_eq!(records, [3, 4]);
        b.finish(f, second, BatchResult::Stored, 9, &POLICY);
        assert_eq!(b.next_step(f, 9, &POLICY), FlushStep::Done);
        assert!(b.is_empty());
        // The next record starts a new flusher.
        assert!(b.push(rec(5), 10, &POLICY).is_some());
    }

    #[test]
    fn a_failed_batch_goes_back_in_order_and_is_retried_after_the_backoff() {
        let mut b = ClickBuffer::new(100);
        let f = b.push(rec(0), 0, &POLICY).expect("flusher");
        b.push(rec(1), 0, &POLICY);
        let (batch, _) = send(b.next_step(f, 0, &POLICY));
        b.push(rec(2), 1, &POLICY);
        assert_eq!(b.finish(f, batch, BatchResult::Failed, 10, &POLICY), 1);
        assert_eq!(b.next_step(f, 10, &POLICY), FlushStep::Wait(250));
        let (batch, records) = send(b.next_step(f, 260, &POLICY));
        assert_eq!(records, [0, 1, 2]);
        assert_eq!(b.finish(f, batch, BatchResult::Failed, 270, &POLICY), 2);
        assert_eq!(b.next_step(f, 270, &POLICY), FlushStep::Wait(500));
        let (batch, _) = send(b.next_step(f, 770, &POLICY));
        assert_eq!(b.finish(f, batch, BatchResult::Stored, 780, &POLICY), 0);
        assert_eq!(b.next_step(f, 780, &POLICY), FlushStep::Done);
    }

    #[test]
    fn the_flusher_never_gives_up_while_records_wait() {
        let mut b = ClickBuffer::new(100);
        let f = b.push(rec(0), 0, &POLICY).expect("flusher");
        let mut now = 0;
        // Ten minutes of outage.
        while now < 600_000 {
            match b.next_step(f, now, &POLICY) {
                FlushStep::Send { batch, .. } => {
                    b.finish(f, batch, BatchResult::Failed, now, &POLICY);
                }
                FlushStep::Wait(ms) => {
                    assert!(ms <= POLICY.retry_max_ms);
                    now += ms;
                }
                FlushStep::Done => panic!("gave up at {now} ms"),
            }
        }
        let (batch, records) = loop {
            if let FlushStep::Send { batch, records } = b.next_step(f, now, &POLICY) {
                break (batch, records);
            }
            now += 2_000;
        };
        assert_eq!(records.len(), 1);
        b.finish(f, batch, BatchResult::Stored, now, &POLICY);
        assert!(b.is_empty());
    }

    #[test]
    fn a_refused_batch_is_dropped_and_not_retried() {
        let mut b = ClickBuffer::new(100);
        let f = b.push(rec(0), 0, &POLICY).expect("flusher");
        let (batch, _) = send(b.next_step(f, 0, &POLICY));
        assert_eq!(b.finish(f, batch, BatchResult::Refused, 1, &POLICY), 0);
        assert_eq!(b.next_step(f, 1, &POLICY), FlushStep::Done);
        assert!(b.is_empty());
    }

    #[test]
    fn a_small_batch_lingers_until_it_is_full_or_old_enough() {
        let policy = FlushPolicy {
            linger_ms: 1_000,
            ..POLICY
        };
        let mut b = ClickBuffer::new(100);
        let f = b.push(rec(0), 100, &policy).expect("flusher");
        assert_eq!(b.next_step(f, 100, &policy), FlushStep::Wait(1_000));
        b.push(rec(1), 300, &policy);
        assert_eq!(b.next_step(f, 600, &policy), FlushStep::Wait(500));
        assert_eq!(send(b.next_step(f, 1_100, &policy)).1, [0, 1]);
        let mut b = ClickBuffer::new(100);
        let f = b.push(rec(0), 0, &policy).expect("flusher");
        b.push(rec(1), 0, &policy);
        b.push(rec(2), 0, &policy);
        assert_eq!(send(b.next_step(f, 0, &policy)).1, [0, 1, 2]);
    }

    #[test]
    fn a_flusher_that_stopped_renewing_its_lease_is_replaced_and_its_batch_resent() {
        let mut b = ClickBuffer::new(100);
        let gone = b.push(rec(0), 0, &POLICY).expect("flusher");
        let (old_batch, _) = send(b.next_step(gone, 0, &POLICY));
        // The runtime cancelled it mid-post; within the lease nobody takes over.
        assert_eq!(b.push(rec(1), 20_000, &POLICY), None);
        let next = b.push(rec(2), 20_001, &POLICY).expect("the lease expired");
        assert_eq!(send(b.next_step(next, 20_001, &POLICY)).1, [0, 1, 2]);
        // The old flusher, should it wake up, changes nothing and stops.
        b.finish(gone, old_batch, BatchResult::Stored, 20_002, &POLICY);
        assert_eq!(b.len(), 3);
        assert_eq!(b.next_step(gone, 20_002, &POLICY), FlushStep::Done);
    }

    #[test]
    fn answers_wait_while_too_many_records_are_unstored_unless_the_aggregator_is_failing() {
        let mut b = ClickBuffer::new(100);
        let f = b.push(rec(0), 0, &POLICY).expect("flusher");
        b.push(rec(1), 0, &POLICY);
        assert!(!b.answer_must_wait(2));
        b.push(rec(2), 0, &POLICY);
        assert!(b.answer_must_wait(2));
        assert!(!b.answer_must_wait(0), "0 turns waiting off");
        // The batch in flight still counts as unstored.
        let (batch, _) = send(b.next_step(f, 0, &POLICY));
        assert!(b.answer_must_wait(2));
        b.finish(f, batch, BatchResult::Failed, 1, &POLICY);
        assert!(
            !b.answer_must_wait(2),
            "during an outage answers go out at once"
        );
        let (batch, _) = send(b.next_step(f, 1_000, &POLICY));
        b.finish(f, batch, BatchResult::Stored, 1_001, &POLICY);
        assert!(!b.answer_must_wait(2));
    }

    #[test]
    fn a_full_buffer_drops_the_oldest_and_counts_it() {
        let mut b = ClickBuffer::new(2);
        let f = b.push(rec(0), 0, &POLICY).expect("flusher");
        for i in 1..3 {
            b.push(rec(i), 0, &POLICY);
        }
        assert_eq!(b.dropped(), 1);
        assert_eq!(send(b.next_step(f, 0, &POLICY)).1, [1, 2]);
    }

    #[test]
    fn records_split_into_the_batch_lists() {
        let batch = to_batch(vec![
            rec(1),
            EdgeRecord::GeoBlock(RawGeoBlock::default()),
            rec(2),
        ]);
        assert_eq!((batch.clicks.len(), batch.geo_blocks.len()), (2, 1));
    }
}
