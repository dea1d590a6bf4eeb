//! CreateTopics (key 19): validates names, partition counts, replication factors,
//! manual assignments and configs; `validate_only` checks without creating. v5+ results
//! carry the topic's partitions, replication factor and effective configs.
//!
//! As in Kafka's controller: a name given twice is answered once with `INVALID_REQUEST`
//! and created by neither entry, and a request that would create more than
//! [`MAX_PARTITIONS_PER_REQUEST`] partitions fails as a whole with `POLICY_VIOLATION`.

use std::collections::{BTreeMap, HashSet};

use kafka_protocol::ResponseError;
use kafka_protocol::messages::create_topics_request::{CreatableReplicaAssignment, CreatableTopic};
use kafka_protocol::messages::create_topics_response::{CreatableTopicConfigs, CreatableTopicResult};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use kafka_protocol::protocol::StrBytes;

use crate::broker::topic_config::{TOPIC_CONFIGS, resolve};
use crate::broker::{ApiError, Broker, MAX_PARTITIONS_PER_REQUEST, too_many_partitions};

use super::{message, split_duplicates};

/// Kafka's KRaft metadata topic, which CreateTopics refuses by name.
const CLUSTER_METADATA_TOPIC: &str = "__cluster_metadata";

/// Checks a manual assignment as Kafka's ReplicationControlManager does; returns the
/// partition count.
fn check_assignments(broker: &Broker, topic: &CreatableTopic) -> Result<i32, ApiError> {
    let invalid = |m: String| ApiError::with_message(ResponseError::InvalidReplicaAssignment, m);
    if topic.replication_factor != -1 {
        return Err(ApiError::with_message(
            ResponseError::InvalidRequest,
            "A manual partition assignment was specified, but replication factor was not set to -1.",
        ));
    }
    if topic.num_partitions != -1 {
        return Err(ApiError::with_message(
            ResponseError::InvalidRequest,
            "A manual partition assignment was specified, but numPartitions was not set to -1.",
        ));
    }
    let registered = super::registered_brokers(broker);
    let mut seen = HashSet::new();
    for CreatableReplicaAssignment { partition_index, broker_ids, .. } in &topic.assignments {
        if !seen.insert(*partition_index) {
            return Err(invalid(format!(
                "Found multiple manual partition assignments for partition {partition_index}"
            )));
        }
        if broker_ids.is_empty() {
            return Err(invalid("The manual partition assignment includes an empty replica list.".into()));
        }
        let ids: Vec<i32> = broker_ids.iter().map(|b| b.0).collect();
        super::check_replica_list(&ids, &registered).map_err(invalid)?;
    }
    let count = topic.assignments.len();
    if (0..count).any(|i| i32::try_from(i).map_or(true, |i| !seen.contains(&i))) {
        return Err(invalid("partitions should be a consecutive 0-based integer sequence".into()));
    }
    let factors: HashSet<usize> = topic.assignments.iter().map(|a| a.broker_ids.len()).collect();
    if factors.len() > 1 {
        return Err(ApiError::with_message(
            ResponseError::InvalidReplicationFactor,
            "All partitions in the manual partition assignment should have the same number of replicas",
        ));
    }
    i32::try_from(count).map_err(|_| too_many_partitions())
}

/// The replication factor of a (checked) manual assignment: its first partition's.
fn assigned_factor(topic: &CreatableTopic) -> i16 {
    let first = topic.assignments.iter().min_by_key(|a| a.partition_index);
    first.map_or(1, |a| i16::try_from(a.broker_ids.len()).unwrap_or(i16::MAX))
}

/// Partitions `topic` asks for, when it is well-formed enough to count.
fn requested_partitions(broker: &Broker, topic: &CreatableTopic) -> i64 {
    if !topic.assignments.is_empty() {
        return topic.assignments.len() as i64;
    }
    match topic.num_partitions {
        -1 => i64::from(broker.config.kafka.num_partitions),
        n => i64::from(n.max(0)),
    }
}

