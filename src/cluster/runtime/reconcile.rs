//! Making the topic registry match the metadata image: raft replicas for the partitions
//! placed here, remote stand-ins for the rest, and removal of deleted topics.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::watch;

use super::{ClusterRuntime, RemoteReplica, TopicState};
use crate::broker::lifecycle::{self, LifecycleError};
use crate::broker::meta_store::TopicRecord;
use crate::broker::raft_replica::{RaftReplica, ReplicaAt};
use crate::broker::replica::{Leader, Replica};
use crate::broker::topic_config::EffectiveTopicConfig;
use crate::broker::topics::Topic;
use crate::cluster::gossip::hints::{LeadershipHint, PartitionKey};
use crate::cluster::metadata::{MetadataImage, TopicImage};
use crate::raft::{GroupId, JetNode, NodeId};

/// How often the registry is checked against the image while a pass left something to do
/// (a group whose members were not all known yet is initialized then, a replica that could
/// not be opened is tried again), and how often moves are driven.
const RECHECK: Duration = Duration::from_secs(1);

/// Follows the image until the runtime stops. A pass that settled everything is not
/// repeated until the image changes: with thousands of partitions a pass is most of an idle
/// broker's work.
pub(super) async fn follow_image(rt: Arc<ClusterRuntime>, mut stop: watch::Receiver<bool>) {
    let mut images = rt.controller.image();
    let mut settled_at: Option<u64> = None;
    loop {
        let image = images.borrow_and_update().clone();
        if settled_at != Some(image.applied_records) {
            let settled = reconcile(&rt, &image).await;
            settled_at = settled.then_some(image.applied_records);
        }
        rt.reconciled.send_replace(image.applied_records);
        super::reassign::drive(&rt, &image);
        tokio::select! {
            changed = images.changed() => if changed.is_err() { return },
            () = tokio::time::sleep(RECHECK) => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
    }
}

/// One pass; whether it left nothing to retry.
async fn reconcile(rt: &Arc<ClusterRuntime>, image: &MetadataImage) -> bool {
    let Some(broker) = rt.broker.upgrade() else { return false };
    let gone: Vec<String> = match rt.topics.lock() {
        Ok(topics) => topics
            .iter()
            .filter(|(name, state)| image.topics.get(*name).is_none_or(|t| t.id != state.id))
            .map(|(name, _)| name.clone())
            .collect(),
        Err(_) => return false,
    };
    for name in gone {
        remove_topic(rt, &broker, &name).await;
    }
    let mut settled = true;
    for topic in image.topics.values() {
        match open_topic(rt, &broker, topic).await {
            Ok(done) => settled &= done,
            Err(e) => {
                tracing::error!(topic = topic.name, error = %e, "cannot open a replicated topic's replicas here; retrying");
                settled = false;
            }
        }
    }
    settled
}

#[derive(Debug, thiserror::Error)]
enum OpenError {
    #[error(transparent)]
    Dir(#[from] LifecycleError),
    #[error(transparent)]
    Replica(#[from] crate::broker::raft_replica::RaftReplicaError),
}

/// Opens what is missing of `topic` here and registers it when anything changed; whether
/// nothing is left to retry (a group waiting for a member's address, a shadowing local topic).
async fn open_topic(
    rt: &Arc<ClusterRuntime>,
    broker: &crate::broker::Broker,
    topic: &TopicImage,
) -> Result<bool, OpenError> {
    let me = i32::try_from(rt.node_id).unwrap_or(-1);
    let (mut hosted, known_assignments, known_configs) = match rt.topics.lock() {
        Ok(topics) => topics.get(&topic.name).map_or((BTreeMap::new(), None, None), |s| {
            (s.hosted.clone(), Some(s.assignments.clone()), Some(s.configs.clone()))
        }),
        Err(_) => return Ok(false),
    };
    if let Some(existing) = broker.topics.get(&topic.name)
        && existing.id != topic.id
        && known_assignments.is_none()
    {
        tracing::warn!(topic = topic.name, "a local topic of this name shadows the cluster's topic on this broker");
        return Ok(false);
    }
    let mut settled = true;
    let config = EffectiveTopicConfig::new(&broker.config.kafka, &topic.configs);
    let mut changed = known_assignments.as_ref() != Some(&topic.assignments);
    if known_configs.is_some_and(|c| c != topic.configs) {
        // New overrides reach the replicas running here; the topic is registered again
        // below with them (DescribeConfigs) and with stand-ins carrying them.
        for (index, replica) in &hosted {
            if let Err(e) = replica.set_config(config.clone()) {
                tracing::warn!(topic = topic.name, partition = index, error = %e, "cannot apply new topic configs");
            }
        }
        changed = true;
    }
    for (index, replicas) in topic.assignments.iter().enumerate() {
        let index = i32::try_from(index).unwrap_or(i32::MAX);
        if !replicas.contains(&me) || hosted.contains_key(&index) {
            continue;
        }
        let replica = start_replica(rt, topic, index, &config).await?;
        if replicas.first() == Some(&me) && topic.forms_own_group(index) {
            settled &= initialize(rt, &replica, replicas).await;
        }
        hosted.insert(index, replica);
        changed = true;
    }
    // A group whose preferred leader could not initialize it yet (a member's address
    // unknown) is tried again on every pass; initializing twice is refused harmlessly.
    // A replica added by a move never forms a group: it joins the existing one.
    for (index, replica) in &hosted {
        let replicas = topic.replicas(*index);
        if replicas.first() == Some(&me)
            && topic.forms_own_group(*index)
            && replica.leader() == Leader::Unknown
            && replica.is_pristine()
        {
            settled &= initialize(rt, replica, replicas).await;
        }
    }
    // Replicas a completed move took away from this broker: the committed membership no
    // longer counts them, so they stop and their files go.
    let removed: Vec<i32> = hosted.keys().copied().filter(|i| !topic.replicas(*i).contains(&me)).collect();
    for index in removed {
        if let Some(replica) = hosted.remove(&index) {
            stop_replica(rt, &topic.name, index, replica).await;
            tracing::info!(topic = topic.name, partition = index, "replica moved away from this broker; removed");
            changed = true;
        }
    }
    if !changed {
        return Ok(settled);
    }
    let views: Vec<Arc<dyn Replica>> = (0..topic.partition_count())
        .map(|i| match hosted.get(&i) {
            Some(r) => r.clone() as Arc<dyn Replica>,
            None => Arc::new(RemoteReplica::new(&topic.name, topic.id, i, config.clone(), rt.directory.clone()))
                as Arc<dyn Replica>,
        })
        .collect();
    let record = TopicRecord {
        name: topic.name.clone(),
        id: topic.id,
        partitions: topic.partition_count(),
        configs: topic.configs.clone(),
    };
    if let Ok(mut topics) = rt.topics.lock() {
        topics.insert(
            topic.name.clone(),
            TopicState { id: topic.id, assignments: topic.assignments.clone(), configs: topic.configs.clone(), hosted },
        );
    }
    broker.topics.register(Topic::with_replicas(&record, views));
    tracing::info!(topic = topic.name, topic_id = %topic.id, partitions = topic.partition_count(), "replicated topic ready here");
    Ok(settled)
}

fn partition_dir(rt: &ClusterRuntime, topic: &str, index: i32) -> PathBuf {
    rt.raft_dir.join(format!("{topic}-{index}"))
}

async fn start_replica(
    rt: &Arc<ClusterRuntime>,
    topic: &TopicImage,
    index: i32,
    config: &EffectiveTopicConfig,
) -> Result<Arc<RaftReplica>, OpenError> {
    let dir = partition_dir(rt, &topic.name, index);
    claim(&dir, topic.id)?;
    let at = ReplicaAt { topic: &topic.name, index, node_id: rt.node_id, dir: &dir };
    let group = GroupId::new(topic.name.clone(), index);
    let broker_flusher = rt.broker.upgrade().map(|b| b.flusher.clone());
    let replica = RaftReplica::start(
        at,
        config.clone(),
        rt.partition_raft_config.clone(),
        rt.transport.network(group.clone()),
        broker_flusher,
    )
    .await?;
    rt.transport.register(group, replica.raft().clone());
    Ok(replica)
}

/// Makes `dir` the partition directory of topic `id`: a directory left by an earlier
/// topic of the same name (deleted while this broker was down) is removed first.
fn claim(dir: &Path, id: uuid::Uuid) -> Result<(), LifecycleError> {
    match lifecycle::claim_partition_dir(dir, id) {
        Err(LifecycleError::ForeignDir { found, .. }) => {
            tracing::warn!(dir = %dir.display(), earlier = found, "removing an earlier topic's replica directory");
            std::fs::remove_dir_all(dir).map_err(|source| LifecycleError::Io {
                what: "remove an earlier topic's replica",
                path: dir.to_path_buf(),
                source,
            })?;
            lifecycle::claim_partition_dir(dir, id)
        }
        other => other,
    }
}

/// Initializes a new group with `replicas` as voters (on its preferred leader); `false`
/// while a member's address is unknown (tried again on the next pass).
async fn initialize(rt: &ClusterRuntime, replica: &RaftReplica, replicas: &[i32]) -> bool {
    let mut members: BTreeMap<NodeId, JetNode> = BTreeMap::new();
    for &id in replicas {
        let (Ok(nid), Some(node)) = (NodeId::try_from(id), rt.node(id)) else {
            tracing::info!(
                topic = Replica::topic(replica),
                partition = replica.index(),
                broker = id,
                "waiting for a replica's address before forming the group"
            );
            return false;
        };
        members.insert(nid, node);
    }
    match replica.raft().initialize(members).await {
        Ok(()) => {
            tracing::debug!(topic = Replica::topic(replica), partition = replica.index(), "formed the raft group");
            true
        }
        Err(openraft::error::RaftError::APIError(openraft::error::InitializeError::NotAllowed(_))) => true,
        Err(e) => {
            tracing::warn!(topic = Replica::topic(replica), partition = replica.index(), error = %e, "cannot form the raft group");
            false
        }
    }
}

/// A topic the image no longer has: unregistered, its raft members stopped, its replica
/// directories removed.
async fn remove_topic(rt: &Arc<ClusterRuntime>, broker: &crate::broker::Broker, name: &str) {
    let Some(state) = rt.topics.lock().ok().and_then(|mut t| t.remove(name)) else { return };
    if let Some(topic) = broker.topics.get(name).filter(|t| t.id == state.id) {
        broker.topics.remove(&topic);
    }
    for (index, replica) in state.hosted {
        stop_replica(rt, name, index, replica).await;
    }
    tracing::info!(topic = name, topic_id = %state.id, "replicated topic deleted here");
}

/// Stops a replica's raft member and removes its directory.
async fn stop_replica(rt: &ClusterRuntime, name: &str, index: i32, replica: Arc<RaftReplica>) {
    rt.transport.unregister(&GroupId::new(name, index));
    if let Err(e) = replica.raft().shutdown().await {
        tracing::warn!(topic = name, partition = index, error = %e, "raft member did not stop cleanly");
    }
    // No cleaner pass may write into the directory once it goes (as a local topic's
    // deletion waits for one, see `Broker::delete_topic`).
    let dir = partition_dir(rt, name, index);
    replica.mark_removed();
    if let Some(broker) = rt.broker.upgrade() {
        let doomed = dir.clone();
        // Blocking: a pass finishes the group it is cleaning first.
        if let Err(e) = tokio::task::spawn_blocking(move || broker.cleaner.abort_and_wait(&doomed)).await {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot wait for the log cleaner");
        }
    }
    drop(replica);
    if let Err(e) = std::fs::remove_dir_all(&dir) {
        tracing::warn!(dir = %dir.display(), error = %e, "cannot remove a replica directory");
    }
}

/// How often the partitions led here are checked for leadership to publish (each check
/// reads every hosted replica's raft metrics).
const PUBLISH_EVERY: Duration = Duration::from_secs(1);

/// Spreads, through gossip, the leadership of the partitions this broker leads, so
/// brokers without a replica name the leader in Metadata.
pub(super) async fn publish_leadership(rt: Weak<ClusterRuntime>, mut stop: watch::Receiver<bool>) {
    let mut published: HashMap<PartitionKey, i32> = HashMap::new();
    loop {
        tokio::select! {
            () = tokio::time::sleep(PUBLISH_EVERY) => {}
            _ = stop.changed() => return,
        }
        let Some(rt) = rt.upgrade() else { return };
        let Some(discovery) = rt.directory.discovery().cloned() else { continue };
        let me = i32::try_from(rt.node_id).unwrap_or(-1);
        let leading: Vec<(PartitionKey, i32)> = match rt.topics.lock() {
            Ok(topics) => topics
                .values()
                .flat_map(|t| {
                    t.hosted
                        .iter()
                        .filter(|(_, r)| r.leader() == Leader::ThisBroker)
                        .map(move |(i, r)| (PartitionKey { topic_id: t.id, partition: *i }, r.leader_epoch()))
                })
                .collect(),
            Err(_) => continue,
        };
        for (key, epoch) in leading {
            if published.get(&key) == Some(&epoch) {
                continue;
            }
            discovery.observe_leader(LeadershipHint { partition: key, leader: me, leader_epoch: epoch, observer: me });
            published.insert(key, epoch);
        }
    }
}
