//! Cluster metadata: what the controller's raft group replicates (topics, their configs
//! and replica assignments, producer-id blocks) as a log of [`MetadataRecord`]s applied to
//! a [`MetadataImage`].
//!
//! As in KRaft, the metadata log is a partition (`__cluster_metadata`/0) whose batches are
//! ordinary Kafka record batches: each record's key names the record type and its value is
//! the record as JSON ([`records`]). So the controller uses the same raft log store,
//! transport and entry format as every partition, and the image is a pure function of the
//! committed log prefix.
//!
//! # Apply is the authority
//! The controller leader validates a request before proposing it, but two proposals may
//! race (two CreateTopics of one name through different brokers), so [`MetadataImage::apply`]
//! checks again and rejects a record that does not fit the image, with the Kafka error it
//! maps to. A rejected record changes nothing on any replica (every replica applies the
//! same prefix and reaches the same verdict); the proposer reports the verdict to its
//! client.

pub mod records;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::ResponseError;
use serde::{Deserialize, Serialize};

pub use records::{MetadataRecord, RecordsError};

/// Producer ids are handed to brokers in blocks this large (Kafka's
/// `ProducerIdsBlock.PRODUCER_ID_BLOCK_SIZE`).
pub const PRODUCER_ID_BLOCK_SIZE: i64 = 1000;

/// One topic as the cluster knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicImage {
    pub name: String,
    pub id: uuid::Uuid,
    /// Topic-level config overrides by Kafka name.
    pub configs: BTreeMap<String, String>,
    /// Replicas of each partition (index = partition), the first the preferred leader.
    /// While a partition moves, the target's replicas followed by those being removed
    /// (Kafka's order).
    pub assignments: Vec<Vec<i32>>,
    /// Partitions being moved to other replicas (Kafka's ongoing reassignments).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub reassignments: BTreeMap<i32, Reassignment>,
    /// Partitions whose replicas changed since the topic was created. Only a partition's
    /// first preferred leader forms its raft group, and only before any move: a replica
    /// added later joins the group the others already have.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub moved: BTreeSet<i32>,
}

/// A partition on its way to other replicas.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reassignment {
    /// The replicas it is moving to, the first the preferred leader.
    pub target: Vec<i32>,
    /// The replicas it had when the move started (where a cancelled move returns).
    pub original: Vec<i32>,
}

impl Reassignment {
    /// Replicas being added: in the target, not in the original replicas.
    pub fn adding(&self) -> Vec<i32> {
        self.target.iter().copied().filter(|b| !self.original.contains(b)).collect()
    }
}

impl TopicImage {
    pub fn partition_count(&self) -> i32 {
        i32::try_from(self.assignments.len()).unwrap_or(i32::MAX)
    }

    /// The partitions `broker` holds a replica of.
    pub fn partitions_on(&self, broker: i32) -> impl Iterator<Item = i32> + '_ {
        (0..self.partition_count()).filter(move |&p| self.assignments[p as usize].contains(&broker))
    }

    /// The replicas of `partition` (while it moves, the old and the new ones).
    pub fn replicas(&self, partition: i32) -> &[i32] {
        usize::try_from(partition).ok().and_then(|p| self.assignments.get(p)).map_or(&[], Vec::as_slice)
    }

    /// Whether `partition`'s group is formed by its first replica (it never moved).
    pub fn forms_own_group(&self, partition: i32) -> bool {
        !self.moved.contains(&partition) && !self.reassignments.contains_key(&partition)
    }

    /// Replicas being removed from a moving partition: listed now, not in the target.
    pub fn removing(&self, partition: i32) -> Vec<i32> {
        let Some(r) = self.reassignments.get(&partition) else { return Vec::new() };
        self.replicas(partition).iter().copied().filter(|b| !r.target.contains(b)).collect()
    }

    /// Points `partition` at `target`, keeping every replica it lists now until the move
    /// completes (one may already be a raft voter).
    fn move_to(&mut self, partition: usize, target: &[i32]) {
        let current = &self.assignments[partition];
        let mut replicas = target.to_vec();
        replicas.extend(current.iter().copied().filter(|b| !target.contains(b)));
        self.assignments[partition] = replicas;
    }
}

/// The cluster metadata after applying a prefix of the metadata log.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataImage {
    pub topics: BTreeMap<String, TopicImage>,
    /// The first producer id not handed out yet.
    pub next_producer_id: i64,
    /// How many records have been applied (accepted or rejected): the image's version.
    pub applied_records: u64,
}

