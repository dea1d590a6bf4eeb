//! ListOffsets (key 2): earliest (-2), latest (-1), max timestamp (-3, v7+), earliest
//! local (-4, v8+), latest tiered (-5, v9+; always -1: there is no tiered storage) and
//! by timestamp (the first record whose timestamp is at or after the target).

use std::collections::HashSet;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use crate::broker::Broker;
use crate::broker::partition::PartitionError;
use crate::broker::replica::{Isolation, Replica, TimestampQuery};

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;
const LATEST_TIERED: i64 = -5;

fn lookup(partition: &dyn Replica, timestamp: i64, isolation: Isolation) -> Result<(i64, i64), PartitionError> {
    let offsets = partition.offsets()?;
    // read_committed (v2+) sees offsets below the last stable offset only, as in Kafka.
    let upper = isolation.upper_bound(offsets.high_watermark, offsets.last_stable);
    let below_upper = |found: Option<(i64, i64)>| found.filter(|(_, offset)| *offset < upper).unwrap_or((-1, -1));
    Ok(match timestamp {
        LATEST => (-1, upper),
        // Without tiered storage Kafka answers -1 (nothing is in remote storage).
        LATEST_TIERED => (-1, -1),
        EARLIEST | EARLIEST_LOCAL => (-1, offsets.log_start),
        MAX_TIMESTAMP => below_upper(partition.find_by_timestamp(TimestampQuery::MaxTimestamp)?),
        ts => below_upper(partition.find_by_timestamp(TimestampQuery::AtOrAfter(ts))?),
    })
}

/// Partitions named more than once in the request: Kafka answers each occurrence with
/// `INVALID_REQUEST`.
fn duplicate_partitions(request: &ListOffsetsRequest) -> HashSet<(String, i32)> {
    let mut seen = HashSet::new();
    let mut duplicates = HashSet::new();
    for t in &request.topics {
        for p in &t.partitions {
            let key = (t.name.0.as_str(), p.partition_index);
            if !seen.insert(key) {
                duplicates.insert((key.0.to_string(), key.1));
            }
        }
    }
    duplicates
}

pub fn handle(broker: &Broker, request: ListOffsetsRequest, version: i16) -> ListOffsetsResponse {
    let duplicates = duplicate_partitions(&request);
    let isolation =
        if version >= 2 { Isolation::from_level(request.isolation_level) } else { Isolation::ReadUncommitted };
    let topics = request
        .topics
        .into_iter()
        .map(|t| {
            let topic = broker.topic(&t.name.0);
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let response = ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index)
                        .with_timestamp(-1)
                        .with_offset(-1)
                        .with_leader_epoch(-1);
                    if !duplicates.is_empty() && duplicates.contains(&(t.name.0.to_string(), p.partition_index)) {
                        return response.with_error_code(ResponseError::InvalidRequest.code());
                    }
                    let Some(partition) = topic.as_ref().and_then(|t| t.replica(p.partition_index)) else {
                        return response.with_error_code(ResponseError::UnknownTopicOrPartition.code());
                    };
                    if let Err(code) = partition.check_leader_epoch(p.current_leader_epoch) {
                        return response.with_error_code(code.code());
                    }
                    let unsupported = (p.timestamp == MAX_TIMESTAMP && version < 7)
                        || (p.timestamp == EARLIEST_LOCAL && version < 8)
                        || (p.timestamp == LATEST_TIERED && version < 9)
                        || p.timestamp < LATEST_TIERED;
                    if unsupported {
                        return response.with_error_code(ResponseError::UnsupportedVersion.code());
                    }
                    match lookup(&*partition, p.timestamp, isolation) {
                        Ok((timestamp, offset)) => {
                            // leader_epoch exists from v4; the encoder refuses it before.
                            let epoch = if offset >= 0 && version >= 4 { partition.leader_epoch() } else { -1 };
                            response.with_timestamp(timestamp).with_offset(offset).with_leader_epoch(epoch)
                        }
                        Err(e) => {
                            tracing::warn!(topic = partition.topic(), partition = partition.index(), error = %e, "list offsets failed");
                            response.with_error_code(e.code().code())
                        }
                    }
                })
                .collect();
            ListOffsetsTopicResponse::default().with_name(t.name).with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use kafka_protocol::records::Compression;

    use super::*;
    use crate::broker::partition::Partition;
    use crate::broker::producer_state::{ProducerIdGate, ProducerLimits};
    use crate::broker::replica::memory::MemoryReplica;
    use crate::broker::topic_config::EffectiveTopicConfig;
    use crate::log::test_util::producer_batch;
    use crate::log::{Flusher, validate_produced_batches};

    fn config() -> EffectiveTopicConfig {
        EffectiveTopicConfig { max_message_bytes: 1 << 20, ..Default::default() }
    }

    /// The same lookups against any implementation of the seam.
    fn timestamp_lookup_never_returns_an_offset_below_log_start(p: &dyn Replica) {
        // One batch, offsets 0..=3, timestamps 100..=103.
        let b = producer_batch(4, 100, 10, Compression::None, (-1, -1, -1));
        let headers = validate_produced_batches(&b, 1 << 20).expect("valid");
        let gate = ProducerIdGate::unlimited();
        let limits = ProducerLimits {
            per_partition: usize::MAX,
            gate: &gate,
            txn: crate::broker::txn_verification::TxnVerification::Off,
        };
        let appended =
            futures::executor::block_on(p.append(Bytes::copy_from_slice(&b), &headers, 1, limits)).expect("append");
        if let Some(commit) = appended.commit {
            futures::executor::block_on(commit.wait()).expect("committed");
        }
        // DeleteRecords into the middle of the batch.
        assert_eq!(p.delete_records(2, std::time::Duration::from_secs(1)).expect("delete records"), 2);
        assert_eq!(lookup(p, 100, Isolation::ReadUncommitted).expect("lookup"), (102, 2));
        assert_eq!(lookup(p, 103, Isolation::ReadUncommitted).expect("lookup"), (103, 3));
        assert_eq!(lookup(p, 104, Isolation::ReadUncommitted).expect("lookup"), (-1, -1));
        assert_eq!(lookup(p, EARLIEST, Isolation::ReadUncommitted).expect("lookup"), (-1, 2));
        assert_eq!(lookup(p, MAX_TIMESTAMP, Isolation::ReadUncommitted).expect("lookup"), (103, 3));
    }

    #[test]
    fn timestamp_lookup_of_a_local_log_never_returns_an_offset_below_log_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = Partition::open("t", 0, dir.path(), config(), &Flusher::start()).expect("open");
        timestamp_lookup_never_returns_an_offset_below_log_start(&*p);
    }

    #[test]
    fn timestamp_lookup_in_memory_never_returns_an_offset_below_log_start() {
        timestamp_lookup_never_returns_an_offset_below_log_start(&MemoryReplica::new("t", 0, config()));
    }
}
