//! Idempotent-producer state of one partition: per producer id, its epoch and the
//! sequence ranges and offsets of its last five batches (Kafka keeps five because a
//! producer has at most five requests in flight).
//!
//! The rules follow Kafka's `ProducerAppendInfo`: an older epoch is fenced, a new epoch
//! must start at sequence 0, a batch equal to a retained one is a duplicate (answered
//! with the original offsets), anything else must continue the last sequence exactly. A
//! producer the partition knows nothing about (its batches were removed by retention or
//! this is its first write) may start at any sequence.
//!
//! The table is rebuilt from batch headers when a partition opens, unless a snapshot
//! written at clean shutdown matches the log's end offset (so a clean restart does not
//! read the whole log).

use std::collections::{HashMap, VecDeque};

use kafka_protocol::ResponseError;
use serde::{Deserialize, Serialize};

/// Batches remembered per producer, as in Kafka.
pub const RETAINED_BATCHES: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchMeta {
    pub first_seq: i32,
    pub last_seq: i32,
    pub first_offset: i64,
    pub last_offset: i64,
}

#[derive(Debug, Clone, Default)]
struct ProducerEntry {
    epoch: i16,
    batches: VecDeque<BatchMeta>,
}

/// The outcome of checking a batch before it is appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqCheck {
    Append,
    /// A retry of a batch already in the log: answer with its original offsets.
    Duplicate(BatchMeta),
    Reject(ResponseError),
}

/// On-disk form of the table (Kafka keeps `.snapshot` files for the same purpose).
#[derive(Serialize, Deserialize)]
struct Snapshot {
    end_offset: i64,
    producers: Vec<SnapshotEntry>,
}

#[derive(Serialize, Deserialize)]
struct SnapshotEntry {
    id: i64,
    epoch: i16,
    batches: Vec<BatchMeta>,
}

#[derive(Debug, Default)]
pub struct ProducerStateTable {
    producers: HashMap<i64, ProducerEntry>,
}

/// Sequence numbers wrap from `i32::MAX` to 0.
pub fn next_seq(seq: i32) -> i32 {
    if seq == i32::MAX { 0 } else { seq + 1 }
}

/// `seq + delta` wrapping from `i32::MAX` to 0 (Kafka's `DefaultRecordBatch.incrementSequence`):
/// the last sequence of a batch with base sequence `seq` and lastOffsetDelta `delta`.
/// (`i32::wrapping_add` would wrap to `i32::MIN` instead, which no producer ever sends.)
pub fn add_seq(seq: i32, delta: i32) -> i32 {
    if delta > 0 && seq > i32::MAX - delta { delta - (i32::MAX - seq) - 1 } else { seq.wrapping_add(delta) }
}

impl ProducerStateTable {
    /// Checks a batch of `producer_id`/`epoch` covering sequences `first_seq..=last_seq`.
    pub fn check(&self, producer_id: i64, epoch: i16, first_seq: i32, last_seq: i32) -> SeqCheck {
        if producer_id < 0 {
            return SeqCheck::Append;
        }
        let Some(entry) = self.producers.get(&producer_id) else {
            return SeqCheck::Append;
        };
        if epoch < entry.epoch {
            return SeqCheck::Reject(ResponseError::InvalidProducerEpoch);
        }
        if epoch > entry.epoch {
            return if first_seq == 0 {
                SeqCheck::Append
            } else {
                SeqCheck::Reject(ResponseError::OutOfOrderSequenceNumber)
            };
        }
        if let Some(dup) = entry.batches.iter().find(|b| b.first_seq == first_seq && b.last_seq == last_seq) {
            return SeqCheck::Duplicate(*dup);
        }
        match entry.batches.back() {
            Some(last) if next_seq(last.last_seq) != first_seq => {
                SeqCheck::Reject(ResponseError::OutOfOrderSequenceNumber)
            }
            _ => SeqCheck::Append,
        }
    }

    /// Records an appended batch (also used to rebuild the table from the log).
    pub fn record(&mut self, producer_id: i64, epoch: i16, batch: BatchMeta) {
        if producer_id < 0 {
            return;
        }
        let entry = self.producers.entry(producer_id).or_default();
        if epoch != entry.epoch {
            entry.epoch = epoch;
            entry.batches.clear();
        }
        if entry.batches.len() == RETAINED_BATCHES {
            entry.batches.pop_front();
        }
        entry.batches.push_back(batch);
    }

    pub fn len(&self) -> usize {
        self.producers.len()
    }

    /// Each producer's last batch, by its last offset: what the log cleaner must keep so
    /// the producer's sequence survives compaction.
    pub fn last_offsets(&self) -> HashMap<i64, i64> {
        self.producers.iter().filter_map(|(id, e)| Some((*id, e.batches.back()?.last_offset))).collect()
    }

