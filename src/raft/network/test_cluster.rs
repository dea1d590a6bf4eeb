//! A cluster of brokers in one process for the transport's tests: each node is a
//! [`RaftTransport`] serving on its own 127.0.0.1 port and one `Raft<TypeConfig,
//! TestStateMachine>` per group over a [`RaftLogStore`] in a temp dir.

use std::collections::{BTreeMap, HashMap};
use std::io::Cursor;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::async_runtime::WatchReceiver;
use openraft::error::{ClientWriteError, ForwardReason, RaftError};
use openraft::{Config, Raft, ServerState};
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::{RaftTransport, TransportConfig};
use crate::log::test_util::batch;
use crate::log::{Flusher, LogConfig};
use crate::raft::log_store::{PartitionRaftLog, RaftLogStore};
use crate::raft::test_state_machine::TestStateMachine;
use crate::raft::{AppendBatches, Entry, GroupId, JetNode, LogId, NodeId, TypeConfig};

pub type TestRaft = Raft<TypeConfig, TestStateMachine>;

/// How long a test waits for any one condition before failing.
pub const WAIT: Duration = Duration::from_secs(20);

/// Polls `check` until it yields a value; panics naming `what` after `timeout`.
pub async fn wait_for<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Raft timing for tests: fast elections, ticks on (the broker-wide timer is a later step).
pub fn raft_config() -> Arc<Config> {
    raft_config_with_elections(500, 1000)
}

/// Raft timing with election timeouts between `min_ms` and `max_ms`.
pub fn raft_config_with_elections(min_ms: u64, max_ms: u64) -> Arc<Config> {
    let config = Config {
        cluster_name: "jet-transport-test".to_string(),
        heartbeat_interval: 100,
        election_timeout_min: min_ms,
        election_timeout_max: max_ms,
        ..Config::default()
    };
    Arc::new(config.validate().expect("valid raft config"))
}

/// One group's replica on a node.
pub struct Member {
    pub raft: TestRaft,
    pub store: RaftLogStore,
}

/// One broker.
pub struct TestNode {
    pub id: NodeId,
    pub addr: SocketAddr,
    pub transport: RaftTransport,
    pub members: HashMap<GroupId, Member>,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
}

/// Several brokers hosting the same groups.
pub struct TestCluster {
    pub dir: TempDir,
    pub nodes: BTreeMap<NodeId, TestNode>,
    pub groups: Vec<GroupId>,
    flusher: Flusher,
    config: Arc<Config>,
}

impl TestCluster {
    /// Starts nodes `1..=n`, each hosting every group (uninitialized).
    pub async fn start(n: u64, groups: Vec<GroupId>) -> TestCluster {
        TestCluster::start_with(n, groups, raft_config()).await
    }

