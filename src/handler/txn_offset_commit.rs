//! TxnOffsetCommit (key 28, v0-v4): a transactional producer sends a group's offsets as
//! part of its transaction. Validated like OffsetCommit (generation and member from v3),
//! written to the group's partition as the producer's transactional batch, and pending
//! until the transaction's marker (see [`crate::group::txn_offsets`]).
//!
//! v5 belongs to transactions v2 (KIP-890 part 2), which Jet does not advertise.

use std::sync::Arc;

use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{ResponseKind, TxnOffsetCommitRequest, TxnOffsetCommitResponse};

use crate::broker::Broker;
use crate::group::ops::{Committer, OffsetCommit};
use crate::handler::GroupReply;

pub fn start(b: &Arc<Broker>, r: TxnOffsetCommitRequest, v: i16) -> GroupReply {
    let offsets: Vec<OffsetCommit> = r
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| OffsetCommit {
                topic: t.name.to_string(),
                partition: p.partition_index,
                offset: p.committed_offset,
                leader_epoch: if v >= 2 { p.committed_leader_epoch } else { -1 },
                metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
            })
        })
        .collect();
    let n = offsets.len();
    // Before v3 the request names no member: a standalone commit.
    let who = Committer {
        member_id: if v >= 3 { &r.member_id } else { "" },
        group_instance_id: if v >= 3 { r.group_instance_id.as_deref() } else { None },
        generation: if v >= 3 { r.generation_id } else { -1 },
        version: v,
    };
    let transaction = Some((r.producer_id.0, r.producer_epoch));
    let completion = b.groups.store_offsets(b, &r.group_id, &who, offsets, transaction);
    Box::pin(async move {
        let mut results = completion.finish(|e| vec![Err(e); n]).await.into_iter();
        let topics = r
            .topics
            .into_iter()
            .map(|t| {
                let partitions = t
                    .partitions
                    .iter()
                    .map(|p| {
                        TxnOffsetCommitResponsePartition::default()
                            .with_partition_index(p.partition_index)
                            .with_error_code(results.next().and_then(Result::err).map_or(0, |e| e.code()))
                    })
                    .collect();
                TxnOffsetCommitResponseTopic::default().with_name(t.name).with_partitions(partitions)
            })
            .collect();
        ResponseKind::TxnOffsetCommit(TxnOffsetCommitResponse::default().with_topics(topics))
    })
}
