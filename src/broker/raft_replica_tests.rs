//! Raft replicas of one partition on an in-memory network (`raft::test_router`): election,
//! commits, identical logs, refusal on followers, an isolated leader whose append is never
//! acknowledged, idempotent retries across a leader change, and restart with an
//! uncommitted tail.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::records::{Compression, RecordBatchDecoder};
use openraft::{Config, SnapshotPolicy};
use tempfile::TempDir;

use super::{RaftReplica, ReplicaAt};
use crate::broker::partition::PartitionError;
use crate::broker::producer_state::{ProducerIdGate, ProducerLimits};
use crate::broker::replica::{Appended, Leader, Replica};
use crate::broker::topic_config::EffectiveTopicConfig;
use crate::log::test_util::producer_batch;
use crate::log::validate_produced_batches;
use crate::raft::test_router::Router;
use crate::raft::{JetNode, NodeId};

const WAIT: Duration = Duration::from_secs(20);

fn topic_config() -> EffectiveTopicConfig {
    EffectiveTopicConfig { max_message_bytes: 1 << 20, ..Default::default() }
}

fn raft_config() -> Arc<Config> {
    let config = Config {
        // Wide enough that a loaded test machine does not see spurious elections.
        heartbeat_interval: 100,
        election_timeout_min: 800,
        election_timeout_max: 1_600,
        snapshot_policy: SnapshotPolicy::Never,
        ..Default::default()
    };
    Arc::new(config.validate().expect("valid raft config"))
}

/// Polls `f` until it answers, failing the test after [`WAIT`].
async fn wait_until<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `n` records of `value_len`-byte values (tests tell batches apart by it).
fn records(n: usize, value_len: usize, producer: (i64, i16, i32)) -> Vec<u8> {
    producer_batch(n, crate::broker::now_ms(), value_len, Compression::None, producer)
}

async fn append(r: &RaftReplica, batch: Vec<u8>) -> Result<Appended, PartitionError> {
    let headers = validate_produced_batches(&batch, 1 << 20).expect("valid batch");
    let gate = ProducerIdGate::unlimited();
    let limits = ProducerLimits {
        per_partition: usize::MAX,
        gate: &gate,
        txn: crate::broker::txn_verification::TxnVerification::Off,
    };
    r.append(Bytes::from(batch), &headers, crate::broker::now_ms(), limits).await
}

/// Appends and waits for the commit.
async fn append_committed(r: &RaftReplica, batch: Vec<u8>) -> Appended {
    let mut appended = append(r, batch).await.expect("append on the leader");
    if let Some(commit) = appended.commit.take() {
        tokio::time::timeout(WAIT, commit.wait()).await.expect("commit in time").expect("committed");
    }
    appended
}

/// The bytes of `r`'s log below its high watermark, and the `(offset, value length)` of
/// every record a consumer sees in them (control batches skipped).
fn committed(r: &RaftReplica) -> (Bytes, Vec<(i64, usize)>) {
    let hw = r.high_watermark();
    let bytes = r.state.log().expect("log").log().read(0, usize::MAX, hw, true).expect("read");
    let mut visible = Vec::new();
    let mut buf = bytes.clone();
    while !buf.is_empty() {
        let set = RecordBatchDecoder::decode(&mut buf).expect("decode");
        for rec in set.records.iter().filter(|rec| !rec.control) {
            visible.push((rec.offset, rec.value.as_ref().map_or(0, |v| v.len())));
        }
    }
    (bytes, visible)
}

/// Three replicas of partition `t`-0 on an in-memory network (handler tests use it too).
pub(crate) struct Cluster {
    router: Arc<Router>,
    dirs: BTreeMap<NodeId, TempDir>,
    replicas: BTreeMap<NodeId, Arc<RaftReplica>>,
}

async fn start_replica(router: &Arc<Router>, id: NodeId, dir: &Path) -> Arc<RaftReplica> {
    let at = ReplicaAt { topic: "t", index: 0, node_id: id, dir };
    let replica =
        RaftReplica::start(at, topic_config(), raft_config(), router.network(id), None).await.expect("start replica");
    router.add(id, replica.raft().clone());
    replica
}

impl Cluster {
    /// Replicas 1, 2 and 3 of one group, initialized on 1.
    pub(crate) async fn three() -> Cluster {
        let router = Router::new();
        let mut cluster = Cluster { router, dirs: BTreeMap::new(), replicas: BTreeMap::new() };
        for id in [1, 2, 3] {
            let dir = tempfile::tempdir().expect("temp dir");
            cluster.replicas.insert(id, start_replica(&cluster.router, id, dir.path()).await);
            cluster.dirs.insert(id, dir);
        }
        let members: BTreeMap<NodeId, JetNode> = [1, 2, 3].into_iter().map(|id| (id, JetNode::default())).collect();
        cluster.replicas[&1].raft().initialize(members).await.expect("initialize");
        cluster
    }

    pub(crate) fn replica(&self, id: NodeId) -> &Arc<RaftReplica> {
        &self.replicas[&id]
    }

