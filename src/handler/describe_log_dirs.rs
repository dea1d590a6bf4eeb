//! DescribeLogDirs (key 35): the data directory with each partition's size.

use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;

use super::topic_name;

pub fn handle(broker: &Broker, request: DescribeLogDirsRequest, _version: i16) -> DescribeLogDirsResponse {
    let wanted = |topic: &str, partition: i32| match &request.topics {
        None => true,
        Some(list) => list.iter().any(|t| t.topic.0.as_str() == topic && t.partitions.contains(&partition)),
    };
    let mut topics = Vec::new();
    for topic in broker.topics.all() {
        let partitions: Vec<_> = topic
            .replicas()
            .iter()
            .filter(|p| wanted(&topic.name, p.index()))
            .map(|p| {
                DescribeLogDirsPartition::default()
                    .with_partition_index(p.index())
                    .with_partition_size(p.size_bytes().map(|s| s as i64).unwrap_or(0))
                    .with_offset_lag(0)
            })
            .collect();
        if !partitions.is_empty() {
            topics.push(DescribeLogDirsTopic::default().with_name(topic_name(&topic.name)).with_partitions(partitions));
        }
    }
    let dir = std::fs::canonicalize(&broker.config.data_dir).unwrap_or_else(|_| broker.config.data_dir.clone());
    DescribeLogDirsResponse::default().with_results(vec![
        DescribeLogDirsResult::default()
            .with_log_dir(StrBytes::from_string(dir.display().to_string()))
            .with_topics(topics)
            .with_total_bytes(-1)
            .with_usable_bytes(-1),
    ])
}
