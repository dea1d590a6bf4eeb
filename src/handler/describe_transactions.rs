//! DescribeTransactions (key 65): the state of transactional ids this broker coordinates
//! (`kafka-transactions.sh describe`). An id coordinated elsewhere gets NOT_COORDINATOR, an
//! unknown one TRANSACTIONAL_ID_NOT_FOUND, as in Kafka.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::{DescribeTransactionsRequest, DescribeTransactionsResponse, ProducerId, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;
use crate::txn::records::TxnState;

pub async fn handle(broker: &Arc<Broker>, request: DescribeTransactionsRequest) -> DescribeTransactionsResponse {
    let mut states = Vec::with_capacity(request.transactional_ids.len());
    for id in request.transactional_ids {
        let state = TransactionState::default().with_transactional_id(id.clone());
        states.push(match broker.txns.describe(broker, &id.0).await {
            Err(code) => state
                .with_error_code(code.code())
                .with_transaction_state(StrBytes::default())
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1)
                .with_transaction_start_time_ms(-1),
            Ok(m) => {
                let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
                for (topic, partition) in &m.partitions {
                    topics.entry(topic).or_default().push(*partition);
                }
                let topics = topics
                    .into_iter()
                    .map(|(t, ps)| {
                        TopicData::default()
                            .with_topic(TopicName(StrBytes::from_string(t.to_string())))
                            .with_partitions(ps)
                    })
                    .collect();
                let started = if m.state == TxnState::Ongoing { m.start_ms } else { -1 };
                state
                    .with_transaction_state(StrBytes::from_static_str(m.state.name()))
                    .with_transaction_timeout_ms(m.timeout_ms)
                    .with_transaction_start_time_ms(started)
                    .with_producer_id(ProducerId(m.producer_id))
                    .with_producer_epoch(m.producer_epoch)
                    .with_topics(topics)
            }
        });
    }
    DescribeTransactionsResponse::default().with_transaction_states(states)
}
