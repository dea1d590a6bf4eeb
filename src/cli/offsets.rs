//! Partition layout and offsets shared by the commands: a topic's partitions with their
//! leaders (Metadata) and the earliest / latest offsets of partitions (ListOffsets,
//! asked of each partition's leader).

use std::collections::BTreeMap;

use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{BrokerId, ListOffsetsRequest, MetadataResponse};

use super::error::CliError;
use super::session::{Session, topic_name};

/// ListOffsets timestamp for the log start.
pub const EARLIEST: i64 = -2;
/// ListOffsets timestamp for the high watermark.
pub const LATEST: i64 = -1;

/// Error codes saying the partition's leader is elsewhere or not yet known, so the
/// request did nothing and may be sent again after reading the metadata:
/// LEADER_NOT_AVAILABLE, NOT_LEADER_OR_FOLLOWER, FENCED_LEADER_EPOCH, UNKNOWN_LEADER_EPOCH.
pub const LEADER_MOVED: [i16; 4] = [5, 6, 74, 76];

/// One partition of a topic as Metadata describes it.
#[derive(Debug, Clone)]
pub struct PartitionInfo {
    pub partition: i32,
    pub leader: i32,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub error_code: i16,
}

/// The partitions of `topic`, sorted; fails with the topic's error code (for example
/// `UNKNOWN_TOPIC_OR_PARTITION`).
pub async fn partitions_of(session: &mut Session, topic: &str) -> Result<Vec<PartitionInfo>, CliError> {
    let response = session.metadata(Some(&[topic.to_string()])).await?;
    partitions_in(&response, topic)
}

/// [`partitions_of`] from a Metadata response already at hand.
pub fn partitions_in(response: &MetadataResponse, topic: &str) -> Result<Vec<PartitionInfo>, CliError> {
    let Some(t) = response.topics.iter().find(|t| t.name.as_ref().is_some_and(|n| n.as_str() == topic)) else {
        return Err(CliError::kafka(3, Some("not in the cluster metadata"), format!("topic {topic}")));
    };
    CliError::check(t.error_code, None, || format!("topic {topic}"))?;
    let ids = |v: &[BrokerId]| v.iter().map(|b| b.0).collect::<Vec<_>>();
    let mut partitions: Vec<PartitionInfo> = t
        .partitions
        .iter()
        .map(|p| PartitionInfo {
            partition: p.partition_index,
            leader: p.leader_id.0,
            leader_epoch: p.leader_epoch,
            replicas: ids(&p.replica_nodes),
            isr: ids(&p.isr_nodes),
            error_code: p.error_code,
        })
        .collect();
    partitions.sort_by_key(|p| p.partition);
    Ok(partitions)
}

/// The offset at `timestamp` (`EARLIEST`, `LATEST`) of each of `partitions` of `topic`,
/// asking each leader for its own partitions.
pub async fn list_offsets(
    session: &mut Session,
    topic: &str,
    partitions: &[PartitionInfo],
    timestamp: i64,
) -> Result<BTreeMap<i32, i64>, CliError> {
    let mut by_leader: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
    for p in partitions {
        if p.leader < 0 {
            return Err(CliError::kafka(5, Some("no leader"), format!("partition {topic}-{}", p.partition)));
        }
        by_leader.entry(p.leader).or_default().push(p.partition);
    }
    let mut offsets = BTreeMap::new();
    for (leader, indexes) in by_leader {
        let request = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_isolation_level(0)
            .with_timeout_ms(session.timeout().as_millis().min(i32::MAX as u128) as i32)
            .with_topics(vec![
                ListOffsetsTopic::default().with_name(topic_name(topic)).with_partitions(
                    indexes
                        .iter()
                        .map(|&i| {
                            ListOffsetsPartition::default()
                                .with_partition_index(i)
                                .with_current_leader_epoch(-1)
                                .with_timestamp(timestamp)
                        })
                        .collect(),
                ),
            ]);
        let response = session.broker(leader).await?.call(&request).await?;
        for t in &response.topics {
            for p in &t.partitions {
                CliError::check(p.error_code, None, || format!("list offsets of {topic}-{}", p.partition_index))?;
                offsets.insert(p.partition_index, p.offset);
            }
        }
    }
    Ok(offsets)
}
