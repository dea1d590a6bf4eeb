//! Metadata (key 3): brokers (every live one in the gossip view), cluster id, controller, and topics with their partitions'
//! leaders and replicas. Requesting an unknown topic auto-creates it when both the
//! broker (`auto.create.topics.enable`) and the request (`allow_auto_topic_creation`,
//! v4+) allow it.

use std::collections::HashSet;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse};
use kafka_protocol::protocol::StrBytes;

use crate::broker::topics::{Topic, validate_topic_name};
use crate::broker::{ApiError, Broker};
use crate::cluster::runtime::PartitionNodes;
use crate::config::ListenerId;

use super::{CLUSTER_AUTHORIZED_OPERATIONS, TOPIC_AUTHORIZED_OPERATIONS, topic_name};

pub fn describe_topic(broker: &Broker, topic: &Topic) -> MetadataResponseTopic {
    describe_topic_for(broker, topic, &HashSet::new(), 12)
}

/// [`describe_topic`] for a client of a listener that the live brokers `unlisted` do not
/// have: a partition they lead has no leader the client can reach, reported as Kafka
/// does (`LISTENER_NOT_FOUND` from v6, `LEADER_NOT_AVAILABLE` before, leader -1).
pub(crate) fn describe_topic_for(
    broker: &Broker,
    topic: &Topic,
    unlisted: &HashSet<i32>,
    version: i16,
) -> MetadataResponseTopic {
    let ids = |nodes: Vec<i32>| nodes.into_iter().map(BrokerId).collect::<Vec<_>>();
    let partitions = topic
        .replicas()
        .iter()
        .map(|p| {
            let leader = p.leader().node_id(broker.node_id);
            // A replicated partition names its replicas from the cluster metadata; a
            // single node's partition is this broker alone.
            let nodes =
                broker.replication().and_then(|c| c.partition_nodes(&topic.name, p.index())).unwrap_or_else(|| {
                    PartitionNodes { replicas: vec![broker.node_id], isr: vec![broker.node_id], offline: Vec::new() }
                });
            // No leader known (an election is running): clients retry.
            let (leader, error) = match leader {
                leader if leader < 0 => (leader, ResponseError::LeaderNotAvailable.code()),
                leader if unlisted.contains(&leader) && version >= 6 => (-1, ResponseError::ListenerNotFound.code()),
                leader if unlisted.contains(&leader) => (-1, ResponseError::LeaderNotAvailable.code()),
                leader => (leader, 0),
            };
            MetadataResponsePartition::default()
                .with_error_code(error)
                .with_partition_index(p.index())
                .with_leader_id(BrokerId(leader))
                .with_leader_epoch(p.leader_epoch())
                .with_replica_nodes(ids(nodes.replicas))
                .with_isr_nodes(ids(nodes.isr))
                .with_offline_replicas(ids(nodes.offline))
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(topic_name(&topic.name)))
        .with_topic_id(topic.id)
        .with_is_internal(crate::broker::topics::is_internal(&topic.name))
        .with_partitions(partitions)
}

fn error_topic(name: Option<&str>, id: uuid::Uuid, code: ResponseError) -> MetadataResponseTopic {
    MetadataResponseTopic::default().with_error_code(code.code()).with_name(name.map(topic_name)).with_topic_id(id)
}

pub fn handle(broker: &Broker, request: MetadataRequest, version: i16, listener: ListenerId) -> MetadataResponse {
    let allow_auto_create = version < 4 || request.allow_auto_topic_creation;
    // Every live broker in the gossip view (this one alone without gossip), by its address
    // on the listener this request came in on; those without it are not listed.
    let (listed, unlisted) = broker.cluster.live_brokers_by_listener(listener);
    let unlisted: HashSet<i32> = unlisted.into_iter().collect();
    let describe_topic = |broker: &Broker, topic: &Topic| describe_topic_for(broker, topic, &unlisted, version);
    let mut topics: Vec<MetadataResponseTopic> = match request.topics {
        // v0 used an empty list for "all topics"; v1+ uses null.
        None => broker.topics.all().iter().map(|t| describe_topic(broker, t)).collect(),
        Some(list) if list.is_empty() && version == 0 => {
            broker.topics.all().iter().map(|t| describe_topic(broker, t)).collect()
        }
        Some(list) => {
            // Kafka collects the requested names into a set: one entry per topic.
            let mut seen = HashSet::new();
            list.into_iter()
                .filter(|requested| requested.name.as_ref().is_none_or(|n| seen.insert(n.0.clone())))
                .map(|requested| match requested.name {
                    Some(name) => {
                        let name = name.0.as_str();
                        if let Some(t) = broker.topic(name) {
                            return describe_topic(broker, &t);
                        }
                        if validate_topic_name(name).is_err() {
                            return error_topic(Some(name), uuid::Uuid::nil(), ResponseError::InvalidTopicException);
                        }
                        if !allow_auto_create {
                            return error_topic(Some(name), uuid::Uuid::nil(), ResponseError::UnknownTopicOrPartition);
                        }
                        match broker.get_or_auto_create(name) {
                            Ok(t) => describe_topic(broker, &t),
                            Err(ApiError { code, .. }) => error_topic(Some(name), uuid::Uuid::nil(), code),
                        }
                    }
                    None => match broker.topics.get_by_id(requested.topic_id) {
                        Some(t) => describe_topic(broker, &t),
                        None => error_topic(None, requested.topic_id, ResponseError::UnknownTopicId),
                    },
                })
                .collect()
        }
    };
    if version >= 8 && request.include_topic_authorized_operations {
        // Kafka fills it for every topic looked up by name, found or not.
        for t in topics.iter_mut().filter(|t| t.name.is_some()) {
            t.topic_authorized_operations = TOPIC_AUTHORIZED_OPERATIONS;
        }
    }
    let mut response = MetadataResponse::default();
    if (8..=10).contains(&version) && request.include_cluster_authorized_operations {
        response.cluster_authorized_operations = CLUSTER_AUTHORIZED_OPERATIONS;
    }
    let brokers = listed
        .into_iter()
        .map(|b| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(b.broker_id))
                .with_host(StrBytes::from_string(b.kafka.host))
                .with_port(i32::from(b.kafka.port))
                .with_rack(b.rack.map(StrBytes::from_string))
        })
        .collect();
    response
        .with_brokers(brokers)
        .with_cluster_id(Some(StrBytes::from_string(broker.cluster_id.clone())))
        // In a cluster, the controller group's leader (-1 while none is elected); a single
        // node is its own controller.
        .with_controller_id(BrokerId(broker.controller_id()))
        .with_topics(topics)
}
