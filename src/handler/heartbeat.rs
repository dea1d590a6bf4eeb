//! Heartbeat: keeps a classic member's session alive; tells it when to rejoin.

use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};

use crate::broker::Broker;

pub fn handle(b: &Broker, r: HeartbeatRequest, _v: i16) -> HeartbeatResponse {
    let result = b.groups.heartbeat(b, &r.group_id, &r.member_id, r.group_instance_id.as_deref(), r.generation_id);
    HeartbeatResponse::default().with_error_code(result.err().map_or(0, |e| e.code()))
}
