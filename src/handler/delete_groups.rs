//! DeleteGroups: removes empty groups and their committed offsets.

use std::sync::Arc;

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse, ResponseKind};

use crate::broker::Broker;
use crate::handler::GroupReply;

pub fn start(b: &Arc<Broker>, r: DeleteGroupsRequest, _v: i16) -> GroupReply {
    let ids: Vec<String> = r.groups_names.iter().map(|g| g.to_string()).collect();
    let completions = b.groups.delete_groups(b, &ids);
    Box::pin(async move {
        let mut results = Vec::with_capacity(completions.len());
        for (group_id, completion) in r.groups_names.into_iter().zip(completions) {
            let result = completion.finish(Err).await;
            results.push(
                DeletableGroupResult::default()
                    .with_group_id(group_id)
                    .with_error_code(result.err().map_or(0, |e| e.code())),
            );
        }
        ResponseKind::DeleteGroups(DeleteGroupsResponse::default().with_results(results))
    })
}
