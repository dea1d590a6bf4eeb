//! One topic-partition on this broker: its log, its idempotent-producer state and its
//! high watermark.
//!
//! The high watermark is the end of what is durable. With the default flush policy an
//! append becomes visible to consumers, and is acknowledged to `acks=all` producers, only
//! once the group-commit flusher has fsynced it; with `flush.ms` set it is visible at
//! once. Consumers never read past the high watermark, so nothing a consumer has seen
//! can be lost by a crash. (With replication the high watermark becomes the raft commit
//! index; the read and wait paths stay the same.)
//!
//! Handlers use a partition through the [`Replica`](crate::broker::replica::Replica) seam
//! (implemented in `partition_replica.rs`); the methods here are the local log's own:
//! appends that return what to fsync, the commit that fsyncs and publishes, in-place
//! recovery, retention, cleaning and close.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use bytes::{Bytes, BytesMut};
use kafka_protocol::ResponseError;
use tokio::sync::watch;

use crate::broker::producer_batches::{aborted_entry, admit_new_producer, apply_batch, check_sequences};
use crate::broker::producer_state::{ProducerIdGate, ProducerLimits, ProducerStateTable, SeqCheck};
use crate::broker::replica::Progress;
use crate::broker::topic_config::EffectiveTopicConfig;
use crate::log::batch::{self, BatchHeader};
use crate::log::{Flusher, LogError, PartitionLog, Sealer, SyncTarget, write_durably};

/// Leader epoch stamped on every batch. A single node never changes leader; with raft
/// this becomes the term.
pub const LEADER_EPOCH: i32 = 0;

