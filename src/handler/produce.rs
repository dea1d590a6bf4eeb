//! Produce (key 0): validate each partition's record batches, append them as sent (after
//! setting offsets, leader epoch and, for `LogAppendTime` topics, timestamps), and answer
//! per `acks`: 0 → no response, 1 → once appended, -1 → once the high watermark covers
//! the append (locally: fsynced by the group-commit flusher; see
//! [`crate::broker::replica`]).
//!
//! Appends run in request order on the connection's reader; only the wait for the
//! commit runs concurrently, so pipelined batches of one producer land in order.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, ResponseKind};

use crate::broker::partition::PartitionError;
use crate::broker::rate_limited::PRODUCE_STORAGE_ERRORS;
use crate::broker::replica::{Appended, Commit, Leader, Replica};
use crate::broker::topic_config::EffectiveTopicConfig;
use crate::broker::txn_verification::TxnVerification;
use crate::broker::{Broker, now_ms};
use crate::log::batch::{
    BatchError, BatchHeader, BatchIter, Compression, decompressed_size_limit, validate_produced_batches_within,
};
use crate::log::recompress::recompress_into;

use super::leader_hint::LeaderHints;
use super::{Pending, ReplyTo, message};

/// A partition whose append must be committed (and held by `min.insync.replicas`) before
/// it is acknowledged.
struct AwaitingCommit {
    topic: usize,
    partition: usize,
    commit: Option<Commit>,
    /// The replica and its `min.insync.replicas`, when more than one.
    held_by: Option<(Arc<dyn Replica>, usize)>,
}

impl AwaitingCommit {
    async fn wait(self) -> Result<(), PartitionError> {
        if let Some(commit) = self.commit {
            commit.wait().await?;
        }
        match self.held_by {
            Some((replica, replicas)) => replica.held_by(replicas).await,
            None => Ok(()),
        }
    }
}

/// Kafka's check before an `acks=all` append: at least `min.insync.replicas` replicas in
/// sync (the leader's view on a cluster; a single node is one).
fn check_in_sync(broker: &Broker, partition: &dyn Replica, required: usize) -> Result<(), PartitionError> {
    if required <= 1 {
        return Ok(());
    }
    let held = broker
        .replication()
        .and_then(|rt| rt.partition_nodes(partition.topic(), partition.index()))
        .map_or(1, |nodes| nodes.isr.len());
    if held < required {
        return Err(PartitionError::NotEnoughReplicas { held, required, after_append: false });
    }
    Ok(())
}

