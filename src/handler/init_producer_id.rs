//! InitProducerId (key 22): hands idempotent producers an id that is never reused, even
//! across restarts. As in Kafka, a request without a transactional id always gets a
//! fresh id at epoch 0. A transactional id is refused: transactions are not implemented
//! (`handler::transactions`).

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
            .with_error_code(super::transactions::CODE.code())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handler::test_support::broker;
    use kafka_protocol::messages::TransactionalId;
    use kafka_protocol::protocol::StrBytes;

    #[test]
    fn a_transactional_id_is_told_transactions_are_unsupported() {
        let dir = tempfile::tempdir().unwrap();
        let b = broker(dir.path());
        let tx = InitProducerIdRequest::default()
            .with_transactional_id(Some(TransactionalId(StrBytes::from_static_str("tx-1"))))
            .with_transaction_timeout_ms(60_000);
        let r = handle(&b, tx, 4);
        assert_eq!(r.error_code, ResponseError::UnsupportedVersion.code());
        assert_eq!(r.producer_id, ProducerId(-1));
        let idempotent = handle(&b, InitProducerIdRequest::default().with_transactional_id(None), 4);
        assert_eq!(idempotent.error_code, 0);
        assert!(idempotent.producer_id.0 >= 0);
    }
}
