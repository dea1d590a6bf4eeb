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
//!
//! # Transactions
//!
//! A producer's first transactional batch opens its transaction (its first offset is
//! remembered); a COMMIT or ABORT marker closes it. The first offset of the oldest open
//! transaction bounds the **last stable offset** (LSO), up to which read_committed
//! consumers read. A marker the high watermark does not cover yet still holds the LSO
//! at its transaction's first offset (Kafka's "unreplicated" transactions), so a
//! transaction becomes readable only once its marker is durable. Markers are checked
//! before they are appended: an older producer epoch is fenced (PRODUCER_FENCED) and so
//! is an older coordinator epoch (TRANSACTION_COORDINATOR_FENCED); a non-transactional
//! batch of a producer inside a transaction is refused (INVALID_TXN_STATE). A producer
//! with an open transaction never expires.
//!
//! A group coordinator writes a producer's transactional offset commits
//! (TxnOffsetCommit) to `__consumer_offsets` without sequence numbers
//! ([`NO_SEQUENCE`]), as Kafka's does: such a batch is checked only for fencing (an older
//! epoch is refused), opens the transaction and takes the producer to its epoch, but
//! leaves the producer's sequences alone. Clients may not send one (the Produce handler
//! refuses a producer's batch without a sequence, as Kafka's `LogValidator` does).
//!
//! Memory is bounded as in Kafka by expiry, plus caps Kafka does not have:
//! - `producer.id.expiration.ms`: a producer whose last write (by the broker's clock)
//!   is older than this is forgotten (checked every
//!   `producer.id.expiration.check.interval.ms`). A producer that writes within the
//!   window keeps its state; one that comes back later is treated like any unknown
//!   producer, which Kafka (KIP-360) accepts at any sequence.
//! - `max.producer.ids.per.partition` and `max.producer.ids` (Jet settings): a batch
//!   from a producer id the partition does not track is refused with `POLICY_VIOLATION`
//!   while either cap is reached; producers already tracked are unaffected.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};

use kafka_protocol::ResponseError;
use serde::{Deserialize, Serialize};

use crate::broker::txn_verification::{TxnVerification, VerificationGuards};

/// A batch's base sequence when it has none (Kafka's `RecordBatch.NO_SEQUENCE`).
pub const NO_SEQUENCE: i32 = -1;

/// Batches remembered per producer, as in Kafka.
pub const RETAINED_BATCHES: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchMeta {
    pub first_seq: i32,
    pub last_seq: i32,
    pub first_offset: i64,
    pub last_offset: i64,
}

#[derive(Debug, Clone)]
struct ProducerEntry {
    epoch: i16,
    /// When the broker last appended a batch of this producer (ms since the epoch).
    last_write_ms: i64,
    batches: VecDeque<BatchMeta>,
    /// The first offset of the producer's open transaction (negative while a raft
    /// leader's proposal holding it has no offsets yet).
    txn_first_offset: Option<i64>,
    /// The epoch of the transaction coordinator that wrote the producer's last marker.
    coordinator_epoch: i32,
}

impl ProducerEntry {
    fn new(epoch: i16, now_ms: i64) -> ProducerEntry {
        // Exactly the retained batches: a default VecDeque would grow to 8.
        let batches = VecDeque::with_capacity(RETAINED_BATCHES);
        ProducerEntry { epoch, last_write_ms: now_ms, batches, txn_first_offset: None, coordinator_epoch: -1 }
    }
}

/// A transaction a marker closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompletedTxn {
    pub producer_id: i64,
    /// The transaction's first offset (the marker's own when it wrote nothing here).
    pub first_offset: i64,
    /// The marker's offset.
    pub last_offset: i64,
    pub aborted: bool,
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
    /// Absent in snapshots written before expiry existed: the load time is used.
    #[serde(default)]
    last_write_ms: Option<i64>,
    batches: Vec<BatchMeta>,
    /// Absent in snapshots written before transactions existed: none open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    txn_first_offset: Option<i64>,
    #[serde(default = "no_coordinator_epoch")]
    coordinator_epoch: i32,
}

fn no_coordinator_epoch() -> i32 {
    -1
}

#[derive(Debug, Clone, Default)]
pub struct ProducerStateTable {
    producers: HashMap<i64, ProducerEntry>,
    /// `(first offset, producer id)` of every open transaction with known offsets.
    open_txns: BTreeSet<(i64, i64)>,
    /// `(marker offset, first offset)` of transactions whose marker the high watermark
    /// may not cover yet, in marker order (see the module docs).
    undecided: VecDeque<(i64, i64)>,
    /// KIP-890 verifications in progress (see [`crate::broker::txn_verification`]): a
    /// leader's in-memory state, never snapshotted.
    verifications: VerificationGuards,
}

