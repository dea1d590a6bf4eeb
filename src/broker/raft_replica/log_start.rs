//! The log start of a replicated partition (see the parent module): moving it through a
//! log-start entry (DeleteRecords, retention) and purging what falls below it.

use super::{PartitionRaft, RaftReplica};
use crate::broker::partition::PartitionError;
use crate::broker::producer_state::{ProducerIdGate, ProducerLimits};
use crate::broker::replica::Replica;
use crate::log::LogError;
use crate::log::batch::BatchHeader;
use crate::raft::log_store::RaftLogError;
use crate::raft::replica_state::ReplicaState;
use crate::raft::{NodeId, control};
use openraft::Instant as _;
use openraft::ServerState;
use openraft::async_runtime::watch::WatchReceiver;

impl RaftReplica {
    /// Leader only: moves the partition's log start to `offset` (at most the high
    /// watermark) on every replica by proposing a log-start entry; returns the log start
    /// once the entry is committed and applied here.
    pub async fn move_log_start(&self, offset: i64) -> Result<i64, PartitionError> {
        let batch = control::log_start_batch(offset, control::NO_TIMESTAMP).map_err(RaftLogError::from)?;
        let header = BatchHeader::parse(&batch).map_err(LogError::from)?;
        let gate = ProducerIdGate::unlimited();
        let limits = ProducerLimits {
            per_partition: usize::MAX,
            gate: &gate,
            txn: crate::broker::txn_verification::TxnVerification::Off,
        };
        let appended = self.append_as_leader(batch, &[header], crate::broker::now_ms(), limits).await?;
        if let Some(commit) = appended.commit {
            commit.wait().await?;
        }
        Ok(self.state.log()?.log().log_start_offset())
    }

    /// Leader only: retention (`retention.ms`, `retention.bytes`) decided on this
    /// replica's segments below the high watermark, applied everywhere as a log-start
    /// entry. Returns the new log start, if it moved.
    pub async fn enforce_retention(&self, now_ms: i64) -> Result<Option<i64>, PartitionError> {
        if self.leading_term().is_none() || !self.config()?.cleanup_delete {
            return Ok(None);
        }
        let point = self.state.log()?.log().retention_point(now_ms, self.state.high_watermark());
        match point {
            Some(offset) => self.move_log_start(offset).await.map(Some),
            None => Ok(None),
        }
    }
}

/// How recently a follower must have answered the leader for its progress to hold back a
/// compacted partition's purges: a replicating follower answers many times a second; one
/// silent this long is down or cut off, and gets a snapshot when it returns.
const LIVE_FOLLOWER: std::time::Duration = std::time::Duration::from_secs(5);

/// On the leader: the lowest raft entry a live follower has matched (0 for one that has
/// matched none), so that a compacted partition's purges wait for it — it catches up from
/// the log, instead of being sent the whole compacted log again with a newer snapshot each
/// time a segment seals. Followers silent for [`LIVE_FOLLOWER`] hold nothing back (they
/// get a snapshot with the data when they return). `None` on a follower.
fn followers_hold(raft: &PartitionRaft, me: NodeId) -> Option<u64> {
    let m = raft.metrics();
    let m = m.borrow_watched();
    if m.state != ServerState::Leader {
        return None;
    }
    let (Some(replication), Some(heartbeat)) = (&m.replication, &m.heartbeat) else { return None };
    replication
        .iter()
        .filter(|(id, _)| **id != me)
        .filter(|(id, _)| heartbeat.get(id).and_then(Option::as_ref).is_some_and(|ack| ack.elapsed() < LIVE_FOLLOWER))
        .map(|(_, matched)| matched.map_or(0, |l| l.index))
        .min()
}

/// How often a compacted partition checks for sealed segments below the high watermark
/// whose entries raft may purge (so that the cleaner can rewrite them).
const COMPACTED_PURGE_CHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// Triggers a snapshot whenever whole segments below the log start hold entries no
/// snapshot covers (checked at start and after each log-start entry applied) — for a
/// compacted topic, sealed segments below the high watermark too (checked every
/// [`COMPACTED_PURGE_CHECK`]) — so that openraft purges those entries: the segments go
/// (below the log start) or become the cleaner's (compacted). Until the replica is dropped.
pub(super) async fn purge_below_log_start(raft: PartitionRaft, weak: std::sync::Weak<ReplicaState>, me: NodeId) {
    let Some((mut moved, mut compacted)) = weak.upgrade().map(|s| (s.watch_log_start(), s.watch_compacted())) else {
        return;
    };
    let unpurged = weak.upgrade().map(|s| s.unpurged_snapshot());
    if let Some(Ok(Some(index))) = unpurged
        && let Err(e) = raft.trigger().purge_log(index).await
    {
        tracing::warn!(error = %e, "cannot ask raft to purge up to the last snapshot");
        return;
    }
    loop {
        let purgeable = match weak.upgrade() {
            Some(state) => {
                state.hold_compaction_purge(followers_hold(&raft, me));
                state.purgeable()
            }
            None => return,
        };
        match purgeable {
            Ok(true) => {
                if let Err(e) = raft.trigger().snapshot().await {
                    tracing::warn!(error = %e, "cannot trigger a partition snapshot");
                    return;
                }
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "cannot tell whether segments below the log start can go"),
        }
        let periodic = *compacted.borrow_and_update();
        tokio::select! {
            changed = moved.changed() => if changed.is_err() { return },
            changed = compacted.changed() => if changed.is_err() { return },
            () = tokio::time::sleep(COMPACTED_PURGE_CHECK), if periodic => {}
        }
    }
}
