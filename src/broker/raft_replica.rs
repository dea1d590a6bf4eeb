//! A raft-replicated partition behind the [`Replica`] seam.
//!
//! The partition's segment files are the raft log ([`crate::raft::log_store`]); openraft
//! replicates entries (the batches of one append each) and the state machine
//! ([`crate::raft::partition_state`]) moves the high watermark as entries commit. What the
//! replica adds:
//!
//! - **leadership**: [`Replica::leader`] and the leader epoch (the raft term) come from
//!   openraft's metrics; a task follows them and ends this node's leadership of a term in
//!   [`ReplicaState`] when it stops leading, failing the waiters of that term;
//! - **append** (leader only, else NOT_LEADER_OR_FOLLOWER): the idempotent-producer check
//!   and the proposal run under one async lock, so proposals reach openraft in the order
//!   they were checked (a producer's pipelined batches); the proposal is conditional on the
//!   term it was checked in (`with_leader`). The future resolves when the leader's own
//!   store has written the entry — its base offset known, `acks=1` — with a
//!   [`Commit`] on the high watermark for `acks=all`. Nothing waits for the commit inside;
//! - **reads** never reach the high watermark, on any replica: it moves only as entries
//!   are applied, and after a restart it starts at the applied point, never at the log
//!   end, so an uncommitted tail is never exposed.
//!
//! DeleteRecords is refused for now: moving the log start must be replicated (and tied to
//! raft's purge) to keep the replicas' logs and raft indexes in step.

use std::io::Cursor;
use std::path::Path;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use openraft::async_runtime::watch::WatchReceiver;
use openraft::network::{NetSnapshot, RaftNetworkFactory};
use openraft::type_config::alias::WatchReceiverOf;
use openraft::{Config, Raft, RaftMetrics, ServerState};
use tokio::sync::watch;

use crate::broker::partition::PartitionError;
use crate::broker::producer_state::ProducerLimits;
use crate::broker::replica::{
    AppendFuture, Appended, Commit, Leader, Offsets, PlannedRead, Progress, Replica, TimestampQuery, find_record,
};
use crate::broker::topic_config::EffectiveTopicConfig;
use crate::log::batch::{self, BatchHeader};
use crate::log::{Flusher, LogError, ReadPlan};
use crate::raft::log_store::{PartitionRaftLog, RaftLogError, RaftLogStore};
use crate::raft::partition_state::PartitionStateMachine;
use crate::raft::replica_state::{Checked, ReplicaState};
use crate::raft::{AppendBatches, CommittedLeaderId, NodeId, Term, TypeConfig};

/// The raft node of one partition.
pub type PartitionRaft = Raft<TypeConfig, PartitionStateMachine>;

/// Why a raft replica cannot start.
#[derive(Debug, thiserror::Error)]
pub enum RaftReplicaError {
    #[error(transparent)]
    Log(#[from] RaftLogError),
    #[error("raft node of {topic}-{index} did not start: {message}")]
    Raft { topic: String, index: i32, message: String },
}

/// Which partition, on which broker, in which directory.
#[derive(Debug, Clone, Copy)]
pub struct ReplicaAt<'a> {
    pub topic: &'a str,
    pub index: i32,
    pub node_id: NodeId,
    pub dir: &'a Path,
}

/// One partition replicated by raft, as the handlers see it.
pub struct RaftReplica {
    topic: String,
    index: i32,
    node_id: NodeId,
    config: EffectiveTopicConfig,
    raft: PartitionRaft,
    state: Arc<ReplicaState>,
    /// Check + propose, one append at a time: the order of checks is the order of entries.
    proposing: tokio::sync::Mutex<()>,
    /// Follows leadership in the raft metrics (aborted on drop).
    follower: tokio::task::JoinHandle<()>,
    /// Appends this replica made as leader, and fetches it served.
    traffic: crate::metrics::PartitionTraffic,
}

impl Drop for RaftReplica {
    fn drop(&mut self) {
        self.follower.abort();
    }
}

