//! A consumer group's committed offsets, read with OffsetFetch and written with
//! OffsetCommit at generation -1 (the "simple consumer" commit Kafka's admin tools use,
//! which the coordinator accepts only while the group has no active members).

use std::collections::BTreeMap;

use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::{
    GroupId, OffsetCommitRequest, OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::error::CliError;
use super::session::{COORDINATOR_MOVED, Session, topic_name};

pub fn group_id(group: &str) -> GroupId {
    GroupId(StrBytes::from_string(group.to_string()))
}

/// Committed offsets of `group`: for `topic` only (all partitions) or, with `None`, for
/// every topic the group has committed. Partitions without a commit are left out.
pub async fn committed(
    session: &mut Session,
    group: &str,
    topic: Option<(&str, &[i32])>,
) -> Result<BTreeMap<(String, i32), i64>, CliError> {
    let request = OffsetFetchRequest::default().with_group_id(group_id(group)).with_topics(topic.map(|(t, ps)| {
        vec![OffsetFetchRequestTopic::default().with_name(topic_name(t)).with_partition_indexes(ps.to_vec())]
    }));
    let response = session
        .call_coordinator(group, &request, |r: &OffsetFetchResponse| {
            COORDINATOR_MOVED.contains(&r.error_code)
                || r.topics.iter().flat_map(|t| &t.partitions).any(|p| COORDINATOR_MOVED.contains(&p.error_code))
        })
        .await?;
    CliError::check(response.error_code, None, || format!("fetch the offsets of group {group}"))?;
    let mut offsets = BTreeMap::new();
    for t in &response.topics {
        for p in &t.partitions {
            CliError::check(p.error_code, None, || {
                format!("fetch the offset of group {group} for {}-{}", t.name.as_str(), p.partition_index)
            })?;
            if p.committed_offset >= 0 {
                offsets.insert((t.name.to_string(), p.partition_index), p.committed_offset);
            }
        }
    }
    Ok(offsets)
}

/// Commits `offsets` (partition → next offset to consume) of `topic` for `group`.
pub async fn commit(
    session: &mut Session,
    group: &str,
    topic: &str,
    offsets: &BTreeMap<i32, i64>,
) -> Result<(), CliError> {
    let partitions = offsets
        .iter()
        .map(|(&p, &o)| {
            OffsetCommitRequestPartition::default()
                .with_partition_index(p)
                .with_committed_offset(o)
                .with_committed_leader_epoch(-1)
                .with_committed_metadata(Some(StrBytes::from_static_str("")))
        })
        .collect();
    let request = OffsetCommitRequest::default()
        .with_group_id(group_id(group))
        .with_generation_id_or_member_epoch(-1)
        .with_member_id(StrBytes::from_static_str(""))
        .with_retention_time_ms(-1)
        .with_topics(vec![
            OffsetCommitRequestTopic::default().with_name(topic_name(topic)).with_partitions(partitions),
        ]);
    let response = session
        .call_coordinator(group, &request, |r: &OffsetCommitResponse| {
            r.topics.iter().flat_map(|t| &t.partitions).any(|p| COORDINATOR_MOVED.contains(&p.error_code))
        })
        .await?;
    for t in &response.topics {
        for p in &t.partitions {
            CliError::check(p.error_code, None, || {
                format!("commit the offset of group {group} for {topic}-{}", p.partition_index)
            })?;
        }
    }
    Ok(())
}