    /// Like [`TestCluster::start`] with the given raft config.
    pub async fn start_with(n: u64, groups: Vec<GroupId>, config: Arc<Config>) -> TestCluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut cluster = TestCluster { dir, nodes: BTreeMap::new(), groups, flusher: Flusher::start(), config };
        let mut listeners = Vec::new();
        for id in 1..=n {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind raft listener");
            listeners.push((id, listener));
        }
        for (id, listener) in listeners {
            let node = cluster.start_node(id, listener).await;
            cluster.nodes.insert(id, node);
        }
        cluster
    }

    /// Every node as a raft member.
    pub fn members(&self) -> BTreeMap<NodeId, JetNode> {
        self.nodes.values().map(|n| (n.id, JetNode { raft_addr: n.addr.to_string(), ..JetNode::default() })).collect()
    }

    fn group_dir(&self, id: NodeId, group: &GroupId) -> PathBuf {
        self.dir.path().join(format!("node-{id}")).join(group.to_string())
    }

    async fn start_node(&self, id: NodeId, listener: TcpListener) -> TestNode {
        let addr = listener.local_addr().expect("listener address");
        let transport = RaftTransport::new(id, TransportConfig::default());
        let mut members = HashMap::new();
        for group in &self.groups {
            let dir = self.group_dir(id, group);
            std::fs::create_dir_all(&dir).expect("group dir");
            let log = PartitionRaftLog::open(&dir, LogConfig::default()).expect("open raft log");
            let store = RaftLogStore::with_flusher(log, self.flusher.clone());
            let network = transport.network::<Cursor<Vec<u8>>>(group.clone());
            let raft = Raft::new(id, self.config.clone(), network, store.clone(), TestStateMachine::default())
                .await
                .expect("start raft");
            transport.register(group.clone(), raft.clone());
            members.insert(group.clone(), Member { raft, store });
        }
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn({
            let transport = transport.clone();
            async move {
                transport
                    .serve(listener, async move {
                        let _ = stopped.await;
                    })
                    .await
            }
        });
        TestNode { id, addr, transport, members, stop: Some(stop), server: Some(server) }
    }

    pub fn node(&self, id: NodeId) -> &TestNode {
        self.nodes.get(&id).expect("node exists")
    }

    pub fn raft(&self, id: NodeId, group: &GroupId) -> &TestRaft {
        &self.node(id).members.get(group).expect("group hosted").raft
    }

    /// Initializes every group with all nodes as voters (from node 1).
    pub async fn initialize_all(&self) {
        let members = self.members();
        let first = *self.nodes.keys().next().expect("a node");
        for group in &self.groups {
            self.raft(first, group).initialize(members.clone()).await.expect("initialize group");
        }
    }

    /// Initializes group `i` from node `i mod n` (all nodes voters), so leadership spreads:
    /// the initializing node is the only candidate until the membership has replicated.
    pub async fn initialize_spread(&self) {
        let members = self.members();
        let ids = self.ids();
        for (i, group) in self.groups.iter().enumerate() {
            self.raft(ids[i % ids.len()], group).initialize(members.clone()).await.expect("initialize group");
        }
    }

    /// Waits until every node in `among` names the same leader, which is one of them and
    /// knows it leads; returns it.
    pub async fn wait_leader(&self, group: &GroupId, among: &[NodeId]) -> NodeId {
        wait_for(&format!("a leader of {group} among {among:?}"), WAIT, || {
            let leaders: Vec<Option<NodeId>> =
                among.iter().map(|id| self.raft(*id, group).metrics().borrow_watched().current_leader).collect();
            let leader = leaders[0]?;
            if !among.contains(&leader) || leaders.iter().any(|l| *l != Some(leader)) {
                return None;
            }
            let leads = self.raft(leader, group).metrics().borrow_watched().state == ServerState::Leader;
            leads.then_some(leader)
        })
        .await
    }

    /// Writes `count` entries of one small batch each through `leader`; their log ids.
    /// A leader whose quorum lease has lapsed (acknowledgements late on a loaded machine)
    /// refuses a write until its next heartbeat round is acknowledged; that is retried.
    pub async fn write(&self, group: &GroupId, leader: NodeId, count: usize) -> Vec<LogId> {
        let mut ids = Vec::new();
        for i in 0..count {
            let deadline = Instant::now() + WAIT;
            loop {
                let batches = AppendBatches(batch(1 + i % 3, 1_000 + i as i64).into());
                match self.raft(leader, group).client_write(batches).await {
                    Ok(written) => {
                        ids.push(written.log_id);
                        break;
                    }
                    Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f)))
                        if f.reason == ForwardReason::LeaseExpired && Instant::now() < deadline =>
                    {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    Err(e) => panic!("client_write on node {leader} for {group}: {e}"),
                }
            }
        }
        ids
    }

    /// The entries of `group` on node `id`.
    pub fn entries(&self, id: NodeId, group: &GroupId) -> Vec<Entry> {
        let member = self.node(id).members.get(group).expect("group hosted");
        member.store.lock().expect("store lock").entries(..).expect("read entries")
    }

    /// Waits until every node in `among` holds the same entries as `leader`, including
    /// `last`; returns them.
    pub async fn wait_same_log(&self, group: &GroupId, leader: NodeId, among: &[NodeId], last: LogId) -> Vec<Entry> {
        wait_for(&format!("{group}'s log through {last} on {among:?}"), WAIT, || {
            let expected = self.entries(leader, group);
            let complete = expected.iter().any(|e| e.log_id == last);
            let same = among.iter().all(|id| self.entries(*id, group) == expected);
            (complete && same).then_some(expected)
        })
        .await
    }

    /// Stops node `id` as a crash would look to its peers: its raft instances stop, its
    /// server closes every connection, its outbound connections close.
    pub async fn stop_node(&mut self, id: NodeId) {
        let node = self.nodes.get_mut(&id).expect("node exists");
        for member in node.members.values() {
            member.raft.shutdown().await.expect("raft shutdown");
        }
        if let Some(stop) = node.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = node.server.take() {
            server.await.expect("server task");
        }
        node.transport.close();
        node.members.clear();
    }

    /// Starts node `id` again on its old address and data.
    pub async fn restart_node(&mut self, id: NodeId) {
        let addr = self.node(id).addr;
        let listener = TcpListener::bind(addr).await.expect("bind the old address again");
        let node = self.start_node(id, listener).await;
        self.nodes.insert(id, node);
    }

    /// Node ids other than `id`.
    pub fn others(&self, id: NodeId) -> Vec<NodeId> {
        self.nodes.keys().copied().filter(|n| *n != id).collect()
    }

    pub fn ids(&self) -> Vec<NodeId> {
        self.nodes.keys().copied().collect()
    }
}
