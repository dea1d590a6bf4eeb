//! DescribeCluster (key 60): cluster id, controller and brokers.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;

/// `endpoint_type` 1: brokers (2 would be controllers, which Jet does not expose apart).
const ENDPOINT_BROKERS: i8 = 1;

pub fn handle(broker: &Broker, request: DescribeClusterRequest, version: i16) -> DescribeClusterResponse {
    let response = DescribeClusterResponse::default()
        .with_endpoint_type(ENDPOINT_BROKERS)
        .with_cluster_id(StrBytes::from_string(broker.cluster_id.clone()))
        .with_controller_id(BrokerId(broker.node_id));
    if version >= 1 && request.endpoint_type != ENDPOINT_BROKERS {
        return response
            .with_error_code(ResponseError::UnsupportedEndpointType.code())
            .with_error_message(Some(StrBytes::from_static_str("Only broker endpoints are supported")));
    }
    response.with_brokers(vec![
        DescribeClusterBroker::default()
            .with_broker_id(BrokerId(broker.node_id))
            .with_host(StrBytes::from_string(broker.host.clone()))
            .with_port(broker.port),
    ])
}
