//! DeleteRecords (key 21): advance a partition's log start offset; whole segments below
//! it are removed. `-1` means "up to the high watermark".

use kafka_protocol::ResponseError;
use kafka_protocol::messages::delete_records_response::{DeleteRecordsPartitionResult, DeleteRecordsTopicResult};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};

use crate::broker::Broker;

pub fn handle(broker: &Broker, request: DeleteRecordsRequest, _version: i16) -> DeleteRecordsResponse {
    let timeout = std::time::Duration::from_millis(u64::try_from(request.timeout_ms).unwrap_or(0));
    let topics = request
        .topics
        .into_iter()
        .map(|t| {
            let topic = broker.topic(&t.name.0);
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let result = DeleteRecordsPartitionResult::default()
                        .with_partition_index(p.partition_index)
                        .with_low_watermark(-1);
                    let Some(partition) = topic.as_ref().and_then(|t| t.replica(p.partition_index)) else {
                        return result.with_error_code(ResponseError::UnknownTopicOrPartition.code());
                    };
                    let hw = partition.high_watermark();
                    let target = if p.offset == -1 { hw } else { p.offset };
                    if target < 0 || target > hw {
                        return result.with_error_code(ResponseError::OffsetOutOfRange.code());
                    }
                    match partition.delete_records(target, timeout) {
                        Ok(low) => result.with_low_watermark(low),
                        Err(e) => result.with_error_code(e.code().code()),
                    }
                })
                .collect();
            DeleteRecordsTopicResult::default().with_name(t.name).with_partitions(partitions)
        })
        .collect();
    DeleteRecordsResponse::default().with_topics(topics)
}
