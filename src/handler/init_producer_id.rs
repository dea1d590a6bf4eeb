//! InitProducerId (key 22): hands idempotent producers an id that is never reused, even
//! across restarts. As in Kafka, a request without a transactional id always gets a
//! fresh id at epoch 0. Transactional ids arrive with the transactions work.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use crate::broker::Broker;

pub fn handle(broker: &Broker, request: InitProducerIdRequest, _version: i16) -> InitProducerIdResponse {
    if request.transactional_id.as_ref().is_some_and(|t| t.0.is_empty()) {
        return InitProducerIdResponse::default()
            .with_error_code(ResponseError::InvalidRequest.code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
    }
    if request.transactional_id.is_some() {
        return InitProducerIdResponse::default()
            .with_error_code(ResponseError::TransactionalIdAuthorizationFailed.code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
    }
    match broker.next_producer_id() {
        Ok(id) => InitProducerIdResponse::default().with_producer_id(ProducerId(id)).with_producer_epoch(0),
        Err(e) => InitProducerIdResponse::default()
            .with_error_code(e.code.code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
    }
}
