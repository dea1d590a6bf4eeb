//! The replicated side of a broker in a cluster: the raft transport, this broker's member
//! of the controller group, and one raft replica per partition the metadata image places
//! here. Started after gossip when gossip is on ([`ClusterRuntime::start`]); a broker
//! without gossip is a single node and never builds one.
//!
//! # Flow
//!
//! - **Bootstrap** ([`bootstrap`]): once `--bootstrap-expect` brokers are in the gossip
//!   view, the one with the lowest node id initializes the controller group with them as
//!   voters (a group that already has a membership is left alone, so restarts are
//!   harmless). The controller's leader adds every other live broker as a learner, so
//!   every broker applies the metadata log and holds the same image.
//! - **Admin** ([`admin`]): CreateTopics, auto-creation and DeleteTopics on any broker
//!   reach the controller: proposed there, forwarded to it (over the Kafka protocol, as
//!   Kafka's KIP-590 forwarding does) from elsewhere. The answer waits until the proposing
//!   broker's own registry shows the change, so a client's next Metadata sees it.
//! - **Reconcile** ([`reconcile`]): a task follows the image and makes the topic registry
//!   match it: a [`RaftReplica`] for each partition with a replica here (the preferred
//!   leader initializes a new group's membership), a [`RemoteReplica`] for the others.
//!   Replicated partitions live under `<data>/raft/<topic>-<n>`, apart from a single
//!   node's partitions, whose start-up clean-up would take them for orphans.
//! - **Elections** ([`elections`]): partition groups have no raft timers (quiescent: an
//!   idle partition sends nothing); this broker campaigns for the groups whose leader left
//!   the gossip view or whose raft connection closed, and heartbeats the groups it leads to
//!   a broker that comes back. A leader renews its lease before a write after an idle
//!   spell ([`RaftReplica`]).
//!
//! - **Moves** ([`reassign`]): AlterPartitionReassignments adds and removes a partition's
//!   replicas through raft membership changes driven by its leader.
//! - **Producer ids** ([`producer_ids`]): blocks allocated by the controller, so ids are
//!   unique across the cluster.
//!
//! - **Preferred leaders** ([`rebalance`]): leadership moves back to a partition's first
//!   replica once it is live and in sync (`auto.leader.rebalance.enable`).
//!
//! - **Topic changes** ([`topic_changes`]): CreatePartitions and config changes of
//!   replicated topics go through the controller like creation.
//!
//! - **Retention** ([`retention`]): leaders move the log start of the partitions they
//!   lead through raft; segments below it go when raft purges them.
//!
//! # Not yet
//!
//! Compaction of replicated topics (`cleanup.policy=compact`): the cleaner rewrites only
//! single-node partitions; a replicated compacted topic keeps every record.
//!
//! # Stopping
//!
//! On SIGTERM the broker first hands the leadership of what it leads to live followers
//! ([`hand_off`]), then stops its raft members ([`ClusterRuntime::shutdown`]).

pub mod admin;
mod bootstrap;
mod elections;
pub mod hand_off;
mod producer_ids;
mod reassign;
mod rebalance;
mod reconcile;
pub mod remote;
mod retention;
mod topic_changes;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use openraft::async_runtime::watch::WatchReceiver;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::broker::Broker;
use crate::broker::raft_replica::RaftReplica;
use crate::broker::replica::Replica;
use crate::cluster::controller::{self, Controller, ControllerError};
use crate::cluster::directory::BrokerDirectory;
use crate::cluster::gossip::BrokerIdentity;
use crate::cluster::read_replica::{self, ReplicaInfo, ReplicaSelector};
use crate::raft::network::{RaftTransport, TransportConfig};
use crate::raft::{JetNode, NodeId};
pub use remote::RemoteReplica;

/// The directory under the data directory that holds replicated partitions.
pub const RAFT_DIR: &str = "raft";

