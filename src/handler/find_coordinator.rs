//! FindCoordinator: a group's coordinator is the leader of the key's `__consumer_offsets`
//! partition (on a single node, this broker). Transaction coordinators
//! are refused (see `handler::transactions`).

use kafka_protocol::ResponseError;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;
use crate::broker::replica::Leader;
use crate::config::ListenerId;

/// Kafka's `CoordinatorType`.
const GROUP: i8 = 0;
const TRANSACTION: i8 = 1;

pub fn handle(b: &Broker, r: FindCoordinatorRequest, v: i16, listener: ListenerId) -> FindCoordinatorResponse {
    let keys: Vec<StrBytes> = if v >= 4 { r.coordinator_keys } else { vec![r.key] };
    let coordinators: Vec<Coordinator> = keys.into_iter().map(|key| find(b, key, r.key_type, v, listener)).collect();
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

fn find(b: &Broker, key: StrBytes, key_type: i8, version: i16, listener: ListenerId) -> Coordinator {
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
        GROUP if key.is_empty() => error(ResponseError::InvalidRequest, "group id must not be empty"),
        GROUP => {
            // The group's partition must exist before anyone is sent to its leader.
            let topic = match b.groups.offsets_topic(b) {
                Ok(t) => t,
                Err(code) => return error(code, "the offsets topic is not available"),
            };
            // While the group's partition backs off from a failed write (a full disk),
            // clients wait and ask again instead of rejoining in a loop.
            if let Err(code) = b.groups.availability(b, &key) {
                return error(code, "the group's coordinator is backing off after a failed write");
            }
            // The coordinator is the leader of the group's partition.
            let index = crate::group::partition_for(&key, topic.partition_count());
            let id = match topic.replica(index).map(|r| r.leader()) {
                Some(Leader::ThisBroker) => b.node_id,
                Some(Leader::Broker(id)) => id,
                _ => return error(ResponseError::CoordinatorNotAvailable, "the group's partition has no leader yet"),
            };
            // By its address on the client's listener (this broker is always listed).
            let Some(leader) = b.cluster.live_brokers_on(listener).into_iter().find(|l| l.broker_id == id) else {
                return error(ResponseError::CoordinatorNotAvailable, "the group's coordinator is not live");
            };
            Coordinator::default()
                .with_key(key)
                .with_node_id(BrokerId(id))
                .with_host(StrBytes::from_string(leader.kafka.host))
                .with_port(i32::from(leader.kafka.port))
                .with_error_code(0)
                .with_error_message(None)
        }
        TRANSACTION => error(super::transactions::find_coordinator_code(version), super::transactions::MESSAGE),
        _ => error(ResponseError::InvalidRequest, "unknown coordinator key type"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handler::test_support::broker;

    #[test]
    fn a_transaction_coordinator_is_refused_with_a_message_at_every_version() {
        let dir = tempfile::tempdir().unwrap();
        let b = broker(dir.path());
        let key = StrBytes::from_static_str("tx-1");
        for v in 1..=6 {
            let request = FindCoordinatorRequest::default()
                .with_key(key.clone())
                .with_coordinator_keys(vec![key.clone()])
                .with_key_type(TRANSACTION);
            let r = handle(&b, request, v, Default::default());
            let (code, message) = if v >= 4 {
                (r.coordinators[0].error_code, r.coordinators[0].error_message.clone())
            } else {
                (r.error_code, r.error_message.clone())
            };
            let expected = if v >= 4 {
                ResponseError::UnsupportedVersion
            } else {
                ResponseError::TransactionalIdAuthorizationFailed
            };
            assert_eq!(code, expected.code(), "v{v}");
            assert!(message.unwrap().contains("does not support Kafka transactions"), "v{v}");
        }
        // Groups still find their coordinator.
        let r = handle(
            &b,
            FindCoordinatorRequest::default().with_key(StrBytes::from_static_str("g")),
            3,
            Default::default(),
        );
        assert_eq!(r.error_code, 0);
        assert_eq!(r.node_id, BrokerId(b.node_id));
    }
}
