//! DescribeCluster (key 60): cluster id, controller and brokers (every live one in the
//! gossip view).

use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;
use crate::config::ListenerId;

/// `endpoint_type` 1: brokers; 2: controllers, which Jet does not expose apart (a
/// broker endpoint answers it with `MISMATCHED_ENDPOINT_TYPE`, as Kafka's does).
const ENDPOINT_BROKERS: i8 = 1;
const ENDPOINT_CONTROLLERS: i8 = 2;

pub fn handle(
    broker: &Broker,
    request: DescribeClusterRequest,
    version: i16,
    listener: ListenerId,
) -> DescribeClusterResponse {
    let response = DescribeClusterResponse::default()
        .with_endpoint_type(ENDPOINT_BROKERS)
        .with_cluster_id(StrBytes::from_string(broker.cluster_id.clone()))
        // This broker, as on a single node, until the controller raft group exists: its
        // leader will be the controller id every broker reports.
        .with_controller_id(BrokerId(broker.controller_id()));
    if request.endpoint_type != ENDPOINT_BROKERS {
        let (code, message) = match request.endpoint_type {
            ENDPOINT_CONTROLLERS => (
                ResponseError::MismatchedEndpointType,
                "The request was sent to an endpoint of type BROKER, but we wanted an endpoint of type CONTROLLER"
                    .to_string(),
            ),
            other => (ResponseError::UnsupportedEndpointType, format!("Unsupported endpoint type {other}")),
        };
        let code = if version == 0 { ResponseError::InvalidRequest } else { code };
        return response.with_error_code(code.code()).with_error_message(Some(StrBytes::from_string(message)));
    }
    let mut response = response;
    if request.include_cluster_authorized_operations {
        response.cluster_authorized_operations = super::CLUSTER_AUTHORIZED_OPERATIONS;
    }
    let brokers = broker
        .cluster
        .live_brokers_on(listener)
        .into_iter()
        .map(|b| {
            DescribeClusterBroker::default()
                .with_broker_id(BrokerId(b.broker_id))
                .with_host(StrBytes::from_string(b.kafka.host))
                .with_port(i32::from(b.kafka.port))
                .with_rack(b.rack.map(StrBytes::from_string))
        })
        .collect();
    response.with_brokers(brokers)
}
