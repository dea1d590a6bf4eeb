//! OffsetForLeaderEpoch (key 23): the end offset of a leader epoch, which clients use
//! to detect log truncation after a leader change. A single node has only epoch 0.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::offset_for_leader_epoch_response::{EpochEndOffset, OffsetForLeaderTopicResult};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};

use crate::broker::Broker;

pub fn handle(broker: &Broker, request: OffsetForLeaderEpochRequest, _version: i16) -> OffsetForLeaderEpochResponse {
    let topics = request
        .topics
        .into_iter()
        .map(|t| {
            let topic = broker.topic(&t.topic.0);
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let result =
                        EpochEndOffset::default().with_partition(p.partition).with_leader_epoch(-1).with_end_offset(-1);
                    let Some(partition) = topic.as_ref().and_then(|t| t.replica(p.partition)) else {
                        return result.with_error_code(ResponseError::UnknownTopicOrPartition.code());
                    };
                    if let Err(code) = partition.check_leader_epoch(p.current_leader_epoch) {
                        return result.with_error_code(code.code());
                    }
                    match partition.end_offset_for_epoch(p.leader_epoch) {
                        // Epochs after ours are unknown: Kafka answers (-1, -1).
                        Ok(None) => result,
                        Ok(Some((epoch, end))) => result.with_leader_epoch(epoch).with_end_offset(end),
                        Err(e) => result.with_error_code(e.code().code()),
                    }
                })
                .collect();
            OffsetForLeaderTopicResult::default().with_topic(t.topic).with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}