/// One producer's entry as it was (see [`ProducerStateTable::save`]).
#[derive(Debug, Clone)]
pub struct SavedProducer {
    producer_id: i64,
    entry: Option<ProducerEntry>,
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
        self.check_batch(producer_id, epoch, first_seq, last_seq, false)
    }

    /// [`check`](Self::check) of a batch that is `transactional` or not.
    pub fn check_batch(
        &self,
        producer_id: i64,
        epoch: i16,
        first_seq: i32,
        last_seq: i32,
        transactional: bool,
    ) -> SeqCheck {
        if producer_id < 0 {
            return SeqCheck::Append;
        }
        let Some(entry) = self.producers.get(&producer_id) else {
            return SeqCheck::Append;
        };
        if epoch < entry.epoch {
            return SeqCheck::Reject(ResponseError::InvalidProducerEpoch);
        }
        if transactional && first_seq == NO_SEQUENCE {
            // A coordinator's write for the producer (see the module doc).
            return SeqCheck::Append;
        }
        if !transactional && entry.txn_first_offset.is_some() && epoch == entry.epoch {
            return SeqCheck::Reject(ResponseError::InvalidTxnState);
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

    /// The table as it was for a log ending at `end_offset`, as far as this one knows:
    /// each producer's retained batches below it (producers with none are left out).
    /// Replaying the batches from `end_offset` on rebuilds this table, since an epoch
    /// change clears a producer's batches and at most the last few are kept anyway.
    pub fn before(&self, end_offset: i64) -> ProducerStateTable {
        let producers = self
            .producers
            .iter()
            .filter_map(|(&id, e)| {
                let batches: VecDeque<BatchMeta> =
                    e.batches.iter().filter(|b| b.last_offset < end_offset).copied().collect();
                // A transaction open now and begun below `end_offset` was open there. One
                // closed since then is not known here: its records below `end_offset` are
                // below the log start of whoever replays from there.
                let txn_first_offset = e.txn_first_offset.filter(|f| (0..end_offset).contains(f));
                (!batches.is_empty() || txn_first_offset.is_some()).then_some((
                    id,
                    ProducerEntry {
                        epoch: e.epoch,
                        last_write_ms: e.last_write_ms,
                        batches,
                        txn_first_offset,
                        coordinator_epoch: e.coordinator_epoch,
                    },
                ))
            })
            .collect();
        ProducerStateTable::with_producers(producers)
    }

    fn with_producers(producers: HashMap<i64, ProducerEntry>) -> ProducerStateTable {
        let open_txns =
            producers.iter().filter_map(|(&id, e)| e.txn_first_offset.filter(|f| *f >= 0).map(|f| (f, id))).collect();
        ProducerStateTable { producers, open_txns, undecided: VecDeque::new(), verifications: Default::default() }
    }

    /// Whether a transactional batch of `producer_id` at `epoch` would open a transaction
    /// here (none open, or a newer epoch): what KIP-890 verifies first.
    pub fn opens_txn(&self, producer_id: i64, epoch: i16) -> bool {
        self.producers.get(&producer_id).is_none_or(|e| e.txn_first_offset.is_none() || epoch > e.epoch)
    }

    /// Starts verifying a transactional write of `producer_id` at `epoch` if it would open
    /// a transaction here: its guard (see [`crate::broker::txn_verification`]).
    pub fn begin_txn_verification(&mut self, producer_id: i64, epoch: i16, now_ms: i64) -> Option<u64> {
        self.opens_txn(producer_id, epoch).then(|| self.verifications.begin(producer_id, now_ms))
    }

    /// Ends a verification that will not be followed by its write.
    pub fn end_txn_verification(&mut self, producer_id: i64, guard: u64) {
        self.verifications.end(producer_id, guard);
    }

    /// Whether a transactional batch of `producer_id` at `epoch` may be appended under
    /// `verification`: one that opens a transaction needs its guard still held.
    pub fn txn_verified(&self, producer_id: i64, epoch: i16, verification: TxnVerification) -> bool {
        match verification {
            TxnVerification::Off => true,
            TxnVerification::Required(guard) => {
                !self.opens_txn(producer_id, epoch) || guard.is_some_and(|g| self.verifications.holds(producer_id, g))
            }
        }
    }

    /// Whether the table tracks `producer_id`.
    pub fn contains(&self, producer_id: i64) -> bool {
        self.producers.contains_key(&producer_id)
    }

    /// Records an appended batch written at `now_ms` (also used to rebuild the table
    /// from the log, with the load time).
    pub fn record(&mut self, producer_id: i64, epoch: i16, batch: BatchMeta, now_ms: i64) {
        self.record_batch(producer_id, epoch, batch, false, now_ms);
    }

    /// [`record`](Self::record) of a batch that is `transactional` or not: the first
    /// transactional batch opens the producer's transaction.
    pub fn record_batch(&mut self, producer_id: i64, epoch: i16, batch: BatchMeta, transactional: bool, now_ms: i64) {
        if producer_id < 0 {
            return;
        }
        let entry = self.producers.entry(producer_id).or_insert_with(|| ProducerEntry::new(epoch, now_ms));
        entry.last_write_ms = entry.last_write_ms.max(now_ms);
        if epoch != entry.epoch {
            entry.epoch = epoch;
            entry.batches.clear();
        }
        if !(transactional && batch.first_seq == NO_SEQUENCE) {
            if entry.batches.len() == RETAINED_BATCHES {
                entry.batches.pop_front();
            }
            entry.batches.push_back(batch);
        }
        if transactional && entry.txn_first_offset.is_none() {
            self.verifications.clear(producer_id);
            entry.txn_first_offset = Some(batch.first_offset);
            if batch.first_offset >= 0 {
                self.open_txns.insert((batch.first_offset, producer_id));
            }
        }
    }

    /// Checks a marker of `producer_id` at `epoch` written by a coordinator at
    /// `coordinator_epoch` before it is appended (Kafka's `checkProducerEpoch` and
    /// `checkCoordinatorEpoch`).
    pub fn check_marker(&self, producer_id: i64, epoch: i16, coordinator_epoch: i32) -> Result<(), ResponseError> {
        let Some(entry) = self.producers.get(&producer_id) else { return Ok(()) };
        if epoch < entry.epoch {
            return Err(ResponseError::ProducerFenced);
        }
        if coordinator_epoch < entry.coordinator_epoch {
            return Err(ResponseError::TransactionCoordinatorFenced);
        }
        Ok(())
    }

    /// Applies an appended COMMIT (`commit`) or ABORT marker at `offset` (checked before
    /// with [`check_marker`](Self::check_marker)): the producer's transaction closes.
    pub fn record_marker(
        &mut self,
        producer_id: i64,
        epoch: i16,
        coordinator_epoch: i32,
        commit: bool,
        offset: i64,
        now_ms: i64,
    ) -> CompletedTxn {
        let entry = self.producers.entry(producer_id).or_insert_with(|| ProducerEntry::new(epoch, now_ms));
        entry.last_write_ms = entry.last_write_ms.max(now_ms);
        if epoch != entry.epoch {
            entry.epoch = epoch;
            entry.batches.clear();
        }
        entry.coordinator_epoch = coordinator_epoch;
        self.verifications.clear(producer_id);
        let first_offset = match entry.txn_first_offset.take() {
            Some(first) if first >= 0 => {
                self.open_txns.remove(&(first, producer_id));
                first
            }
            _ => offset,
        };
        if offset >= 0 && first_offset < offset {
            self.undecided.push_back((offset, first_offset));
        }
        CompletedTxn { producer_id, first_offset, last_offset: offset, aborted: !commit }
    }

    /// The first offset of the oldest open transaction, if any.
    pub fn first_open_txn(&self) -> Option<i64> {
        self.open_txns.first().map(|(first, _)| *first)
    }

    /// The last stable offset for a high watermark `hw`: the first offset of the oldest
    /// transaction that is open or whose marker `hw` does not cover yet, else `hw`.
    pub fn last_stable_offset(&mut self, hw: i64) -> i64 {
        while self.undecided.front().is_some_and(|(marker, _)| *marker < hw) {
            self.undecided.pop_front();
        }
        let undecided = self.undecided.iter().map(|(_, first)| *first).min();
        [self.first_open_txn(), undecided].into_iter().flatten().fold(hw, i64::min)
    }

    /// `producer_id`'s entry as it is now, to undo records that never reach the log.
    pub fn save(&self, producer_id: i64) -> SavedProducer {
        SavedProducer { producer_id, entry: self.producers.get(&producer_id).cloned() }
    }

    /// Puts back an entry [`save`](Self::save)d before records that were then abandoned.
    pub fn restore(&mut self, saved: SavedProducer) {
        let id = saved.producer_id;
        if let Some(first) = self.producers.get(&id).and_then(|e| e.txn_first_offset) {
            self.open_txns.remove(&(first, id));
        }
        if let Some(first) = saved.entry.as_ref().and_then(|e| e.txn_first_offset).filter(|f| *f >= 0) {
            self.open_txns.insert((first, id));
        }
        match saved.entry {
            Some(entry) => self.producers.insert(id, entry),
            None => self.producers.remove(&id),
        };
    }

    /// Sets the offsets of `producer_id`'s retained batch starting at `first_seq` (a raft
    /// leader records a proposed batch before its log store assigns its offsets); no-op
    /// when the table no longer holds it.
    pub fn place(&mut self, producer_id: i64, first_seq: i32, first_offset: i64, last_offset: i64) {
        let Some(entry) = self.producers.get_mut(&producer_id) else { return };
        if let Some(b) = entry.batches.iter_mut().rev().find(|b| b.first_seq == first_seq) {
            (b.first_offset, b.last_offset) = (first_offset, last_offset);
        }
        // Proposals are placed in order: the first placed after a transaction opened in
        // flight is its first batch.
        if entry.txn_first_offset.is_some_and(|f| f < 0) {
            entry.txn_first_offset = Some(first_offset);
            self.open_txns.insert((first_offset, producer_id));
        }
    }

    pub fn len(&self) -> usize {
        self.producers.len()
    }

    /// Forgets every producer whose last write is `expiration_ms` or more before
    /// `now_ms` (Kafka's `isProducerExpired`); returns how many were removed.
    pub fn expire(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        let before = self.producers.len();
        self.producers
            .retain(|_, e| e.txn_first_offset.is_some() || now_ms.saturating_sub(e.last_write_ms) < expiration_ms);
        let removed = before - self.producers.len();
        if removed > 0 && self.producers.capacity() > 2 * self.producers.len().max(16) {
            // Give the memory back: a burst of ids must not pin its peak for ever.
            self.producers.shrink_to_fit();
        }
        removed
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
            .map(|(&id, e)| SnapshotEntry {
                id,
                epoch: e.epoch,
                last_write_ms: Some(e.last_write_ms),
                batches: e.batches.iter().copied().collect(),
                txn_first_offset: e.txn_first_offset,
                coordinator_epoch: e.coordinator_epoch,
            })
            .collect();
        serde_json::to_string(&Snapshot { end_offset, producers })
    }

    /// Restores a snapshot, if it describes a log ending exactly at `end_offset`
    /// (`now_ms` stands in for write times the snapshot lacks).
    pub fn from_snapshot(json: &str, end_offset: i64, now_ms: i64) -> Option<Self> {
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
                    ProducerEntry {
                        epoch: e.epoch,
                        last_write_ms: e.last_write_ms.unwrap_or(now_ms),
                        batches: e.batches.into_iter().take(RETAINED_BATCHES).collect(),
                        txn_first_offset: e.txn_first_offset.filter(|f| *f >= 0),
                        coordinator_epoch: e.coordinator_epoch,
                    },
                )
            })
            .collect();
        Some(Self::with_producers(producers))
    }

    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }
}