/// Why the cluster side of a broker did not start.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("cannot bind the raft listener {addr}: {source}")]
    Bind { addr: String, source: std::io::Error },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("controller: {0}")]
    Controller(#[from] ControllerError),
    #[error("raft configuration: {0}")]
    RaftConfig(#[from] openraft::ConfigError),
}

/// Raft timings of the controller group (partition groups: [`partition_raft_config`]): a
/// follower that hears nothing for 0.5–1 s campaigns, so a leader's failure is repaired in
/// about two of those (a vote is refused while the voter's own lease on the old leader
/// runs).
///
/// Pre-vote is on: a broker that restarts (or returns from a network cut) and times out
/// before its leader reaches it asks first whether it could win, without raising its term,
/// so it cannot depose a healthy leader (without it, a restarted broker took the
/// controller away from its leader, and Metadata named no controller meanwhile).
pub fn raft_config() -> Result<Arc<openraft::Config>, openraft::ConfigError> {
    let config = openraft::Config {
        cluster_name: "jet".into(),
        heartbeat_interval: 100,
        election_timeout_min: 500,
        election_timeout_max: 1_000,
        enable_pre_vote: Some(true),
        // openraft never snapshots on its own: the segment files are the log consumers
        // read, so a replica snapshots (and raft purges) only what lies below its log start.
        snapshot_policy: openraft::SnapshotPolicy::Never,
        ..Default::default()
    };
    Ok(Arc::new(config.validate()?))
}

/// Partition groups' leader lease (openraft's `election_timeout_max`), in ms.
pub const PARTITION_LEASE_MS: u64 = 500;

/// openraft's `install_snapshot_timeout` for partition groups (see [`partition_raft_config`]).
const INSTALL_SNAPSHOT_TIMEOUT_MS: u64 = 30_000;

/// [`raft_config`] for partition groups: no timers (`enable_tick = false`). An idle group
/// then costs nothing; elections and catch-up heartbeats come from the broker-wide
/// [`elections`] task, driven by the gossip view and raft connections. Their lease is
/// [`PARTITION_LEASE_MS`]: after a leader's SIGKILL it is what the election waits for, 0.62 s
/// to the next acknowledged write in `tests/cluster_replication.rs` (1.05 s with 1 s).
pub fn partition_raft_config() -> Result<Arc<openraft::Config>, openraft::ConfigError> {
    let mut config = Arc::unwrap_or_clone(raft_config()?);
    config.enable_tick = false;
    // A follower refuses votes while its lease on the leader (`election_timeout_max`) runs:
    // after a leader's SIGKILL that lease, not failure detection (its connections close at
    // once), bounds the election. Without ticks the timeouts time nothing else here.
    config.election_timeout_min = PARTITION_LEASE_MS / 2;
    config.election_timeout_max = PARTITION_LEASE_MS;
    // A snapshot (triggered by the replica, never by openraft) covers exactly the
    // entries of segments below the log start: all of them may go.
    config.max_in_snapshot_log_to_keep = 0;
    // Each call of a snapshot's transfer (a chunk of a compacted log's retained data, the
    // snapshot itself: installing it checks that data) may take this long.
    config.install_snapshot_timeout = INSTALL_SNAPSHOT_TIMEOUT_MS;
    Ok(Arc::new(config.validate()?))
}

/// Replicas, in-sync replicas and offline replicas of a partition, as Metadata names them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartitionNodes {
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub offline: Vec<i32>,
}

/// The replicas hosted on one broker, by what they are doing ([`ClusterRuntime::replica_counts`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplicaCounts {
    /// Replicas of replicated partitions on this broker.
    pub hosted: usize,
    /// Of those, the ones this broker leads.
    pub leading: usize,
    /// Led here with fewer in-sync replicas than assigned ones (Kafka UnderReplicatedPartitions).
    pub under_replicated: usize,
    /// Hosted here with no leader known (an election running, or no quorum).
    pub leaderless: usize,
    /// Raft requests this broker's transport received, ever.
    pub raft_requests_received: u64,
}

/// A replicated topic this broker follows.
struct TopicState {
    id: uuid::Uuid,
    assignments: Vec<Vec<i32>>,
    /// The topic's config overrides the replicas run with.
    configs: BTreeMap<String, String>,
    /// The raft replicas hosted here, by partition.
    hosted: BTreeMap<i32, Arc<RaftReplica>>,
}

