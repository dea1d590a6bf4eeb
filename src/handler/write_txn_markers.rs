//! WriteTxnMarkers (key 27): a transaction coordinator asks the leaders of a
//! transaction's partitions to append its COMMIT or ABORT marker (see
//! [`crate::log::txn`]). Each marker is appended as the leader, checked for fencing
//! against the partition's producer state (an older producer epoch: PRODUCER_FENCED; an
//! older coordinator epoch: TRANSACTION_COORDINATOR_FENCED), and answered once the high
//! watermark covers it: the coordinator completes the transaction only when every
//! marker is committed, since the last stable offset moves past the transaction then.
//!
//! A marker is never refused for the caps on tracked producer ids: refusing it would
//! leave the transaction open and hold the last stable offset for good.
//!
//! A marker for `__consumer_offsets` is appended by the group coordinator, which settles
//! the producer's pending transactional offsets with it (see
//! [`crate::group::txn_offsets`]); other internal topics take no transactions.

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::{WriteTxnMarkersRequest, WriteTxnMarkersResponse};

use crate::broker::partition::PartitionError;
use crate::broker::producer_state::{ProducerIdGate, ProducerLimits};
use crate::broker::replica::{Commit, Leader, Replica};
use crate::broker::{Broker, now_ms};
use crate::log::batch::BatchHeader;
use crate::log::txn::{TxnMarker, marker_batch};

/// How long a marker may take to commit (Kafka's inter-broker `request.timeout.ms`).
const COMMIT_TIMEOUT: Duration = Duration::from_secs(30);

/// Appends one marker to `partition`; returns what its commit waits for.
async fn append_marker(
    broker: &Arc<Broker>,
    partition: &dyn Replica,
    producer_id: i64,
    producer_epoch: i16,
    marker: TxnMarker,
) -> Result<Option<Commit>, PartitionError> {
    if partition.topic() == crate::group::OFFSETS_TOPIC {
        // On the blocking pool, as every group operation (it may reload the partition's
        // groups, and a local append writes under the coordinator's lock).
        let (b, index) = (broker.clone(), partition.index());
        let written = tokio::task::spawn_blocking(move || {
            b.groups.write_txn_marker(&b, index, producer_id, producer_epoch, marker)
        })
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "writing a transaction marker to {} failed", crate::group::OFFSETS_TOPIC);
            PartitionError::Rejected(ResponseError::UnknownServerError)
        })?;
        return written.map_err(PartitionError::Rejected);
    }
    if crate::broker::topics::is_internal(partition.topic()) {
        return Err(PartitionError::Rejected(ResponseError::InvalidTopicException));
    }
    if partition.leader() != Leader::ThisBroker {
        return Err(PartitionError::Rejected(ResponseError::NotLeaderOrFollower));
    }
    let now = now_ms();
    let batch = marker_batch(producer_id, producer_epoch, marker, now)?;
    let header = BatchHeader::parse(&batch).map_err(crate::log::LogError::from)?;
    let gate = ProducerIdGate::unlimited();
    let limits = ProducerLimits {
        per_partition: usize::MAX,
        gate: &gate,
        txn: crate::broker::txn_verification::TxnVerification::Off,
    };
    Ok(partition.append(batch, std::slice::from_ref(&header), now, limits).await?.commit)
}

async fn committed(commit: Option<Commit>) -> Result<(), PartitionError> {
    let Some(commit) = commit else { return Ok(()) };
    tokio::time::timeout(COMMIT_TIMEOUT, commit.wait())
        .await
        .map_err(|_elapsed| PartitionError::Rejected(ResponseError::RequestTimedOut))?
}

/// Appends one marker to `partition` and waits for it to commit (the transaction
/// coordinator's own markers to partitions led here).
pub(crate) async fn write_marker(
    broker: &Arc<Broker>,
    partition: &dyn Replica,
    producer_id: i64,
    producer_epoch: i16,
    marker: TxnMarker,
) -> Result<(), ResponseError> {
    let written = async {
        let commit =
            append_marker(broker, partition, producer_id, producer_epoch, marker).await.map_err(|e| e.code())?;
        committed(commit).await.map_err(|e| e.code())
    };
    tokio::time::timeout(COMMIT_TIMEOUT, written).await.map_err(|_elapsed| ResponseError::RequestTimedOut)?
}

/// Appends every marker in request order, then waits for their commits together.
pub async fn handle(broker: &Arc<Broker>, request: WriteTxnMarkersRequest) -> WriteTxnMarkersResponse {
    let mut markers = Vec::with_capacity(request.markers.len());
    let mut waits = Vec::new();
    for (mi, m) in request.markers.into_iter().enumerate() {
        let marker = TxnMarker { commit: m.transaction_result, coordinator_epoch: m.coordinator_epoch };
        let mut topics = Vec::with_capacity(m.topics.len());
        for (ti, t) in m.topics.into_iter().enumerate() {
            let topic = broker.topic(&t.name.0);
            let mut partitions = Vec::with_capacity(t.partition_indexes.len());
            for (pi, index) in t.partition_indexes.into_iter().enumerate() {
                let appended = match topic.as_ref().and_then(|topic| topic.replica(index)) {
                    None => Err(PartitionError::Rejected(ResponseError::UnknownTopicOrPartition)),
                    // Bounded like the commit: the coordinator's request outlives both.
                    Some(p) => tokio::time::timeout(
                        COMMIT_TIMEOUT,
                        append_marker(broker, &*p, m.producer_id.0, m.producer_epoch, marker),
                    )
                    .await
                    .unwrap_or(Err(PartitionError::Rejected(ResponseError::RequestTimedOut))),
                };
                let code = match appended {
                    Ok(commit) => {
                        waits.push((mi, ti, pi, commit));
                        0
                    }
                    Err(e) => {
                        tracing::debug!(topic = %t.name.0, partition = index, producer_id = m.producer_id.0, error = %e, "transaction marker not written");
                        e.code().code()
                    }
                };
                partitions.push(
                    WritableTxnMarkerPartitionResult::default().with_partition_index(index).with_error_code(code),
                );
            }
            topics.push(WritableTxnMarkerTopicResult::default().with_name(t.name).with_partitions(partitions));
        }
        markers.push(WritableTxnMarkerResult::default().with_producer_id(m.producer_id).with_topics(topics));
    }
    let outcomes = futures::future::join_all(
        waits.into_iter().map(|(mi, ti, pi, c)| async move { (mi, ti, pi, committed(c).await) }),
    )
    .await;
    for (mi, ti, pi, outcome) in outcomes {
        if let Err(e) = outcome {
            markers[mi].topics[ti].partitions[pi].error_code = e.code().code();
        }
    }
    WriteTxnMarkersResponse::default().with_markers(markers)
}
