//! The replication seam: everything a Kafka handler does with a partition goes through
//! the [`Replica`] trait, so handlers do not know whether the partition is a local log
//! ([`crate::broker::partition::Partition`]), an in-memory store ([`memory`], for handler
//! tests) or a raft group ([`crate::broker::raft_replica`]).
//!
//! The seam is narrow on purpose: append (returning a [`Commit`]), plan a read, the
//! offsets (log start, high watermark, log end, last stable), the leader epoch, the
//! timestamp and epoch lookups of ListOffsets and OffsetForLeaderEpoch, DeleteRecords and
//! the size DescribeLogDirs reports. Broker housekeeping (interval flushes, retention,
//! compaction, scrubbing, close) acts on the local storage under a replica and stays off
//! the seam.
//!
//! # Commit = the high watermark covers the append
//!
//! A write is acknowledged to `acks=all` producers (and a group change answered) when the
//! high watermark covers it, whatever moves the high watermark. Every implementation
//! publishes its [`Progress`] on one `watch` channel: the high watermark, and a count of
//! times appended data past it was lost. A [`Commit`] waits on that channel, so produce
//! completion is the same code for every implementation:
//! - local: the append requests an fsync from the group-commit flusher; when the flusher
//!   reports it durable, the partition advances the high watermark (durable before
//!   visible). A failed fsync fences the log and counts a loss: its waiters fail;
//! - raft ([`crate::broker::raft_replica`]): the leader proposes the batches; its log
//!   store appends them to the segment files (the append's future resolves then, with
//!   the base offset); the high watermark is the end offset of the last applied (committed)
//!   entry, advanced when a quorum holds the entry durably. Losing leadership, or a new
//!   leader truncating the uncommitted tail, counts a loss: waiters fail
//!   (NOT_LEADER_OR_FOLLOWER) instead of acknowledging something a new leader
//!   discarded. `acks=1` answers as soon as `append` resolves (the leader appended).
//!
//! Idempotent-producer checks run inside `append`, before anything is written (with raft:
//! on the leader before proposing). Fetches long-poll on the same channel
//! ([`Replica::watch_progress`]).

pub mod memory;

use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use kafka_protocol::ResponseError;
use kafka_protocol::records::RecordBatchDecoder;
use tokio::sync::watch;

use crate::broker::partition::PartitionError;
use crate::broker::producer_state::ProducerLimits;
use crate::broker::topic_config::EffectiveTopicConfig;
use crate::log::batch::BatchHeader;
use crate::log::txn::AbortedTxn;
use crate::log::{FileRange, LogError, ReadPlan};
use crate::protocol::splice::Placeholders;

/// One topic-partition as the Kafka handlers see it. Object safe: topics hold
/// `Arc<dyn Replica>`.
pub trait Replica: Send + Sync {
    fn topic(&self) -> &str;
    fn index(&self) -> i32;

    /// The topic's effective configuration (validation and recompression before append).
    fn config(&self) -> Result<EffectiveTopicConfig, PartitionError>;

    /// Which broker leads the partition. A local log is always led here.
    fn leader(&self) -> Leader {
        Leader::ThisBroker
    }

    /// The current leader epoch (the raft term once replication lands).
    fn leader_epoch(&self) -> i32;

    /// Kafka's check of a client's `current_leader_epoch` (-1 means "do not check"): a
    /// newer epoch than ours is unknown to us, an older one is fenced.
    fn check_leader_epoch(&self, requested: i32) -> Result<(), ResponseError> {
        let current = self.leader_epoch();
        match requested {
            -1 => Ok(()),
            e if e > current => Err(ResponseError::UnknownLeaderEpoch),
            e if e < current => Err(ResponseError::FencedLeaderEpoch),
            _ => Ok(()),
        }
    }

    fn offsets(&self) -> Result<Offsets, PartitionError>;

    fn high_watermark(&self) -> i64;

    /// A receiver that changes whenever the high watermark advances or appended data is
    /// lost (fetch long-polls on it; [`Commit`] waits on it).
    fn watch_progress(&self) -> watch::Receiver<Progress>;