/// What applying an accepted record produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Applied {
    Done,
    /// A block of producer ids `first .. first + count` now belongs to the broker.
    ProducerIds {
        first: i64,
        count: i64,
    },
}

/// Why a record was rejected; the same on every replica.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum MetadataError {
    #[error("topic '{0}' already exists")]
    TopicExists(String),
    #[error("topic '{0}' does not exist")]
    UnknownTopic(String),
    #[error("topic '{name}' is now a different topic (id {current}, not {requested})")]
    TopicIdMismatch { name: String, current: uuid::Uuid, requested: uuid::Uuid },
    #[error("invalid replica assignment: {0}")]
    BadAssignment(String),
    #[error("topic '{name}' has {current} partitions; it cannot shrink to {requested}")]
    PartitionsShrink { name: String, current: i32, requested: i32 },
    #[error("producer id space exhausted")]
    ProducerIdsExhausted,
    #[error("a block of {0} producer ids is not allowed (1..={PRODUCER_ID_BLOCK_SIZE})")]
    BadProducerIdBlock(i64),
    #[error("topic '{name}' has no partition {partition}")]
    UnknownPartition { name: String, partition: i32 },
    #[error("partition {partition} of topic '{name}' is not being reassigned")]
    NoReassignment { name: String, partition: i32 },
    #[error("partition {partition} of topic '{name}' is now moving to {current:?}, not {reported:?}")]
    OtherReassignment { name: String, partition: i32, current: Vec<i32>, reported: Vec<i32> },
}

impl MetadataError {
    /// The Kafka error a client is answered with.
    pub fn code(&self) -> ResponseError {
        match self {
            MetadataError::TopicExists(_) => ResponseError::TopicAlreadyExists,
            MetadataError::UnknownTopic(_)
            | MetadataError::TopicIdMismatch { .. }
            | MetadataError::UnknownPartition { .. } => ResponseError::UnknownTopicOrPartition,
            MetadataError::BadAssignment(_) => ResponseError::InvalidReplicaAssignment,
            MetadataError::PartitionsShrink { .. } => ResponseError::InvalidPartitions,
            MetadataError::ProducerIdsExhausted | MetadataError::BadProducerIdBlock(_) => {
                ResponseError::UnknownServerError
            }
            MetadataError::NoReassignment { .. } => ResponseError::NoReassignmentInProgress,
            MetadataError::OtherReassignment { .. } => ResponseError::ReassignmentInProgress,
        }
    }
}