    /// Waits until one of `among` leads and the others of `among` name it.
    pub(crate) async fn leader(&self, among: &[NodeId]) -> NodeId {
        wait_until("a leader named by its peers", || {
            let leaders: Vec<NodeId> =
                among.iter().copied().filter(|id| self.replica(*id).leader() == Leader::ThisBroker).collect();
            let [leader] = leaders[..] else { return None };
            let named = Leader::Broker(i32::try_from(leader).expect("small id"));
            among.iter().filter(|id| **id != leader).all(|id| self.replica(*id).leader() == named).then_some(leader)
        })
        .await
    }

    /// Waits until every replica in `among` has committed up to `end`.
    async fn committed_everywhere(&self, among: &[NodeId], end: i64) {
        wait_until("every replica's high watermark at the end", || {
            among.iter().all(|id| self.replica(*id).high_watermark() >= end).then_some(())
        })
        .await;
    }

    /// Stops replica `id` and starts it again on its directory.
    async fn restart(&mut self, id: NodeId) {
        let old = self.replicas.remove(&id).expect("replica");
        old.raft().shutdown().await.expect("shutdown");
        self.router.remove(id);
        drop(old);
        let replica = start_replica(&self.router, id, self.dirs[&id].path()).await;
        self.replicas.insert(id, replica);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_elect_a_leader_commit_appends_and_hold_identical_logs() {
    let cluster = Cluster::three().await;
    let leader_id = cluster.leader(&[1, 2, 3]).await;
    let leader = cluster.replica(leader_id);
    let mut bases = Vec::new();
    for n in [3, 1, 4] {
        let appended = append_committed(leader, records(n, 10, (-1, -1, -1))).await;
        assert!(!appended.duplicate);
        bases.push((appended.base_offset, n as i64));
    }
    // Offsets follow each other (raft's own entries before them take an offset each).
    for pair in bases.windows(2) {
        assert_eq!(pair[1].0, pair[0].0 + pair[0].1, "contiguous base offsets: {bases:?}");
    }
    let end = bases[2].0 + bases[2].1;
    assert_eq!(leader.offsets().expect("offsets").log_end, end);
    cluster.committed_everywhere(&[1, 2, 3], end).await;
    let (_, visible) = committed(leader);
    let offsets: Vec<i64> = visible.iter().map(|v| v.0).collect();
    assert_eq!(offsets, (bases[0].0..end).collect::<Vec<_>>(), "consumers see exactly the appended records");
    // An empty append is refused before it reaches openraft (whose store would fail).
    let gate = ProducerIdGate::unlimited();
    let limits = ProducerLimits {
        per_partition: usize::MAX,
        gate: &gate,
        txn: crate::broker::txn_verification::TxnVerification::Off,
    };
    assert!(leader.append(Bytes::new(), &[], crate::broker::now_ms(), limits).await.is_err());
    let more = append_committed(leader, records(1, 10, (-1, -1, -1))).await;
    assert_eq!(more.base_offset, end, "the group still takes appends");
    let end = end + 1;
    cluster.committed_everywhere(&[1, 2, 3], end).await;
    let (leader_bytes, _) = committed(leader);
    for id in [1, 2, 3] {
        assert_eq!(cluster.replica(id).high_watermark(), end);
        assert_eq!(committed(cluster.replica(id)).0, leader_bytes, "replica {id}'s log matches the leader's");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_refuses_appends_and_names_the_leader() {
    let cluster = Cluster::three().await;
    let leader_id = cluster.leader(&[1, 2, 3]).await;
    let epoch = cluster.replica(leader_id).leader_epoch();
    assert!(epoch > 0, "the epoch is the raft term");
    for id in [1, 2, 3].into_iter().filter(|id| *id != leader_id) {
        let follower = cluster.replica(id);
        assert_eq!(follower.leader(), Leader::Broker(leader_id as i32));
        assert_eq!(follower.leader_epoch(), epoch);
        let refused = tokio::time::timeout(WAIT, append(follower, records(1, 10, (-1, -1, -1))))
            .await
            .expect("answered")
            .expect_err("refused on a follower");
        assert_eq!(refused.code(), ResponseError::NotLeaderOrFollower);
        assert_eq!(
            follower.offsets().expect("offsets").log_end,
            cluster.replica(leader_id).offsets().expect("o").log_end
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_isolated_leaders_append_is_never_acknowledged_and_the_majority_goes_on() {
    let cluster = Cluster::three().await;
    let old_id = cluster.leader(&[1, 2, 3]).await;
    let old = cluster.replica(old_id);
    let first = append_committed(old, records(2, 10, (-1, -1, -1))).await;
    let committed_end = first.base_offset + 2;
    cluster.committed_everywhere(&[1, 2, 3], committed_end).await;

    cluster.router.isolate(old_id);
    // Accepted (written to the old leader's own log: what acks=1 answers), never committed.
    let lost = append(old, records(3, 77, (-1, -1, -1))).await.expect("the cut-off leader still appends");
    let lost_commit = lost.commit.expect("not committed yet");
    let waiting = tokio::spawn(lost_commit.clone().wait());

    let others: Vec<NodeId> = [1, 2, 3].into_iter().filter(|id| *id != old_id).collect();
    let new_id = cluster.leader(&others).await;
    let new = cluster.replica(new_id);
    let after = append_committed(new, records(4, 20, (-1, -1, -1))).await;
    assert!(!lost_commit.is_committed(), "the isolated leader cannot commit");
    assert_eq!(old.high_watermark(), committed_end, "nothing past the committed point is visible on the old leader");

    cluster.router.heal(old_id);
    let outcome = tokio::time::timeout(WAIT, waiting).await.expect("decided in time").expect("task");
    let e = outcome.expect_err("the lost append is never acknowledged");
    assert_eq!(e.code(), ResponseError::NotLeaderOrFollower);

    let end = after.base_offset + 4;
    cluster.committed_everywhere(&[1, 2, 3], end).await;
    let (reference, _) = committed(new);
    for id in [1, 2, 3] {
        let (bytes, visible) = committed(cluster.replica(id));
        assert_eq!(bytes, reference, "replica {id} holds the new leader's log");
        assert!(visible.iter().all(|v| v.1 != 77), "the lost records are visible nowhere (replica {id})");
        assert_eq!(visible.iter().filter(|v| v.1 == 20).count(), 4);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_batch_is_deduplicated_by_the_next_leader() {
    let cluster = Cluster::three().await;
    let old_id = cluster.leader(&[1, 2, 3]).await;
    let producer = (7, 0, 0);
    let original = append_committed(cluster.replica(old_id), records(3, 10, producer)).await;
    cluster.committed_everywhere(&[1, 2, 3], original.base_offset + 3).await;

    // The producer's answer was lost; it retries on the next leader.
    cluster.router.isolate(old_id);
    let others: Vec<NodeId> = [1, 2, 3].into_iter().filter(|id| *id != old_id).collect();
    let new_id = cluster.leader(&others).await;
    let new = cluster.replica(new_id);
    let retry = append(new, records(3, 10, producer)).await.expect("a retry is answered");
    assert!(retry.duplicate, "deduplicated");
    assert_eq!(retry.base_offset, original.base_offset, "answered with the original offsets");
    let log_end = new.offsets().expect("offsets").log_end;
    // The producer's next batches go on from its sequence, pipelined.
    let next = append(new, records(2, 10, (7, 0, 3))).await.expect("next in sequence");
    let after = append(new, records(2, 10, (7, 0, 5))).await.expect("pipelined after it");
    assert_eq!((next.base_offset, after.base_offset), (log_end, log_end + 2));
    let gap = append(new, records(1, 10, (7, 0, 10))).await.expect_err("a gap is refused");
    assert_eq!(gap.code(), ResponseError::OutOfOrderSequenceNumber);
    let after_commit = after.commit.expect("commit").wait();
    tokio::time::timeout(WAIT, after_commit).await.expect("in time").expect("committed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_replica_with_an_uncommitted_tail_starts_at_the_committed_point() {
    let mut cluster = Cluster::three().await;
    let old_id = cluster.leader(&[1, 2, 3]).await;
    let first = append_committed(cluster.replica(old_id), records(2, 10, (-1, -1, -1))).await;
    let committed_end = first.base_offset + 2;
    cluster.committed_everywhere(&[1, 2, 3], committed_end).await;

    cluster.router.isolate(old_id);
    append(cluster.replica(old_id), records(3, 77, (-1, -1, -1))).await.expect("written, never committed");
    let tail_end = cluster.replica(old_id).offsets().expect("offsets").log_end;
    assert_eq!(tail_end, committed_end + 3);

    cluster.restart(old_id).await;
    let restarted = cluster.replica(old_id);
    let offsets = restarted.offsets().expect("offsets");
    assert_eq!(offsets.log_end, tail_end, "the tail is still in the log");
    assert_eq!(offsets.high_watermark, committed_end, "but the high watermark is the committed point");
    assert!(committed(restarted).1.iter().all(|v| v.1 != 77), "the tail is not readable");
    let read = restarted.read(committed_end, usize::MAX, true).expect("read at the high watermark");
    assert!(read.records.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_batches_of_one_producer_are_checked_in_sequence() {
    let cluster = Cluster::three().await;
    let leader = cluster.replica(cluster.leader(&[1, 2, 3]).await);
    let first = append_committed(leader, records(3, 10, (9, 0, 0))).await;
    // Three batches in flight at once: each is checked against the ones before it,
    // which are proposed but not yet written.
    let (a, b, c) = tokio::join!(
        append(leader, records(3, 10, (9, 0, 3))),
        append(leader, records(3, 10, (9, 0, 6))),
        append(leader, records(3, 10, (9, 0, 9))),
    );
    let bases: Vec<i64> = [a, b, c].into_iter().map(|r| r.expect("in sequence").base_offset).collect();
    let start = first.base_offset + 3;
    assert_eq!(bases, vec![start, start + 3, start + 6], "written in the order they were checked");
    cluster.committed_everywhere(&[1, 2, 3], start + 9).await;
}
