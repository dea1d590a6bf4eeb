//! AddPartitionsToTxn (key 24, v0-v3): a transactional producer adds the partitions it is
//! about to write to its transaction, at its transaction coordinator (see
//! [`crate::txn::coordinator`]). As in Kafka, partitions that do not exist fail the whole
//! request: they get UNKNOWN_TOPIC_OR_PARTITION, the others OPERATION_NOT_ATTEMPTED.
//!
//! v4+ (KIP-890's broker-to-coordinator verification) is not served: Jet advertises up to
//! v3, which is what clients use without the `transaction.version` feature.

use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::{AddPartitionsToTxnRequest, AddPartitionsToTxnResponse};

use crate::broker::Broker;

pub async fn handle(broker: &Arc<Broker>, request: AddPartitionsToTxnRequest) -> AddPartitionsToTxnResponse {
    let topics = request.v3_and_below_topics;
    let exists = |name: &str, index: i32| {
        !crate::broker::topics::is_internal(name) && broker.topic(name).and_then(|t| t.replica(index)).is_some()
    };
    let any_unknown = topics.iter().any(|t| t.partitions.iter().any(|&p| !exists(&t.name.0, p)));
    let outcome = if any_unknown {
        Err(ResponseError::OperationNotAttempted)
    } else {
        let partitions: Vec<(String, i32)> =
            topics.iter().flat_map(|t| t.partitions.iter().map(|&p| (t.name.0.to_string(), p))).collect();
        broker
            .txns
            .add_partitions(
                broker,
                &request.v3_and_below_transactional_id.0,
                request.v3_and_below_producer_id.0,
                request.v3_and_below_producer_epoch,
                &partitions,
            )
            .await
    };
    let results = topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|&p| {
                    let code = match outcome {
                        _ if any_unknown && !exists(&t.name.0, p) => ResponseError::UnknownTopicOrPartition.code(),
                        Ok(()) => 0,
                        Err(code) => code.code(),
                    };
                    AddPartitionsToTxnPartitionResult::default().with_partition_index(p).with_partition_error_code(code)
                })
                .collect();
            AddPartitionsToTxnTopicResult::default().with_name(t.name).with_results_by_partition(partitions)
        })
        .collect();
    AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results)
}
