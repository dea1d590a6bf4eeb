//! KIP-890 part 1, the coordinator's side: is partition `topic`-`index` in the ongoing
//! transaction of `transactional_id` at this producer id and epoch? Asked by a partition
//! leader before a transactional write may open a transaction there (see
//! [`crate::broker::txn_verification`]); answered from this broker's own state when it
//! coordinates the id, else with DescribeTransactions at the coordinator (the API
//! `kafka-transactions.sh describe` uses, which carries the state, producer and
//! partitions Kafka's verify-only AddPartitionsToTxn checks).
//!
//! The answers a producer gets, as Kafka's: the partition is not in the transaction, or
//! there is none → INVALID_TXN_STATE; another producer epoch → INVALID_PRODUCER_EPOCH;
//! the coordinator cannot answer now (moving, loading, completing the previous
//! transaction, unreachable) → NOT_ENOUGH_REPLICAS, which every client retries.

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::{DescribeTransactionsRequest, TransactionalId};
use kafka_protocol::protocol::StrBytes;

use super::TXN_TOPIC;
use super::records::TxnState;
use crate::broker::Broker;
use crate::broker::replica::Leader;

/// How long a remote verification may take.
const REMOTE_TIMEOUT: Duration = Duration::from_secs(10);

/// What the coordinator knows of the id's transaction.
struct Ongoing {
    state: String,
    producer_id: i64,
    producer_epoch: i16,
    holds_partition: bool,
}

/// Whether the write may open a transaction on `topic`-`index`.
pub async fn verify(
    broker: &Arc<Broker>,
    transactional_id: &str,
    producer_id: i64,
    producer_epoch: i16,
    topic: &str,
    index: i32,
) -> Result<(), ResponseError> {
    let seen = lookup(broker, transactional_id, topic, index).await.map_err(|code| match code {
        ResponseError::TransactionalIdNotFound => ResponseError::InvalidTxnState,
        // The producer's client retries these; the next attempt asks again.
        _ => ResponseError::NotEnoughReplicas,
    })?;
    if seen.producer_id != producer_id || seen.producer_epoch != producer_epoch {
        return Err(ResponseError::InvalidProducerEpoch);
    }
    if seen.state != TxnState::Ongoing.name() || !seen.holds_partition {
        return Err(ResponseError::InvalidTxnState);
    }
    Ok(())
}

async fn lookup(
    broker: &Arc<Broker>,
    transactional_id: &str,
    topic: &str,
    index: i32,
) -> Result<Ongoing, ResponseError> {
    let state_topic = broker.topic(TXN_TOPIC).ok_or(ResponseError::CoordinatorNotAvailable)?;
    let partition = crate::group::partition_for(transactional_id, state_topic.partition_count());
    let replica = state_topic.replica(partition).ok_or(ResponseError::CoordinatorNotAvailable)?;
    match replica.leader() {
        Leader::ThisBroker => {
            let m = broker.txns.describe(broker, transactional_id).await?;
            Ok(Ongoing {
                state: m.state.name().to_string(),
                producer_id: m.producer_id,
                producer_epoch: m.producer_epoch,
                holds_partition: m.partitions.contains(&(topic.to_string(), index)),
            })
        }
        Leader::Broker(id) => {
            let address =
                broker.replication().and_then(|c| c.kafka_address(id)).ok_or(ResponseError::CoordinatorNotAvailable)?;
            let request = DescribeTransactionsRequest::default()
                .with_transactional_ids(vec![TransactionalId(StrBytes::from_string(transactional_id.to_string()))]);
            let response = super::call_broker(&address, &request, 0, REMOTE_TIMEOUT).await?;
            let state = response.transaction_states.into_iter().next().ok_or(ResponseError::UnknownServerError)?;
            if let Some(code) = ResponseError::try_from_code(state.error_code) {
                return Err(code);
            }
            let holds_partition =
                state.topics.iter().any(|t| t.topic.0.as_str() == topic && t.partitions.contains(&index));
            Ok(Ongoing {
                state: state.transaction_state.to_string(),
                producer_id: state.producer_id.0,
                producer_epoch: state.producer_epoch,
                holds_partition,
            })
        }
        Leader::Unknown => Err(ResponseError::CoordinatorNotAvailable),
    }
}
