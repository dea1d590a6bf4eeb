//! A [`Replica`] kept in memory (no files): for handler tests, and as the smallest
//! example of what an implementation of the seam must do. Batches are stored as the
//! local log stores them (base offset and leader epoch set, LogAppendTime stamped), the
//! idempotent-producer checks are the local log's, and the high watermark moves either
//! on every append or only when the test says ([`MemoryReplica::commit_to`]), so a test
//! can hold an `acks=all` produce and release it, or lose it
//! ([`MemoryReplica::lose_uncommitted`]), as a raft leader change would.

use std::sync::Mutex;
use std::sync::atomic::{AtomicI32, Ordering};

use bytes::{Bytes, BytesMut};
use kafka_protocol::ResponseError;
use tokio::sync::watch;

use super::{
    AppendFuture, Appended, Commit, Isolation, Leader, Offsets, PlannedRead, Progress, Replica, TimestampQuery,
    find_record,
};
use crate::broker::partition::PartitionError;
use crate::broker::producer_batches::{aborted_entry, admit_new_producer, apply_batch, check_sequences};
use crate::broker::producer_state::{ProducerLimits, ProducerStateTable, SeqCheck};
use crate::broker::topic_config::EffectiveTopicConfig;
use crate::log::LogError;
use crate::log::batch::{self, BatchHeader};
use crate::log::txn::AbortedTxn;

/// One stored batch.
struct Stored {
    base_offset: i64,
    next_offset: i64,
    max_timestamp: i64,
    bytes: Bytes,
}

#[derive(Default)]
struct State {
    batches: Vec<Stored>,
    log_start: i64,
    log_end: i64,
    producers: ProducerStateTable,
    aborted: Vec<AbortedTxn>,
}

pub struct MemoryReplica {
    topic: String,
    index: i32,
    config: EffectiveTopicConfig,
    /// The high watermark follows every append (else only [`Self::commit_to`]).
    commit_on_append: bool,
    leader_epoch: AtomicI32,
    leader: Mutex<Leader>,
    state: Mutex<State>,
    progress: watch::Sender<Progress>,
}

impl MemoryReplica {
    /// A replica whose appends are committed as they are made.
    pub fn new(topic: &str, index: i32, config: EffectiveTopicConfig) -> MemoryReplica {
        MemoryReplica {
            topic: topic.to_string(),
            index,
            config,
            commit_on_append: true,
            leader_epoch: AtomicI32::new(0),
            leader: Mutex::new(Leader::ThisBroker),
            state: Mutex::new(State::default()),
            progress: watch::channel(Progress::new(0)).0,
        }
    }

