//! Changes to existing replicated topics: more partitions (CreatePartitions) and new config
//! overrides (AlterConfigs / IncrementalAlterConfigs). As topic creation ([`super::admin`]):
//! proposed to the controller where this broker is the controller, forwarded to it
//! otherwise, answered once this broker's own registry shows the change. Every broker
//! applies the same records: new partitions get their replicas opened where they are
//! placed, and config changes reach every replica (`reconcile`).

use std::collections::BTreeMap;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::alter_configs_request::{AlterConfigsResource, AlterableConfig};
use kafka_protocol::messages::create_partitions_request::{CreatePartitionsAssignment, CreatePartitionsTopic};
use kafka_protocol::messages::{AlterConfigsRequest, BrokerId, CreatePartitionsRequest};
use kafka_protocol::protocol::StrBytes;

use super::ClusterRuntime;
use super::admin::{ADMIN_TIMEOUT, block_on, not_available, timed_out};
use crate::broker::ApiError;
use crate::broker::topics::Topic;
use crate::cluster::metadata::MetadataRecord;

/// Kafka's ConfigResource type of a topic.
const TOPIC_RESOURCE: i8 = 2;

impl ClusterRuntime {
    /// Grows a replicated topic to `total` partitions, placed by `assignments` when given
    /// (one replica list per new partition) or spread over the live brokers.
    pub fn create_partitions(
        &self,
        topic: &Topic,
        total: i32,
        assignments: Option<Vec<Vec<i32>>>,
        validate_only: bool,
    ) -> Result<(), ApiError> {
        block_on(async {
            self.with_controller(|| async {
                if self.is_controller() {
                    self.propose_partitions(topic, total, assignments.clone(), validate_only).await
                } else {
                    self.forward_partitions(topic, total, assignments.as_deref(), validate_only).await
                }
            })
            .await?;
            if validate_only {
                return Ok(());
            }
            let broker = self.broker.upgrade().ok_or_else(|| not_available("the broker is stopping"))?;
            let grown = || broker.topics.get(&topic.name).filter(|t| t.partition_count() >= total).map(|_| ());
            self.settled(grown).await.ok_or_else(|| timed_out("adding partitions"))
        })?
    }

    async fn propose_partitions(
        &self,
        topic: &Topic,
        total: i32,
        assignments: Option<Vec<Vec<i32>>>,
        validate_only: bool,
    ) -> Result<(), ApiError> {
        let image = self.image();
        let current = image
            .topics
            .get(&topic.name)
            .filter(|t| t.id == topic.id)
            .ok_or_else(|| ApiError::new(ResponseError::UnknownTopicOrPartition))?;
        let count = current.partition_count();
        if total <= count {
            let message = if total == count {
                format!("Topic already has {count} partition(s).")
            } else {
                format!(
                    "The topic {} currently has {count} partition(s); {total} would not be an increase.",
                    topic.name
                )
            };
            return Err(ApiError::with_message(ResponseError::InvalidPartitions, message));
        }
        let factor = current.assignments.first().map_or(1, Vec::len);
        let added = match assignments {
            Some(given) => {
                let known = self.known_brokers();
                let invalid = |m: String| ApiError::with_message(ResponseError::InvalidReplicaAssignment, m);
                if let Some(b) = given.iter().flatten().find(|b| !known.contains(b)) {
                    return Err(invalid(format!(
                        "The manual partition assignment includes broker {b}, but no such broker is registered."
                    )));
                }
                if let Some(r) = given.iter().find(|r| r.len() != factor) {
                    return Err(invalid(format!(
                        "Inconsistent replication factor between partitions, partition 0 has {factor} while a new partition has {}.",
                        r.len()
                    )));
                }
                given
            }
            None => {
                let factor = i16::try_from(factor).unwrap_or(i16::MAX);
                self.place(total - count, factor, count)?
            }
        };
        if validate_only {
            return Ok(());
        }
        let record = MetadataRecord::CreatePartitions { name: topic.name.clone(), id: topic.id, added };
        self.propose_one(record, "adding partitions").await.map(|_| ())
    }

    async fn forward_partitions(
        &self,
        topic: &Topic,
        total: i32,
        assignments: Option<&[Vec<i32>]>,
        validate_only: bool,
    ) -> Result<(), ApiError> {
        let assignments = assignments.map(|a| {
            a.iter()
                .map(|r| {
                    CreatePartitionsAssignment::default().with_broker_ids(r.iter().map(|b| BrokerId(*b)).collect())
                })
                .collect()
        });
        let request = CreatePartitionsRequest::default()
            .with_topics(vec![
                CreatePartitionsTopic::default()
                    .with_name(crate::cli::session::topic_name(&topic.name))
                    .with_count(total)
                    .with_assignments(assignments),
            ])
            .with_timeout_ms(ADMIN_TIMEOUT.as_millis() as i32)
            .with_validate_only(validate_only);
        let response = self.forward(&request, "adding partitions").await?;
        let result =
            response.results.into_iter().next().ok_or_else(|| not_available("empty answer from the controller"))?;
        super::admin::answer(result.error_code, result.error_message)
    }

    /// Replaces a replicated topic's config overrides with `configs` (already validated).
    pub fn set_topic_configs(&self, topic: &Topic, configs: BTreeMap<String, String>) -> Result<(), ApiError> {
        block_on(async {
            self.with_controller(|| async {
                if self.is_controller() {
                    self.propose_configs(topic, &configs).await
                } else {
                    self.forward_configs(topic, &configs).await
                }
            })
            .await?;
            let broker = self.broker.upgrade().ok_or_else(|| not_available("the broker is stopping"))?;
            let applied = || broker.topics.get(&topic.name).filter(|t| t.configs() == configs).map(|_| ());
            self.settled(applied).await.ok_or_else(|| timed_out("changing topic configs"))
        })?
    }

    async fn propose_configs(&self, topic: &Topic, configs: &BTreeMap<String, String>) -> Result<(), ApiError> {
        let image = self.image();
        let current = image
            .topics
            .get(&topic.name)
            .filter(|t| t.id == topic.id)
            .ok_or_else(|| ApiError::new(ResponseError::UnknownTopicOrPartition))?;
        let set: BTreeMap<String, String> = configs
            .iter()
            .filter(|(k, v)| current.configs.get(*k) != Some(*v))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let delete: Vec<String> = current.configs.keys().filter(|k| !configs.contains_key(*k)).cloned().collect();
        if set.is_empty() && delete.is_empty() {
            return Ok(());
        }
        let record = MetadataRecord::AlterTopicConfigs { name: topic.name.clone(), id: topic.id, set, delete };
        self.propose_one(record, "changing topic configs").await.map(|_| ())
    }

    /// Forwards the whole override set as a (legacy, replacing) AlterConfigs.
    async fn forward_configs(&self, topic: &Topic, configs: &BTreeMap<String, String>) -> Result<(), ApiError> {
        let request = AlterConfigsRequest::default().with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(TOPIC_RESOURCE)
                .with_resource_name(StrBytes::from_string(topic.name.clone()))
                .with_configs(
                    configs
                        .iter()
                        .map(|(k, v)| {
                            AlterableConfig::default()
                                .with_name(StrBytes::from_string(k.clone()))
                                .with_value(Some(StrBytes::from_string(v.clone())))
                        })
                        .collect(),
                ),
        ]);
        let response = self.forward(&request, "changing topic configs").await?;
        let result =
            response.responses.into_iter().next().ok_or_else(|| not_available("empty answer from the controller"))?;
        super::admin::answer(result.error_code, result.error_message)
    }
}