    /// Appends validated batches (`headers` describes each, in order) as the leader,
    /// after the idempotent-producer checks; `data` is not copied unless LogAppendTime
    /// must be stamped into it. A batch of a producer id not tracked yet is refused while
    /// `limits` are reached.
    ///
    /// The future resolves once this replica's own log holds the batches (their base
    /// offset is known then: what `acks=1` answers); [`Appended::commit`] is what
    /// `acks=all` waits for. Asynchronous because a raft leader learns the base offset
    /// only when its log store has appended the proposed entry. Appends are ordered by
    /// when their futures are first polled: the local log appends inside `append` itself
    /// (the future is ready at once), a raft replica checks and proposes on the first
    /// poll. Callers await one append before starting the next when order matters.
    fn append<'a>(
        &'a self,
        data: Bytes,
        headers: &'a [BatchHeader],
        now_ms: i64,
        limits: ProducerLimits<'a>,
    ) -> AppendFuture<'a>;

    /// Resolves once at least `replicas` replicas, this one included, hold everything
    /// committed so far: `min.insync.replicas` checked after an `acks=all` commit. Raft
    /// commits at a majority; this waits for more when `replicas` is larger. Fails with
    /// [`PartitionError::NotEnoughReplicas`] when there cannot be that many (a local log
    /// is one replica) and when this replica stops leading.
    fn held_by(&self, replicas: usize) -> BoxFuture<'_, Result<(), PartitionError>> {
        let outcome = if replicas <= 1 {
            Ok(())
        } else {
            Err(PartitionError::NotEnoughReplicas { held: 1, required: replicas, after_append: true })
        };
        Box::pin(std::future::ready(outcome))
    }

    /// KIP-890: starts verifying a transactional write of `producer_id` at `epoch` that
    /// would open a transaction on this partition (see
    /// [`crate::broker::txn_verification`]): its guard, `None` when the write continues a
    /// transaction open here. Only a leader verifies.
    fn begin_txn_verification(&self, producer_id: i64, epoch: i16, now_ms: i64) -> Result<Option<u64>, PartitionError> {
        let _ = (producer_id, epoch, now_ms);
        Err(PartitionError::Rejected(ResponseError::NotLeaderOrFollower))
    }

    /// Ends a verification whose write will not come (refused by the coordinator).
    fn end_txn_verification(&self, producer_id: i64, guard: u64) {
        let _ = (producer_id, guard);
    }

    /// Whether [`append`](Self::append) appends inside the call (its future is ready
    /// when first polled), as the local log does. Callers that cannot wait (the group
    /// coordinator appends under its state lock) refuse replicas that do not.
    fn appends_when_called(&self) -> bool {
        true
    }

    /// Where the committed batches from `offset` are: at most `max_bytes`, except that with
    /// `min_one` the first batch is returned whole (KIP-74). Nothing at or past the high
    /// watermark is ever returned (read_uncommitted).
    fn plan_read(&self, offset: i64, max_bytes: usize, min_one: bool) -> Result<PlannedRead, PartitionError> {
        self.plan_read_isolated(offset, max_bytes, min_one, Isolation::ReadUncommitted)
    }

    /// [`plan_read`](Self::plan_read) for a consumer's isolation level: read_committed
    /// reads stop at the last stable offset.
    fn plan_read_isolated(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one: bool,
        isolation: Isolation,
    ) -> Result<PlannedRead, PartitionError>;

    /// [`plan_read`](Self::plan_read), read into memory.
    fn read(&self, offset: i64, max_bytes: usize, min_one: bool) -> Result<ReadResult, PartitionError> {
        self.plan_read(offset, max_bytes, min_one)?.execute()
    }

    /// ListOffsets by timestamp: `(timestamp, offset)` of the first committed record
    /// (between log start and high watermark) the query picks, if any.
    fn find_by_timestamp(&self, query: TimestampQuery) -> Result<Option<(i64, i64)>, PartitionError>;

    /// OffsetForLeaderEpoch: `(epoch, end offset)` for `epoch`, the end offset being the
    /// first offset of the next larger epoch, or the log end for the current one. `None`
    /// for epochs after the current one (Kafka answers -1, -1).
    fn end_offset_for_epoch(&self, epoch: i32) -> Result<Option<(i32, i64)>, PartitionError>;

    /// DeleteRecords: moves the log start to `offset` (at most the high watermark; the
    /// caller checks) within `timeout` (REQUEST_TIMED_OUT after it); returns the new log
    /// start.
    fn delete_records(&self, offset: i64, timeout: std::time::Duration) -> Result<i64, PartitionError>;

    /// Bytes the partition holds (DescribeLogDirs).
    fn size_bytes(&self) -> Result<u64, PartitionError>;

    /// The aborted transactions a read_committed fetch of `[from, upper)` must list
    /// (`upper` is at most the last stable offset), in marker order.
    fn aborted_transactions(&self, from: i64, upper: i64) -> Result<Vec<AbortedTxn>, PartitionError>;

    /// What producers appended and fetches sent here (`/metrics`); `None` where nothing
    /// is stored.
    /// The log the cleaner compacts here, if this replica has one.
    fn compactable(&self) -> Option<&dyn crate::broker::log_cleaner::Compactable> {
        None
    }

    fn traffic(&self) -> Option<&crate::metrics::PartitionTraffic> {
        None
    }
}