/// The broker-wide count of tracked producer ids, against `max.producer.ids`.
///
/// Admissions add to it at once; [`ProducerIdGate::recount`] replaces it with the sum
/// of the partitions' tables (after expiry, deletions and restarts). The count never
/// falls below the true number: ids admitted while a recount runs are added on top.
#[derive(Debug)]
pub struct ProducerIdGate {
    max: usize,
    tracked: AtomicUsize,
    /// Admissions since the current recount began.
    admitted_since_recount: AtomicUsize,
}

impl ProducerIdGate {
    pub fn new(max: usize) -> Self {
        Self { max, tracked: AtomicUsize::new(0), admitted_since_recount: AtomicUsize::new(0) }
    }

    /// No broker-wide cap (internal appends and tests).
    pub fn unlimited() -> Self {
        Self::new(usize::MAX)
    }

    pub fn max(&self) -> usize {
        self.max
    }

    /// Producer ids tracked across the broker (an upper bound).
    pub fn tracked(&self) -> usize {
        self.tracked.load(Ordering::Acquire)
    }

    /// Admits `n` new producer ids, or refuses if that would pass the cap.
    pub fn try_admit(&self, n: usize) -> bool {
        let admitted = self
            .tracked
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| t.checked_add(n).filter(|&after| after <= self.max))
            .is_ok();
        if admitted {
            self.admitted_since_recount.fetch_add(n, Ordering::AcqRel);
        }
        admitted
    }

    /// Starts a recount; pass the sum of the tables, taken after this call, to
    /// [`finish_recount`](Self::finish_recount).
    pub fn begin_recount(&self) {
        self.admitted_since_recount.store(0, Ordering::Release);
    }

    pub fn finish_recount(&self, summed: usize) {
        let during = self.admitted_since_recount.load(Ordering::Acquire);
        self.tracked.store(summed.saturating_add(during), Ordering::Release);
    }
}

/// What bounds the producer table of a partition on append.
#[derive(Debug, Clone, Copy)]
pub struct ProducerLimits<'a> {
    /// `max.producer.ids.per.partition`.
    pub per_partition: usize,
    /// The broker-wide count against `max.producer.ids`.
    pub gate: &'a ProducerIdGate,
    /// Whether a transactional batch that opens a transaction must have been verified.
    pub txn: TxnVerification,
}

#[cfg(test)]
#[path = "producer_state_tests.rs"]
mod tests;
