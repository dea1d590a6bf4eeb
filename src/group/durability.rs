//! Durable before visible, and what the coordinator does when a write fails.
//!
//! A change is made in memory under the coordinator lock and its records are appended to
//! the group's partition of `__consumer_offsets` in the same critical section, so the log
//! holds changes in the order they were made. Nothing derived from a change gets out
//! before its record is fsynced:
//! - the request that made it waits for its own write ([`super::Completion`]); one that
//!   wrote nothing waits for the partition's last write (a [`Barrier`]), since the state
//!   it answers from includes every earlier change;
//! - reads (OffsetFetch, DescribeGroups, ListGroups, ConsumerGroupDescribe) are computed
//!   under the lock together with the partition's last write and answered only once that
//!   write is durable (NOT_COORDINATOR if it fails). This is Kafka's "read at the last
//!   committed offset", done by waiting instead of keeping snapshots.
//!
//! When a write fails (ENOSPC from `write`, or an fsync that fenced the log) the groups of
//! that partition may hold changes the log does not: they are dropped and rebuilt from
//! the log (after the log's own in-place recovery, which cuts what was never durable),
//! so a failed write leaves the previous state. The partition is then fenced with an
//! exponential backoff: its group requests get NOT_COORDINATOR (Kafka 4.x maps a
//! coordinator append's KAFKA_STORAGE_ERROR to NOT_COORDINATOR) and FindCoordinator
//! COORDINATOR_NOT_AVAILABLE, so clients back off and a full disk costs one failed
//! rebalance per backoff period instead of a loop.

use std::collections::HashMap;
use std::sync::{Arc, MutexGuard};

use kafka_protocol::ResponseError;
use tracing::{info, warn};

use crate::broker::partition::{Partition, PartitionError};
use crate::broker::rate_limited::GROUP_WRITE_ERRORS;
use crate::broker::replica::{Commit, Replica};
use crate::broker::topics::Topic;
use crate::broker::{Broker, now_ms};
use crate::group::coordinator::State;
use crate::group::{GroupCoordinator, OFFSETS_TOPIC, partition_for};

/// A write (to the partition of that index) whose commit an answer must wait for
/// (`None`: nothing pending).
pub type Barrier = Option<(i32, Commit)>;

/// The first backoff after a failed write, doubled per further failure up to the max.
const FIRST_BACKOFF_MS: i64 = 500;
const MAX_BACKOFF_MS: i64 = 10_000;
/// A failure this long after the previous one starts the backoff afresh.
const BACKOFF_RESET_MS: i64 = 60_000;

/// Per partition of `__consumer_offsets`: its last write, whether it is fenced, and
/// which in-place recovery of its log its groups were loaded after.
#[derive(Default)]
pub(crate) struct OffsetsPartitions {
    pub(crate) last_write: HashMap<i32, Commit>,
    /// Replicated partitions: the leader epoch whose groups are loaded here (this broker
    /// led the partition at that epoch); absent when they are not loaded.
    pub(crate) leader_epochs: HashMap<i32, i32>,
    fences: HashMap<i32, Fence>,
    loaded_epochs: HashMap<i32, u64>,
}

struct Fence {
    until_ms: i64,
    failures: u32,
    last_failure_ms: i64,
    /// The in-memory groups may differ from the log: rebuild before serving.
    needs_reload: bool,
}

impl OffsetsPartitions {
    pub fn wrote(&mut self, index: i32, commit: Commit) {
        self.last_write.insert(index, commit);
    }

    /// The partition's last write, if it is not committed yet.
    pub fn barrier(&self, index: i32) -> Barrier {
        self.last_write.get(&index).filter(|c| !c.is_committed()).map(|c| (index, c.clone()))
    }

    /// Whether requests for the partition's groups are refused now (backing off).
    pub fn blocked(&self, index: i32, now: i64) -> bool {
        self.fences.get(&index).is_some_and(|f| now < f.until_ms)
    }

    /// Every partition's last write that is not durable yet.
    pub fn barriers(&self) -> Vec<Barrier> {
        self.last_write.keys().map(|i| self.barrier(*i)).filter(Option::is_some).collect()
    }

