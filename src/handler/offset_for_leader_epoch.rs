//! OffsetForLeaderEpoch (key 23): the end offset of a leader epoch, which clients use
//! to detect log truncation after a leader change, answered from the partition's
//! leader-epoch history (`log::epoch_history`) with Kafka's semantics.

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
                        Ok(Some((epoch, end_offset))) => result.with_leader_epoch(epoch).with_end_offset(end_offset),
                        // Unknown epochs (undefined, or newer than any): Kafka answers (-1, -1).
                        Ok(None) => result,
                        Err(e) => result.with_error_code(e.code().code()),
                    }
                })
                .collect();
            OffsetForLeaderTopicResult::default().with_topic(t.topic).with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::offset_for_leader_epoch_request::{OffsetForLeaderPartition, OffsetForLeaderTopic};

    use super::*;
    use crate::handler::test_support::{broker, name};
    use crate::log::test_util::batch;

    /// `(error code, leader epoch, end offset)` for one partition of topic `t`.
    fn ask(b: &Broker, partition: i32, current_leader_epoch: i32, leader_epoch: i32) -> (i16, i32, i64) {
        let p = OffsetForLeaderPartition::default()
            .with_partition(partition)
            .with_current_leader_epoch(current_leader_epoch)
            .with_leader_epoch(leader_epoch);
        let request = OffsetForLeaderEpochRequest::default()
            .with_topics(vec![OffsetForLeaderTopic::default().with_topic(name("t")).with_partitions(vec![p])]);
        let response = handle(b, request, 4);
        let r = &response.topics[0].partitions[0];
        (r.error_code, r.leader_epoch, r.end_offset)
    }

    /// A partition whose log holds epochs 0 (offsets 0..4), 3 (4..6) and 5 (6..8), written
    /// straight into its log as a replica following several leaders would have them.
    fn broker_with_epochs(dir: &std::path::Path) -> std::sync::Arc<Broker> {
        let b = broker(dir);
        b.create_topic("t", 1, 1, Default::default(), false).expect("create topic");
        let partition = b.topic("t").and_then(|t| t.partition(0)).expect("partition");
        partition
            .with_log(|log| {
                for epoch in [0, 0, 3, 5] {
                    log.append(&batch(2, 1_000), epoch, 1_000)?;
                }
                Ok(())
            })
            .expect("append");
        b
    }

    #[test]
    fn past_current_unknown_and_future_epochs_as_kafka_answers_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = broker_with_epochs(dir.path());
        assert_eq!(ask(&b, 0, -1, 0), (0, 0, 4), "past epoch: where the next epoch starts");
        assert_eq!(ask(&b, 0, -1, 2), (0, 0, 4), "epoch with no data here: the epoch before it");
        assert_eq!(ask(&b, 0, -1, 3), (0, 3, 6));
        assert_eq!(ask(&b, 0, -1, 5), (0, 5, 8), "latest epoch: the log end");
        assert_eq!(ask(&b, 0, -1, 6), (0, -1, -1), "future epoch: undefined");
        assert_eq!(ask(&b, 0, -1, -1), (0, -1, -1), "undefined epoch");
    }

    #[test]
    fn epochs_before_the_log_start_end_at_the_log_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = broker_with_epochs(dir.path());
        let partition = b.topic("t").and_then(|t| t.partition(0)).expect("partition");
        partition.with_log(|log| log.advance_log_start(5)).expect("delete records");
        assert_eq!(ask(&b, 0, -1, 0), (0, 0, 5), "older than every epoch kept: requested epoch, log start");
        assert_eq!(ask(&b, 0, -1, 3), (0, 3, 6));
    }

    #[test]
    fn current_leader_epoch_is_checked_first_and_unknown_partitions_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = broker_with_epochs(dir.path());
        // This broker's leader epoch is 0 (`broker::partition::LEADER_EPOCH`).
        assert_eq!(ask(&b, 0, 0, 3), (0, 3, 6));
        assert_eq!(ask(&b, 0, 1, 3), (ResponseError::UnknownLeaderEpoch.code(), -1, -1));
        assert_eq!(ask(&b, 0, -2, 3), (ResponseError::FencedLeaderEpoch.code(), -1, -1));
        assert_eq!(ask(&b, 7, -1, 0), (ResponseError::UnknownTopicOrPartition.code(), -1, -1));
    }

    #[test]
    fn a_new_partition_answers_for_its_leader_epoch() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = broker(dir.path());
        b.create_topic("t", 1, 1, Default::default(), false).expect("create topic");
        assert_eq!(ask(&b, 0, -1, 0), (0, 0, 0), "the leader's epoch starts at the log end");
    }
}
