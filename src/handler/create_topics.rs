//! CreateTopics (key 19): validates names, partition counts, replication factors and
//! configs; `validate_only` checks without creating. v5+ results carry the topic's
//! partitions, replication factor and effective configs.

use std::collections::BTreeMap;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::create_topics_response::{CreatableTopicConfigs, CreatableTopicResult};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;
use crate::broker::topic_config::{TOPIC_CONFIGS, resolve};

use super::message;

pub fn handle(broker: &Broker, request: CreateTopicsRequest, version: i16) -> CreateTopicsResponse {
    let mut seen = std::collections::HashSet::new();
    let topics = request
        .topics
        .into_iter()
        .map(|t| {
            let name = t.name.0.to_string();
            let result = CreatableTopicResult::default().with_name(t.name.clone());
            if !seen.insert(name.clone()) {
                return result
                    .with_error_code(ResponseError::InvalidRequest.code())
                    .with_error_message(message(Some(format!("Duplicate topic name {name} in request"))));
            }
            if !t.assignments.is_empty() {
                // Manual assignment is accepted when it names only this broker.
                let foreign = t.assignments.iter().any(|a| a.broker_ids.iter().any(|b| b.0 != broker.node_id));
                if foreign || t.num_partitions != -1 || t.replication_factor != -1 {
                    return result.with_error_code(ResponseError::InvalidReplicaAssignment.code()).with_error_message(
                        message(Some("Replica assignment must name existing brokers only, with partitions and replication factor -1".into())),
                    );
                }
            }
            let partitions = if t.assignments.is_empty() { t.num_partitions } else { t.assignments.len() as i32 };
            let replication = if t.assignments.is_empty() { t.replication_factor } else { 1 };
            let mut configs = BTreeMap::new();
            for c in t.configs {
                if let Some(v) = c.value {
                    configs.insert(c.name.to_string(), v.to_string());
                }
            }
            match broker.create_topic(&name, partitions, replication, configs.clone(), request.validate_only) {
                Ok(created) => {
                    let partitions = if partitions == -1 { broker.config.kafka.num_partitions } else { partitions };
                    let mut result = result
                        .with_num_partitions(partitions)
                        .with_replication_factor(1)
                        .with_topic_id(created.as_ref().map(|t| t.id).unwrap_or_default());
                    if version >= 5 {
                        result.configs = Some(
                            TOPIC_CONFIGS
                                .iter()
                                .map(|def| {
                                    let r = resolve(&broker.config.kafka, &configs, def);
                                    CreatableTopicConfigs::default()
                                        .with_name(StrBytes::from_static_str(def.name))
                                        .with_value(Some(StrBytes::from_string(r.value)))
                                        .with_config_source(r.source as i8)
                                        .with_read_only(false)
                                        .with_is_sensitive(false)
                                })
                                .collect(),
                        );
                    }
                    result
                }
                Err(e) => result
                    .with_error_code(e.code.code())
                    .with_error_message(message(e.message))
                    .with_num_partitions(-1)
                    .with_replication_factor(-1),
            }
        })
        .collect();
    CreateTopicsResponse::default().with_topics(topics)
}
