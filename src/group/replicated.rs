//! Groups on a replicated `__consumer_offsets` partition (a raft group): the coordinator
//! of a partition's groups is its leader. The groups are loaded when this broker leads
//! the partition at an epoch it has not loaded yet (COORDINATOR_LOAD_IN_PROGRESS until
//! everything earlier leaders wrote is committed), and dropped when it stops leading
//! (NOT_COORDINATOR, so clients look the coordinator up again).
//!
//! Appends are made under the coordinator's lock like the local log's, but a raft
//! leader's append resolves only once its store has written the entry: the append is
//! started under the lock (polled once, which fixes its place in the partition's order of
//! proposals) and driven to its commit by a task of its own; the answer waits on a
//! deferred [`Commit`].

use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use kafka_protocol::ResponseError;
use tokio::sync::watch;
use tracing::info;

use crate::broker::partition::PartitionError;
use crate::broker::producer_state::{ProducerIdGate, ProducerLimits};
use crate::broker::replica::{Appended, Commit, Leader, Replica};
use crate::broker::topics::Topic;
use crate::group::coordinator::State;
use crate::group::durability::Barrier;
use crate::group::{GroupCoordinator, OFFSETS_TOPIC, partition_for};
use crate::log::batch::BatchHeader;

impl GroupCoordinator {
    /// Serves partition `index`'s groups only where this broker leads it, loading them at
    /// each new leader epoch.
    pub(crate) fn ensure_leading(
        &self,
        state: &mut State,
        topic: &Topic,
        index: i32,
        replica: &dyn Replica,
        now: i64,
    ) -> Result<(), ResponseError> {
        if replica.leader() != Leader::ThisBroker {
            unload(state, index, topic.partition_count());
            return Err(ResponseError::NotCoordinator);
        }
        let epoch = replica.leader_epoch();
        let failed = state.partitions.last_write.get(&index).is_some_and(Commit::has_failed);
        if state.partitions.leader_epochs.get(&index) == Some(&epoch) && !failed {
            return Ok(());
        }
        // Everything earlier leaders wrote is committed once this leader's first entry is.
        let offsets = replica.offsets().map_err(|e| e.code())?;
        if offsets.high_watermark < offsets.log_end {
            return Err(ResponseError::CoordinatorLoadInProgress);
        }
        let records = self.replay_partition(state, replica, topic.partition_count(), now).map_err(|e| e.code())?;
        state.partitions.last_write.remove(&index);
        state.partitions.leader_epochs.insert(index, epoch);
        info!(
            partition = index,
            leader_epoch = epoch,
            records,
            "loaded the groups of a {OFFSETS_TOPIC} partition as its leader"
        );
        Ok(())
    }
}

/// Drops partition `index`'s groups (this broker no longer leads it).
fn unload(state: &mut State, index: i32, partitions: i32) {
    if state.partitions.leader_epochs.remove(&index).is_none() {
        return;
    }
    let ids: Vec<String> = state.groups.keys().filter(|id| partition_for(id, partitions) == index).cloned().collect();
    for id in &ids {
        // Parked requests of a dropped group are answered with an error.
        state.groups.remove(id);
        state.reschedule(id);
    }
    state.partitions.last_write.remove(&index);
    info!(partition = index, groups = ids.len(), "no longer leading a {OFFSETS_TOPIC} partition: unloaded its groups");
}

/// Starts appending `data` to the replicated partition `index` (under the coordinator's
/// lock) and returns what the answer waits for.
pub(crate) fn append(
    state: &mut State,
    index: i32,
    replica: Arc<dyn Replica>,
    data: Bytes,
    headers: Vec<BatchHeader>,
    now: i64,
) -> Result<Barrier, ResponseError> {
    let mut appending = Box::pin(async move {
        let gate = ProducerIdGate::unlimited();
        let limits = ProducerLimits {
            per_partition: usize::MAX,
            gate: &gate,
            txn: crate::broker::txn_verification::TxnVerification::Off,
        };
        let appended: Appended = replica.append(data, &headers, now, limits).await?;
        match appended.commit {
            Some(commit) => commit.wait().await,
            None => Ok(()),
        }
    });
    // The first poll checks and queues the proposal: its place in the log is fixed here.
    let first = appending.as_mut().poll(&mut Context::from_waker(futures::task::noop_waker_ref()));
    let commit = match first {
        Poll::Ready(Ok(())) => return Ok(None),
        // Refused by the producer state before it was proposed (a fenced producer).
        Poll::Ready(Err(PartitionError::Rejected(code))) if crate::group::durability::is_producer_refusal(code) => {
            return Err(code);
        }
        Poll::Ready(Err(e)) => {
            // Not the leader any more, or its raft stopped: reload before serving again.
            tracing::debug!(partition = index, error = %e, "a {OFFSETS_TOPIC} append failed");
            state.partitions.leader_epochs.remove(&index);
            return Err(ResponseError::NotCoordinator);
        }
        Poll::Pending => {
            let (tx, rx) = watch::channel(None);
            tokio::spawn(async move {
                let outcome: Result<(), PartitionError> = appending.await;
                let _ = tx.send(Some(outcome.map_err(Arc::new)));
            });
            Commit::deferred(rx)
        }
    };
    state.partitions.wrote(index, commit.clone());
    Ok(Some((index, commit)))
}
