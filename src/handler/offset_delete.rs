//! OffsetDelete: removes committed offsets of partitions a group no longer consumes.

use std::sync::Arc;

use kafka_protocol::messages::offset_delete_response::{OffsetDeleteResponsePartition, OffsetDeleteResponseTopic};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse, ResponseKind};

use crate::broker::Broker;
use crate::handler::GroupReply;

pub fn start(b: &Arc<Broker>, r: OffsetDeleteRequest, _v: i16) -> GroupReply {
    let partitions: Vec<(String, i32)> =
        r.topics.iter().flat_map(|t| t.partitions.iter().map(|p| (t.name.to_string(), p.partition_index))).collect();
    let completion = b.groups.delete_offsets(b, &r.group_id, &partitions);
    Box::pin(async move {
        let mut response = OffsetDeleteResponse::default();
        match completion.finish(Err).await {
            Err(e) => response.error_code = e.code(),
            Ok(results) => {
                let mut results = results.into_iter();
                response.topics = r
                    .topics
                    .into_iter()
                    .map(|t| {
                        OffsetDeleteResponseTopic::default().with_name(t.name).with_partitions(
                            t.partitions
                                .iter()
                                .map(|p| {
                                    OffsetDeleteResponsePartition::default()
                                        .with_partition_index(p.partition_index)
                                        .with_error_code(results.next().and_then(Result::err).map_or(0, |e| e.code()))
                                })
                                .collect(),
                        )
                    })
                    .collect();
            }
        }
        ResponseKind::OffsetDelete(response)
    })
}
