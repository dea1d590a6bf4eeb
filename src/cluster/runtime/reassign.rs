//! Moving partitions between brokers (Kafka's partition reassignment) as raft membership
//! changes.
//!
//! 1. **Recorded** ([`ClusterRuntime::alter_reassignments`], AlterPartitionReassignments on
//!    any broker, forwarded to the controller): a `ReassignPartition` record lists the
//!    partition's old and new replicas, so every broker in either set hosts a replica —
//!    reconcile opens the new ones empty, never forming a group of their own.
//! 2. **Moved** ([`drive`], on the partition's leader): each new replica is added as a raft
//!    learner and the leader waits until it holds the log (openraft's blocking
//!    `add_learner`: entries, or a snapshot when the log start has moved); then the voters
//!    become the target through joint consensus (both the old and the new majority agree
//!    during the change, so no acknowledged write can be lost by it). A leader that is not
//!    in the target hands its leadership to a target voter.
//! 3. **Completed**: the leader of a group whose voters are exactly the target reports them
//!    to the controller with AlterPartition (as a Kafka leader reports its ISR), and the
//!    controller records `CompleteReassignment` when they match the move it recorded.
//!    Only then do the removed replicas' brokers stop and delete them: a replica is never
//!    deleted while the committed membership may still count it.
//!
//! AlterPartition is served between brokers, like Kafka's controller listener; as with the
//! raft transport, brokers trust the network they share.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::alter_partition_request::{PartitionData, TopicData};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, AlterPartitionRequest, BrokerId,
};
use kafka_protocol::protocol::StrBytes;
use openraft::ChangeMembers;
use openraft::ServerState;
use openraft::async_runtime::watch::WatchReceiver;

use super::ClusterRuntime;
use super::admin::{ADMIN_TIMEOUT, controller_error, forward_error, timed_out};
use super::hand_off::hand_off_target;
use crate::broker::ApiError;
use crate::broker::raft_replica::RaftReplica;
use crate::cli::wire::Connection;
use crate::cluster::metadata::{MetadataImage, MetadataRecord};
use crate::raft::NodeId;

/// Longest wait for a new replica to catch up before the step is tried again.
const CATCH_UP_WITHIN: Duration = Duration::from_secs(120);

/// A partition moving, as its leader sees it.
struct Move {
    topic: String,
    topic_id: uuid::Uuid,
    partition: i32,
    target: Vec<i32>,
    replica: Arc<RaftReplica>,
}

/// Moves along every partition under reassignment that this broker leads; each runs as
/// its own task, one at a time per partition. Called after every reconcile pass.
pub(super) fn drive(rt: &Arc<ClusterRuntime>, image: &MetadataImage) {
    let me = rt.node_id;
    let mut moves = Vec::new();
    if let Ok(topics) = rt.topics.lock() {
        for topic in image.topics.values().filter(|t| !t.reassignments.is_empty()) {
            let Some(state) = topics.get(&topic.name).filter(|s| s.id == topic.id) else { continue };
            for (partition, reassignment) in &topic.reassignments {
                let Some(replica) = state.hosted.get(partition) else { continue };
                let m = replica.raft().metrics();
                if m.borrow_watched().state != ServerState::Leader || m.borrow_watched().current_leader != Some(me) {
                    continue;
                }
                moves.push(Move {
                    topic: topic.name.clone(),
                    topic_id: topic.id,
                    partition: *partition,
                    target: reassignment.target.clone(),
                    replica: replica.clone(),
                });
            }
        }
    }
    for step in moves {
        let key = (step.topic.clone(), step.partition);
        let started = rt.moving.lock().is_ok_and(|mut m| m.insert(key.clone()));
        if !started {
            continue;
        }
        let rt = rt.clone();
        tokio::spawn(async move {
            if let Err(e) = advance(&rt, &step).await {
                tracing::warn!(topic = step.topic, partition = step.partition, error = ?e, "partition move step failed; retrying");
            }
            if let Ok(mut m) = rt.moving.lock() {
                m.remove(&key);
            }
        });
    }
}