    /// When the partition's backoff ends, if it is fenced.
    pub fn retry_at(&self, index: i32) -> Option<i64> {
        self.fences.get(&index).map(|f| f.until_ms)
    }

    /// Fences the partition after a failed write; returns the backoff in ms.
    fn fence(&mut self, index: i32, now: i64) -> i64 {
        let fence = self.fences.entry(index).or_insert(Fence {
            until_ms: now,
            failures: 0,
            last_failure_ms: now,
            needs_reload: true,
        });
        if now.saturating_sub(fence.last_failure_ms) > BACKOFF_RESET_MS {
            fence.failures = 0;
        }
        fence.failures = fence.failures.saturating_add(1);
        fence.last_failure_ms = now;
        fence.needs_reload = true;
        let backoff = FIRST_BACKOFF_MS.saturating_mul(1 << (fence.failures - 1).min(10)).min(MAX_BACKOFF_MS);
        fence.until_ms = now.saturating_add(backoff);
        backoff
    }

    /// The earliest time a fenced partition waits for to be rebuilt.
    pub fn next_retry(&self) -> Option<i64> {
        self.fences.values().filter(|f| f.needs_reload).map(|f| f.until_ms).min()
    }
}

/// Whether an append was refused by the partition's producer state (a fenced producer or
/// a stale transaction marker) before anything was written: the groups still match the
/// log, and the error is the answer.
pub(crate) fn is_producer_refusal(code: ResponseError) -> bool {
    matches!(
        code,
        ResponseError::InvalidProducerEpoch
            | ResponseError::ProducerFenced
            | ResponseError::TransactionCoordinatorFenced
            | ResponseError::InvalidTxnState
            | ResponseError::InvalidRecord
    )
}

/// Waits until `barrier` is committed; NOT_COORDINATOR when its write failed.
pub async fn durable(barrier: Barrier) -> Result<(), ResponseError> {
    let Some((index, commit)) = barrier else { return Ok(()) };
    commit.wait().await.map_err(|e| {
        warn_write_failed(index, &e);
        ResponseError::NotCoordinator
    })
}

fn warn_write_failed(index: i32, error: &dyn std::fmt::Display) {
    if let Some(suppressed) = GROUP_WRITE_ERRORS.check(now_ms()) {
        warn!(
            partition = index,
            error = %error,
            suppressed,
            "cannot write to {OFFSETS_TOPIC}: its groups are rebuilt from the log and their requests get NOT_COORDINATOR while the coordinator backs off (further failures are counted, not logged, for 10 s)"
        );
    }
}

impl GroupCoordinator {
    /// Locks the state for an operation on `group_id`: NOT_COORDINATOR while its
    /// partition backs off from a failed write; its groups are rebuilt from the log
    /// first when the log changed under them. Returns the partition (none before
    /// `__consumer_offsets` exists: then there are no groups either).
    pub(crate) fn lock_group(
        &self,
        broker: &Broker,
        group_id: &str,
    ) -> Result<(MutexGuard<'_, State>, Option<i32>), ResponseError> {
        let mut state = self.lock()?;
        let Some(topic) = broker.topic(OFFSETS_TOPIC) else { return Ok((state, None)) };
        let index = partition_for(group_id, topic.partition_count());
        self.ensure_loaded(&mut state, &topic, index, now_ms())?;
        Ok((state, Some(index)))
    }

