//! Fetch (key 1): read committed batches, long-polling until `min_bytes` are available
//! or `max_wait_ms` passes, woken by high-watermark changes (no polling loop).
//!
//! Limits follow Kafka: `partition_max_bytes` per partition and `max_bytes` overall,
//! except that the first batch of the first partition with data is returned whole even
//! when larger (KIP-74), so a consumer can always make progress. Incremental fetch
//! sessions (KIP-227) are handled here with [`crate::broker::fetch_sessions`].

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use indexmap::IndexMap;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::fetch_response::{AbortedTransaction, FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse};
use tokio::sync::watch;

use crate::broker::Broker;
use crate::broker::fetch_sessions::{Reported, ReportedValues, SessionError, SessionKey, SessionPartition, Updated};
use crate::broker::partition::PartitionError;
use crate::broker::replica::{Isolation, Leader, Progress, Replica};
use crate::log::FileRange;
use crate::protocol::splice::Placeholders;

use super::leader_hint::LeaderHints;
use super::topic_name;
use crate::config::ListenerId;

/// The session epoch a client sends to close its session / fetch without one.
const FINAL_EPOCH: i32 = -1;
const READ_COMMITTED: i8 = 1;

struct Item {
    key: SessionKey,
    /// The topic's name and id as the response reports them.
    topic: String,
    topic_id: uuid::Uuid,
    partition: Option<Arc<dyn Replica>>,
    fetch_offset: i64,
    max_bytes: i32,
    /// Set when the request itself is wrong for this partition.
    error: Option<ResponseError>,
    reported: Option<ReportedValues>,
    /// The follower this consumer should read from instead (KIP-392), named in the
    /// response without records.
    read_from: Option<i32>,
}

fn resolve(
    broker: &Broker,
    version: i16,
    name: &str,
    id: uuid::Uuid,
    partition: i32,
) -> (String, uuid::Uuid, Option<Arc<dyn Replica>>, Option<ResponseError>) {
    let topic = if version >= 13 { broker.topics.get_by_id(id) } else { broker.topic(name) };
    match topic {
        None => {
            let code =
                if version >= 13 { ResponseError::UnknownTopicId } else { ResponseError::UnknownTopicOrPartition };
            (name.to_string(), id, None, Some(code))
        }
        Some(t) => match t.replica(partition) {
            Some(p) => (t.name.clone(), t.id, Some(p), None),
            None => (t.name.clone(), t.id, None, Some(ResponseError::UnknownTopicOrPartition)),
        },
    }
}

/// A partition's key: by topic id from v13, by name before (Kafka's `CachedPartition`).
fn key(version: i16, name: &str, id: uuid::Uuid, partition: i32) -> SessionKey {
    if version >= 13 {
        SessionKey { topic: String::new(), topic_id: id, partition }
    } else {
        SessionKey { topic: name.to_string(), topic_id: uuid::Uuid::nil(), partition }
    }
}

fn session_partitions(request: &FetchRequest, version: i16) -> IndexMap<SessionKey, SessionPartition> {
    let mut out = IndexMap::new();
    for t in &request.topics {
        for p in &t.partitions {
            out.insert(
                key(version, &t.topic.0, t.topic_id, p.partition),
                SessionPartition {
                    fetch_offset: p.fetch_offset,
                    max_bytes: p.partition_max_bytes,
                    current_leader_epoch: p.current_leader_epoch,
                    reported: None,
                },
            );
        }
    }
    out
}

fn items_from(broker: &Broker, version: i16, partitions: &IndexMap<SessionKey, SessionPartition>) -> Vec<Item> {
    partitions
        .iter()
        .map(|(key, sp)| {
            let (name, id, partition, error) = resolve(broker, version, &key.topic, key.topic_id, key.partition);
            let error = error.or_else(|| partition.as_ref()?.check_leader_epoch(sp.current_leader_epoch).err());
            Item {
                key: key.clone(),
                topic: name,
                topic_id: id,
                partition,
                fetch_offset: sp.fetch_offset,
                max_bytes: sp.max_bytes,
                error,
                reported: sp.reported,
                read_from: None,
            }
        })
        .collect()
}

/// A fetch response whose record sets are placeholders for file ranges: the records go
/// from the segment files to the socket without being read into memory (see
/// [`crate::protocol::splice`]).
pub struct Fetched {
    pub response: FetchResponse,
    pub placeholders: Placeholders<Vec<FileRange>>,
}

