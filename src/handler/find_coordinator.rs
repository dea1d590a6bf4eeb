//! FindCoordinator: this broker coordinates every group (and transactional id) — the
//! leader of the key's `__consumer_offsets` partition, which on a single node is us.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;

/// Kafka's `CoordinatorType`.
const GROUP: i8 = 0;
const TRANSACTION: i8 = 1;

pub fn handle(b: &Broker, r: FindCoordinatorRequest, v: i16) -> FindCoordinatorResponse {
    let keys: Vec<StrBytes> = if v >= 4 { r.coordinator_keys } else { vec![r.key] };
    let coordinators: Vec<Coordinator> = keys.into_iter().map(|key| find(b, key, r.key_type)).collect();
    let mut response = FindCoordinatorResponse::default();
    if v >= 4 {
        response.coordinators = coordinators;
    } else if let Some(c) = coordinators.into_iter().next() {
        response.error_code = c.error_code;
        response.node_id = c.node_id;
        response.host = c.host;
        response.port = c.port;
        if v >= 1 {
            response.error_message = c.error_message;
        }
    }
    response
}

fn find(b: &Broker, key: StrBytes, key_type: i8) -> Coordinator {
    let error = |code: ResponseError, message: &str| {
        Coordinator::default()
            .with_key(key.clone())
            .with_node_id(BrokerId(-1))
            .with_host(StrBytes::default())
            .with_port(-1)
            .with_error_code(code.code())
            .with_error_message(Some(StrBytes::from_string(message.to_string())))
    };
    match key_type {
        GROUP if key.is_empty() => return error(ResponseError::InvalidRequest, "group id must not be empty"),
        GROUP => {
            // The group's partition must exist before anyone is sent to its leader.
            if let Err(code) = b.groups.offsets_topic(b) {
                return error(code, "the offsets topic is not available");
            }
            // While the group's partition backs off from a failed write (a full disk),
            // clients wait and ask again instead of rejoining in a loop.
            if let Err(code) = b.groups.availability(b, &key) {
                return error(code, "the group's coordinator is backing off after a failed write");
            }
        }
        TRANSACTION => {}
        _ => return error(ResponseError::InvalidRequest, "unknown coordinator key type"),
    }
    Coordinator::default()
        .with_key(key)
        .with_node_id(BrokerId(b.node_id))
        .with_host(StrBytes::from_string(b.host.clone()))
        .with_port(b.port)
        .with_error_code(0)
        .with_error_message(None)
}
