//! FindCoordinator: a group's coordinator is the leader of the key's `__consumer_offsets`
//! partition, a transactional id's the leader of its `__transaction_state` partition (on
//! a single node, this broker). Both topics are created on first use.

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
    let coordinators: Vec<Coordinator> = keys.into_iter().map(|key| find(b, key, r.key_type, listener)).collect();
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

fn find(b: &Broker, key: StrBytes, key_type: i8, listener: ListenerId) -> Coordinator {
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
            let index = crate::group::partition_for(&key, topic.partition_count());
            leader_of(b, &topic, index, listener)
                .map_or_else(|(code, why)| error(code, why), |(id, host, port)| found(key.clone(), id, host, port))
        }
        TRANSACTION if key.is_empty() => error(ResponseError::InvalidRequest, "transactional id must not be empty"),
        TRANSACTION => {
            let topic = match b.txns.state_topic(b) {
                Ok(t) => t,
                Err(code) => return error(code, "the transaction state topic is not available"),
            };
            let index = crate::group::partition_for(&key, topic.partition_count());
            leader_of(b, &topic, index, listener)
                .map_or_else(|(code, why)| error(code, why), |(id, host, port)| found(key.clone(), id, host, port))
        }
        _ => error(ResponseError::InvalidRequest, "unknown coordinator key type"),
    }
}

fn found(key: StrBytes, id: i32, host: String, port: u16) -> Coordinator {
    Coordinator::default()
        .with_key(key)
        .with_node_id(BrokerId(id))
        .with_host(StrBytes::from_string(host))
        .with_port(i32::from(port))
        .with_error_code(0)
        .with_error_message(None)
}

/// The coordinator of partition `index` of an internal topic: its leader, by its address
/// on the client's listener.
fn leader_of(
    b: &Broker,
    topic: &crate::broker::topics::Topic,
    index: i32,
    listener: ListenerId,
) -> Result<(i32, String, u16), (ResponseError, &'static str)> {
    let id = match topic.replica(index).map(|r| r.leader()) {
        Some(Leader::ThisBroker) => b.node_id,
        Some(Leader::Broker(id)) => id,
        _ => return Err((ResponseError::CoordinatorNotAvailable, "the coordinator's partition has no leader yet")),
    };
    // This broker is always listed.
    let Some(leader) = b.cluster.live_brokers_on(listener).into_iter().find(|l| l.broker_id == id) else {
        return Err((ResponseError::CoordinatorNotAvailable, "the coordinator is not live"));
    };
    Ok((id, leader.kafka.host, leader.kafka.port))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handler::test_support::broker;

    #[test]
    fn a_transaction_coordinator_is_found_at_every_version_and_its_topic_created() {
        let dir = tempfile::tempdir().unwrap();
        let b = broker(dir.path());
        let key = StrBytes::from_static_str("tx-1");
        for v in 0..=6 {
            let request = FindCoordinatorRequest::default()
                .with_key(key.clone())
                .with_coordinator_keys(vec![key.clone()])
                .with_key_type(TRANSACTION);
            let r = handle(&b, request, v, Default::default());
            let (code, node) = if v >= 4 {
                (r.coordinators[0].error_code, r.coordinators[0].node_id)
            } else {
                (r.error_code, r.node_id)
            };
            assert_eq!((code, node), (0, BrokerId(b.node_id)), "v{v}");
        }
        let txn_state = b.topic(crate::txn::TXN_TOPIC).expect("created on first use");
        assert_eq!(txn_state.partition_count(), 50);
        let empty = FindCoordinatorRequest::default().with_key(StrBytes::default()).with_key_type(TRANSACTION);
        assert_eq!(handle(&b, empty, 3, Default::default()).error_code, ResponseError::InvalidRequest.code());
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