impl Fetched {
    /// The response with every placeholder replaced by the records it stands for.
    #[cfg(test)]
    pub fn materialized(mut self) -> FetchResponse {
        for p in self.response.responses.iter_mut().flat_map(|t| t.partitions.iter_mut()) {
            let Some(ranges) = p.records.as_deref().and_then(|r| self.placeholders.resolve(r)) else { continue };
            let mut bytes = Vec::new();
            for r in ranges {
                let start = bytes.len();
                bytes.resize(start + r.len, 0);
                std::os::unix::fs::FileExt::read_exact_at(&*r.file, &mut bytes[start..], r.pos).expect("read range");
            }
            p.records = Some(Bytes::from(bytes));
        }
        std::mem::take(&mut self.response)
    }
}

impl From<FetchResponse> for Fetched {
    fn from(response: FetchResponse) -> Self {
        Fetched { response, placeholders: Placeholders::default() }
    }
}

pub async fn handle(broker: &Arc<Broker>, request: FetchRequest, version: i16, listener: ListenerId) -> Fetched {
    let sessions = &broker.fetch_sessions;
    let uses_topic_ids = version >= 13;
    let (session_id, incremental, mut items) =
        if version < 7 || (request.session_id == 0 && request.session_epoch == FINAL_EPOCH) {
            (0, false, items_from(broker, version, &session_partitions(&request, version)))
        } else if request.session_epoch == FINAL_EPOCH {
            sessions.remove(request.session_id);
            (0, false, items_from(broker, version, &session_partitions(&request, version)))
        } else if request.session_epoch == 0 {
            if request.session_id != 0 {
                sessions.remove(request.session_id);
            }
            let partitions = session_partitions(&request, version);
            let items = items_from(broker, version, &partitions);
            (sessions.create(partitions, uses_topic_ids), false, items)
        } else {
            let update = sessions.update(request.session_id, request.session_epoch, uses_topic_ids, |session| {
                for t in &request.topics {
                    for p in &t.partitions {
                        let key = key(version, &t.topic.0, t.topic_id, p.partition);
                        let reported = session.partitions.get(&key).and_then(|sp| sp.reported);
                        session.partitions.insert(
                            key,
                            SessionPartition {
                                fetch_offset: p.fetch_offset,
                                max_bytes: p.partition_max_bytes,
                                current_leader_epoch: p.current_leader_epoch,
                                reported,
                            },
                        );
                    }
                }
                // Forgotten partitions are removed in one pass over the session, however
                // many the request names.
                let forgotten: std::collections::HashSet<SessionKey> = request
                    .forgotten_topics_data
                    .iter()
                    .flat_map(|f| f.partitions.iter().map(|&p| key(version, &f.topic.0, f.topic_id, p)))
                    .collect();
                if !forgotten.is_empty() {
                    session.partitions.retain(|k, _| !forgotten.contains(k));
                }
                items_from(broker, version, &session.partitions)
            });
            match update {
                Ok(Updated { value: items, closed: false }) => (request.session_id, true, items),
                // Kafka closes a session left empty and answers without one.
                Ok(Updated { value: items, closed: true }) => (0, false, items),
                Err(e) => {
                    let code = match e {
                        SessionError::NotFound(_) => ResponseError::FetchSessionIdNotFound,
                        SessionError::InvalidEpoch { .. } => ResponseError::InvalidFetchSessionEpoch,
                        SessionError::TopicIdMismatch(_) => ResponseError::FetchSessionTopicIdError,
                    };
                    return FetchResponse::default().with_error_code(code.code()).with_session_id(0).into();
                }
            }
        };

    send_to_preferred_replicas(broker, &request, version, listener, &mut items);
    // Kafka answers at once when it moves a partition to another replica.
    let moved = items.iter().any(|i| i.read_from.is_some());
    let read_committed = version >= 4 && request.isolation_level == READ_COMMITTED;
    let isolation = if read_committed { Isolation::ReadCommitted } else { Isolation::ReadUncommitted };
    let max_wait = Duration::from_millis(u64::try_from(request.max_wait_ms).unwrap_or(0));
    let deadline = tokio::time::Instant::now() + max_wait;
    let min_bytes = usize::try_from(request.min_bytes).unwrap_or(0);
    // The broker's fetch.max.bytes caps what any client may ask for.
    let cap = usize::try_from(broker.config.kafka.fetch_max_bytes).unwrap_or(0);
    let max_bytes = usize::try_from(request.max_bytes).unwrap_or(0).min(cap);

    let mut shutdown = broker.shutdown_signal();
    let read = loop {
        // Subscribe before reading so an append between the read and the wait wakes us.
        let mut watchers: Vec<watch::Receiver<Progress>> =
            items.iter().filter_map(|i| i.partition.as_ref().map(|p| p.watch_progress())).collect();
        let read = read_all(&items, max_bytes, isolation);
        if read.total >= min_bytes
            || read.any_error
            || moved
            || watchers.is_empty()
            || broker.is_shutting_down()
            || tokio::time::Instant::now() >= deadline
        {
            break read;
        }
        drop(read);
        let any_change = futures::future::select_all(watchers.iter_mut().map(|w| Box::pin(w.changed())));
        tokio::select! {
            _ = any_change => {}
            _ = shutdown.changed() => {}
            () = tokio::time::sleep_until(deadline) => break read_all(&items, max_bytes, isolation),
        }
    };
    let placeholders = read.placeholders;
    let results = read.partitions;

    let mut reported = Vec::new();
    let mut hints = LeaderHints::on(listener);
    let moved_away = [ResponseError::NotLeaderOrFollower.code(), ResponseError::FencedLeaderEpoch.code()];
    let mut topics: IndexMap<(uuid::Uuid, String), FetchableTopicResponse> = IndexMap::new();
    for (item, mut data) in items.iter().zip(results) {
        if let Some(records) = data.records.as_ref().filter(|r| !r.is_empty()) {
            crate::metrics::record_fetched(broker, &item.topic, item.key.partition, records.len());
        }
        let values = (data.high_watermark, data.last_stable_offset, data.log_start_offset);
        let has_news = data.error_code != 0
            || data.records.as_ref().is_some_and(|r| !r.is_empty())
            || item.read_from.is_some()
            || item.reported != Some(values);
        if incremental && !has_news {
            continue;
        }
        if session_id != 0 {
            reported.push(Reported {
                key: item.key.clone(),
                // After an error the partition is sent again once the error clears.
                values: (data.error_code == 0).then_some(values),
                had_records: data.records.as_ref().is_some_and(|r| !r.is_empty()),
            });
        }
        if read_committed && data.aborted_transactions.is_none() {
            data.aborted_transactions = Some(Vec::new());
        }
        // KIP-951 (v16+): name the leader of a partition this broker cannot serve.
        if version >= 16
            && moved_away.contains(&data.error_code)
            && let Some(leader) = item.partition.as_ref().and_then(|p| hints.leader_of(broker, &**p))
        {
            data.current_leader = LeaderHints::fetch_leader(leader);
        }
        topics
            .entry((item.topic_id, item.topic.clone()))
            .or_insert_with(|| {
                FetchableTopicResponse::default().with_topic(topic_name(&item.topic)).with_topic_id(item.topic_id)
            })
            .partitions
            .push(data);
    }
    if session_id != 0 {
        sessions.record_reported(session_id, reported, incremental);
    }
    let response = FetchResponse::default()
        .with_session_id(session_id)
        .with_node_endpoints(if version >= 16 { hints.fetch_endpoints() } else { Vec::new() })
        .with_responses(topics.into_values().collect());
    Fetched { response, placeholders }
}