/// What [`Replica::append`] returns: boxed so the trait stays object safe.
pub type AppendFuture<'a> = BoxFuture<'a, Result<Appended, PartitionError>>;

/// Who leads a partition, as this broker knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leader {
    /// This broker: it takes appends.
    ThisBroker,
    /// Another broker (its node id): appends here get NOT_LEADER_OR_FOLLOWER.
    Broker(i32),
    /// None known (an election is running).
    Unknown,
}

impl Leader {
    /// The leader's node id as Metadata reports it (-1 when none is known).
    pub fn node_id(self, this_broker: i32) -> i32 {
        match self {
            Leader::ThisBroker => this_broker,
            Leader::Broker(id) => id,
            Leader::Unknown => -1,
        }
    }
}

/// A partition's offsets, read together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offsets {
    pub log_start: i64,
    pub high_watermark: i64,
    pub log_end: i64,
    /// The last stable offset: read_committed consumers read below it (see
    /// [`crate::broker::producer_state`]). At most the high watermark.
    pub last_stable: i64,
}

impl Offsets {
    /// Offsets of a partition without open transactions.
    pub fn new(log_start: i64, high_watermark: i64, log_end: i64) -> Offsets {
        Offsets { log_start, high_watermark, log_end, last_stable: high_watermark }
    }

    /// With the last stable offset (clamped to the high watermark).
    pub fn with_last_stable(self, last_stable: i64) -> Offsets {
        Offsets { last_stable: last_stable.min(self.high_watermark), ..self }
    }
}

/// `(log start, high watermark, log end)`, as tests spell offsets.
impl PartialEq<(i64, i64, i64)> for Offsets {
    fn eq(&self, other: &(i64, i64, i64)) -> bool {
        (self.log_start, self.high_watermark, self.log_end) == *other
    }
}

/// What a [`Replica`] publishes as it commits.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    pub high_watermark: i64,
    /// How many times appended data past the high watermark was lost (a failed fsync
    /// fenced the log; with raft, a leader change truncated it).
    pub losses: u64,
    /// The high watermark when the last loss happened: what was committed before it.
    pub committed_at_loss: i64,
    /// Why the last loss happened.
    pub loss: Option<Arc<PartitionError>>,
}

impl Progress {
    pub fn new(high_watermark: i64) -> Progress {
        Progress { high_watermark, losses: 0, committed_at_loss: high_watermark, loss: None }
    }

    /// Moves the high watermark up to `end` (never down); whether it moved.
    pub fn advance(&mut self, end: i64) -> bool {
        let moved = end > self.high_watermark;
        self.high_watermark = self.high_watermark.max(end);
        moved
    }

    /// Counts a loss of everything past the high watermark.
    pub fn lose(&mut self, why: PartitionError) {
        self.losses += 1;
        self.committed_at_loss = self.high_watermark;
        self.loss = Some(Arc::new(why));
    }
}

/// The result of a successful append.
#[derive(Debug)]
pub struct Appended {
    pub base_offset: i64,
    /// The LogAppendTime stamped into the batches, or -1 (CreateTime, or a duplicate).
    pub log_append_time: i64,
    pub log_start_offset: i64,
    /// A retried batch already in the log: nothing was written.
    pub duplicate: bool,
    /// What an `acks=all` answer waits for; `None` when the append is committed already.
    pub commit: Option<Commit>,
}

/// Resolves once the high watermark covers an append, or fails once the append is lost.
/// Dropping it changes nothing: the commit goes on without a waiter (`acks=0/1`, a
/// timed-out `acks=all`).
#[derive(Debug, Clone)]
pub struct Commit {
    source: CommitSource,
}

#[derive(Debug, Clone)]
enum CommitSource {
    /// The append's end offset is known: the high watermark decides.
    Offset {
        progress: watch::Receiver<Progress>,
        end_offset: i64,
        /// `Progress::losses` when the append was made.
        losses: u64,
    },
    /// An append still under way elsewhere (see [`Commit::deferred`]): its outcome
    /// arrives on the channel.
    Deferred(watch::Receiver<Option<Result<(), Arc<PartitionError>>>>),
}

