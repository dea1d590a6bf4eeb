//! ListPartitionReassignments (key 46): the partitions moving, with their replicas (old
//! and new), the ones being added and the ones being removed, from this broker's copy of
//! the cluster metadata. A single node never moves a partition.

use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::{BrokerId, ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse};

use crate::broker::Broker;
use crate::cluster::metadata::TopicImage;

pub fn handle(
    broker: &Broker,
    request: ListPartitionReassignmentsRequest,
    _version: i16,
) -> ListPartitionReassignmentsResponse {
    let Some(cluster) = broker.replication() else { return ListPartitionReassignmentsResponse::default() };
    let image = cluster.image();
    let wanted = |topic: &str, partition: i32| match &request.topics {
        None => true,
        Some(topics) => topics.iter().any(|t| t.name.0.as_str() == topic && t.partition_indexes.contains(&partition)),
    };
    let topics = image
        .topics
        .values()
        .filter_map(|t| {
            let partitions: Vec<OngoingPartitionReassignment> =
                t.reassignments.keys().filter(|p| wanted(&t.name, **p)).map(|p| ongoing(t, *p)).collect();
            (!partitions.is_empty()).then(|| {
                OngoingTopicReassignment::default()
                    .with_name(crate::cli::session::topic_name(&t.name))
                    .with_partitions(partitions)
            })
        })
        .collect();
    ListPartitionReassignmentsResponse::default().with_topics(topics)
}

fn ongoing(topic: &TopicImage, partition: i32) -> OngoingPartitionReassignment {
    let ids = |v: &[i32]| v.iter().map(|b| BrokerId(*b)).collect::<Vec<_>>();
    let adding = topic.reassignments.get(&partition).map(|r| r.adding()).unwrap_or_default();
    OngoingPartitionReassignment::default()
        .with_partition_index(partition)
        .with_replicas(ids(topic.replicas(partition)))
        .with_adding_replicas(ids(&adding))
        .with_removing_replicas(ids(&topic.removing(partition)))
}
