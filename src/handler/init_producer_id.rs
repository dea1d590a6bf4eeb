//! InitProducerId (key 22): hands idempotent producers an id that is never reused, even
//! across restarts. As in Kafka, a request without a transactional id always gets a
//! fresh id at epoch 0; with one, the transaction coordinator answers (a new id, or the
//! id's next epoch, fencing the previous producer: see [`crate::txn::coordinator`]).

use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use crate::broker::Broker;

fn refused(code: ResponseError) -> InitProducerIdResponse {
    InitProducerIdResponse::default()
        .with_error_code(code.code())
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1)
}

pub async fn handle(broker: &Arc<Broker>, request: InitProducerIdRequest, version: i16) -> InitProducerIdResponse {
    let Some(transactional_id) = request.transactional_id else {
        // Blocking: on a cluster a new block of ids may come from the controller.
        let b = broker.clone();
        return match tokio::task::spawn_blocking(move || b.next_producer_id()).await {
            Ok(Ok(id)) => InitProducerIdResponse::default().with_producer_id(ProducerId(id)).with_producer_epoch(0),
            Ok(Err(e)) => refused(e.code),
            Err(_) => refused(ResponseError::UnknownServerError),
        };
    };
    if transactional_id.0.is_empty() {
        return refused(ResponseError::InvalidRequest);
    }
    // KIP-360 (v3+): a producer that had an id names it, to be given its next epoch.
    let expected =
        (version >= 3 && request.producer_id.0 >= 0).then_some((request.producer_id.0, request.producer_epoch));
    match broker.txns.init_producer_id(broker, &transactional_id.0, request.transaction_timeout_ms, expected).await {
        Ok((id, epoch)) => {
            InitProducerIdResponse::default().with_producer_id(ProducerId(id)).with_producer_epoch(epoch)
        }
        Err(code) => refused(code),
    }
}