impl MetadataImage {
    /// Applies one committed record. A rejected record leaves the image unchanged except
    /// for its version (it was still applied).
    pub fn apply(&mut self, record: &MetadataRecord) -> Result<Applied, MetadataError> {
        self.applied_records += 1;
        match record {
            MetadataRecord::CreateTopic { name, id, configs, assignments } => {
                if self.topics.contains_key(name) {
                    return Err(MetadataError::TopicExists(name.clone()));
                }
                check_assignments(assignments, 0)?;
                let topic = TopicImage {
                    name: name.clone(),
                    id: *id,
                    configs: configs.clone(),
                    assignments: assignments.clone(),
                    reassignments: BTreeMap::new(),
                    moved: BTreeSet::new(),
                };
                self.topics.insert(name.clone(), topic);
                Ok(Applied::Done)
            }
            MetadataRecord::CreatePartitions { name, id, added } => {
                let topic = self.topic_mut(name, *id)?;
                check_assignments(added, topic.assignments.len())?;
                if added.is_empty() {
                    let current = topic.partition_count();
                    return Err(MetadataError::PartitionsShrink { name: name.clone(), current, requested: current });
                }
                topic.assignments.extend(added.iter().cloned());
                Ok(Applied::Done)
            }
            MetadataRecord::DeleteTopic { name, id } => {
                self.topic_mut(name, *id)?;
                self.topics.remove(name);
                Ok(Applied::Done)
            }
            MetadataRecord::AlterTopicConfigs { name, id, set, delete } => {
                let topic = self.topic_mut(name, *id)?;
                for key in delete {
                    topic.configs.remove(key);
                }
                topic.configs.extend(set.iter().map(|(k, v)| (k.clone(), v.clone())));
                Ok(Applied::Done)
            }
            MetadataRecord::AllocateProducerIds { count, .. } => {
                if !(1..=PRODUCER_ID_BLOCK_SIZE).contains(count) {
                    return Err(MetadataError::BadProducerIdBlock(*count));
                }
                let first = self.next_producer_id;
                let next = first.checked_add(*count).ok_or(MetadataError::ProducerIdsExhausted)?;
                self.next_producer_id = next;
                Ok(Applied::ProducerIds { first, count: *count })
            }
            MetadataRecord::ReassignPartition { name, id, partition, target } => {
                let topic = self.topic_mut(name, *id)?;
                let index = partition_index(topic, *partition)?;
                let target = match (target, topic.reassignments.get(partition)) {
                    (Some(t), _) => {
                        check_assignments(std::slice::from_ref(t), index)?;
                        t.clone()
                    }
                    (None, Some(ongoing)) => ongoing.original.clone(),
                    (None, None) => {
                        return Err(MetadataError::NoReassignment { name: name.clone(), partition: *partition });
                    }
                };
                let original = match topic.reassignments.get(partition) {
                    Some(ongoing) => ongoing.original.clone(),
                    None if topic.assignments[index] == target => return Ok(Applied::Done),
                    None => topic.assignments[index].clone(),
                };
                topic.move_to(index, &target);
                topic.moved.insert(*partition);
                topic.reassignments.insert(*partition, Reassignment { target, original });
                Ok(Applied::Done)
            }
            MetadataRecord::CompleteReassignment { name, id, partition, target } => {
                let topic = self.topic_mut(name, *id)?;
                let index = partition_index(topic, *partition)?;
                let current = match topic.reassignments.get(partition) {
                    None => return Err(MetadataError::NoReassignment { name: name.clone(), partition: *partition }),
                    Some(ongoing) => &ongoing.target,
                };
                if current != target {
                    return Err(MetadataError::OtherReassignment {
                        name: name.clone(),
                        partition: *partition,
                        current: current.clone(),
                        reported: target.clone(),
                    });
                }
                topic.assignments[index] = target.clone();
                topic.reassignments.remove(partition);
                Ok(Applied::Done)
            }
        }
    }

    fn topic_mut(&mut self, name: &str, id: uuid::Uuid) -> Result<&mut TopicImage, MetadataError> {
        let topic = self.topics.get_mut(name).ok_or_else(|| MetadataError::UnknownTopic(name.to_string()))?;
        if topic.id != id {
            return Err(MetadataError::TopicIdMismatch { name: name.to_string(), current: topic.id, requested: id });
        }
        Ok(topic)
    }

    /// Every partition `broker` holds a replica of, with its replicas.
    pub fn replicas_on(&self, broker: i32) -> impl Iterator<Item = (&TopicImage, i32)> + '_ {
        self.topics.values().flat_map(move |t| t.partitions_on(broker).map(move |p| (t, p)))
    }
}

fn partition_index(topic: &TopicImage, partition: i32) -> Result<usize, MetadataError> {
    usize::try_from(partition)
        .ok()
        .filter(|&p| p < topic.assignments.len())
        .ok_or_else(|| MetadataError::UnknownPartition { name: topic.name.clone(), partition })
}

/// Assignments of partitions `first ..`: each non-empty, no broker twice, all the same
/// length (one replication factor per topic, as Kafka requires).
fn check_assignments(assignments: &[Vec<i32>], first: usize) -> Result<(), MetadataError> {
    let factor = assignments.first().map(Vec::len);
    for (i, replicas) in assignments.iter().enumerate() {
        let partition = first + i;
        if replicas.is_empty() {
            return Err(MetadataError::BadAssignment(format!("partition {partition} has no replicas")));
        }
        if Some(replicas.len()) != factor {
            return Err(MetadataError::BadAssignment(format!(
                "partition {partition} has {} replicas, partition {first} has {}",
                replicas.len(),
                factor.unwrap_or(0)
            )));
        }
        let mut seen = replicas.clone();
        seen.sort_unstable();
        seen.dedup();
        if seen.len() != replicas.len() {
            return Err(MetadataError::BadAssignment(format!("partition {partition} names a broker twice")));
        }
        if replicas.iter().any(|&b| b < 0) {
            return Err(MetadataError::BadAssignment(format!("partition {partition} names a negative broker id")));
        }
    }
    Ok(())
}
