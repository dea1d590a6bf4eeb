//! The local log behind the [`Replica`] seam: an append requests its fsync from the
//! group-commit flusher at once, and the flusher's answer advances the high watermark
//! (durable before visible); the waiter of an `acks=all` produce only watches the high
//! watermark (see [`crate::broker::replica`]).

use bytes::Bytes;
use tokio::sync::watch;

use super::{Appended as LocalAppend, Partition, PartitionError};
use crate::broker::log_cleaner::Compactable;
use crate::broker::producer_state::ProducerLimits;
use crate::broker::rate_limited::PRODUCE_SYNC_ERRORS;
use crate::broker::replica::{
    AppendFuture, Appended, Commit, Isolation, Offsets, PlannedRead, Progress, Replica, TimestampQuery, find_record,
};
use crate::broker::topic_config::EffectiveTopicConfig;
use crate::log::batch::BatchHeader;
use crate::log::cleaner::Cleanable;
use crate::log::txn::AbortedTxn;
use crate::log::{LogError, PartitionLog, ReadPlan, SyncTarget};
use std::collections::HashMap;

/// Leader epoch stamped on every batch (see [`super::LEADER_EPOCH`]).
const EPOCH: i32 = super::LEADER_EPOCH;

impl Partition {
    /// Has `target` fsynced and the high watermark moved by it, without a waiter: in a
    /// task of its own on the runtime, or right here when there is none (tests and
    /// start-up, which block anyway). A failure counts a loss, which fails every append
    /// the high watermark does not cover yet (a failed fsync fences the whole log),
    /// unless a loss was counted since the append (`losses` then): the same failure seen
    /// by another waiter of the round, or an in-place recovery that already cut the log.
    fn commit_in_background(&self, target: SyncTarget, losses: u64) {
        let Some(me) = self.me.upgrade() else { return };
        let commit = async move {
            let Err(e) = me.commit(&me.flusher, target).await else { return };
            let text = e.to_string();
            let mut failure = Some(e);
            let counted = me.progress.send_if_modified(|p| match failure.take() {
                Some(e) if p.losses == losses => {
                    p.lose(e);
                    true
                }
                _ => false,
            });
            if counted && let Some(suppressed) = PRODUCE_SYNC_ERRORS.check(crate::broker::now_ms()) {
                tracing::error!(
                    topic = me.topic,
                    partition = me.index,
                    error = text,
                    suppressed,
                    "fsync of appended data failed (further failures are counted, not logged, for 10 s)"
                );
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn(commit)),
            Err(_no_runtime) => futures::executor::block_on(commit),
        }
    }

    /// The commit an append waits for: `sync` covers it, `losses` were counted when it
    /// was made. `start`: ask for the fsync (else it was asked for already).
    fn commit_of(&self, sync: Option<SyncTarget>, losses: u64, start: bool) -> Option<Commit> {
        let target = sync?;
        let commit = Commit::new(self.progress.subscribe(), target.end_offset, losses);
        if start {
            self.commit_in_background(target, losses);
        }
        Some(commit)
    }

    /// The local append behind [`Replica::append`].
    fn append_now(
        &self,
        data: Bytes,
        headers: &[BatchHeader],
        now_ms: i64,
        limits: ProducerLimits<'_>,
    ) -> Result<Appended, PartitionError> {
        Ok(match self.append_limited(data, headers, now_ms, limits)? {
            LocalAppend::New { base_offset, log_append_time, log_start_offset, sync, losses } => Appended {
                base_offset,
                log_append_time,
                log_start_offset,
                duplicate: false,
                commit: self.commit_of(sync, losses, true),
            },
            // A retry whose original is not durable yet waits for the original's fsync
            // (requested when it was appended) to move the high watermark.
            LocalAppend::Duplicate { base_offset, log_start_offset, sync, losses } => Appended {
                base_offset,
                log_append_time: -1,
                log_start_offset,
                duplicate: true,
                commit: self.commit_of(sync, losses, false),
            },
        })
    }
}

impl Replica for Partition {
    fn topic(&self) -> &str {
        &self.topic
    }

    fn begin_txn_verification(&self, producer_id: i64, epoch: i16, now_ms: i64) -> Result<Option<u64>, PartitionError> {
        Ok(self.lock()?.producers.begin_txn_verification(producer_id, epoch, now_ms))
    }

    fn end_txn_verification(&self, producer_id: i64, guard: u64) {
        if let Ok(mut inner) = self.lock() {
            inner.producers.end_txn_verification(producer_id, guard);
        }
    }