    /// A replica whose high watermark moves only by [`Self::commit_to`].
    pub fn holding_commits(topic: &str, index: i32, config: EffectiveTopicConfig) -> MemoryReplica {
        MemoryReplica { commit_on_append: false, ..MemoryReplica::new(topic, index, config) }
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, State>, PartitionError> {
        self.state.lock().map_err(|_poisoned| PartitionError::Poisoned)
    }

    /// Commits everything before `offset` (at most the log end).
    pub fn commit_to(&self, offset: i64) -> Result<(), PartitionError> {
        let state = self.lock()?;
        let end = offset.min(state.log_end);
        self.progress.send_if_modified(|p| p.advance(end));
        Ok(())
    }

    /// Drops everything past the high watermark, failing its waiters with `why` (what a
    /// raft follower does when a new leader truncates its uncommitted tail).
    pub fn lose_uncommitted(&self, why: PartitionError) -> Result<(), PartitionError> {
        let mut state = self.lock()?;
        let hw = self.high_watermark();
        state.batches.retain(|b| b.next_offset <= hw);
        state.log_end = state.batches.last().map_or(hw.max(state.log_start), |b| b.next_offset);
        let mut producers = ProducerStateTable::default();
        let mut aborted = Vec::new();
        for b in &state.batches {
            if let Ok(h) = BatchHeader::parse(&b.bytes)
                && let Some(completed) = apply_batch(&mut producers, &h, &b.bytes, b.base_offset, 0)?
            {
                aborted.extend(aborted_entry(&producers, completed));
            }
        }
        state.producers = producers;
        state.aborted = aborted;
        self.progress.send_modify(|p| p.lose(why));
        Ok(())
    }

    pub fn set_leader_epoch(&self, epoch: i32) {
        self.leader_epoch.store(epoch, Ordering::SeqCst);
    }

    /// Hands leadership to `leader` (appends here are then refused by the handlers).
    pub fn set_leader(&self, leader: Leader) {
        *self.leader.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = leader;
    }

    fn append_now(
        &self,
        data: Bytes,
        headers: &[BatchHeader],
        now_ms: i64,
        limits: ProducerLimits<'_>,
    ) -> Result<Appended, PartitionError> {
        let mut state = self.lock()?;
        let state = &mut *state;
        let losses = self.progress.borrow().losses;
        let commit = |end: i64| Commit::new(self.progress.subscribe(), end, losses);
        if let Some(first) = headers.first() {
            match check_sequences(&state.producers, headers, &data, limits.txn) {
                SeqCheck::Append => admit_new_producer(&state.producers, first.producer_id, limits)?,
                SeqCheck::Duplicate(meta) if headers.len() == 1 && first.producer_id >= 0 => {
                    let end = meta.last_offset + 1;
                    return Ok(Appended {
                        base_offset: meta.first_offset,
                        log_append_time: -1,
                        log_start_offset: state.log_start,
                        duplicate: true,
                        commit: (end > self.high_watermark()).then(|| commit(end)),
                    });
                }
                SeqCheck::Duplicate(_) => {
                    return Err(PartitionError::Rejected(ResponseError::DuplicateSequenceNumber));
                }
                SeqCheck::Reject(code) => return Err(PartitionError::Rejected(code)),
            }
        }
        let epoch = self.leader_epoch();
        let base_offset = state.log_end;
        let mut pos = 0;
        for h in headers {
            let end = pos + h.total_size();
            let mut bytes = BytesMut::from(&data[pos..end]);
            let offset = state.log_end;
            batch::set_base_offset(&mut bytes, offset).map_err(LogError::from)?;
            batch::set_partition_leader_epoch(&mut bytes, epoch).map_err(LogError::from)?;
            if self.config.log_append_time {
                batch::set_log_append_time(&mut bytes, now_ms).map_err(LogError::from)?;
            }
            if let Some(completed) = apply_batch(&mut state.producers, h, &bytes, offset, now_ms)? {
                let entry = aborted_entry(&state.producers, completed);
                state.aborted.extend(entry);
            }
            let next_offset = offset + i64::from(h.last_offset_delta) + 1;
            let max_timestamp = if self.config.log_append_time { now_ms } else { h.max_timestamp };
            state.batches.push(Stored { base_offset: offset, next_offset, max_timestamp, bytes: bytes.freeze() });
            state.log_end = next_offset;
            pos = end;
        }
        if self.commit_on_append {
            let end = state.log_end;
            self.progress.send_if_modified(|p| p.advance(end));
        }
        let end = state.log_end;
        Ok(Appended {
            base_offset,
            log_append_time: if self.config.log_append_time { now_ms } else { -1 },
            log_start_offset: state.log_start,
            duplicate: false,
            commit: (end > self.high_watermark()).then(|| commit(end)),
        })
    }
}

impl Replica for MemoryReplica {
    fn topic(&self) -> &str {
        &self.topic
    }

    fn begin_txn_verification(&self, producer_id: i64, epoch: i16, now_ms: i64) -> Result<Option<u64>, PartitionError> {
        Ok(self.lock()?.producers.begin_txn_verification(producer_id, epoch, now_ms))
    }

    fn end_txn_verification(&self, producer_id: i64, guard: u64) {
        if let Ok(mut state) = self.lock() {
            state.producers.end_txn_verification(producer_id, guard);
        }
    }

    fn index(&self) -> i32 {
        self.index
    }

    fn config(&self) -> Result<EffectiveTopicConfig, PartitionError> {
        Ok(self.config.clone())
    }