/// The cluster side of one broker.
pub struct ClusterRuntime {
    node_id: NodeId,
    transport: RaftTransport,
    controller: Controller,
    /// The partition groups' ([`partition_raft_config`]).
    partition_raft_config: Arc<openraft::Config>,
    directory: Arc<BrokerDirectory>,
    raft_dir: PathBuf,
    broker: Weak<Broker>,
    topics: Mutex<HashMap<String, TopicState>>,
    /// `replica.lag.time.max.ms`: how long a follower stays in sync without catching up.
    replica_lag: std::time::Duration,
    /// `applied_records` of the last image the registry was made to match.
    reconciled: watch::Sender<u64>,
    shutdown: watch::Sender<bool>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// What is left of this broker's block of producer ids ([`producer_ids`]).
    producer_ids: Mutex<std::ops::Range<i64>>,
    /// Partitions a move step runs for ([`reassign`]).
    moving: Mutex<std::collections::HashSet<(String, i32)>>,
}

impl ClusterRuntime {
    /// Binds the raft listener, opens the controller member, and starts bootstrap, the
    /// learner keeper and the reconciler.
    pub async fn start(broker: &Arc<Broker>) -> Result<Arc<ClusterRuntime>, RuntimeError> {
        let node_id = NodeId::try_from(broker.node_id).unwrap_or_default();
        let bind = broker.config.cluster.raft_bind();
        let listener = TcpListener::bind((bind.host.as_str(), bind.port))
            .await
            .map_err(|source| RuntimeError::Bind { addr: bind.to_string(), source })?;
        let raft_dir = broker.config.data_dir.join(RAFT_DIR);
        std::fs::create_dir_all(&raft_dir).map_err(|source| RuntimeError::Io { path: raft_dir.clone(), source })?;
        let transport = RaftTransport::new(node_id, TransportConfig::default());
        let metadata_dir = raft_dir.join(format!("{}-0", controller::METADATA_TOPIC));
        let controller = Controller::open(
            &metadata_dir,
            node_id,
            raft_config()?,
            transport.network(controller::group_id()),
            Some(broker.flusher.clone()),
        )
        .await?;
        transport.register(controller::group_id(), controller.raft().clone());
        let (shutdown, stop) = watch::channel(false);
        let runtime = Arc::new(ClusterRuntime {
            node_id,
            transport: transport.clone(),
            controller,
            partition_raft_config: partition_raft_config()?,
            directory: broker.cluster.clone(),
            raft_dir,
            broker: Arc::downgrade(broker),
            topics: Mutex::new(HashMap::new()),
            replica_lag: std::time::Duration::from_millis(broker.config.kafka.replica_lag_time_max_ms),
            reconciled: watch::channel(0).0,
            shutdown,
            tasks: Mutex::new(Vec::new()),
            producer_ids: Mutex::new(0..0),
            moving: Mutex::new(std::collections::HashSet::new()),
        });
        let mut stop_serving = stop.clone();
        let serving = tokio::spawn(async move {
            transport
                .serve(
                    listener,
                    async move { while stop_serving.changed().await.is_ok() && !*stop_serving.borrow() {} },
                )
                .await;
        });
        let k = &broker.config.kafka;
        let rebalance = k.auto_leader_rebalance_enable.then(|| {
            tokio::spawn(rebalance::preferred_leaders(
                Arc::downgrade(&runtime),
                stop.clone(),
                Duration::from_secs(k.leader_imbalance_check_interval_seconds.max(1)),
                k.leader_imbalance_per_broker_percentage,
            ))
        });
        let mut tasks = vec![
            serving,
            tokio::spawn(bootstrap::bootstrap(runtime.clone(), stop.clone())),
            tokio::spawn(bootstrap::keep_learners(runtime.clone(), stop.clone())),
            tokio::spawn(reconcile::follow_image(runtime.clone(), stop.clone())),
            tokio::spawn(elections::quiesced_groups(Arc::downgrade(&runtime), stop.clone())),
            tokio::spawn(retention::enforce(
                Arc::downgrade(&runtime),
                stop.clone(),
                Duration::from_millis(k.log_retention_check_interval_ms.max(1)),
            )),
            tokio::spawn(reconcile::publish_leadership(Arc::downgrade(&runtime), stop)),
        ];
        tasks.extend(rebalance);
        runtime.tasks.lock().unwrap_or_else(|p| p.into_inner()).extend(tasks);
        tracing::info!(raft_listen = %bind, "cluster runtime started");
        Ok(runtime)
    }

