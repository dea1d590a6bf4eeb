//! EndTxn (key 26, v0-v4): a transactional producer commits or aborts its transaction at
//! its coordinator, which answers once the decision is durable and completes the
//! transaction (its markers) in the background (see [`crate::txn::coordinator`]).

use std::sync::Arc;

use kafka_protocol::messages::{EndTxnRequest, EndTxnResponse};

use crate::broker::Broker;

pub async fn handle(broker: &Arc<Broker>, request: EndTxnRequest) -> EndTxnResponse {
    let ended = broker
        .txns
        .end_txn(broker, &request.transactional_id.0, request.producer_id.0, request.producer_epoch, request.committed)
        .await;
    EndTxnResponse::default().with_error_code(ended.err().map_or(0, |code| code.code()))
}