fn node_ids(brokers: &[i32]) -> BTreeSet<NodeId> {
    brokers.iter().filter_map(|b| NodeId::try_from(*b).ok()).collect()
}

/// One step of a move: the missing learners, then the voters, then the report.
async fn advance(rt: &Arc<ClusterRuntime>, step: &Move) -> Result<(), ApiError> {
    let target = node_ids(&step.target);
    let (voters, learners, joint) = {
        let m = step.replica.raft().metrics();
        let m = m.borrow_watched();
        let membership = m.membership_config.membership();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        let learners: BTreeSet<NodeId> = membership.learner_ids().collect();
        (voters, learners, membership.get_joint_config().len() > 1)
    };
    let raft_error =
        |e: &dyn std::fmt::Display| ApiError::with_message(ResponseError::UnknownServerError, e.to_string());
    // An idle (quiesced) leader's raft lease has run out, and raft refuses membership
    // changes without one: renewed first, as before a write.
    let renew = || async {
        step.replica
            .renew_lease()
            .await
            .map_err(|e| ApiError::with_message(ResponseError::NotLeaderOrFollower, e.to_string()))
    };
    if voters == target && !joint {
        let stale: BTreeSet<NodeId> = learners.difference(&target).copied().collect();
        if !stale.is_empty() {
            renew().await?;
            step.replica
                .raft()
                .change_membership(ChangeMembers::RemoveNodes(stale), false)
                .await
                .map_err(|e| raft_error(&e))?;
        }
        return report(rt, step).await;
    }
    // A learner added by an earlier step is added again: the call returns once it caught up.
    for id in target.iter().filter(|id| !voters.contains(id)) {
        let broker = i32::try_from(*id).unwrap_or(-1);
        let node = rt.node(broker).ok_or_else(|| {
            ApiError::with_message(ResponseError::BrokerNotAvailable, format!("broker {broker} has no known address"))
        })?;
        tracing::info!(
            topic = step.topic,
            partition = step.partition,
            broker,
            "adding a replica; waiting for it to catch up"
        );
        renew().await?;
        tokio::time::timeout(CATCH_UP_WITHIN, step.replica.raft().add_learner(*id, node, true))
            .await
            .map_err(|_| timed_out("a new replica catching up"))?
            .map_err(|e| raft_error(&e))?;
    }
    tracing::info!(topic = step.topic, partition = step.partition, voters = ?target, "changing the partition's voters");
    renew().await?;
    step.replica.raft().change_membership(target.clone(), false).await.map_err(|e| raft_error(&e))?;
    if !target.contains(&rt.node_id) {
        let to =
            hand_off_target(&step.replica.raft().metrics().borrow_watched(), rt.node_id, |id| target.contains(&id));
        if let Some(to) = to {
            step.replica.raft().trigger().transfer_leader(to).await.map_err(|e| raft_error(&e))?;
        }
    }
    Ok(())
}

/// Tells the controller the group's voters are the move's target.
async fn report(rt: &ClusterRuntime, step: &Move) -> Result<(), ApiError> {
    if rt.is_controller() {
        return rt.complete(&step.topic, step.topic_id, step.partition, &step.target).await;
    }
    let leader_epoch = i32::try_from(step.replica.raft().metrics().borrow_watched().current_term.0).unwrap_or(i32::MAX);
    let request = AlterPartitionRequest::default()
        .with_broker_id(BrokerId(i32::try_from(rt.node_id).unwrap_or(-1)))
        .with_broker_epoch(-1)
        .with_topics(vec![TopicData::default().with_topic_id(step.topic_id).with_partitions(vec![
            PartitionData::default()
                .with_partition_index(step.partition)
                .with_leader_epoch(leader_epoch)
                .with_new_isr(step.target.iter().map(|b| BrokerId(*b)).collect()),
        ])]);
    let response = tokio::time::timeout(ADMIN_TIMEOUT, async {
        let mut conn = Connection::open(&rt.controller_addr()?, ADMIN_TIMEOUT).await.map_err(forward_error)?;
        conn.call_at(&request, 2).await.map_err(forward_error)
    })
    .await
    .map_err(|_| timed_out("reporting a finished move to the controller"))??;
    let code = response.topics.first().and_then(|t| t.partitions.first()).map_or(response.error_code, |p| p.error_code);
    match ResponseError::try_from_code(code) {
        None => Ok(()),
        Some(code) => Err(ApiError::with_message(code, "the controller did not complete the move")),
    }
}

