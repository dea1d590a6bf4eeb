//! AllocateProducerIds (key 67): a broker asks the controller for a block of producer ids
//! (`cluster::runtime::producer_ids`). Served between brokers only: like Kafka, which
//! serves it on its controller listener, Jet does not list it in ApiVersions. A single
//! node is no cluster's controller and refuses it.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::{AllocateProducerIdsRequest, AllocateProducerIdsResponse, ProducerId};

use crate::broker::Broker;

pub fn handle(broker: &Broker, request: AllocateProducerIdsRequest, _version: i16) -> AllocateProducerIdsResponse {
    let refused = |code: ResponseError| {
        AllocateProducerIdsResponse::default()
            .with_error_code(code.code())
            .with_producer_id_start(ProducerId(-1))
            .with_producer_id_len(0)
    };
    let Some(cluster) = broker.replication() else {
        return refused(ResponseError::NotController);
    };
    match cluster.allocate_producer_ids(request.broker_id.0) {
        Ok((first, count)) => AllocateProducerIdsResponse::default()
            .with_producer_id_start(ProducerId(first))
            .with_producer_id_len(i32::try_from(count).unwrap_or(0)),
        Err(e) => {
            tracing::debug!(broker = request.broker_id.0, error = ?e.message, "refused a block of producer ids");
            refused(e.code)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handler::test_support::broker;

    #[test]
    fn a_single_node_is_not_a_controller_to_ask() {
        let dir = tempfile::tempdir().unwrap();
        let b = broker(dir.path());
        let r = handle(&b, AllocateProducerIdsRequest::default(), 0);
        assert_eq!(r.error_code, ResponseError::NotController.code());
        assert_eq!(r.producer_id_len, 0);
    }
}
