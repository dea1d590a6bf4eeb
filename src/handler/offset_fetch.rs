//! OffsetFetch: a group's committed positions; one group (v0-7) or several (v8+).

use kafka_protocol::ResponseError;
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions, OffsetFetchResponseTopic,
    OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{GroupId, OffsetFetchRequest, OffsetFetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use std::sync::Arc;

use kafka_protocol::messages::ResponseKind;

use crate::broker::Broker;
use crate::group::durability::{Barrier, durable};
use crate::group::ops::{FetchedOffset, OffsetSelection};
use crate::handler::GroupReply;

/// Fetches committed offsets and answers once the writes they came from are durable: a
/// commit is never visible before its record is fsynced.
pub fn start(b: &Arc<Broker>, r: OffsetFetchRequest, v: i16) -> GroupReply {
    let (mut response, barriers) = handle(b, r, v);
    Box::pin(async move {
        for (i, barrier) in barriers {
            let Err(e) = durable(barrier).await else { continue };
            if v >= 8 {
                if let Some(g) = response.groups.get_mut(i) {
                    *g = group_error(g.group_id.clone(), e);
                }
            } else {
                response = OffsetFetchResponse::default().with_error_code(if v >= 2 { e.code() } else { 0 });
            }
        }
        ResponseKind::OffsetFetch(response)
    })
}

fn handle(b: &Broker, r: OffsetFetchRequest, v: i16) -> (OffsetFetchResponse, Vec<(usize, Barrier)>) {
    let mut barriers = Vec::new();
    if v >= 8 {
        let groups = r
            .groups
            .into_iter()
            .enumerate()
            .map(|(i, g)| {
                let wanted: OffsetSelection =
                    g.topics.map(|ts| ts.into_iter().map(|t| (t.name.to_string(), t.partition_indexes)).collect());
                // v9+: a KIP-848 member names itself and its epoch (absent: an admin fetch).
                let member = g.member_id.as_deref().map(|id| (id, g.member_epoch));
                match b.groups.fetch_offsets(b, &g.group_id, member, wanted, r.require_stable) {
                    Ok((offsets, barrier)) => {
                        barriers.push((i, barrier));
                        OffsetFetchResponseGroup::default().with_group_id(g.group_id).with_topics(
                            by_topic(offsets)
                                .into_iter()
                                .map(|(name, partitions)| {
                                    OffsetFetchResponseTopics::default().with_name(name).with_partitions(
                                        partitions
                                            .into_iter()
                                            .map(|(p, offset, epoch, metadata, code)| {
                                                OffsetFetchResponsePartitions::default()
                                                    .with_partition_index(p)
                                                    .with_error_code(code)
                                                    .with_committed_offset(offset)
                                                    .with_committed_leader_epoch(epoch)
                                                    .with_metadata(Some(metadata))
                                            })
                                            .collect(),
                                    )
                                })
                                .collect(),
                        )
                    }
                    Err(e) => group_error(g.group_id, e),
                }
            })
            .collect();
        return (OffsetFetchResponse::default().with_groups(groups), barriers);
    }
    let wanted: OffsetSelection =
        r.topics.map(|ts| ts.into_iter().map(|t| (t.name.to_string(), t.partition_indexes)).collect());
    let response = match b.groups.fetch_offsets(b, &r.group_id, None, wanted, v >= 7 && r.require_stable) {
        Ok((offsets, barrier)) => {
            barriers.push((0, barrier));
            OffsetFetchResponse::default().with_topics(
                by_topic(offsets)
                    .into_iter()
                    .map(|(name, partitions)| {
                        OffsetFetchResponseTopic::default().with_name(name).with_partitions(
                            partitions
                                .into_iter()
                                .map(|(p, offset, epoch, metadata, code)| {
                                    OffsetFetchResponsePartition::default()
                                        .with_partition_index(p)
                                        .with_error_code(code)
                                        .with_committed_offset(offset)
                                        .with_committed_leader_epoch(if v >= 5 { epoch } else { -1 })
                                        .with_metadata(Some(metadata))
                                })
                                .collect(),
                        )
                    })
                    .collect(),
            )
        }
        Err(e) => OffsetFetchResponse::default().with_error_code(if v >= 2 { e.code() } else { 0 }),
    };
    (response, barriers)
}

fn group_error(group_id: GroupId, e: ResponseError) -> OffsetFetchResponseGroup {
    OffsetFetchResponseGroup::default().with_group_id(group_id).with_error_code(e.code())
}

/// One partition's answer: index, offset (-1 when none), leader epoch, metadata, error.
type PartitionRow = (i32, i64, i32, StrBytes, i16);

/// Groups fetched offsets by topic, keeping the order topics were first seen.
fn by_topic(offsets: Vec<FetchedOffset>) -> Vec<(TopicName, Vec<PartitionRow>)> {
    let mut topics: Vec<(TopicName, Vec<PartitionRow>)> = Vec::new();
    for (topic, partition, committed) in offsets {
        let row = match committed {
            Ok(Some(c)) => (partition, c.offset, c.leader_epoch, StrBytes::from_string(c.metadata), 0),
            Ok(None) => (partition, -1, -1, StrBytes::default(), 0),
            Err(e) => (partition, -1, -1, StrBytes::default(), e.code()),
        };
        match topics.iter_mut().find(|(name, _)| name.0.as_str() == topic) {
            Some((_, rows)) => rows.push(row),
            None => topics.push((TopicName(StrBytes::from_string(topic)), vec![row])),
        }
    }
    topics
}