impl Commit {
    /// For an append ending before `end_offset`, made (under the replica's lock) when
    /// `losses` losses had been counted.
    pub fn new(progress: watch::Receiver<Progress>, end_offset: i64, losses: u64) -> Commit {
        Commit { source: CommitSource::Offset { progress, end_offset, losses } }
    }

    /// For an append whose offsets are not known yet (a raft leader's proposal, driven by
    /// a task of its own): the task sends its outcome once the append is committed or
    /// lost. Dropping the sender undecided fails the commit.
    pub fn deferred(outcome: watch::Receiver<Option<Result<(), Arc<PartitionError>>>>) -> Commit {
        Commit { source: CommitSource::Deferred(outcome) }
    }

    /// `Some` once decided.
    fn outcome(&self) -> Option<Result<(), PartitionError>> {
        match &self.source {
            CommitSource::Offset { progress, end_offset, losses } => decide(*end_offset, *losses, &progress.borrow()),
            CommitSource::Deferred(rx) => rx.borrow().clone().map(|r| r.map_err(PartitionError::Uncommitted)),
        }
    }

    /// Whether the high watermark covers the append already.
    pub fn is_committed(&self) -> bool {
        matches!(self.outcome(), Some(Ok(())))
    }

    /// Whether the append is known to be lost.
    pub fn has_failed(&self) -> bool {
        matches!(self.outcome(), Some(Err(_)))
    }

    /// Waits until the high watermark covers the append.
    pub async fn wait(self) -> Result<(), PartitionError> {
        match self.source {
            CommitSource::Offset { mut progress, end_offset, losses } => loop {
                if let Some(outcome) = decide(end_offset, losses, &progress.borrow_and_update()) {
                    return outcome;
                }
                if progress.changed().await.is_err() {
                    // The replica is gone (its topic deleted) before the append committed.
                    return Err(PartitionError::Removed);
                }
            },
            CommitSource::Deferred(mut rx) => loop {
                if let Some(outcome) = rx.borrow_and_update().clone() {
                    return outcome.map_err(PartitionError::Uncommitted);
                }
                if rx.changed().await.is_err() {
                    return Err(PartitionError::Removed);
                }
            },
        }
    }
}

/// The outcome of an append ending before `end_offset`, made when `losses` losses had
/// been counted, given `p`; `None` while undecided.
fn decide(end_offset: i64, losses: u64, p: &Progress) -> Option<Result<(), PartitionError>> {
    if p.losses == losses {
        return (p.high_watermark >= end_offset).then_some(Ok(()));
    }
    // Committed before the first loss after the append: it stands. Past that, the
    // offsets may have been cut and refilled by other data.
    if p.losses == losses + 1 && end_offset <= p.committed_at_loss {
        return Some(Ok(()));
    }
    let why = p.loss.clone().unwrap_or_else(|| Arc::new(PartitionError::Log(LogError::StorageFailed)));
    Some(Err(PartitionError::Uncommitted(why)))
}

/// What a consumer may read (Fetch's and ListOffsets' `isolation_level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// Up to the high watermark.
    ReadUncommitted,
    /// Up to the last stable offset.
    ReadCommitted,
}

impl Isolation {
    /// Kafka's `isolation_level` (1: read_committed).
    pub fn from_level(level: i8) -> Isolation {
        if level == 1 { Isolation::ReadCommitted } else { Isolation::ReadUncommitted }
    }

    /// Where reads stop given the partition's offsets.
    pub fn upper_bound(self, high_watermark: i64, last_stable: i64) -> i64 {
        match self {
            Isolation::ReadUncommitted => high_watermark,
            Isolation::ReadCommitted => last_stable.min(high_watermark),
        }
    }
}

/// ListOffsets' lookups by timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampQuery {
    /// The record with the largest timestamp (-3, v7+).
    MaxTimestamp,
    /// The first record whose timestamp is at or after this one.
    AtOrAfter(i64),
}

/// Records to return for a fetch, with the partition's offsets when it was planned.
pub struct PlannedRead {
    source: ReadSource,
    pub high_watermark: i64,
    pub log_start_offset: i64,
    /// The last stable offset when the read was planned.
    pub last_stable_offset: i64,
}

enum ReadSource {
    /// Whole batches as ranges of segment files (sent with `sendfile`).
    Files(ReadPlan),
    /// Whole batches already in memory.
    Memory(Bytes),
}

impl PlannedRead {
    pub fn files(plan: ReadPlan, high_watermark: i64, log_start_offset: i64) -> PlannedRead {
        let last_stable_offset = high_watermark;
        PlannedRead { source: ReadSource::Files(plan), high_watermark, log_start_offset, last_stable_offset }
    }