    fn leader(&self) -> Leader {
        *self.leader.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn leader_epoch(&self) -> i32 {
        self.leader_epoch.load(Ordering::SeqCst)
    }

    fn offsets(&self) -> Result<Offsets, PartitionError> {
        let mut state = self.lock()?;
        let hw = self.high_watermark();
        let last_stable = state.producers.last_stable_offset(hw).max(state.log_start);
        Ok(Offsets::new(state.log_start, hw, state.log_end).with_last_stable(last_stable))
    }

    fn high_watermark(&self) -> i64 {
        self.progress.borrow().high_watermark
    }

    fn watch_progress(&self) -> watch::Receiver<Progress> {
        self.progress.subscribe()
    }

    /// Appends inside the call, as the local log does (the future is ready).
    fn append<'a>(
        &'a self,
        data: Bytes,
        headers: &'a [BatchHeader],
        now_ms: i64,
        limits: ProducerLimits<'a>,
    ) -> AppendFuture<'a> {
        Box::pin(std::future::ready(self.append_now(data, headers, now_ms, limits)))
    }

    fn plan_read_isolated(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one: bool,
        isolation: Isolation,
    ) -> Result<PlannedRead, PartitionError> {
        let mut state = self.lock()?;
        let hw = self.high_watermark();
        let last_stable = state.producers.last_stable_offset(hw).max(state.log_start);
        let upper = isolation.upper_bound(hw, last_stable);
        if offset < state.log_start || offset > state.log_end {
            return Err(
                LogError::OffsetOutOfRange { offset, log_start: state.log_start, log_end: state.log_end }.into()
            );
        }
        let mut out = BytesMut::new();
        for b in state.batches.iter().filter(|b| b.next_offset > offset && b.base_offset < upper) {
            if out.len() + b.bytes.len() > max_bytes && !(min_one && out.is_empty()) {
                break;
            }
            out.extend_from_slice(&b.bytes);
        }
        Ok(PlannedRead::memory(out.freeze(), hw, state.log_start).with_last_stable(last_stable))
    }

    fn find_by_timestamp(&self, query: TimestampQuery) -> Result<Option<(i64, i64)>, PartitionError> {
        let state = self.lock()?;
        let range = state.log_start..self.high_watermark();
        let visible = || state.batches.iter().filter(|b| b.next_offset > range.start && b.base_offset < range.end);
        match query {
            TimestampQuery::MaxTimestamp => {
                let Some(max) = visible().map(|b| b.max_timestamp).max() else { return Ok(None) };
                for b in visible().filter(|b| b.max_timestamp == max) {
                    if let Some(found) = find_record(b.bytes.clone(), range.clone(), query, max)? {
                        return Ok(Some(found));
                    }
                }
            }
            TimestampQuery::AtOrAfter(ts) => {
                for b in visible().filter(|b| b.max_timestamp >= ts) {
                    if let Some(found) = find_record(b.bytes.clone(), range.clone(), query, -1)? {
                        return Ok(Some(found));
                    }
                }
            }
        }
        Ok(None)
    }

    fn end_offset_for_epoch(&self, epoch: i32) -> Result<Option<(i32, i64)>, PartitionError> {
        let current = self.leader_epoch();
        Ok((epoch <= current).then_some((current, self.offsets()?.log_end)))
    }

    fn delete_records(&self, offset: i64, _timeout: std::time::Duration) -> Result<i64, PartitionError> {
        let mut state = self.lock()?;
        if offset > state.log_end {
            return Err(
                LogError::OffsetOutOfRange { offset, log_start: state.log_start, log_end: state.log_end }.into()
            );
        }
        state.log_start = state.log_start.max(offset);
        let start = state.log_start;
        state.batches.retain(|b| b.next_offset > start);
        Ok(start)
    }

    fn size_bytes(&self) -> Result<u64, PartitionError> {
        Ok(self.lock()?.batches.iter().map(|b| b.bytes.len() as u64).sum())
    }

    fn aborted_transactions(&self, from: i64, upper: i64) -> Result<Vec<AbortedTxn>, PartitionError> {
        let state = self.lock()?;
        Ok(state.aborted.iter().filter(|e| e.last_offset >= from && e.first_offset < upper).copied().collect())
    }
}