/// One partition's answer: its index, then an error and its message (none when accepted).
type PartitionAnswer = (i32, Option<ApiError>);

impl ClusterRuntime {
    /// AlterPartitionReassignments: recorded by the controller (the request is forwarded to
    /// it from any other broker), answered per partition.
    pub fn alter_reassignments(
        &self,
        request: &AlterPartitionReassignmentsRequest,
    ) -> Result<AlterPartitionReassignmentsResponse, ApiError> {
        super::admin::block_on(self.with_controller(|| async {
            if self.is_controller() {
                Ok(self.record_reassignments(request).await)
            } else {
                self.forward(request, "a partition reassignment").await
            }
        }))?
    }

    /// On the controller: checks each move, proposes the valid ones in one entry, and
    /// answers each partition with its verdict.
    async fn record_reassignments(
        &self,
        request: &AlterPartitionReassignmentsRequest,
    ) -> AlterPartitionReassignmentsResponse {
        let image = self.image();
        let known: BTreeSet<i32> = self.known_brokers();
        let mut answers: Vec<(String, Vec<PartitionAnswer>)> = Vec::new();
        let mut records = Vec::new();
        let mut slots = Vec::new();
        for topic in &request.topics {
            let name = topic.name.0.to_string();
            let mut partitions = Vec::new();
            for p in &topic.partitions {
                let target: Option<Vec<i32>> = p.replicas.as_ref().map(|r| r.iter().map(|b| b.0).collect());
                let checked = image
                    .topics
                    .get(&name)
                    .ok_or_else(|| ApiError::new(ResponseError::UnknownTopicOrPartition))
                    .and_then(|t| {
                        check_move(
                            t,
                            p.partition_index,
                            target.as_deref(),
                            &known,
                            request.allow_replication_factor_change,
                        )
                        .map(|()| t.id)
                    });
                match checked {
                    Ok(id) => {
                        slots.push((answers.len(), partitions.len()));
                        records.push(MetadataRecord::ReassignPartition {
                            name: name.clone(),
                            id,
                            partition: p.partition_index,
                            target,
                        });
                        partitions.push((p.partition_index, None));
                    }
                    Err(e) => partitions.push((p.partition_index, Some(e))),
                }
            }
            answers.push((name, partitions));
        }
        if !records.is_empty() {
            let verdicts = tokio::time::timeout(ADMIN_TIMEOUT, self.controller.propose(&records))
                .await
                .map_err(|_| timed_out("a partition reassignment"))
                .and_then(|r| r.map_err(controller_error));
            for (i, (t, p)) in slots.into_iter().enumerate() {
                let error = match &verdicts {
                    Ok(v) => match v.get(i) {
                        Some(Ok(_)) => None,
                        Some(Err(e)) => Some(ApiError::with_message(e.code(), e.to_string())),
                        None => Some(ApiError::new(ResponseError::UnknownServerError)),
                    },
                    Err(e) => Some(e.clone()),
                };
                answers[t].1[p].1 = error;
            }
        }
        AlterPartitionReassignmentsResponse::default()
            .with_allow_replication_factor_change(request.allow_replication_factor_change)
            .with_responses(
                answers.into_iter().map(|(name, partitions)| reassignment_answer(name, partitions)).collect(),
            )
    }

