//! OffsetCommit: stores a group's positions durably in `__consumer_offsets`.

use std::sync::Arc;

use kafka_protocol::messages::offset_commit_response::{OffsetCommitResponsePartition, OffsetCommitResponseTopic};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse, ResponseKind};

use crate::broker::Broker;
use crate::group::ops::{Committer, OffsetCommit};
use crate::handler::GroupReply;

pub fn start(b: &Arc<Broker>, r: OffsetCommitRequest, v: i16) -> GroupReply {
    let offsets: Vec<OffsetCommit> = r
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| OffsetCommit {
                topic: t.name.to_string(),
                partition: p.partition_index,
                offset: p.committed_offset,
                leader_epoch: if v >= 6 { p.committed_leader_epoch } else { -1 },
                metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
            })
        })
        .collect();
    let n = offsets.len();
    let who = Committer {
        member_id: &r.member_id,
        group_instance_id: r.group_instance_id.as_deref(),
        generation: r.generation_id_or_member_epoch,
        version: v,
    };
    let completion = b.groups.commit_offsets(b, &r.group_id, &who, offsets);
    Box::pin(async move {
        let results = completion.finish(|e| vec![Err(e); n]).await;
        let mut results = results.into_iter();
        let topics = r
            .topics
            .into_iter()
            .map(|t| {
                OffsetCommitResponseTopic::default().with_name(t.name).with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            OffsetCommitResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(results.next().and_then(Result::err).map_or(0, |e| e.code()))
                        })
                        .collect(),
                )
            })
            .collect();
        ResponseKind::OffsetCommit(OffsetCommitResponse::default().with_topics(topics))
    })
}
