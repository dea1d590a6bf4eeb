//! LeaveGroup: one member (v0-2) or a batch of members by id or instance id (v3+).

use std::sync::Arc;

use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse, ResponseKind};

use crate::broker::Broker;
use crate::group::classic::LeaveMember;
use crate::handler::GroupReply;

pub fn start(b: &Arc<Broker>, r: LeaveGroupRequest, v: i16) -> GroupReply {
    let leaving: Vec<LeaveMember> = if v >= 3 {
        r.members
            .iter()
            .map(|m| LeaveMember {
                member_id: m.member_id.to_string(),
                group_instance_id: m.group_instance_id.as_ref().map(|s| s.to_string()),
            })
            .collect()
    } else {
        vec![LeaveMember { member_id: r.member_id.to_string(), group_instance_id: None }]
    };
    let completion = b.groups.leave(b, &r.group_id, &leaving);
    Box::pin(async move {
        let result = completion.finish(Err).await;
        let mut response = LeaveGroupResponse::default();
        match result {
            Err(e) => response.error_code = e.code(),
            Ok(results) if v >= 3 => {
                response.members = r
                    .members
                    .into_iter()
                    .zip(results)
                    .map(|(m, res)| {
                        MemberResponse::default()
                            .with_member_id(m.member_id)
                            .with_group_instance_id(m.group_instance_id)
                            .with_error_code(res.err().map_or(0, |e| e.code()))
                    })
                    .collect();
            }
            Ok(results) => response.error_code = results.into_iter().find_map(Result::err).map_or(0, |e| e.code()),
        }
        ResponseKind::LeaveGroup(response)
    })
}