    /// The controller's node id, if one is known (Metadata's `controller_id`).
    pub fn controller_id(&self) -> Option<i32> {
        self.controller.leader().and_then(|id| i32::try_from(id).ok())
    }

    /// The metadata image this broker has applied.
    pub fn image(&self) -> Arc<crate::cluster::metadata::MetadataImage> {
        self.controller.image().borrow().clone()
    }

    /// Whether `topic` is one of the cluster's replicated topics (not a single node's own).
    pub fn is_replicated(&self, topic: &crate::broker::topics::Topic) -> bool {
        self.topics.lock().is_ok_and(|t| t.get(&topic.name).is_some_and(|s| s.id == topic.id))
    }

    /// Replicas, in-sync and offline replicas of a replicated partition; `None` for a
    /// topic the image does not have (a single node's own topic).
    pub fn partition_nodes(&self, topic: &str, index: i32) -> Option<PartitionNodes> {
        let topics = self.topics.lock().ok()?;
        let state = topics.get(topic)?;
        let replicas = state.assignments.get(usize::try_from(index).ok()?)?.clone();
        let live: Vec<i32> = self.directory.live_brokers().iter().map(|b| b.broker_id).collect();
        let offline: Vec<i32> = replicas.iter().copied().filter(|r| !live.contains(r)).collect();
        // The leader knows which followers kept up (a follower that went quiet keeps its
        // matched index, so the gossip view takes out the dead); elsewhere the live
        // replicas stand in for it.
        let isr = match state.hosted.get(&index).and_then(|r| r.in_sync_replicas(self.replica_lag)) {
            Some(isr) => isr.into_iter().filter(|r| live.contains(r)).collect(),
            None => replicas.iter().copied().filter(|r| live.contains(r)).collect(),
        };
        Some(PartitionNodes { replicas, isr, offline })
    }

    /// What the replicas hosted here are doing, for the metrics page.
    pub fn replica_counts(&self) -> ReplicaCounts {
        let live: Vec<i32> = self.directory.live_brokers().iter().map(|b| b.broker_id).collect();
        let mut counts = ReplicaCounts {
            raft_requests_received: self.transport.stats().requests_received,
            ..ReplicaCounts::default()
        };
        let Ok(topics) = self.topics.lock() else { return counts };
        for state in topics.values() {
            for (index, replica) in &state.hosted {
                counts.hosted += 1;
                match replica.in_sync_replicas(self.replica_lag) {
                    Some(isr) => {
                        counts.leading += 1;
                        let replicas = state.assignments.get(usize::try_from(*index).unwrap_or(usize::MAX));
                        let in_sync = isr.iter().filter(|r| live.contains(r)).count();
                        if replicas.is_some_and(|r| in_sync < r.len()) {
                            counts.under_replicated += 1;
                        }
                    }
                    None if replica.leader() == crate::broker::replica::Leader::Unknown => counts.leaderless += 1,
                    None => {}
                }
            }
        }
        counts
    }

    /// The follower a consumer in `client_rack` should read partition `index` of `topic`
    /// from (KIP-392), when this broker leads it: see [`crate::cluster::read_replica`].
    /// Only followers with the consumer's listener (`listener`) are candidates.
    pub fn preferred_read_replica(
        &self,
        selector: ReplicaSelector,
        topic: &str,
        index: i32,
        client_rack: &str,
        listener: crate::config::ListenerId,
    ) -> Option<i32> {
        if selector == ReplicaSelector::Leader || client_rack.is_empty() {
            return None;
        }
        let (replicas, isr) = {
            let topics = self.topics.lock().ok()?;
            let state = topics.get(topic)?;
            // Only the leader knows which followers hold everything committed.
            let isr = state.hosted.get(&index)?.in_sync_replicas(self.replica_lag)?;
            (state.assignments.get(usize::try_from(index).ok()?)?.clone(), isr)
        };
        let live = self.directory.live_brokers_on(listener);
        let local = self.directory.local();
        let leader = ReplicaInfo { broker_id: local.broker_id, rack: local.rack.as_deref(), in_sync: true };
        let followers: Vec<ReplicaInfo<'_>> = replicas
            .iter()
            .filter(|id| **id != local.broker_id)
            .filter_map(|id| live.iter().find(|b| b.broker_id == *id))
            .map(|b| ReplicaInfo {
                broker_id: b.broker_id,
                rack: b.rack.as_deref(),
                in_sync: isr.contains(&b.broker_id),
            })
            .collect();
        read_replica::preferred_read_replica(selector, client_rack, &leader, &followers)
    }

