//! ListTransactions (key 66): the transactional ids this broker coordinates
//! (`kafka-transactions.sh list` asks every broker), filtered as Kafka filters them: by
//! state name, by producer id, by running longer than `duration_filter` ms (v1+), by a
//! regular expression matching the whole id (v2+). Unknown state names are returned in
//! `unknown_state_filters`; an invalid pattern is INVALID_REQUEST.

use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::list_transactions_response::TransactionState;
use kafka_protocol::messages::{ListTransactionsRequest, ListTransactionsResponse, ProducerId};
use kafka_protocol::protocol::StrBytes;

use crate::broker::{Broker, now_ms};
use crate::txn::records::TxnState;

const STATES: [TxnState; 8] = [
    TxnState::Empty,
    TxnState::Ongoing,
    TxnState::PrepareCommit,
    TxnState::PrepareAbort,
    TxnState::CompleteCommit,
    TxnState::CompleteAbort,
    TxnState::Dead,
    TxnState::PrepareEpochFence,
];

pub async fn handle(broker: &Arc<Broker>, request: ListTransactionsRequest, version: i16) -> ListTransactionsResponse {
    let pattern = match request.transactional_id_pattern.as_ref().filter(|p| version >= 2 && !p.is_empty()) {
        None => None,
        Some(p) => match crate::group::consumer::subscription::compile_regex(p) {
            Ok(re) => Some(re),
            Err(_) => return ListTransactionsResponse::default().with_error_code(ResponseError::InvalidRequest.code()),
        },
    };
    let unknown: Vec<StrBytes> =
        request.state_filters.iter().filter(|f| !STATES.iter().any(|s| s.name() == f.as_str())).cloned().collect();
    let now = now_ms();
    let states = broker
        .txns
        .list()
        .await
        .into_iter()
        .filter(|(_, m)| {
            request.state_filters.is_empty() || request.state_filters.iter().any(|f| f.as_str() == m.state.name())
        })
        .filter(|(_, m)| {
            request.producer_id_filters.is_empty() || request.producer_id_filters.contains(&ProducerId(m.producer_id))
        })
        .filter(|(_, m)| {
            version < 1
                || request.duration_filter < 0
                || (m.state == TxnState::Ongoing && now.saturating_sub(m.start_ms) > request.duration_filter)
        })
        .filter(|(id, _)| pattern.as_ref().is_none_or(|re| re.is_match(id)))
        .map(|(id, m)| {
            TransactionState::default()
                .with_transactional_id(kafka_protocol::messages::TransactionalId(StrBytes::from_string(id)))
                .with_producer_id(ProducerId(m.producer_id))
                .with_transaction_state(StrBytes::from_static_str(m.state.name()))
        })
        .collect();
    ListTransactionsResponse::default().with_unknown_state_filters(unknown).with_transaction_states(states)
}