fn batch_error_code(e: &BatchError) -> ResponseError {
    match e {
        BatchError::TooLarge | BatchError::NoScratch { .. } => ResponseError::MessageTooLarge,
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
fn keyless_refused(partition: &dyn Replica, index: i32, keyless: &[i32]) -> PartitionProduceResponse {
    let text = format!(
        "Compacted topic cannot accept message without key in topic partition {}-{}.",
        partition.topic(),
        partition.index()
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
/// the topic's `compression.type`. The rewritten batches together may not exceed
/// `decompressed_limit` (the scratch reserved for them).
fn with_topic_codec(
    records: &Bytes,
    headers: Vec<BatchHeader>,
    config: &EffectiveTopicConfig,
    decompressed_limit: usize,
) -> Result<(Bytes, Vec<BatchHeader>), BatchError> {
    let Some(codec) = recompression(config, &headers) else {
        return Ok((records.clone(), headers));
    };
    let mut out = BytesMut::with_capacity(records.len());
    let mut pos = 0;
    for h in &headers {
        let end = pos + h.total_size();
        recompress_into(&records[pos..end], codec, decompressed_limit, &mut out)?;
        if out.len() > decompressed_limit {
            return Err(BatchError::TooLarge);
        }
        pos = end;
    }
    let headers = BatchIter::new(&out).map(|item| item.map(|(h, _)| h)).collect::<Result<Vec<_>, _>>()?;
    // As in Kafka, the size limit applies to what is stored.
    if headers.iter().any(|h| h.total_size() > config.max_message_bytes) {
        return Err(BatchError::TooLarge);
    }
    Ok((out.freeze(), headers))
}

/// The codec the topic rewrites these batches with, if any differ from it.
fn recompression(config: &EffectiveTopicConfig, headers: &[BatchHeader]) -> Option<Compression> {
    config.compression.filter(|c| headers.iter().any(|h| h.compression() != *c))
}

/// Scratch to reserve for one partition's data, and the decompressed size each batch
/// may then reach.
///
/// The full bound is `max.message.bytes` × [`crate::log::batch::DECOMPRESSION_RATIO_LIMIT`] per batch
/// (never more than the scratch pool allows); recompression holds a batch's plain
/// records and the rewritten output (up to twice the bound, the last batch overshooting
/// it) at once, so it reserves three times the bound. A first attempt reserves less,
/// sized from the compressed bytes; a batch that decompresses beyond it is tried again
/// with the full bound.
#[derive(Debug, Clone, Copy, PartialEq)]
struct ScratchPlan {
    limit: usize,
    reserve: usize,
}

/// A first guess at the decompressed size: this many times the compressed bytes.
const FIRST_GUESS_RATIO: usize = 16;
/// ... and at least this much.
const FIRST_GUESS_MIN: usize = 256 << 10;

fn scratch_plan(records: &[u8], config: &EffectiveTopicConfig, pool: usize, full: bool) -> ScratchPlan {
    // Reading the codecs needs only the headers; a malformed set is refused by
    // validation, which is planned for as if compressed.
    let mut compressed = false;
    let mut recompress = false;
    let mut pos = 0;
    while pos < records.len() {
        match BatchHeader::parse(&records[pos..]) {
            Ok(h) => {
                compressed |= h.compression() != Compression::None;
                recompress |= config.compression.is_some_and(|c| c != h.compression());
                pos += h.total_size();
            }
            Err(_unparsable) => {
                compressed = true;
                break;
            }
        }
    }
    if !compressed && !recompress {
        return ScratchPlan { limit: 0, reserve: 0 };
    }
    let holders = if recompress { 3 } else { 1 };
    let bound = decompressed_size_limit(config.max_message_bytes).min(pool / holders);
    let limit =
        if full { bound } else { records.len().saturating_mul(FIRST_GUESS_RATIO).max(FIRST_GUESS_MIN).min(bound) };
    ScratchPlan { limit, reserve: limit.saturating_mul(holders) }
}

/// What one partition's data becomes before it is appended.
enum Prepared {
    /// Refused, or nothing to append: the answer for the partition.
    Answer(PartitionProduceResponse),
    Append(Bytes, Vec<BatchHeader>),
}

/// Validates one partition's data and rewrites it for the topic, within `limit`
/// decompressed bytes per batch. `Err(NeedsMoreScratch)` (only when `retry_on_too_large`)
/// means a batch needs more than `limit`.
fn prepare(
    partition: &dyn Replica,
    records: &Bytes,
    config: &EffectiveTopicConfig,
    now: i64,
    limit: usize,
    retry_on_too_large: bool,
    transactional_id: bool,
) -> Result<Prepared, NeedsMoreScratch> {
    let index = partition.index();
    let refuse = |e: BatchError| {
        if retry_on_too_large && matches!(e, BatchError::TooLarge) {
            return Err(NeedsMoreScratch);
        }
        Ok(Prepared::Answer(partition_error(index, Some(batch_error_code(&e)), Some(e.to_string()))))
    };
    let headers = match validate_produced_batches_within(records, config.max_message_bytes, limit) {
        Ok(h) => h,
        Err(e) => {
            tracing::debug!(topic = partition.topic(), partition = index, error = %e, "rejected produce");
            return refuse(e);
        }
    };
    if let Some((code, why)) = transactional_refusal(&headers, transactional_id) {
        return Ok(Prepared::Answer(partition_error(index, Some(code), Some(why.into()))));
    }
    if !config.log_append_time
        && let Some(h) = headers.iter().find(|h| {
            // A batch's timestamps lie between its base (first record) and max
            // timestamps for every producer in practice; Kafka checks each record.
            h.max_timestamp > now.saturating_add(config.timestamp_after_max_ms)
                || (h.base_timestamp >= 0 && h.base_timestamp < now.saturating_sub(config.timestamp_before_max_ms))
        })
    {
        return Ok(Prepared::Answer(partition_error(
            index,
            Some(ResponseError::InvalidTimestamp),
            Some(format!(
                "Timestamp {} of a batch is out of range (message.timestamp.before.max.ms / after.max.ms)",
                h.max_timestamp
            )),
        )));
    }
    if config.cleanup_compact {
        match crate::log::cleaner::records::keyless_records(records, &headers, limit) {
            Ok(keyless) if keyless.is_empty() => {}
            Ok(keyless) => return Ok(Prepared::Answer(keyless_refused(partition, index, &keyless))),
            Err(e) => return refuse(e),
        }
    }
    if headers.is_empty() {
        // Kafka accepts an empty record set and reports no offset.
        return Ok(Prepared::Answer(partition_error(index, None, None)));
    }
    match with_topic_codec(records, headers, config, limit) {
        Ok((data, headers)) => Ok(Prepared::Append(data, headers)),
        Err(e) => refuse(e),
    }
}

/// Why a partition's batches are refused for what they say about transactions, as Kafka
/// refuses them: control batches come from the broker only (INVALID_RECORD), and
/// transactional batches only in a request that names its transactional id (Kafka
/// answers TRANSACTIONAL_ID_AUTHORIZATION_FAILED) and with a producer id; a producer's
/// batch carries sequence numbers (Kafka's `LogValidator`: INVALID_RECORD).
///
/// Compacted topics take transactional writes as any topic does (Kafka Streams'
/// exactly-once changelogs, transactional offset commits): the log cleaner drops aborted
/// records, never cleans past the last stable offset, and keeps each marker while its
/// transaction has data (`crate::log::cleaner`).
fn transactional_refusal(headers: &[BatchHeader], transactional_id: bool) -> Option<(ResponseError, &'static str)> {
    if headers.iter().any(BatchHeader::is_control) {
        return Some((ResponseError::InvalidRecord, "control batches are written by the broker only"));
    }
    if headers.iter().any(|h| h.producer_id >= 0 && h.base_sequence < 0) {
        // Only a group coordinator writes a producer's batch without sequences.
        return Some((ResponseError::InvalidRecord, "a producer's batch without a sequence number"));
    }
    let transactional = headers.iter().filter(|h| h.is_transactional()).count();
    if transactional == 0 {
        return None;
    }
    if !transactional_id {
        return Some((
            ResponseError::TransactionalIdAuthorizationFailed,
            "transactional batches in a produce request without a transactional id",
        ));
    }
    if transactional != headers.len() || headers.iter().any(|h| h.producer_id < 0) {
        return Some((
            ResponseError::InvalidRecord,
            "a transactional produce holds transactional batches of one producer id only",
        ));
    }
    None
}

/// A batch decompresses beyond the scratch reserved for a first attempt.
struct NeedsMoreScratch;

/// Validates and rewrites one partition's data holding its scratch from the pool,
/// then appends it.
async fn validate_and_append(
    broker: &Arc<Broker>,
    partition: &dyn Replica,
    records: &Bytes,
    config: &EffectiveTopicConfig,
    now: i64,
    transactional_id: Option<&str>,
) -> (PartitionProduceResponse, Option<Commit>) {
    let index = partition.index();
    // Before any scratch is reserved: verification may wait for the coordinator.
    let txn = match verify_txn(broker, partition, records, transactional_id, now).await {
        Ok(txn) => txn,
        Err(code) => return (partition_error(index, Some(code), None), None),
    };
    let pool = &broker.scratch_budget;
    let mut full = false;
    loop {
        let plan = scratch_plan(records, config, pool.capacity(), full);
        let _scratch = if plan.reserve == 0 {
            None
        } else {
            match pool.reserve(plan.reserve).await {
                Ok(r) => Some(r),
                Err(e) => {
                    return (
                        partition_error(index, Some(ResponseError::UnknownServerError), Some(e.to_string())),
                        None,
                    );
                }
            }
        };
        // Synchronous from here to the append, which resolves once this replica's own log
        // holds the batches (at once for the local log): the scratch is never held across
        // a commit wait.
        let retry = !full && plan.limit < scratch_plan(records, config, pool.capacity(), true).limit;
        let (data, headers) =
            match prepare(partition, records, config, now, plan.limit, retry, transactional_id.is_some()) {
                Ok(Prepared::Answer(answer)) => return (answer, None),
                Ok(Prepared::Append(data, headers)) => (data, headers),
                Err(NeedsMoreScratch) => {
                    full = true;
                    continue;
                }
            };
        // A retry (`duplicate`) whose original is not committed yet waits for it.
        return match partition.append(data, &headers, now, broker.producer_limits(txn)).await {
            Ok(Appended { base_offset, log_append_time, log_start_offset, duplicate: _, commit }) => (
                PartitionProduceResponse::default()
                    .with_index(index)
                    .with_base_offset(base_offset)
                    .with_log_append_time_ms(log_append_time)
                    .with_log_start_offset(log_start_offset),
                commit,
            ),
            Err(e) => {
                if e.code() == ResponseError::KafkaStorageError
                    && let Some(suppressed) = PRODUCE_STORAGE_ERRORS.check(now)
                {
                    tracing::warn!(
                        topic = partition.topic(),
                        partition = index,
                        error = %e,
                        suppressed,
                        "produce failed: the log cannot be written (KAFKA_STORAGE_ERROR; further failures are counted, not logged, for 10 s)"
                    );
                }
                (partition_error(index, Some(e.code()), Some(e.to_string())), None)
            }
        };
    }
}

/// KIP-890 part 1 (see [`crate::broker::txn_verification`]): a transactional write that
/// would open a transaction on this partition is verified with the transaction
/// coordinator first; the append then needs the verification's guard. Validation proper
/// comes later (`prepare`): this only reads the first batch's header.
async fn verify_txn(
    broker: &Arc<Broker>,
    partition: &dyn Replica,
    records: &Bytes,
    transactional_id: Option<&str>,
    now: i64,
) -> Result<TxnVerification, ResponseError> {
    let Some(transactional_id) = transactional_id else { return Ok(TxnVerification::Off) };
    if !broker.config.kafka.transaction_partition_verification_enable {
        return Ok(TxnVerification::Off);
    }
    let Ok(first) = BatchHeader::parse(records) else { return Ok(TxnVerification::Off) };
    if !first.is_transactional() || first.is_control() || first.producer_id < 0 || first.base_sequence < 0 {
        // Not a transactional write of a producer (`prepare` refuses the malformed ones).
        return Ok(TxnVerification::Off);
    }
    let (producer_id, epoch) = (first.producer_id, first.producer_epoch);
    let Some(guard) = partition.begin_txn_verification(producer_id, epoch, now).map_err(|e| e.code())? else {
        return Ok(TxnVerification::Required(None));
    };
    let verified =
        crate::txn::verify::verify(broker, transactional_id, producer_id, epoch, partition.topic(), partition.index());
    if let Err(code) = verified.await {
        partition.end_txn_verification(producer_id, guard);
        tracing::debug!(
            topic = partition.topic(),
            partition = partition.index(),
            producer_id,
            ?code,
            "transactional write not verified"
        );
        return Err(code);
    }
    Ok(TxnVerification::Required(Some(guard)))
}

pub async fn start(broker: Arc<Broker>, request: ProduceRequest, to: ReplyTo) -> Pending {
    let acks = request.acks;
    let transactional_id = request.transactional_id.as_ref().map(|t| t.0.to_string());
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
            let Some(partition) = topic.as_ref().and_then(|t| t.replica(index)) else {
                let code = if by_id && topic.is_none() {
                    ResponseError::UnknownTopicId
                } else {
                    ResponseError::UnknownTopicOrPartition
                };
                partitions.push(partition_error(index, Some(code), None));
                continue;
            };
            if crate::broker::topics::is_internal(partition.topic()) {
                // Only the broker writes its internal topics (Kafka: "Cannot append to
                // internal topic").
                partitions.push(partition_error(index, Some(ResponseError::InvalidTopicException), None));
                continue;
            }
            if partition.leader() != Leader::ThisBroker {
                partitions.push(partition_error(index, Some(ResponseError::NotLeaderOrFollower), None));
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
            if acks == -1
                && let Err(e) = check_in_sync(&broker, &*partition, config.min_insync_replicas)
            {
                partitions.push(partition_error(index, Some(e.code()), Some(e.to_string())));
                continue;
            }
            let (answer, commit) =
                validate_and_append(&broker, &*partition, &records, &config, now, transactional_id.as_deref()).await;
            let appended = answer.error_code == 0;
            partitions.push(answer);
            let held_by = (acks == -1 && appended && config.min_insync_replicas > 1)
                .then_some((partition, config.min_insync_replicas));
            if commit.is_some() || held_by.is_some() {
                waits.push(AwaitingCommit { topic: ti, partition: pi, commit, held_by });
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
        // The commits go on without a waiter: the high watermark still advances.
        drop(waits);
        if acks == 0 {
            return Box::pin(std::future::ready(Ok(None)));
        }
        return Box::pin(std::future::ready(
            to.encode(ResponseKind::Produce(with_leader_hints(&broker, to, responses))),
        ));
    }

    Box::pin(async move {
        // When `timeout_ms` expires only the waiting stops: the commit goes on.
        let commits = waits.into_iter().map(|wait| async move {
            let (topic, partition) = (wait.topic, wait.partition);
            let outcome = tokio::time::timeout(timeout, wait.wait()).await;
            (topic, partition, outcome)
        });
        for (ti, pi, outcome) in futures::future::join_all(commits).await {
            // A failed commit was logged where it failed (rate limited).
            let failure = match outcome {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some((e.code(), e.to_string())),
                Err(_elapsed) => Some((
                    ResponseError::RequestTimedOut,
                    "not committed within timeout_ms (fsynced; on a cluster, held by a majority and by \
                     min.insync.replicas replicas)"
                        .into(),
                )),
            };
            if let Some((code, msg)) = failure {
                let p = &mut responses[ti].partition_responses[pi];
                p.error_code = code.code();
                p.error_message = message(Some(msg));
            }
        }
        to.encode(ResponseKind::Produce(with_leader_hints(&broker, to, responses)))
    })
}

/// KIP-951 (v10+): every partition refused because another broker leads it names that
/// leader, and the response carries its endpoint.
fn with_leader_hints(broker: &Broker, to: ReplyTo, mut responses: Vec<TopicProduceResponse>) -> ProduceResponse {
    let version = to.version;
    let mut response = ProduceResponse::default();
    if version >= 10 {
        let mut hints = LeaderHints::on(to.listener);
        let not_leader = ResponseError::NotLeaderOrFollower.code();
        for t in &mut responses {
            let topic = if version >= 13 { broker.topics.get_by_id(t.topic_id) } else { broker.topic(&t.name.0) };
            let Some(topic) = topic else { continue };
            for p in t.partition_responses.iter_mut().filter(|p| p.error_code == not_leader) {
                if let Some(leader) = topic.replica(p.index).and_then(|r| hints.leader_of(broker, &*r)) {
                    p.current_leader = LeaderHints::produce_leader(leader);
                }
            }
        }
        response.node_endpoints = hints.produce_endpoints();
    }
    response.with_responses(responses)
}

#[cfg(test)]
#[path = "produce_tests.rs"]
mod tests;
