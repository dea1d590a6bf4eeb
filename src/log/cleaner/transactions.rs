//! Transactions as the cleaner meets them walking a log in offset order (Kafka's
//! `CleanedTransactionMetadata`).
//!
//! Whether a transactional batch was aborted is known from the aborted-transaction index
//! (see [`crate::log::txn`]): a batch of producer P belongs to an aborted transaction iff
//! some entry of P has `first_offset <= offset <= last_offset`. The walk takes the entries
//! overlapping the walked range, in first-offset order, as it reaches them: from an
//! entry's first offset its producer is *inside an aborted transaction* until its next
//! marker. Every producer's transactional batches since its last marker are noted, so a
//! marker knows whether any batch of its transaction is still in the log: while one is,
//! the marker stays (a read_committed consumer needs it to close the transaction, and a
//! replay of the log would otherwise leave the transaction open forever).
//!
//! [`TxnCleaning`] adds what the rewrite needs besides: which ABORT markers a group keeps
//! (its new `.txnindex` holds their entries) and whether a marker that may go is its
//! producer's last batch (kept then, as Kafka keeps a producer's last entry).

use std::collections::{HashMap, HashSet};
use std::ops::ControlFlow;

use super::super::LogError;
use super::super::batch::BatchHeader;
use super::super::txn::AbortedTxn;
use super::clean::{SegmentRef, for_each_batch};

/// The transaction state of a walk through a log, batch by batch in offset order.
#[derive(Debug, Default)]
pub struct TxnWalk {
    /// Aborted transactions the walk has not reached, by first offset, latest first (the
    /// next one to reach is the last).
    pending: Vec<AbortedTxn>,
    /// Producers inside an aborted transaction.
    in_aborted: HashSet<i64>,
    /// Producers with a transactional batch walked since their last marker.
    with_data: HashSet<i64>,
}

impl TxnWalk {
    /// A walk starting at `from` over a log whose aborted transactions overlapping the
    /// walked range are `aborted` (entries whose marker lies below `from` are ignored).
    pub fn new(aborted: &[AbortedTxn], from: i64) -> Self {
        let mut pending: Vec<AbortedTxn> = aborted.iter().copied().filter(|e| e.last_offset >= from).collect();
        pending.sort_by_key(|e| std::cmp::Reverse((e.first_offset, e.last_offset)));
        TxnWalk { pending, ..TxnWalk::default() }
    }

    /// Takes in the aborted transactions starting at or before `offset`.
    fn reach(&mut self, offset: i64) {
        while let Some(e) = self.pending.last().copied().filter(|e| e.first_offset <= offset) {
            self.pending.pop();
            self.in_aborted.insert(e.producer_id);
        }
    }

    /// A data batch: whether it belongs to an aborted transaction.
    pub fn on_data(&mut self, h: &BatchHeader) -> bool {
        self.reach(h.last_offset());
        if h.producer_id < 0 || !h.is_transactional() {
            return false;
        }
        self.with_data.insert(h.producer_id);
        self.in_aborted.contains(&h.producer_id)
    }

    /// A COMMIT or ABORT marker of `producer_id` at `offset`: its transaction ends.
    /// Returns whether no batch of that transaction was walked (the marker may go).
    pub fn on_marker(&mut self, producer_id: i64, offset: i64) -> bool {
        self.reach(offset);
        self.in_aborted.remove(&producer_id);
        !self.with_data.remove(&producer_id)
    }
}

/// The transaction state of one cleaning pass's rewrite, carried from group to group.
pub struct TxnCleaning<'a> {
    pub walk: TxnWalk,
    /// The segments the pass rewrites, oldest first.
    segments: &'a [SegmentRef],
    /// The index in `segments` of the one being read.
    current: usize,
    /// Each producer's last batch (its last offset) from the segment that was current
    /// when it was first needed on; read once per pass, only when a marker may go.
    last_batches: Option<HashMap<i64, i64>>,
    /// Offsets of the ABORT markers the group being rewritten keeps.
    kept_aborts: HashSet<i64>,
}