/// KIP-392: for a consumer that names its rack (Fetch v11+), each partition led here is
/// moved to the in-sync follower in that rack when the leader is in another
/// (`replica.selector.class`).
fn send_to_preferred_replicas(
    broker: &Broker,
    request: &FetchRequest,
    version: i16,
    listener: ListenerId,
    items: &mut [Item],
) {
    let client_rack: &str = if version >= 11 { &request.rack_id } else { "" };
    // Only consumers: a replica id names a follower fetching (Jet's own replicas use raft).
    let from_consumer = request.replica_id.0 < 0 && request.replica_state.replica_id.0 < 0;
    let Some(runtime) = broker.replication().filter(|_| !client_rack.is_empty() && from_consumer) else { return };
    let selector = broker.config.kafka.replica_selector_class;
    for item in items.iter_mut().filter(|i| i.error.is_none()) {
        if item.partition.as_ref().is_some_and(|p| p.leader() == Leader::ThisBroker) {
            item.read_from =
                runtime.preferred_read_replica(selector, &item.topic, item.key.partition, client_rack, listener);
        }
    }
}

fn aborted_transaction(e: &crate::log::txn::AbortedTxn) -> AbortedTransaction {
    AbortedTransaction::default()
        .with_producer_id(kafka_protocol::messages::ProducerId(e.producer_id))
        .with_first_offset(e.first_offset)
}