    fn index(&self) -> i32 {
        self.index
    }

    fn config(&self) -> Result<EffectiveTopicConfig, PartitionError> {
        Ok(self.lock()?.config.clone())
    }

    fn leader_epoch(&self) -> i32 {
        EPOCH
    }

    fn offsets(&self) -> Result<Offsets, PartitionError> {
        let mut inner = self.lock()?;
        let hw = self.hw();
        let last_stable = inner.producers.last_stable_offset(hw).max(inner.log.log_start_offset());
        Ok(Offsets::new(inner.log.log_start_offset(), hw, inner.log.log_end_offset()).with_last_stable(last_stable))
    }

    fn high_watermark(&self) -> i64 {
        self.hw()
    }

    fn watch_progress(&self) -> watch::Receiver<Progress> {
        self.progress.subscribe()
    }

    /// Appends at once, inside the call (the future is ready): appends are ordered by the
    /// calls, as before the seam became asynchronous.
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
        let mut inner = self.lock()?;
        let high_watermark = self.hw();
        let last_stable = inner.producers.last_stable_offset(high_watermark).max(inner.log.log_start_offset());
        let upper = isolation.upper_bound(high_watermark, last_stable);
        let log_start_offset = inner.log.log_start_offset();
        let log_end = inner.log.log_end_offset();
        if offset < log_start_offset || offset > log_end {
            return Err(LogError::OffsetOutOfRange { offset, log_start: log_start_offset, log_end }.into());
        }
        if offset >= upper {
            // Written but not yet durable (with replication: not yet committed), or not
            // stable yet. Kafka answers an empty read, and the fetch waits for the high
            // watermark to move.
            let empty = PlannedRead::files(ReadPlan::default(), high_watermark, log_start_offset);
            return Ok(empty.with_last_stable(last_stable));
        }
        // Under the lock: where the batches are. Reading them (or sending them) happens
        // without it, so fetches never stall appends.
        let plan = inner.log.plan_read(offset, max_bytes, upper, min_one)?;
        Ok(PlannedRead::files(plan, high_watermark, log_start_offset).with_last_stable(last_stable))
    }

    fn find_by_timestamp(&self, query: TimestampQuery) -> Result<Option<(i64, i64)>, PartitionError> {
        let inner = self.lock()?;
        let range = inner.log.log_start_offset()..self.hw();
        let found = match query {
            TimestampQuery::MaxTimestamp => match inner.log.max_timestamp_batch()? {
                Some((max, batch)) => find_record(batch, range, query, max)?,
                None => None,
            },
            TimestampQuery::AtOrAfter(ts) => match inner.log.batch_for_timestamp(ts)? {
                Some(batch) => find_record(batch, range, query, -1)?,
                None => None,
            },
        };
        Ok(found)
    }

    /// From the log's leader-epoch history (see [`crate::log::epoch_history`]).
    fn end_offset_for_epoch(&self, epoch: i32) -> Result<Option<(i32, i64)>, PartitionError> {
        Ok(self.lock()?.log.end_offset_for_epoch(epoch))
    }

    /// Immediate (a local file operation): no wait to time out.
    fn delete_records(&self, offset: i64, _timeout: std::time::Duration) -> Result<i64, PartitionError> {
        Ok(self.lock()?.log.advance_log_start(offset)?)
    }

    fn traffic(&self) -> Option<&crate::metrics::PartitionTraffic> {
        Some(&self.traffic)
    }

    fn compactable(&self) -> Option<&dyn Compactable> {
        Some(self)
    }

    fn size_bytes(&self) -> Result<u64, PartitionError> {
        Ok(self.lock()?.log.size_bytes())
    }

    fn aborted_transactions(&self, from: i64, upper: i64) -> Result<Vec<AbortedTxn>, PartitionError> {
        Ok(self.lock()?.log.aborted_txns(from, upper)?)
    }
}

impl Compactable for Partition {
    fn dir(&self) -> &std::path::Path {
        Partition::dir(self)
    }

    fn cleaning_view(
        &self,
        now_ms: i64,
    ) -> Result<(Cleanable, EffectiveTopicConfig, HashMap<i64, i64>), PartitionError> {
        Partition::cleaning_view(self, now_ms)
    }

    fn with_log_locked(
        &self,
        f: &mut dyn FnMut(&mut PartitionLog) -> Result<(), LogError>,
    ) -> Result<(), PartitionError> {
        self.with_log(f)
    }

    fn is_removed(&self) -> bool {
        Partition::is_removed(self)
    }
}