impl RaftReplica {
    /// Opens the partition's raft log in `at.dir` and starts its raft node as
    /// `at.node_id`; `flusher` (if any) makes appends durable in group-commit rounds. The
    /// caller initializes a new group's membership (on one member) with [`Self::raft`].
    pub async fn start<N>(
        at: ReplicaAt<'_>,
        config: EffectiveTopicConfig,
        raft_config: Arc<Config>,
        network: N,
        flusher: Option<Flusher>,
    ) -> Result<Arc<Self>, RaftReplicaError>
    where
        N: RaftNetworkFactory<TypeConfig>,
        N::Network: NetSnapshot<TypeConfig, SnapshotData = Cursor<Vec<u8>>>,
    {
        let ReplicaAt { topic, index, node_id, dir } = at;
        let log = PartitionRaftLog::open(dir, config.log.clone())?;
        let store = match flusher {
            Some(f) => RaftLogStore::with_flusher(log, f),
            None => RaftLogStore::new(log),
        };
        let state = ReplicaState::open(store)?;
        let machine = PartitionStateMachine::new(state.clone());
        let raft = Raft::new(node_id, raft_config, network, state.raft_store(), machine)
            .await
            .map_err(|e| RaftReplicaError::Raft { topic: topic.to_string(), index, message: e.to_string() })?;
        let follower = tokio::spawn(follow_leadership(raft.metrics(), node_id, Arc::downgrade(&state)));
        Ok(Arc::new(RaftReplica {
            topic: topic.to_string(),
            index,
            node_id,
            config,
            raft,
            state,
            proposing: tokio::sync::Mutex::new(()),
            follower,
            traffic: crate::metrics::PartitionTraffic::default(),
        }))
    }

    /// The raft node (membership, RPC entry points, shutdown).
    pub fn raft(&self) -> &PartitionRaft {
        &self.raft
    }

    /// On the leader: the replicas holding everything committed (Kafka's ISR), the leader
    /// first; `None` on a follower, which does not know.
    pub fn in_sync_replicas(&self) -> Option<Vec<i32>> {
        let m = self.raft.metrics();
        let m = m.borrow_watched();
        if m.state != ServerState::Leader || m.current_leader != Some(self.node_id) {
            return None;
        }
        let committed = m.cluster_committed.map(|c| c.index);
        let mut isr: Vec<i32> = i32::try_from(self.node_id).ok().into_iter().collect();
        for (id, matched) in m.replication.iter().flatten() {
            let caught_up = matched.map(|l| l.index) >= committed;
            if *id != self.node_id && caught_up && m.membership_config.membership().voter_ids().any(|v| v == *id) {
                isr.extend(i32::try_from(*id).ok());
            }
        }
        Some(isr)
    }

    /// Whether the group was never formed here (no membership, no vote, empty log):
    /// initializing it is still allowed.
    pub fn is_pristine(&self) -> bool {
        let m = self.raft.metrics();
        let m = m.borrow_watched();
        m.last_log_index.is_none() && m.membership_config.membership().voter_ids().next().is_none()
    }

    /// The term this node leads, if it is the leader.
    fn leading_term(&self) -> Option<Term> {
        let m = self.raft.metrics();
        let m = m.borrow_watched();
        (m.state == ServerState::Leader && m.current_leader == Some(self.node_id)).then_some(m.current_term)
    }

    /// Stamps LogAppendTime into a copy of `data` when the topic asks for it.
    fn stamp(&self, data: Bytes, headers: &[BatchHeader], now_ms: i64) -> Result<Bytes, PartitionError> {
        if !self.config.log_append_time {
            return Ok(data);
        }
        let mut owned = BytesMut::from(&data[..]);
        let mut pos = 0;
        for h in headers {
            let end = pos + h.total_size();
            batch::set_log_append_time(&mut owned[pos..end], now_ms).map_err(LogError::from)?;
            pos = end;
        }
        Ok(owned.freeze())
    }