impl<'a> TxnCleaning<'a> {
    /// The rewrite of `segments` (from the log start) of a log whose aborted transactions
    /// are `aborted`.
    pub fn new(segments: &'a [SegmentRef], aborted: &[AbortedTxn]) -> Self {
        let from = segments.first().map_or(i64::MIN, |s| s.base_offset);
        TxnCleaning {
            walk: TxnWalk::new(aborted, from),
            segments,
            current: 0,
            last_batches: None,
            kept_aborts: HashSet::new(),
        }
    }

    /// The rewrite moves on to `seg` (one of its segments).
    pub fn enter(&mut self, seg: &SegmentRef) {
        if let Some(i) = self.segments.iter().position(|s| s.base_offset == seg.base_offset) {
            self.current = i;
        }
    }

    /// A group starts: no ABORT marker kept yet.
    pub fn start_group(&mut self) {
        self.kept_aborts.clear();
    }

    /// The ABORT marker at `offset` is kept.
    pub fn keep_abort(&mut self, offset: i64) {
        self.kept_aborts.insert(offset);
    }

    /// Whether the group keeps the ABORT marker at `offset`.
    pub fn keeps_abort(&self, offset: i64) -> bool {
        self.kept_aborts.contains(&offset)
    }

    /// Whether the batch `h` (from the segment being read) is its producer's last in the
    /// rewritten range. Reads the rest of the range once per pass (the segments not yet
    /// rewritten are still in place: each group is swapped only after it was rewritten).
    pub fn is_last_of_producer(&mut self, h: &BatchHeader) -> Result<bool, LogError> {
        if self.last_batches.is_none() {
            let mut last = HashMap::new();
            for seg in &self.segments[self.current..] {
                for_each_batch(seg, |b, _| {
                    if b.producer_id >= 0 {
                        last.insert(b.producer_id, b.last_offset());
                    }
                    Ok(ControlFlow::Continue(()))
                })?;
            }
            self.last_batches = Some(last);
        }
        Ok(self.last_batches.as_ref().and_then(|l| l.get(&h.producer_id)).is_none_or(|&o| o <= h.last_offset()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(producer_id: i64, base_offset: i64, transactional: bool) -> BatchHeader {
        BatchHeader {
            base_offset,
            batch_length: 0,
            partition_leader_epoch: 0,
            magic: 2,
            crc: 0,
            attributes: if transactional { 0x10 } else { 0 },
            last_offset_delta: 0,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id,
            producer_epoch: 0,
            base_sequence: 0,
            records_count: 1,
        }
    }

    #[test]
    fn batches_inside_an_aborted_range_of_their_producer_are_aborted() {
        let aborted = [AbortedTxn { producer_id: 1, first_offset: 2, last_offset: 5, last_stable_offset: 6 }];
        let mut w = TxnWalk::new(&aborted, 0);
        assert!(!w.on_data(&header(1, 0, true)), "producer 1's committed transaction");
        assert!(!w.on_marker(1, 1), "its COMMIT marker: data walked");
        assert!(w.on_data(&header(1, 2, true)));
        assert!(!w.on_data(&header(2, 3, true)), "another producer");
        assert!(!w.on_data(&header(1, 4, false)), "not transactional");
        assert!(!w.on_marker(1, 5), "the ABORT marker: data walked");
        assert!(!w.on_data(&header(1, 6, true)), "after the marker");
        assert!(!w.on_marker(2, 7), "producer 2's transaction had data");
        assert!(w.on_marker(2, 8), "a marker without data may go");
    }

    #[test]
    fn a_walk_starting_inside_an_aborted_transaction_knows_it() {
        let aborted = [
            AbortedTxn { producer_id: 1, first_offset: 2, last_offset: 9, last_stable_offset: 10 },
            AbortedTxn { producer_id: 3, first_offset: 0, last_offset: 1, last_stable_offset: 2 },
        ];
        let mut w = TxnWalk::new(&aborted, 5);
        assert!(w.on_data(&header(1, 6, true)));
        assert!(!w.on_data(&header(3, 7, true)), "producer 3's aborted transaction ended before the walk");
    }
}
