//! Produce (key 0): validate each partition's record batches, append them as sent (after
//! setting offsets, leader epoch and, for `LogAppendTime` topics, timestamps), and answer
//! per `acks`: 0 → no response, 1 → once appended, -1 → once fsynced (group commit).
//!
//! Appends run in request order on the connection's reader; only the wait for
//! durability runs concurrently, so pipelined batches of one producer land in order.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, ResponseKind};

use crate::broker::partition::{Appended, Partition};
use crate::broker::rate_limited::{PRODUCE_STORAGE_ERRORS, PRODUCE_SYNC_ERRORS};
use crate::broker::topic_config::EffectiveTopicConfig;
use crate::broker::{Broker, now_ms};
use crate::log::SyncTarget;
use crate::log::batch::{BatchError, BatchHeader, BatchIter, validate_produced_batches};
use crate::log::recompress::recompress_into;

use super::{Pending, ReplyTo, message};

/// A partition whose append must become durable before it is acknowledged.
struct AwaitingSync {
    topic: usize,
    partition: usize,
    target: SyncTarget,
    log: Arc<Partition>,
}

fn batch_error_code(e: &BatchError) -> ResponseError {
    match e {
        BatchError::TooLarge => ResponseError::MessageTooLarge,
        BatchError::InvalidRecord(_) | BatchError::UnsupportedMagic(_) => ResponseError::InvalidRecord,
        _ => ResponseError::CorruptMessage,
    }
}

fn partition_error(index: i32, code: Option<ResponseError>, msg: Option<String>) -> PartitionProduceResponse {
    PartitionProduceResponse::default()
        .with_index(index)
        .with_error_code(code.map_or(0, |c| c.code()))
        .with_base_offset(-1)
        .with_log_append_time_ms(-1)
        .with_log_start_offset(-1)
        .with_error_message(super::message(msg))
}

/// Kafka's answer to records without a key for a compacted topic: INVALID_RECORD for the
/// whole partition's data, each keyless record's index in `record_errors` (Produce v8+).
fn keyless_refused(partition: &Partition, index: i32, keyless: &[i32]) -> PartitionProduceResponse {
    let text = format!(
        "Compacted topic cannot accept message without key in topic partition {}-{}.",
        partition.topic, partition.index
    );
    let record_errors = keyless
        .iter()
        .map(|&i| {
            BatchIndexAndErrorMessage::default()
                .with_batch_index(i)
                .with_batch_index_error_message(message(Some(text.clone())))
        })
        .collect();
    partition_error(index, Some(ResponseError::InvalidRecord), Some(text)).with_record_errors(record_errors)
}

/// The bytes to append: as sent (the request's buffer, not a copy), or rewritten with
/// the topic's `compression.type`.
fn with_topic_codec(
    records: &Bytes,
    headers: Vec<BatchHeader>,
    config: &EffectiveTopicConfig,
) -> Result<(Bytes, Vec<BatchHeader>), BatchError> {
    let Some(codec) = config.compression.filter(|c| headers.iter().any(|h| h.compression() != *c)) else {
        return Ok((records.clone(), headers));
    };
    let mut out = BytesMut::with_capacity(records.len());
    let mut pos = 0;
    for h in &headers {
        let end = pos + h.total_size();
        recompress_into(&records[pos..end], codec, config.max_message_bytes, &mut out)?;
        pos = end;
    }
    let headers = BatchIter::new(&out).map(|item| item.map(|(h, _)| h)).collect::<Result<Vec<_>, _>>()?;
    // As in Kafka, the size limit applies to what is stored.
    if headers.iter().any(|h| h.total_size() > config.max_message_bytes) {
        return Err(BatchError::TooLarge);
    }
    Ok((out.freeze(), headers))
}