    async fn append_as_leader(
        &self,
        data: Bytes,
        headers: &[BatchHeader],
        now_ms: i64,
        limits: ProducerLimits<'_>,
    ) -> Result<Appended, PartitionError> {
        if headers.is_empty() {
            // A raft entry holds at least one batch: an empty one would fail the store's
            // append, which openraft takes as a fatal storage error.
            return Err(LogError::InvalidArgument("an append holds at least one batch".into()).into());
        }
        let data = self.stamp(data, headers, now_ms)?;
        let data_len = data.len();
        let log_append_time = if self.config.log_append_time { now_ms } else { -1 };
        let ordered = self.proposing.lock().await;
        let term =
            self.leading_term().ok_or(PartitionError::Rejected(kafka_protocol::ResponseError::NotLeaderOrFollower))?;
        let placed = match self.state.check(term, headers, now_ms, limits)? {
            Checked::Duplicate(placed) => {
                return self.appended(placed.base_offset, placed.end_offset, placed.losses, -1, true);
            }
            Checked::Propose(placed) => placed,
        };
        // Dropped before the send completes (the request went away while openraft's
        // queue was full), the proposal is undone; declared after `ordered`, so it runs
        // while the proposal lock is still held.
        let mut unsent = Unsent { state: &self.state, term: Some(term) };
        let sent = self.raft.write(AppendBatches(data)).with_leader(CommittedLeaderId::new(term)).await;
        if let Err(fatal) = sent {
            return Err(PartitionError::RaftStopped(fatal.to_string()));
        }
        unsent.term = None;
        drop(unsent);
        drop(ordered);
        // Resolved by the store's write, or failed when this node stops leading the term.
        let placed = placed.await.map_err(|_closed| PartitionError::RaftStopped("replica state dropped".into()))??;
        self.traffic.appended(data_len, headers.iter().map(|h| u64::try_from(h.records_count).unwrap_or(0)).sum());
        self.appended(placed.base_offset, placed.end_offset, placed.losses, log_append_time, false)
    }

    fn appended(
        &self,
        base_offset: i64,
        end_offset: i64,
        losses: u64,
        log_append_time: i64,
        duplicate: bool,
    ) -> Result<Appended, PartitionError> {
        let commit = Commit::new(self.state.progress(), end_offset, losses);
        let log_start_offset = self.state.log()?.log().log_start_offset();
        Ok(Appended {
            base_offset,
            log_append_time,
            log_start_offset,
            duplicate,
            commit: (!commit.is_committed()).then_some(commit),
        })
    }
}

/// Undoes a checked proposal that was not sent (see [`ReplicaState::unpropose`]).
struct Unsent<'a> {
    state: &'a ReplicaState,
    /// `None` once sent.
    term: Option<Term>,
}

impl Drop for Unsent<'_> {
    fn drop(&mut self) {
        if let Some(term) = self.term {
            self.state.unpropose(term);
        }
    }
}

/// Follows the raft metrics: tells `state` which term this node leads, until the node or
/// the replica is gone.
async fn follow_leadership(
    mut metrics: WatchReceiverOf<TypeConfig, RaftMetrics<TypeConfig>>,
    node_id: NodeId,
    weak: std::sync::Weak<ReplicaState>,
) {
    loop {
        let leading = {
            let m = metrics.borrow_and_update();
            (m.state == ServerState::Leader && m.current_leader == Some(node_id)).then_some(m.current_term)
        };
        let Some(state) = weak.upgrade() else { return };
        state.observe_leadership(leading);
        drop(state);
        if metrics.changed().await.is_err() {
            // The raft node stopped: it leads nothing, and waiters of unwritten
            // proposals must not wait for ever.
            if let Some(state) = weak.upgrade() {
                state.observe_leadership(None);
            }
            return;
        }
    }
}

impl Replica for RaftReplica {
    fn topic(&self) -> &str {
        &self.topic
    }

    fn index(&self) -> i32 {
        self.index
    }

    fn config(&self) -> Result<EffectiveTopicConfig, PartitionError> {
        Ok(self.config.clone())
    }

