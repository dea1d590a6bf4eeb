//! AddOffsetsToTxn (key 25): a transactional producer about to send a group's offsets
//! with its transaction (`sendOffsetsToTransaction`) adds that group's partition of
//! `__consumer_offsets` to the transaction, at its transaction coordinator. The offsets
//! themselves go to the group coordinator (TxnOffsetCommit, see
//! [`crate::group::txn_offsets`]); the transaction's marker settles them.

use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::{AddOffsetsToTxnRequest, AddOffsetsToTxnResponse};

use crate::broker::Broker;
use crate::group::{OFFSETS_TOPIC, partition_for};

pub async fn handle(broker: &Arc<Broker>, request: AddOffsetsToTxnRequest) -> AddOffsetsToTxnResponse {
    let outcome = add(broker, &request).await;
    AddOffsetsToTxnResponse::default().with_error_code(outcome.err().map_or(0, |e| e.code()))
}

async fn add(broker: &Arc<Broker>, request: &AddOffsetsToTxnRequest) -> Result<(), ResponseError> {
    if request.group_id.is_empty() {
        return Err(ResponseError::InvalidGroupId);
    }
    // The group's partition exists once `__consumer_offsets` does (created on first use,
    // as for any group request).
    let b = broker.clone();
    let offsets = tokio::task::spawn_blocking(move || b.groups.offsets_topic(&b)).await.map_err(|e| {
        tracing::warn!(error = %e, "creating {OFFSETS_TOPIC} failed");
        ResponseError::CoordinatorNotAvailable
    })??;
    let index = partition_for(&request.group_id, offsets.partition_count());
    broker
        .txns
        .add_partitions(
            broker,
            &request.transactional_id,
            request.producer_id.0,
            request.producer_epoch,
            &[(OFFSETS_TOPIC.to_string(), index)],
        )
        .await
}