    /// Brokers a partition may move to: live in the view or members of the controller group.
    pub(super) fn known_brokers(&self) -> BTreeSet<i32> {
        let metrics = self.controller.raft().metrics();
        let members: Vec<i32> =
            metrics.borrow_watched().membership_config.nodes().filter_map(|(id, _)| i32::try_from(*id).ok()).collect();
        self.directory.live_brokers().iter().map(|b| b.broker_id).chain(members).collect()
    }

    /// On the controller: records that `partition` of topic `topic_id` now has exactly
    /// `replicas` as voters (an AlterPartition from its leader); completes its move when
    /// that is the move's target.
    pub fn partition_reported(&self, topic_id: uuid::Uuid, partition: i32, replicas: &[i32]) -> Result<(), ApiError> {
        if !self.is_controller() {
            return Err(ApiError::with_message(ResponseError::NotController, "this broker is not the controller"));
        }
        let image = self.image();
        let topic = image
            .topics
            .values()
            .find(|t| t.id == topic_id)
            .ok_or_else(|| ApiError::new(ResponseError::UnknownTopicId))?;
        let target = topic
            .reassignments
            .get(&partition)
            .map(|r| r.target.clone())
            .ok_or_else(|| ApiError::new(ResponseError::NoReassignmentInProgress))?;
        let reported: HashSet<i32> = replicas.iter().copied().collect();
        if reported != target.iter().copied().collect::<HashSet<i32>>() {
            return Err(ApiError::with_message(
                ResponseError::ReassignmentInProgress,
                format!("partition {partition} of {} is moving to {target:?}", topic.name),
            ));
        }
        super::admin::block_on(self.complete(&topic.name, topic.id, partition, &target))?
    }

    async fn complete(&self, topic: &str, id: uuid::Uuid, partition: i32, target: &[i32]) -> Result<(), ApiError> {
        let record =
            MetadataRecord::CompleteReassignment { name: topic.to_string(), id, partition, target: target.to_vec() };
        self.propose_one(record, "completing a partition move").await?;
        tracing::info!(topic, partition, replicas = ?target, "partition move completed");
        Ok(())
    }
}

/// Kafka's checks of one requested move (the image checks the rest when it applies it).
fn check_move(
    topic: &crate::cluster::metadata::TopicImage,
    partition: i32,
    target: Option<&[i32]>,
    known: &BTreeSet<i32>,
    allow_replication_factor_change: bool,
) -> Result<(), ApiError> {
    let current = topic.reassignments.get(&partition).map_or_else(|| topic.replicas(partition), |r| &r.original[..]);
    if current.is_empty() {
        return Err(ApiError::new(ResponseError::UnknownTopicOrPartition));
    }
    let Some(target) = target else { return Ok(()) };
    let bad = |message: String| Err(ApiError::with_message(ResponseError::InvalidReplicaAssignment, message));
    if let Some(b) = target.iter().find(|b| !known.contains(b)) {
        return bad(format!("The proposed assignment contains broker {b}, which is not part of the cluster."));
    }
    if !allow_replication_factor_change && target.len() != current.len() {
        return bad(format!(
            "The replication factor is changed from {} to {} but allowReplicationFactorChange is false.",
            current.len(),
            target.len()
        ));
    }
    Ok(())
}

fn reassignment_answer(name: String, partitions: Vec<PartitionAnswer>) -> ReassignableTopicResponse {
    ReassignableTopicResponse::default().with_name(crate::cli::session::topic_name(&name)).with_partitions(
        partitions
            .into_iter()
            .map(|(index, error)| {
                let (code, message) = error.map_or((0, None), |e| (e.code.code(), e.message));
                ReassignablePartitionResponse::default()
                    .with_partition_index(index)
                    .with_error_code(code)
                    .with_error_message(message.map(StrBytes::from_string))
            })
            .collect(),
    )
}