    fn leader(&self) -> Leader {
        let m = self.raft.metrics();
        let m = m.borrow_watched();
        match m.current_leader {
            Some(id) if id == self.node_id && m.state == ServerState::Leader => Leader::ThisBroker,
            // Node ids are Kafka broker ids (i32, non-negative).
            Some(id) if id != self.node_id => i32::try_from(id).map_or(Leader::Unknown, Leader::Broker),
            _ => Leader::Unknown,
        }
    }

    /// The current raft term (Kafka's leader epoch); a term past `i32` reads as the
    /// largest epoch (never reached: a term per election).
    fn leader_epoch(&self) -> i32 {
        self.raft.metrics().borrow_watched().current_term.to_leader_epoch().unwrap_or(i32::MAX)
    }

    fn offsets(&self) -> Result<Offsets, PartitionError> {
        let log = self.state.log()?;
        Ok(Offsets::new(log.log().log_start_offset(), self.state.high_watermark(), log.log().log_end_offset()))
    }

    fn high_watermark(&self) -> i64 {
        self.state.high_watermark()
    }

    fn watch_progress(&self) -> watch::Receiver<Progress> {
        self.state.progress()
    }

    fn append<'a>(
        &'a self,
        data: Bytes,
        headers: &'a [BatchHeader],
        now_ms: i64,
        limits: ProducerLimits<'a>,
    ) -> AppendFuture<'a> {
        Box::pin(self.append_as_leader(data, headers, now_ms, limits))
    }

    fn appends_when_called(&self) -> bool {
        false
    }

    fn plan_read(&self, offset: i64, max_bytes: usize, min_one: bool) -> Result<PlannedRead, PartitionError> {
        let log = self.state.log()?;
        let log = log.log();
        // Read under the log lock: the high watermark never passes what the log holds.
        let high_watermark = self.state.high_watermark();
        let (log_start_offset, log_end) = (log.log_start_offset(), log.log_end_offset());
        if offset < log_start_offset || offset > log_end {
            return Err(LogError::OffsetOutOfRange { offset, log_start: log_start_offset, log_end }.into());
        }
        if offset >= high_watermark {
            // Written here but not committed: the fetch waits for the high watermark.
            return Ok(PlannedRead::files(ReadPlan::default(), high_watermark, log_start_offset));
        }
        let plan = log.plan_read(offset, max_bytes, high_watermark, min_one)?;
        Ok(PlannedRead::files(plan, high_watermark, log_start_offset))
    }

    fn find_by_timestamp(&self, query: TimestampQuery) -> Result<Option<(i64, i64)>, PartitionError> {
        let log = self.state.log()?;
        let log = log.log();
        let range = log.log_start_offset()..self.state.high_watermark();
        let found = match query {
            TimestampQuery::MaxTimestamp => match log.max_timestamp_batch()? {
                Some((max, batch)) => find_record(batch, range, query, max)?,
                None => None,
            },
            TimestampQuery::AtOrAfter(ts) => match log.batch_for_timestamp(ts)? {
                Some(batch) => find_record(batch, range, query, -1)?,
                None => None,
            },
        };
        Ok(found)
    }

    /// From the log's leader-epoch history: the raft term is every batch's epoch.
    fn end_offset_for_epoch(&self, epoch: i32) -> Result<Option<(i32, i64)>, PartitionError> {
        Ok(self.state.log()?.log().end_offset_for_epoch(epoch))
    }

    fn delete_records(&self, _offset: i64) -> Result<i64, PartitionError> {
        Err(PartitionError::Unsupported("DeleteRecords (the log start is not replicated yet)"))
    }

    fn size_bytes(&self) -> Result<u64, PartitionError> {
        Ok(self.state.log()?.log().size_bytes())
    }

    fn traffic(&self) -> Option<&crate::metrics::PartitionTraffic> {
        Some(&self.traffic)
    }
}

#[cfg(test)]
#[path = "raft_replica_tests.rs"]
pub(crate) mod tests;
