//! Direct-delivery buffer: records waiting in the isolate to be posted to
//! the aggregator in batches.
//!
//! Owns batching and requeueing. A batch that failed goes back to the front
//! so order is kept and nothing is dropped while the aggregator is down, up
//! to `capacity` records (beyond that the oldest are dropped and counted: an
//! isolate's memory is finite; use queue delivery for durability). Does no
//! IO and reads no clock.

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

/// Pending records.
#[derive(Debug)]
pub struct ClickBuffer {
    pending: VecDeque<EdgeRecord>,
    first_pending_at_ms: Option<u64>,
    capacity: usize,
    dropped: u64,
}

impl ClickBuffer {
    /// A buffer holding at most `capacity` records.
    pub fn new(capacity: usize) -> Self {
        Self {
            pending: VecDeque::new(),
            first_pending_at_ms: None,
            capacity: capacity.max(1),
            dropped: 0,
        }
    }

    /// Adds a record.
    pub fn push(&mut self, record: EdgeRecord, now_ms: u64) {
        if self.pending.len() >= self.capacity {
            self.pending.pop_front();
            self.dropped += 1;
        }
        self.pending.push_back(record);
        self.first_pending_at_ms.get_or_insert(now_ms);
    }

    /// Whether a flush is due: `max_records` pending, or the first pending
    /// record is `max_delay_ms` old.
    pub fn flush_due(&self, now_ms: u64, max_records: usize, max_delay_ms: u64) -> bool {
        self.pending.len() >= max_records
            || self
                .first_pending_at_ms
                .is_some_and(|t| now_ms.saturating_sub(t) >= max_delay_ms)
    }

    /// Takes up to `max` records, oldest first.
    pub fn take(&mut self, max: usize) -> Vec<EdgeRecord> {
        let n = max.min(self.pending.len());
        let taken: Vec<_> = self.pending.drain(..n).collect();
        if self.pending.is_empty() {
            self.first_pending_at_ms = None;
        }
        taken
    }

    /// Puts records that failed to send back at the front, keeping order.
    pub fn requeue(&mut self, records: Vec<EdgeRecord>, now_ms: u64) {
        for r in records.into_iter().rev() {
            if self.pending.len() >= self.capacity {
                self.dropped += 1;
                continue;
            }
            self.pending.push_front(r);
        }
        if !self.pending.is_empty() {
            self.first_pending_at_ms.get_or_insert(now_ms);
        }
    }

    /// Records waiting.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Records dropped because the buffer was full.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn a_flush_is_due_by_count_or_by_age() {
        let mut b = ClickBuffer::new(100);
        assert!(!b.flush_due(0, 2, 1000));
        b.push(rec(1), 10);
        assert!(!b.flush_due(500, 2, 1000));
        assert!(b.flush_due(1010, 2, 1000));
        b.push(rec(2), 20);
        assert!(b.flush_due(20, 2, 1000));
    }

    #[test]
    fn a_failed_batch_goes_back_in_order() {
        let mut b = ClickBuffer::new(100);
        for i in 0..5 {
            b.push(rec(i), 0);
        }
        let batch = b.take(3);
        b.push(rec(5), 1);
        b.requeue(batch, 2);
        let all: Vec<u64> = b.take(10).iter().map(ms).collect();
        assert_eq!(all, [0, 1, 2, 3, 4, 5]);
        assert!(b.is_empty());
    }

    #[test]
    fn a_full_buffer_drops_the_oldest_and_counts_it() {
        let mut b = ClickBuffer::new(2);
        for i in 0..3 {
            b.push(rec(i), 0);
        }
        assert_eq!(b.dropped(), 1);
        assert_eq!(b.take(10).iter().map(ms).collect::<Vec<_>>(), [1, 2]);
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