fn empty(index: i32) -> PartitionData {
    PartitionData::default()
        .with_partition_index(index)
        .with_high_watermark(-1)
        .with_last_stable_offset(-1)
        .with_log_start_offset(-1)
        .with_preferred_read_replica(BrokerId(-1))
        // librdkafka rejects a null record set (-1 length); send an empty one.
        .with_records(Some(Bytes::new()))
}

/// One pass over a fetch's partitions.
struct ReadPass {
    partitions: Vec<PartitionData>,
    total: usize,
    any_error: bool,
    placeholders: Placeholders<Vec<FileRange>>,
}

/// Plans every item's read once; each partition's records are a placeholder for the
/// planned file ranges.
fn read_all(items: &[Item], max_bytes: usize, isolation: Isolation) -> ReadPass {
    let mut total = 0usize;
    let mut any_error = false;
    let mut placeholders = Placeholders::default();
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let mut data = empty(item.key.partition);
        let partition = match (&item.partition, item.error) {
            (Some(p), None) => p,
            (_, error) => {
                data.error_code = error.unwrap_or(ResponseError::UnknownTopicOrPartition).code();
                any_error = true;
                out.push(data);
                continue;
            }
        };
        if let Some(replica) = item.read_from {
            if let Ok(offsets) = partition.offsets() {
                data.high_watermark = offsets.high_watermark;
                data.last_stable_offset = offsets.last_stable;
                data.log_start_offset = offsets.log_start;
            }
            data.preferred_read_replica = BrokerId(replica);
            out.push(data);
            continue;
        }
        let limit = usize::try_from(item.max_bytes).unwrap_or(0).min(max_bytes.saturating_sub(total));
        match partition.plan_read_isolated(item.fetch_offset, limit, total == 0, isolation) {
            Ok(planned) => {
                data.high_watermark = planned.high_watermark;
                data.last_stable_offset = planned.last_stable_offset;
                data.log_start_offset = planned.log_start_offset;
                let len = planned.len();
                if isolation == Isolation::ReadCommitted && len > 0 {
                    // Every aborted transaction the records may hold, for the consumer to
                    // drop (Kafka's collectAbortedTransactions up to the last stable offset).
                    match partition.aborted_transactions(item.fetch_offset, planned.last_stable_offset) {
                        Ok(aborted) => {
                            data.aborted_transactions = Some(aborted.iter().map(aborted_transaction).collect())
                        }
                        Err(e) => {
                            any_error = true;
                            data.error_code = e.code().code();
                            tracing::warn!(topic = partition.topic(), partition = partition.index(), error = %e, "aborted transactions unreadable");
                            out.push(data);
                            continue;
                        }
                    }
                }
                // None: nothing to send, or (never with the sizes fetches are capped at)
                // no room left in the placeholder region: no records this time.
                if let Some(records) = planned.into_records(&mut placeholders) {
                    total += len;
                    data.records = Some(records);
                }
            }
            Err(e) => {
                any_error = true;
                data.error_code = e.code().code();
                if let Ok(offsets) = partition.offsets() {
                    data.high_watermark = offsets.high_watermark;
                    data.last_stable_offset = offsets.last_stable;
                    data.log_start_offset = offsets.log_start;
                }
                // Out of range is the client's business; a damaged range was logged when
                // it was found, and a consumer stuck on it would repeat this every fetch.
                if !matches!(
                    e,
                    PartitionError::Log(
                        crate::log::LogError::OffsetOutOfRange { .. } | crate::log::LogError::Corrupt { .. }
                    )
                ) {
                    tracing::warn!(topic = partition.topic(), partition = partition.index(), error = %e, "fetch read failed");
                }
            }
        }
        out.push(data);
    }
    ReadPass { partitions: out, total, any_error, placeholders }
}