pub fn start(broker: Arc<Broker>, request: ProduceRequest, to: ReplyTo) -> Pending {
    let acks = request.acks;
    let timeout = Duration::from_millis(u64::try_from(request.timeout_ms).unwrap_or(0));
    let now = now_ms();
    let mut responses = Vec::with_capacity(request.topic_data.len());
    let mut waits = Vec::new();
    for (ti, topic_data) in request.topic_data.into_iter().enumerate() {
        let by_id = to.version >= 13;
        let topic = if by_id { broker.topics.get_by_id(topic_data.topic_id) } else { broker.topic(&topic_data.name.0) };
        let mut partitions = Vec::with_capacity(topic_data.partition_data.len());
        for (pi, data) in topic_data.partition_data.into_iter().enumerate() {
            let index = data.index;
            let Some(partition) = topic.as_ref().and_then(|t| t.partition(index)) else {
                let code = if by_id && topic.is_none() {
                    ResponseError::UnknownTopicId
                } else {
                    ResponseError::UnknownTopicOrPartition
                };
                partitions.push(partition_error(index, Some(code), None));
                continue;
            };
            if crate::broker::topics::is_internal(&partition.topic) {
                // Only the broker writes its internal topics (Kafka: "Cannot append to
                // internal topic").
                partitions.push(partition_error(index, Some(ResponseError::InvalidTopicException), None));
                continue;
            }
            if !matches!(acks, -1..=1) {
                partitions.push(partition_error(index, Some(ResponseError::InvalidRequiredAcks), None));
                continue;
            }
            let records = data.records.unwrap_or_default();
            let config = match partition.config() {
                Ok(c) => c,
                Err(e) => {
                    partitions.push(partition_error(index, Some(e.code()), Some(e.to_string())));
                    continue;
                }
            };
            let headers = match validate_produced_batches(&records, config.max_message_bytes) {
                Ok(h) => h,
                Err(e) => {
                    tracing::debug!(topic = partition.topic, partition = index, error = %e, "rejected produce");
                    partitions.push(partition_error(index, Some(batch_error_code(&e)), Some(e.to_string())));
                    continue;
                }
            };
            if headers.iter().any(|h| h.is_transactional() || h.is_control()) {
                partitions.push(partition_error(
                    index,
                    Some(ResponseError::TransactionalIdNotFound),
                    Some("transactions are not supported yet".into()),
                ));
                continue;
            }
            if !config.log_append_time
                && let Some(h) = headers.iter().find(|h| {
                    // A batch's timestamps lie between its base (first record) and max
                    // timestamps for every producer in practice; Kafka checks each record.
                    h.max_timestamp > now.saturating_add(config.timestamp_after_max_ms)
                        || (h.base_timestamp >= 0
                            && h.base_timestamp < now.saturating_sub(config.timestamp_before_max_ms))
                })
            {
                partitions.push(partition_error(
                    index,
                    Some(ResponseError::InvalidTimestamp),
                    Some(format!(
                        "Timestamp {} of a batch is out of range (message.timestamp.before.max.ms / after.max.ms)",
                        h.max_timestamp
                    )),
                ));
                continue;
            }
            if config.cleanup_compact {
                match crate::log::cleaner::records::keyless_records(&records, &headers, config.max_message_bytes) {
                    Ok(keyless) if keyless.is_empty() => {}
                    Ok(keyless) => {
                        partitions.push(keyless_refused(&partition, index, &keyless));
                        continue;
                    }
                    Err(e) => {
                        partitions.push(partition_error(index, Some(batch_error_code(&e)), Some(e.to_string())));
                        continue;
                    }
                }
            }
            if headers.is_empty() {
                // Kafka accepts an empty record set and reports no offset.
                partitions.push(partition_error(index, None, None));
                continue;
            }
            let (data, headers) = match with_topic_codec(&records, headers, &config) {
                Ok(rewritten) => rewritten,
                Err(e) => {
                    partitions.push(partition_error(index, Some(batch_error_code(&e)), Some(e.to_string())));
                    continue;
                }
            };
            match partition.append_limited(data, &headers, now, broker.producer_limits()) {
                Ok(Appended::New { base_offset, log_append_time, log_start_offset, sync }) => {
                    partitions.push(
                        PartitionProduceResponse::default()
                            .with_index(index)
                            .with_base_offset(base_offset)
                            .with_log_append_time_ms(log_append_time)
                            .with_log_start_offset(log_start_offset),
                    );
                    if let Some(target) = sync {
                        waits.push(AwaitingSync { topic: ti, partition: pi, target, log: partition.clone() });
                    }
                }
                Ok(Appended::Duplicate { base_offset, log_start_offset, sync }) => {
                    partitions.push(
                        PartitionProduceResponse::default()
                            .with_index(index)
                            .with_base_offset(base_offset)
                            .with_log_append_time_ms(-1)
                            .with_log_start_offset(log_start_offset),
                    );
                    // The original is not durable yet: the retry waits for the same fsync.
                    if let Some(target) = sync {
                        waits.push(AwaitingSync { topic: ti, partition: pi, target, log: partition.clone() });
                    }
                }
                Err(e) => {
                    if e.code() == ResponseError::KafkaStorageError
                        && let Some(suppressed) = PRODUCE_STORAGE_ERRORS.check(now)
                    {
                        tracing::warn!(
                            topic = partition.topic,
                            partition = index,
                            error = %e,
                            suppressed,
                            "produce failed: the log cannot be written (KAFKA_STORAGE_ERROR; further failures are counted, not logged, for 10 s)"
                        );
                    }
                    partitions.push(partition_error(index, Some(e.code()), Some(e.to_string())))
                }
            }
        }
        responses.push(
            TopicProduceResponse::default()
                .with_name(topic_data.name)
                .with_topic_id(topic_data.topic_id)
                .with_partition_responses(partitions),
        );
    }

    if acks != -1 {
        // Durability still has to happen for the high watermark to move; nobody waits.
        for wait in waits {
            let broker = broker.clone();
            tokio::spawn(async move {
                if let Err(e) = wait.log.commit(&broker.flusher, wait.target).await
                    && let Some(suppressed) = PRODUCE_SYNC_ERRORS.check(now_ms())
                {
                    tracing::error!(topic = wait.log.topic, partition = wait.log.index, error = %e, suppressed, "fsync failed");
                }
            });
        }
        if acks == 0 {
            return Box::pin(std::future::ready(Ok(None)));
        }
        return Box::pin(std::future::ready(
            to.encode(ResponseKind::Produce(ProduceResponse::default().with_responses(responses))),
        ));
    }

    Box::pin(async move {
        let commits = waits.into_iter().map(|wait| {
            let broker = broker.clone();
            // The commit runs in its own task: when `timeout_ms` expires only the waiting
            // stops, the high watermark still advances once the fsync completes.
            let log = wait.log;
            let target = wait.target;
            let commit = tokio::spawn(async move { log.commit(&broker.flusher, target).await });
            async move {
                let outcome = tokio::time::timeout(timeout, commit).await;
                (wait.topic, wait.partition, outcome)
            }
        });
        for (ti, pi, outcome) in futures::future::join_all(commits).await {
            let failure = match outcome {
                Ok(Ok(Ok(()))) => None,
                Ok(Ok(Err(e))) => {
                    if let Some(suppressed) = PRODUCE_SYNC_ERRORS.check(now_ms()) {
                        tracing::error!(error = %e, suppressed, "fsync of produced data failed (further failures are counted, not logged, for 10 s)");
                    }
                    Some((e.code(), e.to_string()))
                }
                Ok(Err(join)) => Some((ResponseError::KafkaStorageError, format!("fsync task failed: {join}"))),
                Err(_elapsed) => {
                    Some((ResponseError::RequestTimedOut, "fsync did not finish within timeout_ms".into()))
                }
            };
            if let Some((code, msg)) = failure {
                let p = &mut responses[ti].partition_responses[pi];
                p.error_code = code.code();
                p.error_message = message(Some(msg));
            }
        }
        to.encode(ResponseKind::Produce(ProduceResponse::default().with_responses(responses)))
    })
}