    pub fn memory(records: Bytes, high_watermark: i64, log_start_offset: i64) -> PlannedRead {
        let last_stable_offset = high_watermark;
        PlannedRead { source: ReadSource::Memory(records), high_watermark, log_start_offset, last_stable_offset }
    }

    /// With the partition's last stable offset (at most the high watermark).
    pub fn with_last_stable(self, last_stable: i64) -> PlannedRead {
        PlannedRead { last_stable_offset: last_stable.min(self.high_watermark), ..self }
    }

    /// Bytes the plan covers.
    pub fn len(&self) -> usize {
        match &self.source {
            ReadSource::Files(plan) => plan.len(),
            ReadSource::Memory(bytes) => bytes.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The record set for a fetch response: a placeholder for file ranges (see
    /// [`crate::protocol::splice`]) or the bytes themselves; `None` when there is nothing
    /// to send (or, never with fetch-sized reads, no room for another placeholder).
    pub fn into_records(self, placeholders: &mut Placeholders<Vec<FileRange>>) -> Option<Bytes> {
        match self.source {
            ReadSource::Files(plan) => placeholders.add(plan.len(), plan.into_ranges()).ok(),
            ReadSource::Memory(bytes) => (!bytes.is_empty()).then_some(bytes),
        }
    }

    /// Reads the plan into memory, whole batches only.
    pub fn execute(self) -> Result<ReadResult, PartitionError> {
        let records = match self.source {
            ReadSource::Files(plan) => plan.execute()?,
            ReadSource::Memory(bytes) => bytes,
        };
        Ok(ReadResult { records, high_watermark: self.high_watermark, log_start_offset: self.log_start_offset })
    }
}

/// Bytes read, with the partition's offsets at that moment.
pub struct ReadResult {
    pub records: Bytes,
    pub high_watermark: i64,
    pub log_start_offset: i64,
}

/// `(timestamp, offset)` of the first record of `batch` with an offset in `range` (log
/// start to high watermark: a batch may straddle either) that the query picks;
/// `max_timestamp` is the batch's (for [`TimestampQuery::MaxTimestamp`]).
pub fn find_record(
    batch: Bytes,
    range: std::ops::Range<i64>,
    query: TimestampQuery,
    max_timestamp: i64,
) -> Result<Option<(i64, i64)>, LogError> {
    let mut buf = batch;
    let set = RecordBatchDecoder::decode(&mut buf).map_err(|e| LogError::Decode(format!("{e:#}")))?;
    let pick = |ts: i64| match query {
        TimestampQuery::MaxTimestamp => ts == max_timestamp,
        TimestampQuery::AtOrAfter(target) => ts >= target,
    };
    Ok(set
        .records
        .iter()
        .filter(|r| range.contains(&r.offset) && !r.control)
        .find(|r| pick(r.timestamp))
        .map(|r| (r.timestamp, r.offset)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commit(tx: &watch::Sender<Progress>, end: i64) -> Commit {
        Commit::new(tx.subscribe(), end, tx.borrow().losses)
    }

    #[tokio::test]
    async fn a_commit_resolves_when_the_high_watermark_covers_it() {
        let (tx, _) = watch::channel(Progress::new(0));
        let c = commit(&tx, 5);
        let waiting = tokio::spawn(c.clone().wait());
        tx.send_modify(|p| {
            p.advance(4);
        });
        assert!(!c.is_committed());
        tx.send_modify(|p| {
            p.advance(5);
        });
        waiting.await.expect("task").expect("committed");
    }

    #[tokio::test]
    async fn a_loss_fails_what_was_not_committed_before_it_and_only_that() {
        let (tx, _) = watch::channel(Progress::new(0));
        let early = commit(&tx, 3);
        let late = commit(&tx, 7);
        tx.send_modify(|p| {
            p.advance(3);
        });
        tx.send_modify(|p| p.lose(PartitionError::Log(LogError::StorageFailed)));
        // The offsets are cut and refilled by other data that commits: the lost append
        // must not be taken as committed.
        tx.send_modify(|p| {
            p.advance(10);
        });
        early.wait().await.expect("committed before the loss");
        let e = late.wait().await.expect_err("lost");
        assert_eq!(e.code(), ResponseError::KafkaStorageError);
    }

    #[tokio::test]
    async fn a_commit_of_a_dropped_replica_fails() {
        let (tx, _) = watch::channel(Progress::new(0));
        let c = commit(&tx, 1);
        drop(tx);
        assert!(matches!(c.wait().await, Err(PartitionError::Removed)));
    }
}