    /// FindCoordinator's verdict for a group: COORDINATOR_NOT_AVAILABLE while its
    /// partition backs off (as Kafka answers while a coordinator partition is offline).
    pub fn availability(&self, broker: &Broker, group_id: &str) -> Result<(), ResponseError> {
        let state = self.lock()?;
        let Some(topic) = broker.topic(OFFSETS_TOPIC) else { return Ok(()) };
        let index = partition_for(group_id, topic.partition_count());
        if state.partitions.blocked(index, now_ms()) {
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        Ok(())
    }

    pub(crate) fn ensure_loaded(
        &self,
        state: &mut State,
        topic: &Topic,
        index: i32,
        now: i64,
    ) -> Result<(), ResponseError> {
        let replica = topic.replica(index).ok_or(ResponseError::CoordinatorNotAvailable)?;
        if !replica.appends_when_called() {
            return self.ensure_leading(state, topic, index, replica.as_ref(), now);
        }
        let partition = topic.partition(index).ok_or(ResponseError::CoordinatorNotAvailable)?;
        if state.partitions.blocked(index, now) {
            return Err(ResponseError::NotCoordinator);
        }
        let needs_reload = state.partitions.fences.get(&index).is_some_and(|f| f.needs_reload)
            || partition.storage_failed()
            || partition.recovery_epoch() != state.partitions.loaded_epochs.get(&index).copied().unwrap_or(0);
        if needs_reload {
            self.reload(state, topic, &partition, now)?;
        }
        Ok(())
    }

    /// After a failed write to partition `index`: rolls its groups back to the log at
    /// once and fences it for a backoff.
    pub(crate) fn write_failed(
        &self,
        state: &mut State,
        topic: &Topic,
        partition: &Arc<Partition>,
        error: &PartitionError,
        now: i64,
    ) {
        warn_write_failed(partition.index, error);
        state.partitions.fence(partition.index, now);
        // Best effort now; if the log cannot be read back yet, the next request after
        // the backoff (or the timer) tries again.
        let _ = self.reload(state, topic, partition, now);
    }

    /// Rebuilds partition `partition`'s groups from its log (recovering the log first if
    /// a failed fsync fenced it, and making whatever was appended durable first).
    fn reload(
        &self,
        state: &mut State,
        topic: &Topic,
        partition: &Arc<Partition>,
        now: i64,
    ) -> Result<(), ResponseError> {
        let index = partition.index;
        let rebuilt = (|| {
            partition.recover_failed_log()?;
            let offsets = partition.offsets()?;
            if offsets.high_watermark < offsets.log_end {
                // Appends whose fsync is still to come (or whose requester went away):
                // the log is the truth, so it must be durable before it is replayed.
                partition.flush()?;
            }
            self.replay_partition(state, &**partition, topic.partition_count(), now)
        })();
        match rebuilt {
            Ok(records) => {
                state.partitions.last_write.remove(&index);
                state.partitions.loaded_epochs.insert(index, partition.recovery_epoch());
                if let Some(f) = state.partitions.fences.get_mut(&index) {
                    f.needs_reload = false;
                }
                info!(partition = index, records, "rebuilt the groups of a {OFFSETS_TOPIC} partition from its log");
                Ok(())
            }
            Err(e) => {
                let backoff = state.partitions.fence(index, now);
                warn_write_failed(index, &format_args!("{e} (retrying in {backoff} ms)"));
                Err(ResponseError::NotCoordinator)
            }
        }
    }

    /// Timer: rebuilds the groups of partitions whose backoff ended or whose log was
    /// recovered in place (housekeeping), so they come back without waiting for a
    /// client. Blocking (it may fsync).
    pub fn retry_fenced(&self, broker: &Broker) {
        let Ok(mut state) = self.lock() else { return };
        let Some(topic) = broker.topic(OFFSETS_TOPIC) else { return };
        let now = now_ms();
        for index in 0..topic.partition_count() {
            let _ = self.ensure_loaded(&mut state, &topic, index, now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_writes_back_off_exponentially_up_to_a_cap_and_start_afresh_later() {
        let mut parts = OffsetsPartitions::default();
        let t0 = 1_000_000;
        let backoffs: Vec<i64> = (0..8).map(|i| parts.fence(3, t0 + i)).collect();
        assert_eq!(backoffs, vec![500, 1_000, 2_000, 4_000, 8_000, 10_000, 10_000, 10_000]);
        let now = t0 + 7;
        assert!(parts.blocked(3, now), "requests for the partition's groups are refused while backing off");
        assert!(!parts.blocked(4, now), "other partitions are not affected");
        assert_eq!(parts.retry_at(3), Some(now + MAX_BACKOFF_MS));
        assert_eq!(parts.next_retry(), Some(now + MAX_BACKOFF_MS), "the timer wakes to rebuild it");
        assert!(!parts.blocked(3, now + MAX_BACKOFF_MS));
        // A failure long after the last one starts again at the first backoff.
        assert_eq!(parts.fence(3, now + BACKOFF_RESET_MS + 1), FIRST_BACKOFF_MS);
    }
}