    /// Where broker `id`'s raft transport and Kafka listener are: from the controller's
    /// membership, else the gossip view.
    /// `host:port` of broker `id`'s inter-broker Kafka listener, if it is known.
    pub fn kafka_address(&self, id: i32) -> Option<String> {
        self.node(id).map(|n| format!("{}:{}", n.kafka_host, n.kafka_port))
    }

    fn node(&self, id: i32) -> Option<JetNode> {
        let nid = NodeId::try_from(id).ok()?;
        let metrics = self.controller.raft().metrics();
        let from_membership =
            metrics.borrow_watched().membership_config.nodes().find(|(n, _)| **n == nid).map(|(_, node)| node.clone());
        from_membership
            .or_else(|| self.directory.live_brokers().into_iter().find(|b| b.broker_id == id).map(|b| jet_node(&b)))
    }

    /// Moves the leadership of every group this broker leads (its partitions, then the
    /// controller) to a live follower, waiting up to `within` ([`hand_off`]): called when
    /// the broker is asked to stop, while it still serves its connections.
    pub async fn hand_off_leadership(&self, within: Duration) {
        let started = std::time::Instant::now();
        let partitions: Vec<crate::broker::raft_replica::PartitionRaft> = match self.topics.lock() {
            Ok(topics) => topics.values().flat_map(|t| t.hosted.values().map(|r| r.raft().clone())).collect(),
            Err(_) => Vec::new(),
        };
        let live: Vec<NodeId> =
            self.directory.live_brokers().iter().filter_map(|b| NodeId::try_from(b.broker_id).ok()).collect();
        let is_live = |id: NodeId| live.contains(&id);
        let moved = hand_off::hand_off(&partitions, self.node_id, is_live, within).await;
        let controller = std::slice::from_ref(self.controller.raft());
        let left = within.saturating_sub(started.elapsed());
        let controller = hand_off::hand_off(controller, self.node_id, is_live, left).await;
        tracing::info!(
            partitions_led = moved.led,
            partitions_moved = moved.moved,
            controller_led = controller.led == 1,
            controller_moved = controller.moved == 1,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "leadership handed off before shutdown"
        );
    }

    /// Stops every raft member here and the transport (before the logs close).
    pub async fn shutdown(&self) {
        let _ = self.shutdown.send(true);
        let hosted: Vec<Arc<RaftReplica>> = match self.topics.lock() {
            Ok(topics) => topics.values().flat_map(|t| t.hosted.values().cloned()).collect(),
            Err(_) => Vec::new(),
        };
        for replica in hosted {
            if let Err(e) = replica.raft().shutdown().await {
                tracing::warn!(topic = Replica::topic(&*replica), partition = replica.index(), error = %e, "raft member did not stop cleanly");
            }
        }
        if let Err(e) = self.controller.shutdown().await {
            tracing::warn!(error = %e, "controller raft member did not stop cleanly");
        }
        self.transport.close();
        let tasks: Vec<_> = self.tasks.lock().map(|mut t| t.drain(..).collect()).unwrap_or_default();
        for task in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
    }
}

/// A broker's identity as a raft member.
pub fn jet_node(b: &BrokerIdentity) -> JetNode {
    JetNode {
        raft_addr: format!("{}:{}", b.raft.host, b.raft.port),
        kafka_host: b.kafka.host.clone(),
        kafka_port: i32::from(b.kafka.port),
        rack: b.rack.clone(),
    }
}