    /// The table as written at clean shutdown, valid for a log ending at `end_offset`.
    pub fn to_snapshot(&self, end_offset: i64) -> Result<String, serde_json::Error> {
        let producers = self
            .producers
            .iter()
            .map(|(&id, e)| SnapshotEntry { id, epoch: e.epoch, batches: e.batches.iter().copied().collect() })
            .collect();
        serde_json::to_string(&Snapshot { end_offset, producers })
    }

    /// Restores a snapshot, if it describes a log ending exactly at `end_offset`.
    pub fn from_snapshot(json: &str, end_offset: i64) -> Option<Self> {
        let snapshot: Snapshot = serde_json::from_str(json).ok()?;
        if snapshot.end_offset != end_offset {
            return None;
        }
        let producers = snapshot
            .producers
            .into_iter()
            .map(|e| {
                (
                    e.id,
                    ProducerEntry { epoch: e.epoch, batches: e.batches.into_iter().take(RETAINED_BATCHES).collect() },
                )
            })
            .collect();
        Some(Self { producers })
    }

    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(first_seq: i32, last_seq: i32, first_offset: i64) -> BatchMeta {
        BatchMeta { first_seq, last_seq, first_offset, last_offset: first_offset + i64::from(last_seq - first_seq) }
    }

    #[test]
    fn sequences_duplicates_gaps_and_fencing() {
        let mut t = ProducerStateTable::default();
        assert_eq!(t.check(7, 0, 0, 4), SeqCheck::Append);
        t.record(7, 0, meta(0, 4, 100));
        assert_eq!(t.check(7, 0, 5, 9), SeqCheck::Append);
        t.record(7, 0, meta(5, 9, 105));
        assert_eq!(t.check(7, 0, 0, 4), SeqCheck::Duplicate(meta(0, 4, 100)));
        assert_eq!(t.check(7, 0, 11, 12), SeqCheck::Reject(ResponseError::OutOfOrderSequenceNumber));
        assert_eq!(t.check(7, 1, 3, 4), SeqCheck::Reject(ResponseError::OutOfOrderSequenceNumber));
        assert_eq!(t.check(7, 1, 0, 4), SeqCheck::Append);
        t.record(7, 1, meta(0, 4, 200));
        assert_eq!(t.check(7, 0, 10, 10), SeqCheck::Reject(ResponseError::InvalidProducerEpoch));
        assert_eq!(t.check(-1, -1, -1, -1), SeqCheck::Append);
        // Unknown producer may start anywhere.
        assert_eq!(t.check(8, 3, 42, 43), SeqCheck::Append);
    }

    #[test]
    fn add_seq_wraps_to_zero() {
        assert_eq!(add_seq(5, 3), 8);
        assert_eq!(add_seq(i32::MAX, 0), i32::MAX);
        assert_eq!(add_seq(i32::MAX, 1), 0);
        assert_eq!(add_seq(i32::MAX - 1, 2), 0);
        assert_eq!(add_seq(i32::MAX - 1, 5), 3);
        assert_eq!(add_seq(0, i32::MAX), i32::MAX);
        assert_eq!(add_seq(1, i32::MAX), 0);
    }

    #[test]
    fn snapshot_round_trip_only_at_the_same_end_offset() {
        let mut t = ProducerStateTable::default();
        t.record(7, 2, meta(0, 4, 100));
        t.record(7, 2, meta(5, 9, 105));
        let json = t.to_snapshot(110).unwrap();
        assert!(ProducerStateTable::from_snapshot(&json, 111).is_none());
        assert!(ProducerStateTable::from_snapshot("garbage", 110).is_none());
        let back = ProducerStateTable::from_snapshot(&json, 110).unwrap();
        assert_eq!(back.check(7, 2, 0, 4), SeqCheck::Duplicate(meta(0, 4, 100)));
        assert_eq!(back.check(7, 2, 10, 10), SeqCheck::Append);
        assert_eq!(back.check(7, 1, 10, 10), SeqCheck::Reject(ResponseError::InvalidProducerEpoch));
    }

    #[test]
    fn keeps_only_last_five_and_wraps() {
        let mut t = ProducerStateTable::default();
        for i in 0..7 {
            t.record(1, 0, meta(i, i, i64::from(i)));
        }
        assert_eq!(t.check(1, 0, 1, 1), SeqCheck::Reject(ResponseError::OutOfOrderSequenceNumber));
        assert_eq!(t.check(1, 0, 2, 2), SeqCheck::Duplicate(meta(2, 2, 2)));
        t.record(1, 0, meta(i32::MAX - 1, i32::MAX, 10));
        assert_eq!(t.check(1, 0, 0, 3), SeqCheck::Append);
    }
}
