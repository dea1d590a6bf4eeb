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
//! - **log start** (DeleteRecords, retention; leader only): the leader proposes a
//!   log-start entry ([`crate::raft::control`]) and every replica moves its log start when
//!   it applies it, so they agree; DeleteRecords answers once it is committed. Retention
//!   is decided by the leader on its own segments ([`RaftReplica::enforce_retention`]).
//!   Whole segments left below the log start go through raft: a task here triggers a
//!   snapshot at the last entry they hold, openraft purges the entries it covers
//!   (`max_in_snapshot_log_to_keep = 0`), and the purge deletes the segments. A
//!   follower too far behind for the leader's log installs that snapshot and restarts
//!   its log after it.

use std::io::Cursor;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use openraft::async_runtime::watch::WatchReceiver;
use openraft::network::{NetSnapshot, RaftNetworkFactory};
use openraft::type_config::alias::WatchReceiverOf;
use openraft::{Config, Raft, RaftMetrics, ServerState};
use tokio::sync::watch;

use crate::broker::in_sync::CaughtUp;
use crate::broker::partition::PartitionError;
use crate::broker::producer_state::ProducerLimits;
use crate::broker::replica::{
    AppendFuture, Appended, Commit, Leader, Offsets, PlannedRead, Progress, Replica, TimestampQuery, find_record,
};
use crate::broker::topic_config::EffectiveTopicConfig;
use crate::cluster::runtime::hand_off::hand_off_target;
use crate::log::batch::{self, BatchHeader};
use crate::log::{Flusher, LogError, ReadPlan};
use crate::raft::log_store::{PartitionRaftLog, RaftLogError, RaftLogStore};
use crate::raft::partition_state::PartitionStateMachine;
use crate::raft::replica_state::{Checked, ReplicaState};
use crate::raft::{AppendBatches, CommittedLeaderId, NodeId, Term, TypeConfig, WriteCallback};
use openraft::Instant as _;
use openraft::raft::ClientWriteResult;

/// A leader's last quorum acknowledgement older than this is renewed before a proposal
/// (half of openraft's lease, `election_timeout_max`: room for the proposal's wait in
/// openraft's queue).
const LEASE_RENEW_AFTER: Duration = Duration::from_millis(crate::cluster::runtime::PARTITION_LEASE_MS / 2);
/// Longest wait for that renewal.
const LEASE_RENEW_WITHIN: Duration = Duration::from_secs(2);

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
    /// The topic's effective config; replaced when its overrides change.
    config: std::sync::RwLock<EffectiveTopicConfig>,
    raft: PartitionRaft,
    state: Arc<ReplicaState>,
    /// Check + propose, one append at a time: the order of checks is the order of entries.
    proposing: tokio::sync::Mutex<()>,
    /// Follows leadership in the raft metrics (aborted on drop).
    follower: tokio::task::JoinHandle<()>,
    /// Appends this replica made as leader, and fetches it served.
    traffic: crate::metrics::PartitionTraffic,
    /// When each follower last held everything committed (the leader's ISR).
    caught_up: Arc<CaughtUp>,
    /// Triggers snapshots when segments below the log start can be purged (aborted on drop).
    purger: tokio::task::JoinHandle<()>,
    dir: std::path::PathBuf,
    /// Being removed: the cleaner leaves it alone.
    removed: std::sync::atomic::AtomicBool,
}

impl Drop for RaftReplica {
    fn drop(&mut self) {
        self.follower.abort();
        self.purger.abort();
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
        state.set_compacted(config.cleanup_compact);
        let machine = PartitionStateMachine::new(state.clone());
        let raft = Raft::new(node_id, raft_config, network, state.raft_store(), machine)
            .await
            .map_err(|e| RaftReplicaError::Raft { topic: topic.to_string(), index, message: e.to_string() })?;
        let caught_up = Arc::new(CaughtUp::default());
        let follower =
            tokio::spawn(follow_leadership(raft.metrics(), node_id, Arc::downgrade(&state), caught_up.clone()));
        let purger = tokio::spawn(log_start::purge_below_log_start(raft.clone(), Arc::downgrade(&state), node_id));
        Ok(Arc::new(RaftReplica {
            topic: topic.to_string(),
            index,
            node_id,
            config: std::sync::RwLock::new(config),
            raft,
            state,
            proposing: tokio::sync::Mutex::new(()),
            follower,
            traffic: crate::metrics::PartitionTraffic::default(),
            caught_up,
            purger,
            dir: dir.to_path_buf(),
            removed: std::sync::atomic::AtomicBool::new(false),
        }))
    }

