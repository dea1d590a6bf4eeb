//! JoinGroup: enters a classic group and waits until its rebalance completes.

use std::sync::Arc;

use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse, ResponseKind};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;
use crate::group::classic::{JoinOutcome, JoinRequest};
use crate::handler::{Client, GroupReply};

pub fn start(b: &Arc<Broker>, r: JoinGroupRequest, v: i16, client: &Client) -> GroupReply {
    let member_id = r.member_id.to_string();
    let req = JoinRequest {
        member_id: member_id.clone(),
        group_instance_id: r.group_instance_id.map(|s| s.to_string()),
        client_id: client.client_id.clone(),
        client_host: client.host.clone(),
        session_timeout_ms: r.session_timeout_ms,
        // v0 has no rebalance timeout: it is the session timeout.
        rebalance_timeout_ms: if v >= 1 { r.rebalance_timeout_ms } else { r.session_timeout_ms },
        protocol_type: r.protocol_type.to_string(),
        protocols: r.protocols.into_iter().map(|p| (p.name.to_string(), p.metadata)).collect(),
        require_known_member_id: v >= 4,
    };
    let completion = b.groups.join(b, &r.group_id, req);
    Box::pin(async move {
        let outcome = completion.finish(|e| JoinOutcome::error(e, &member_id)).await;
        ResponseKind::JoinGroup(response(outcome, v))
    })
}

/// The protocol name is nullable only from v7: older versions get an empty name.
fn response(o: JoinOutcome, v: i16) -> JoinGroupResponse {
    let string = |s: String| StrBytes::from_string(s);
    JoinGroupResponse::default()
        .with_error_code(o.error.map_or(0, |e| e.code()))
        .with_generation_id(o.generation)
        .with_protocol_type(if v >= 7 { o.protocol_type.map(string) } else { None })
        .with_protocol_name(match (o.protocol_name, v >= 7) {
            (Some(name), _) => Some(string(name)),
            (None, true) => None,
            (None, false) => Some(StrBytes::default()),
        })
        .with_leader(string(o.leader))
        .with_skip_assignment(v >= 9 && o.skip_assignment)
        .with_member_id(string(o.member_id))
        .with_members(
            o.members
                .into_iter()
                .map(|m| {
                    JoinGroupResponseMember::default()
                        .with_member_id(string(m.member_id))
                        .with_group_instance_id(if v >= 5 { m.group_instance_id.map(string) } else { None })
                        .with_metadata(m.metadata)
                })
                .collect(),
        )
}
