//! AlterPartition (key 56), between brokers: a partition's leader tells the controller
//! which replicas its raft group now has as voters, and the controller completes the
//! partition's move when they are its target (`cluster::runtime::reassign`). Not listed in
//! ApiVersions (Kafka serves it on its controller listener); a single node refuses it.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::alter_partition_response::{PartitionData, TopicData};
use kafka_protocol::messages::{AlterPartitionRequest, AlterPartitionResponse};

use crate::broker::Broker;

pub fn handle(broker: &Broker, request: AlterPartitionRequest, version: i16) -> AlterPartitionResponse {
    let Some(cluster) = broker.replication() else {
        return AlterPartitionResponse::default().with_error_code(ResponseError::NotController.code());
    };
    let topics = request
        .topics
        .iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let voters: Vec<i32> = if version >= 3 {
                        p.new_isr_with_epochs.iter().map(|b| b.broker_id.0).collect()
                    } else {
                        p.new_isr.iter().map(|b| b.0).collect()
                    };
                    let code = match cluster.partition_reported(t.topic_id, p.partition_index, &voters) {
                        Ok(()) => 0,
                        Err(e) => {
                            tracing::debug!(partition = p.partition_index, error = ?e, "AlterPartition refused");
                            e.code.code()
                        }
                    };
                    PartitionData::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code)
                        .with_leader_id(request.broker_id)
                        .with_leader_epoch(p.leader_epoch)
                        .with_isr(if code == 0 {
                            voters.iter().map(|b| kafka_protocol::messages::BrokerId(*b)).collect()
                        } else {
                            Vec::new()
                        })
                })
                .collect();
            TopicData::default().with_topic_id(t.topic_id).with_partitions(partitions)
        })
        .collect();
    AlterPartitionResponse::default().with_topics(topics)
}
