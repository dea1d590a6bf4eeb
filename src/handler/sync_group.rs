//! SyncGroup: the leader hands out assignments; every member waits for its own.

use std::sync::Arc;

use kafka_protocol::messages::{ResponseKind, SyncGroupRequest, SyncGroupResponse};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;
use crate::group::classic::{SyncOutcome, SyncRequest};
use crate::handler::GroupReply;

pub fn start(b: &Arc<Broker>, r: SyncGroupRequest, v: i16) -> GroupReply {
    let req = SyncRequest {
        member_id: r.member_id.to_string(),
        group_instance_id: r.group_instance_id.map(|s| s.to_string()),
        generation: r.generation_id,
        protocol_type: r.protocol_type.map(|s| s.to_string()),
        protocol_name: r.protocol_name.map(|s| s.to_string()),
        assignments: r.assignments.into_iter().map(|a| (a.member_id.to_string(), a.assignment)).collect(),
    };
    let completion = b.groups.sync(b, &r.group_id, req);
    Box::pin(async move {
        let o = completion.finish(SyncOutcome::error).await;
        let string = |s: String| StrBytes::from_string(s);
        ResponseKind::SyncGroup(
            SyncGroupResponse::default()
                .with_error_code(o.error.map_or(0, |e| e.code()))
                .with_protocol_type(if v >= 5 { o.protocol_type.map(string) } else { None })
                .with_protocol_name(if v >= 5 { o.protocol_name.map(string) } else { None })
                .with_assignment(o.assignment),
        )
    })
}