#[derive(Debug, thiserror::Error)]
pub enum PartitionError {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("producer state: {0:?}")]
    Rejected(ResponseError),
    #[error("partition state lock poisoned")]
    Poisoned,
    /// The topic was deleted: its directory is gone or belongs to a newer topic of the
    /// same name, so nothing may touch the files by path any more.
    #[error("partition was deleted")]
    Removed,
    /// A batch from a producer id this partition does not track, while a cap on tracked
    /// producer ids is reached.
    #[error(
        "too many idempotent producers: {setting}={max} reached; producer id {producer_id} is refused until \
         others expire (producer.id.expiration.ms)"
    )]
    ProducerIdLimit { setting: &'static str, max: usize, producer_id: i64 },
    /// An append that would have to wait, asked for where waiting is impossible (see
    /// [`crate::broker::replica::Replica::appends_when_called`]).
    #[error("this partition's appends complete asynchronously (raft); the caller cannot wait for one")]
    AppendWouldWait,
    /// The raft log store or its state file failed.
    #[error(transparent)]
    RaftLog(#[from] crate::raft::log_store::RaftLogError),
    /// A partition snapshot could not be built or installed.
    #[error(transparent)]
    Snapshot(#[from] crate::raft::replica_state::SnapshotError),
    /// The partition's raft group stopped (shut down, or a fatal storage error).
    #[error("raft group stopped: {0}")]
    RaftStopped(String),
    /// An operation a raft-replicated partition does not support yet.
    #[error("not supported on a raft-replicated partition yet: {0}")]
    Unsupported(&'static str),
    /// Appended, then lost before the high watermark covered it (see
    /// [`crate::broker::replica::Commit`]): the reason the loss was counted.
    #[error(transparent)]
    Uncommitted(Arc<PartitionError>),
    /// `min.insync.replicas` not met: before an append (`after_append: false`), fewer
    /// replicas are in sync; after a commit, fewer hold it.
    #[error(
        "{held} replica(s) {verb}, fewer than min.insync.replicas={required}",
        verb = if *after_append { "hold the write" } else { "in sync" }
    )]
    NotEnoughReplicas { held: usize, required: usize, after_append: bool },
}

impl PartitionError {
    /// The Kafka error code a client sees for this failure.
    pub fn code(&self) -> ResponseError {
        match self {
            PartitionError::Rejected(code) => *code,
            // Not retriable: the condition lasts until producers expire. Kafka uses the
            // same code for a request over a broker limit (and Jet for
            // max.broker.partitions); clients show the message.
            PartitionError::ProducerIdLimit { .. } => ResponseError::PolicyViolation,
            PartitionError::Log(LogError::OffsetOutOfRange { .. }) => ResponseError::OffsetOutOfRange,
            // Damaged bytes are refused, never served (see `log::damage`).
            PartitionError::Log(LogError::Corrupt { .. } | LogError::CorruptBatch { .. }) => {
                ResponseError::CorruptMessage
            }
            PartitionError::Removed => ResponseError::UnknownTopicOrPartition,
            PartitionError::Uncommitted(why) => why.code(),
            PartitionError::AppendWouldWait => ResponseError::CoordinatorNotAvailable,
            PartitionError::RaftStopped(_) => ResponseError::NotLeaderOrFollower,
            PartitionError::RaftLog(_) | PartitionError::Snapshot(_) => ResponseError::KafkaStorageError,
            PartitionError::Unsupported(_) => ResponseError::InvalidRequest,
            PartitionError::NotEnoughReplicas { after_append: false, .. } => ResponseError::NotEnoughReplicas,
            PartitionError::NotEnoughReplicas { after_append: true, .. } => ResponseError::NotEnoughReplicasAfterAppend,
            PartitionError::Log(_) | PartitionError::Poisoned => ResponseError::KafkaStorageError,
        }
    }
}

struct Inner {
    log: PartitionLog,
    producers: ProducerStateTable,
    config: EffectiveTopicConfig,
    /// When interval flushing last ran (`flush.ms`).
    last_flush_ms: i64,
    /// Set (under the lock) before a deleted topic's directory is moved away.
    removed: bool,
}

pub struct Partition {
    pub topic: String,
    pub index: i32,
    dir: PathBuf,
    inner: Mutex<Inner>,
    /// The high watermark and the losses of appended data (see [`Progress`]).
    progress: watch::Sender<Progress>,
    /// Fsyncs appends made through the [`Replica`](crate::broker::replica::Replica) seam.
    flusher: Flusher,
    /// This partition, for the tasks that commit its appends.
    me: Weak<Partition>,
    /// Bumped each time the log is recovered in place after a failed fsync (its tail past
    /// the high watermark cut off): whoever keeps state derived from the log (the group
    /// coordinator) rebuilds it when this moves.
    recoveries: AtomicU64,
    /// Not before this time (ms) does housekeeping try to recover a fenced log again.
    next_recovery_ms: AtomicI64,
    /// The end of what a successful fsync made durable. The same as the high watermark
    /// unless the topic flushes on an interval (`flush.ms`), where the high watermark runs
    /// ahead of it; a log fenced by a failed fsync is cut back to it.
    synced_end: AtomicI64,
    /// Bytes and records appended and fetched, for `/metrics`.
    pub traffic: crate::metrics::PartitionTraffic,
}

/// Least time between two housekeeping attempts to recover a fenced log.
const RECOVERY_RETRY_MS: i64 = 1_000;

/// The result of a successful produce append.
#[derive(Debug)]
pub enum Appended {
    New {
        base_offset: i64,
        log_append_time: i64,
        log_start_offset: i64,
        /// What must be fsynced before the high watermark covers this append; `None`
        /// when the topic flushes on an interval instead.
        sync: Option<SyncTarget>,
        /// Losses counted when the append was made (see [`Progress`]).
        losses: u64,
    },
    /// A retried batch already in the log. `sync` is set while the original is not yet
    /// covered by the high watermark: the retry must then wait for the same fsync as the
    /// original (which may still be running, or may have failed).
    Duplicate { base_offset: i64, log_start_offset: i64, sync: Option<SyncTarget>, losses: u64 },
}

impl Partition {
    /// Opens (recovers) the partition's log in `dir`; its appends are fsynced by `flusher`.
    pub fn open(
        topic: &str,
        index: i32,
        dir: &Path,
        config: EffectiveTopicConfig,
        flusher: &Flusher,
    ) -> Result<Arc<Self>, PartitionError> {
        let mut log = PartitionLog::open(dir, config.log.clone())?;
        // Rolled segments are sealed off the produce path (see `log::sealer`).
        log.set_sealer(Sealer::shared());
        // Becoming leader starts our epoch at the log end (as Kafka's makeLeader does).
        log.assign_leader_epoch(LEADER_EPOCH);
        // Producers found on open get a full expiry window from now: the log's
        // timestamps are the clients' clocks and may lie far in the past.
        let now = crate::broker::now_ms();
        let producers = match take_producer_snapshot(dir, log.log_end_offset(), now) {
            Some(table) => table,
            None => rebuild_producer_state(&mut log, now)?,
        };
        // Everything recovered from disk was fsynced or is being treated as such: a
        // clean restart makes the whole log visible.
        let (progress, _) = watch::channel(Progress::new(log.log_end_offset()));
        let synced_end = AtomicI64::new(log.log_end_offset());
        Ok(Arc::new_cyclic(|me| Self {
            topic: topic.to_string(),
            index,
            dir: dir.to_path_buf(),
            // The flush interval counts from the open, as Kafka's lastFlushTime does: an
            // epoch start would fsync everything at the first check, whatever `flush.ms` says.
            inner: Mutex::new(Inner { log, producers, config, last_flush_ms: now, removed: false }),
            progress,
            flusher: flusher.clone(),
            me: me.clone(),
            recoveries: AtomicU64::new(0),
            next_recovery_ms: AtomicI64::new(0),
            synced_end,
            traffic: Default::default(),
        }))
    }

    /// The partition state, refused once the partition is deleted: every operation
    /// that writes or deletes files by path (append and roll, retention, cleaning swaps,
    /// checkpoints, close) then fails instead of touching a newer topic's directory.
    fn lock(&self) -> Result<MutexGuard<'_, Inner>, PartitionError> {
        let inner = self.inner.lock().map_err(|_poisoned| PartitionError::Poisoned)?;
        if inner.removed {
            return Err(PartitionError::Removed);
        }
        Ok(inner)
    }

    /// Marks the partition deleted. Once this returns, no operation holds or will take
    /// the partition lock, so the caller may move the directory away.
    pub fn mark_removed(&self) {
        let mut inner = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        inner.removed = true;
        // The scrubber and the read path record damage without the partition lock.
        inner.log.damage().detach();
        // A seal still running would write index files and a recovery point into the
        // directory, which a new topic of the same name may take at once.
        if let Err(e) = inner.log.wait_for_seals() {
            tracing::warn!(dir = %self.dir.display(), error = %e, "a rolled segment of a deleted partition was not sealed");
        }
    }

    /// Whether the partition's topic was deleted.
    pub fn is_removed(&self) -> bool {
        self.inner.lock().map_or_else(|poisoned| poisoned.into_inner().removed, |inner| inner.removed)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The high watermark (also [`Replica::high_watermark`](crate::broker::replica::Replica)).
    fn hw(&self) -> i64 {
        self.progress.borrow().high_watermark
    }

    pub fn set_config(&self, config: EffectiveTopicConfig) -> Result<(), PartitionError> {
        let mut inner = self.lock()?;
        inner.log.set_config(config.log.clone());
        inner.config = config;
        Ok(())
    }

    /// Appends validated batches (`headers` describes each, in order) as the leader,
    /// with no cap on tracked producer ids (tests).
    pub fn append_unlimited(
        &self,
        data: Bytes,
        headers: &[BatchHeader],
        now_ms: i64,
    ) -> Result<Appended, PartitionError> {
        let gate = ProducerIdGate::unlimited();
        self.append_limited(
            data,
            headers,
            now_ms,
            ProducerLimits {
                per_partition: usize::MAX,
                gate: &gate,
                txn: crate::broker::txn_verification::TxnVerification::Off,
            },
        )
    }

    /// Appends validated batches (`headers` describes each, in order) as the leader.
    /// `data` is not copied (unless LogAppendTime must be stamped into it). A batch of a
    /// producer id not tracked yet is refused while `limits` are reached.
    pub fn append_limited(
        &self,
        mut data: Bytes,
        headers: &[BatchHeader],
        now_ms: i64,
        limits: ProducerLimits<'_>,
    ) -> Result<Appended, PartitionError> {
        let mut inner = self.lock()?;
        let inner = &mut *inner;
        let log_start_offset = inner.log.log_start_offset();
        if let Some(first) = headers.first() {
            match check_sequences(&inner.producers, headers, &data, limits.txn) {
                SeqCheck::Append => admit_new_producer(&inner.producers, first.producer_id, limits)?,
                SeqCheck::Duplicate(meta) if headers.len() == 1 && first.producer_id >= 0 => {
                    if inner.log.has_failed() {
                        return Err(LogError::StorageFailed.into());
                    }
                    let durable = meta.last_offset < self.hw();
                    let sync = (!durable && inner.config.flush_interval_ms.is_none()).then(|| inner.log.sync_target());
                    let losses = self.progress.borrow().losses;
                    return Ok(Appended::Duplicate { base_offset: meta.first_offset, log_start_offset, sync, losses });
                }
                SeqCheck::Duplicate(_) => {
                    return Err(PartitionError::Rejected(ResponseError::DuplicateSequenceNumber));
                }
                SeqCheck::Reject(code) => return Err(PartitionError::Rejected(code)),
            }
        }
        let log_append_time = inner.config.log_append_time;
        if log_append_time {
            // LogAppendTime changes CRC-covered fields: only then are the batches copied.
            let mut owned = BytesMut::from(&data[..]);
            let mut pos = 0;
            for h in headers {
                let end = pos + h.total_size();
                batch::set_log_append_time(&mut owned[pos..end], now_ms).map_err(LogError::from)?;
                pos = end;
            }
            data = owned.freeze();
        }
        let info = inner.log.append(&data, LEADER_EPOCH, now_ms)?;
        self.traffic.appended(data.len(), headers.iter().map(|h| u64::try_from(h.records_count).unwrap_or(0)).sum());
        let mut recorded = || -> Result<(), LogError> {
            let (mut offset, mut pos) = (info.base_offset, 0);
            let mut aborted = Vec::new();
            for h in headers {
                let end = pos + h.total_size();
                if let Some(completed) = apply_batch(&mut inner.producers, h, &data[pos..end], offset, now_ms)? {
                    aborted.extend(aborted_entry(&inner.producers, completed));
                }
                (offset, pos) = (offset + i64::from(h.last_offset_delta) + 1, end);
            }
            // Before the marker can become durable (and the transaction stable): a reader
            // below the last stable offset finds every aborted transaction indexed.
            inner.log.append_aborted_txns(&aborted)
        };
        if let Err(e) = recorded() {
            // The batches are in the log but what they change is not recorded: they must
            // never become durable (housekeeping cuts them off and rebuilds the state).
            inner.log.fence();
            return Err(e.into());
        }
        // Markers the high watermark already covers hold nothing back any more.
        inner.producers.last_stable_offset(self.hw());
        let sync = if inner.config.flush_interval_ms.is_some() {
            let end = inner.log.log_end_offset();
            self.advance_high_watermark(end);
            None
        } else {
            Some(inner.log.sync_target())
        };
        Ok(Appended::New {
            base_offset: info.base_offset,
            log_append_time: if log_append_time { now_ms } else { -1 },
            log_start_offset,
            sync,
            losses: self.progress.borrow().losses,
        })
    }

    /// Forgets producers idle for `expiration_ms` (`producer.id.expiration.ms`);
    /// returns (removed, still tracked).
    pub fn expire_producers(&self, now_ms: i64, expiration_ms: i64) -> Result<(usize, usize), PartitionError> {
        let mut inner = self.lock()?;
        let removed = inner.producers.expire(now_ms, expiration_ms);
        Ok((removed, inner.producers.len()))
    }

    /// Producer ids this partition tracks.
    pub fn producer_count(&self) -> Result<usize, PartitionError> {
        Ok(self.lock()?.producers.len())
    }

    /// Whether a failed fsync fenced this partition's log (see [`Self::recover_failed_log`]).
    pub fn storage_failed(&self) -> bool {
        self.lock().map_or(true, |inner| inner.log.has_failed())
    }

    /// How many times the log was recovered in place (see [`Self::recover_failed_log`]).
    pub fn recovery_epoch(&self) -> u64 {
        self.recoveries.load(Ordering::SeqCst)
    }

    /// Brings a log fenced by a failed fsync back: everything past the high watermark
    /// (which only a successful fsync moves) is cut off, since the kernel may have dropped
    /// those pages, and the idempotent-producer state is rebuilt from what is left.
    /// Returns whether the log had been fenced. Fails, leaving the log fenced, while the
    /// device still refuses writes.
    pub fn recover_failed_log(&self) -> Result<bool, PartitionError> {
        let mut inner = self.lock()?;
        if !inner.log.has_failed() {
            return Ok(false);
        }
        let durable_end = self.hw().min(self.synced_end.load(Ordering::SeqCst));
        let cut = inner.log.recover_from_failed_sync(durable_end)?;
        inner.producers = rebuild_producer_state(&mut inner.log, super::now_ms())?;
        let end = inner.log.log_end_offset();
        self.synced_end.store(end, Ordering::SeqCst);
        // Only with `flush.ms` can the high watermark have passed the durable end; what a
        // failed fsync may have lost is no longer offered to consumers. Appends not
        // committed yet are lost: before any new append may commit, their waiters learn.
        self.progress.send_modify(|p| {
            p.high_watermark = p.high_watermark.min(end);
            p.lose(LogError::StorageFailed.into());
        });
        self.recoveries.fetch_add(1, Ordering::SeqCst);
        tracing::warn!(
            topic = self.topic,
            partition = self.index,
            durable_end,
            offsets_cut = cut,
            "log recovered after a failed fsync: unacknowledged offsets past the durable end were cut off; writes resume"
        );
        Ok(true)
    }

    /// Housekeeping: tries [`Self::recover_failed_log`] when the log is fenced, at most
    /// once a second, so writes resume by themselves once the device takes
    /// them again.
    pub fn maybe_recover_failed_log(&self, now_ms: i64) -> Result<bool, PartitionError> {
        let due = self.next_recovery_ms.load(Ordering::SeqCst);
        if now_ms < due || !self.storage_failed() {
            return Ok(false);
        }
        self.next_recovery_ms.store(now_ms.saturating_add(RECOVERY_RETRY_MS), Ordering::SeqCst);
        self.recover_failed_log()
    }

    /// Waits until `target` is durable, then lets consumers see it.
    pub async fn commit(&self, flusher: &Flusher, target: SyncTarget) -> Result<(), PartitionError> {
        let epoch = self.recovery_epoch();
        let end = flusher.sync(target).await?;
        // Under the lock, so an in-place recovery cannot slip in between: if one cut the
        // log after this sync succeeded, these offsets may be gone and must not be
        // acknowledged.
        let _inner = self.lock()?;
        if self.recovery_epoch() != epoch {
            return Err(LogError::StorageFailed.into());
        }
        self.synced_end.fetch_max(end, Ordering::SeqCst);
        self.advance_high_watermark(end);
        Ok(())
    }

    fn advance_high_watermark(&self, end: i64) {
        self.progress.send_if_modified(|p| p.advance(end));
    }

    /// The sealed segments to verify (see [`crate::log::scrubber`]).
    pub fn scrub_targets(&self) -> Result<Vec<crate::log::scrubber::ScrubTarget>, PartitionError> {
        Ok(self.lock()?.log.scrub_targets())
    }

    /// The damaged offset ranges known in this partition's log.
    pub fn damaged_ranges(&self) -> Result<Vec<crate::log::DamagedRange>, PartitionError> {
        Ok(self.lock()?.log.damaged_ranges())
    }

    /// Retention (see [`PartitionLog::apply_retention`]), bounded by the high watermark.
    /// Only for `cleanup.policy` with `delete`: a compact-only log (`__consumer_offsets`)
    /// is never time- or size-deleted, as in Kafka.
    pub fn apply_retention(&self, now_ms: i64) -> Result<usize, PartitionError> {
        let mut inner = self.lock()?;
        if !inner.config.cleanup_delete {
            return Ok(0);
        }
        let high_watermark = self.hw();
        Ok(inner.log.apply_retention(now_ms, high_watermark)?)
    }

    /// What the log cleaner needs, read under one lock: what may be cleaned (below the
    /// high watermark and the last stable offset, with the aborted transactions), the
    /// topic config, and each idempotent producer's last batch.
    pub fn cleaning_view(
        &self,
        now_ms: i64,
    ) -> Result<(crate::log::cleaner::Cleanable, EffectiveTopicConfig, HashMap<i64, i64>), PartitionError> {
        let mut inner = self.lock()?;
        let checkpoint = crate::log::cleaner::read_checkpoint(&self.dir)?;
        let min_lag = inner.config.compaction.min_compaction_lag_ms;
        let hw = self.hw();
        let upper_bound = inner.producers.last_stable_offset(hw).max(inner.log.log_start_offset()).min(hw);
        let cleanable = inner.log.cleanable(checkpoint, upper_bound, now_ms, min_lag)?;
        Ok((cleanable, inner.config.clone(), inner.producers.last_offsets()))
    }

    /// Runs `f` with the log locked (ListOffsets, DeleteRecords, retention).
    pub fn with_log<T>(&self, f: impl FnOnce(&mut PartitionLog) -> Result<T, LogError>) -> Result<T, PartitionError> {
        let mut inner = self.lock()?;
        Ok(f(&mut inner.log)?)
    }

    /// Clean shutdown: fsync and mark the log cleanly closed.
    pub fn close(&self) -> Result<(), PartitionError> {
        let mut inner = self.lock()?;
        inner.log.close()?;
        match inner.producers.to_snapshot(inner.log.log_end_offset()) {
            Ok(json) => write_durably(&self.dir, PRODUCER_SNAPSHOT, &json)?,
            Err(e) => {
                tracing::warn!(topic = self.topic, partition = self.index, error = %e, "producer state snapshot not written")
            }
        }
        Ok(())
    }

    /// With `flush.ms` set and the interval passed since the last flush: what to fsync.
    /// The caller syncs it outside the partition lock, so appends never wait for it.
    pub fn interval_flush_due(&self, now_ms: i64) -> Result<Option<SyncTarget>, PartitionError> {
        let mut inner = self.lock()?;
        let Some(interval) = inner.config.flush_interval_ms else { return Ok(None) };
        if now_ms - inner.last_flush_ms < interval {
            return Ok(None);
        }
        inner.last_flush_ms = now_ms;
        Ok(Some(inner.log.sync_target()))
    }

    /// fsyncs everything.
    pub fn flush(&self) -> Result<(), PartitionError> {
        let mut inner = self.lock()?;
        inner.log.flush()?;
        let end = inner.log.log_end_offset();
        self.synced_end.fetch_max(end, Ordering::SeqCst);
        drop(inner);
        self.advance_high_watermark(end);
        Ok(())
    }
}

/// File holding the producer table at clean shutdown.
const PRODUCER_SNAPSHOT: &str = "producer-state.json";

/// Reads and removes the clean-shutdown producer snapshot; `None` unless it matches the
/// log's end offset. Removing it means a later crash can never pair it with a log that
/// has changed since.
fn take_producer_snapshot(dir: &Path, end_offset: i64, now_ms: i64) -> Option<ProducerStateTable> {
    let path = dir.join(PRODUCER_SNAPSHOT);
    let json = std::fs::read_to_string(&path).ok()?;
    if let Err(e) = std::fs::remove_file(&path) {
        tracing::warn!(path = %path.display(), error = %e, "cannot remove producer snapshot; rebuilding from the log");
        return None;
    }
    ProducerStateTable::from_snapshot(&json, end_offset, now_ms)
}

/// Rebuilds producer state from every batch in the log, and the aborted-transaction
/// index with it (the log may have lost a tail that held markers).
fn rebuild_producer_state(log: &mut PartitionLog, now_ms: i64) -> Result<ProducerStateTable, PartitionError> {
    let mut producers = ProducerStateTable::default();
    let mut aborted = Vec::new();
    let mut failed = None;
    log.for_each_batch(|h, bytes| match apply_batch(&mut producers, h, bytes, h.base_offset, now_ms) {
        Ok(completed) => aborted.extend(completed.and_then(|c| aborted_entry(&producers, c))),
        Err(e) => failed = failed.take().or(Some(e)),
    })?;
    if let Some(e) = failed {
        return Err(e.into());
    }
    log.drop_aborted_txns_from(log.log_start_offset())?;
    log.append_aborted_txns(&aborted)?;
    // What is left of the log is durable: no marker holds the last stable offset back.
    producers.last_stable_offset(i64::MAX);
    Ok(producers)
}

#[path = "partition_replica.rs"]
mod replica;

#[cfg(test)]
#[path = "partition_tests.rs"]
mod tests;