fn effective_configs(broker: &Broker, configs: &BTreeMap<String, String>) -> Vec<CreatableTopicConfigs> {
    TOPIC_CONFIGS
        .iter()
        .map(|def| {
            let r = resolve(&broker.config.kafka, configs, def);
            CreatableTopicConfigs::default()
                .with_name(StrBytes::from_static_str(def.name))
                .with_value(Some(StrBytes::from_string(r.value)))
                .with_config_source(r.source as i8)
                .with_read_only(false)
                .with_is_sensitive(false)
        })
        .collect()
}

fn error_result(result: CreatableTopicResult, e: ApiError) -> CreatableTopicResult {
    result
        .with_error_code(e.code.code())
        .with_error_message(message(e.message))
        .with_num_partitions(-1)
        .with_replication_factor(-1)
}

fn create_one(broker: &Broker, t: CreatableTopic, validate_only: bool, version: i16) -> CreatableTopicResult {
    let name = t.name.0.to_string();
    let result = CreatableTopicResult::default().with_name(t.name.clone());
    if name == CLUSTER_METADATA_TOPIC {
        let e = ApiError::with_message(
            ResponseError::InvalidRequest,
            format!("Creation of internal topic {CLUSTER_METADATA_TOPIC} is prohibited."),
        );
        return error_result(result, e);
    }
    let (partitions, replication) = if t.assignments.is_empty() {
        (t.num_partitions, t.replication_factor)
    } else {
        match check_assignments(broker, &t) {
            Ok(n) => (n, assigned_factor(&t)),
            Err(e) => return error_result(result, e),
        }
    };
    // Partition i's replicas, first the preferred leader (checked above when given).
    let mut assignments: Vec<(i32, Vec<i32>)> =
        t.assignments.iter().map(|a| (a.partition_index, a.broker_ids.iter().map(|b| b.0).collect())).collect();
    assignments.sort_unstable_by_key(|(i, _)| *i);
    let assignments: Vec<Vec<i32>> = assignments.into_iter().map(|(_, replicas)| replicas).collect();
    let configs: BTreeMap<String, String> =
        t.configs.into_iter().filter_map(|c| Some((c.name.to_string(), c.value?.to_string()))).collect();
    let created = if assignments.is_empty() {
        broker.create_topic(&name, partitions, replication, configs.clone(), validate_only)
    } else {
        broker.create_assigned_topic(&name, assignments, configs.clone(), validate_only)
    };
    match created {
        Ok(created) => {
            let partitions = if partitions == -1 { broker.config.kafka.num_partitions } else { partitions };
            let replication =
                if replication == -1 { broker.config.kafka.default_replication_factor } else { replication };
            let mut result = result
                .with_num_partitions(partitions)
                .with_replication_factor(replication)
                .with_topic_id(created.as_ref().map(|t| t.id).unwrap_or_default());
            if version >= 5 {
                result.configs = Some(effective_configs(broker, &configs));
            }
            result
        }
        Err(e) => error_result(result, e),
    }
}

pub fn handle(broker: &Broker, request: CreateTopicsRequest, version: i16) -> CreateTopicsResponse {
    let (unique, duplicates): (Vec<CreatableTopic>, Vec<String>) =
        split_duplicates(request.topics, |t| t.name.0.to_string());
    let total: i64 = unique.iter().map(|t| requested_partitions(broker, t)).sum();
    let mut results: Vec<CreatableTopicResult> = if total > MAX_PARTITIONS_PER_REQUEST {
        unique
            .into_iter()
            .map(|t| error_result(CreatableTopicResult::default().with_name(t.name), too_many_partitions()))
            .collect()
    } else {
        unique.into_iter().map(|t| create_one(broker, t, request.validate_only, version)).collect()
    };
    for name in duplicates {
        let e = ApiError::with_message(ResponseError::InvalidRequest, "Duplicate topic name.");
        results.push(error_result(CreatableTopicResult::default().with_name(super::topic_name(&name)), e));
    }
    CreateTopicsResponse::default().with_topics(results)
}