    /// The raft node (membership, RPC entry points, shutdown).
    pub fn raft(&self) -> &PartitionRaft {
        &self.raft
    }

    /// On the leader: the leader and the followers that held everything committed within
    /// the last `lag` (Kafka's ISR, `replica.lag.time.max.ms`; see [`CaughtUp`]); `None` on
    /// a follower, which does not know.
    pub fn in_sync_replicas(&self, lag: Duration) -> Option<Vec<i32>> {
        let m = self.raft.metrics();
        let m = m.borrow_watched();
        if m.state != ServerState::Leader || m.current_leader != Some(self.node_id) {
            return None;
        }
        let now = Instant::now();
        observe_followers(&self.caught_up, &m, now);
        let voters: Vec<NodeId> =
            m.membership_config.membership().voter_ids().filter(|id| *id != self.node_id).collect();
        let followers = self.caught_up.in_sync(m.current_term.0, &voters, lag, now);
        let mut isr: Vec<i32> = i32::try_from(self.node_id).ok().into_iter().collect();
        isr.extend(followers.into_iter().filter_map(|id| i32::try_from(id).ok()));
        Some(isr)
    }

    /// [`Replica::held_by`]: waits on the raft metrics until the leader and enough voters
    /// have matched the commit index seen first (at least the caller's entry).
    async fn wait_held_by(&self, replicas: usize) -> Result<(), PartitionError> {
        let mut metrics = self.raft.metrics();
        let mut target = None;
        loop {
            {
                let m = metrics.borrow_watched();
                if m.state != ServerState::Leader || m.current_leader != Some(self.node_id) {
                    return Err(PartitionError::Rejected(kafka_protocol::ResponseError::NotLeaderOrFollower));
                }
                let target = *target.get_or_insert(m.local_committed.map(|l| l.index));
                let voters: Vec<NodeId> = m.membership_config.membership().voter_ids().collect();
                let held = 1 + m
                    .replication
                    .iter()
                    .flatten()
                    .filter(|(id, matched)| {
                        **id != self.node_id && voters.contains(id) && matched.map(|l| l.index) >= target
                    })
                    .count();
                if held >= replicas {
                    return Ok(());
                }
                if voters.len() < replicas {
                    // Fewer replicas than asked for: never (Kafka refuses such writes too).
                    return Err(PartitionError::NotEnoughReplicas { held, required: replicas, after_append: true });
                }
            }
            metrics.changed().await.map_err(|e| PartitionError::RaftStopped(e.to_string()))?;
        }
    }

    /// Makes sure openraft will take a proposal: a leader whose last quorum acknowledgement
    /// is older than its lease (`election_timeout_max`) refuses writes, and a quiesced
    /// group sends nothing by itself, so after [`LEASE_RENEW_AFTER`] without one a
    /// heartbeat renews it first (one round trip). A leader no quorum answers within
    /// [`LEASE_RENEW_WITHIN`] cannot take writes: NOT_LEADER_OR_FOLLOWER (retriable).
    pub async fn renew_lease(&self) -> Result<(), PartitionError> {
        let not_leader = || PartitionError::Rejected(kafka_protocol::ResponseError::NotLeaderOrFollower);
        let fresh = |m: &RaftMetrics<TypeConfig>| {
            m.membership_config.membership().voter_ids().count() <= 1
                || m.last_quorum_acked.as_ref().is_some_and(|at| at.elapsed() < LEASE_RENEW_AFTER)
        };
        if fresh(&self.raft.metrics().borrow_watched()) {
            return Ok(());
        }
        self.raft.trigger().heartbeat().await.map_err(|e| PartitionError::RaftStopped(e.to_string()))?;
        let deadline = tokio::time::Instant::now() + LEASE_RENEW_WITHIN;
        let mut metrics = self.raft.metrics();
        loop {
            {
                let m = metrics.borrow_watched();
                if m.state != ServerState::Leader || m.current_leader != Some(self.node_id) {
                    return Err(not_leader());
                }
                if fresh(&m) {
                    return Ok(());
                }
            }
            // Metrics are published as raft's state changes; the poll covers a renewal
            // published with nothing else changing.
            tokio::select! {
                changed = metrics.changed() => changed.map_err(|e| PartitionError::RaftStopped(e.to_string()))?,
                () = tokio::time::sleep(Duration::from_millis(10)) => {}
                () = tokio::time::sleep_until(deadline) => return Err(not_leader()),
            }
        }
    }

    /// The responder of a proposal of `term`: on a refusal (run by openraft's core, before
    /// it handles later proposals) the term is given up ([`ReplicaState::refused`]) and the
    /// leadership moves to the follower holding the most of the log, so a new term starts.
    fn on_refusal(&self, term: Term) -> WriteCallback<ClientWriteResult<TypeConfig>> {
        let state = Arc::downgrade(&self.state);
        let raft = self.raft.clone();
        let (me, topic, index) = (self.node_id, self.topic.clone(), self.index);
        WriteCallback::new(move |result: ClientWriteResult<TypeConfig>| {
            let Err(refusal) = result else { return };
            let Some(state) = state.upgrade() else { return };
            state.refused(term);
            tracing::warn!(
                topic, partition = index, term = term.0, error = %refusal,
                "raft refused a proposal while this broker leads: giving the term up, moving the leadership"
            );
            tokio::spawn(async move {
                let target = hand_off_target(&raft.metrics().borrow_watched(), me, |_| true);
                if let Some(to) = target {
                    let _ = raft.trigger().transfer_leader(to).await;
                }
            });
        })
    }

    /// Runs with `config` from now on (the topic's overrides changed): new appends and the
    /// log's segment settings follow it.
    pub fn set_config(&self, config: EffectiveTopicConfig) -> Result<(), PartitionError> {
        self.state.log()?.set_log_config(config.log.clone());
        self.state.set_compacted(config.cleanup_compact);
        *self.config.write().map_err(|_poisoned| PartitionError::Poisoned)? = config;
        Ok(())
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

    /// Stamps LogAppendTime into a copy of `data` when the topic asks for it (`log_append_time`).
    fn stamp(
        data: Bytes,
        headers: &[BatchHeader],
        now_ms: i64,
        log_append_time: bool,
    ) -> Result<Bytes, PartitionError> {
        if !log_append_time {
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
        let stamped = self.config()?.log_append_time;
        let data = Self::stamp(data, headers, now_ms, stamped)?;
        let data_len = data.len();
        let log_append_time = if stamped { now_ms } else { -1 };
        let ordered = self.proposing.lock().await;
        let term =
            self.leading_term().ok_or(PartitionError::Rejected(kafka_protocol::ResponseError::NotLeaderOrFollower))?;
        self.renew_lease().await?;
        let placed = match self.state.check(term, headers, &data, now_ms, limits)? {
            Checked::Duplicate(placed) => {
                return self.appended(placed.base_offset, placed.end_offset, placed.losses, -1, true);
            }
            Checked::Propose(placed) => placed,
        };
        // Dropped before the send completes (the request went away while openraft's
        // queue was full), the proposal is undone; declared after `ordered`, so it runs
        // while the proposal lock is still held.
        let mut unsent = Unsent { state: &self.state, term: Some(term) };
        let sent = self
            .raft
            .write(AppendBatches(data))
            .with_leader(CommittedLeaderId::new(term))
            .responder(self.on_refusal(term))
            .await;
        if let Err(fatal) = sent {
            return Err(PartitionError::RaftStopped(fatal.to_string()));
        }
        unsent.term = None;
        drop(unsent);
        drop(ordered);
        // Resolved by the store's write, or failed when this node stops leading the term.
        let placed = placed.await.map_err(|_closed| PartitionError::RaftStopped("replica state dropped".into()))??;
        if !headers.iter().all(BatchHeader::is_control) {
            // A log-start entry is not traffic.
            self.traffic.appended(data_len, headers.iter().map(|h| u64::try_from(h.records_count).unwrap_or(0)).sum());
        }
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
    caught_up: Arc<CaughtUp>,
) {
    loop {
        let leading = {
            let m = metrics.borrow_and_update();
            let leading =
                (m.state == ServerState::Leader && m.current_leader == Some(node_id)).then_some(m.current_term);
            if leading.is_some() {
                observe_followers(&caught_up, &m, Instant::now());
            }
            leading
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

/// Records, on the leader, which followers hold everything committed as of `m`.
fn observe_followers(caught_up: &CaughtUp, m: &RaftMetrics<TypeConfig>, now: Instant) {
    let committed = m.cluster_committed.map(|c| c.index);
    let followers = m.replication.iter().flatten().map(|(id, matched)| (*id, matched.map(|l| l.index)));
    caught_up.observe(m.current_term.0, committed, followers, now);
}

impl Replica for RaftReplica {
    fn topic(&self) -> &str {
        &self.topic
    }

    fn begin_txn_verification(&self, producer_id: i64, epoch: i16, now_ms: i64) -> Result<Option<u64>, PartitionError> {
        let term =
            self.leading_term().ok_or(PartitionError::Rejected(kafka_protocol::ResponseError::NotLeaderOrFollower))?;
        self.state.begin_txn_verification(term, producer_id, epoch, now_ms)
    }

    fn end_txn_verification(&self, producer_id: i64, guard: u64) {
        self.state.end_txn_verification(producer_id, guard);
    }

    fn index(&self) -> i32 {
        self.index
    }

    fn config(&self) -> Result<EffectiveTopicConfig, PartitionError> {
        self.config.read().map(|c| c.clone()).map_err(|_poisoned| PartitionError::Poisoned)
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
        let last_stable = self.state.last_stable_offset()?;
        let log = self.state.log()?;
        let offsets =
            Offsets::new(log.log().log_start_offset(), self.state.high_watermark(), log.log().log_end_offset());
        Ok(offsets.with_last_stable(last_stable))
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

    fn held_by(&self, replicas: usize) -> futures::future::BoxFuture<'_, Result<(), PartitionError>> {
        Box::pin(self.wait_held_by(replicas))
    }

    fn plan_read_isolated(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one: bool,
        isolation: crate::broker::replica::Isolation,
    ) -> Result<PlannedRead, PartitionError> {
        // Before the log lock (the replica state's lock comes first).
        let last_stable = self.state.last_stable_offset()?;
        let log = self.state.log()?;
        let log = log.log();
        // Read under the log lock: the high watermark never passes what the log holds.
        let high_watermark = self.state.high_watermark();
        let (log_start_offset, log_end) = (log.log_start_offset(), log.log_end_offset());
        if offset < log_start_offset || offset > log_end {
            return Err(LogError::OffsetOutOfRange { offset, log_start: log_start_offset, log_end }.into());
        }
        let upper = isolation.upper_bound(high_watermark, last_stable);
        if offset >= upper {
            // Written here but not committed (or not stable): the fetch waits for the
            // high watermark.
            let empty = PlannedRead::files(ReadPlan::default(), high_watermark, log_start_offset);
            return Ok(empty.with_last_stable(last_stable));
        }
        let plan = log.plan_read(offset, max_bytes, upper, min_one)?;
        Ok(PlannedRead::files(plan, high_watermark, log_start_offset).with_last_stable(last_stable))
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

    /// Blocks the calling thread (the handlers' blocking pool) until the log-start entry
    /// is committed ([`RaftReplica::move_log_start`]).
    fn delete_records(&self, offset: i64, timeout: Duration) -> Result<i64, PartitionError> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_outside| PartitionError::Unsupported("DeleteRecords outside the broker's runtime"))?;
        runtime.block_on(async {
            tokio::time::timeout(timeout, self.move_log_start(offset))
                .await
                .unwrap_or(Err(PartitionError::Rejected(kafka_protocol::ResponseError::RequestTimedOut)))
        })
    }

    fn size_bytes(&self) -> Result<u64, PartitionError> {
        Ok(self.state.log()?.log().size_bytes())
    }

    fn aborted_transactions(&self, from: i64, upper: i64) -> Result<Vec<crate::log::txn::AbortedTxn>, PartitionError> {
        Ok(self.state.log()?.log().aborted_txns(from, upper)?)
    }

    fn traffic(&self) -> Option<&crate::metrics::PartitionTraffic> {
        Some(&self.traffic)
    }

    fn compactable(&self) -> Option<&dyn crate::broker::log_cleaner::Compactable> {
        Some(self)
    }
}

mod compaction;
mod log_start;

#[cfg(test)]
#[path = "raft_replica_tests.rs"]
pub(crate) mod tests;
