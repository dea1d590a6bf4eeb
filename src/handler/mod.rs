//! Request handlers: one file per Kafka API key, dispatched from [`dispatch`].
//!
//! A handler never drops the connection for a problem with one topic or partition: it
//! reports an error code in that part of the response (`UNKNOWN_TOPIC_OR_PARTITION`,
//! `CORRUPT_MESSAGE`, ...), exactly where Kafka would.

pub mod add_offsets_to_txn;
pub mod add_partitions_to_txn;
pub mod allocate_producer_ids;
pub mod alter_configs;
pub mod alter_partition;
pub mod alter_partition_reassignments;
pub mod api_versions;
#[cfg(test)]
mod compat_tests;
pub mod consumer_group_describe;
pub mod consumer_group_heartbeat;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_groups;
pub mod delete_records;
pub mod delete_topics;
pub mod describe_cluster;
pub mod describe_configs;
pub mod describe_groups;
pub mod describe_log_dirs;
pub mod describe_transactions;
pub mod end_txn;
pub mod fetch;
#[cfg(test)]
mod fetch_session_tests;
pub mod find_coordinator;
pub mod heartbeat;
pub mod incremental_alter_configs;
pub mod init_producer_id;
pub mod join_group;
pub mod leader_hint;
pub mod leave_group;
pub mod list_groups;
pub mod list_offsets;
pub mod list_partition_reassignments;
pub mod list_transactions;
pub mod metadata;
pub mod offset_commit;
pub mod offset_delete;
pub mod offset_fetch;
pub mod offset_for_leader_epoch;
pub mod produce;
#[cfg(test)]
mod replica_tests;
pub mod sasl;
pub mod sync_group;
#[cfg(test)]
mod test_support;
pub mod txn_offset_commit;
#[cfg(test)]
mod version_tests;
pub mod write_txn_markers;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};
use kafka_protocol::protocol::VersionRange;

use crate::broker::Broker;
use crate::config::ListenerId;
use crate::log::FileRange;
use crate::protocol::frame::Reservation;
use crate::protocol::splice::{Part, encode_response_parts};
use crate::protocol::{EncodeError, Request, bounds, encode_response};

/// A response frame, in parts: encoded bytes and, for fetches, the segment file ranges
/// holding the records (sent with `sendfile`, never read into memory). Also holds the
/// request frame's memory reservation until the response is written.
pub struct Outgoing {
    pub parts: Vec<Part<Vec<FileRange>>>,
    held: Option<Reservation>,
}

impl Outgoing {
    pub fn new(bytes: Bytes) -> Self {
        Self { parts: vec![Part::Bytes(bytes)], held: None }
    }

    /// Keeps `reservation` alive until this response has been written.
    pub fn holding(mut self, reservation: Option<Reservation>) -> Self {
        self.held = reservation;
        self
    }
}

/// A response, `None` when the request gets no response (`acks=0`).
pub type Reply = Result<Option<Outgoing>, EncodeError>;

/// The part of a request that may finish after later requests have started.
pub type Pending = Pin<Box<dyn Future<Output = Reply> + Send>>;

/// The APIs Jet implements. ApiVersions advertises exactly these.
pub const IMPLEMENTED: &[ApiKey] = &[
    ApiKey::Produce,
    ApiKey::Fetch,
    ApiKey::ListOffsets,
    ApiKey::Metadata,
    ApiKey::ApiVersions,
    ApiKey::CreateTopics,
    ApiKey::DeleteTopics,
    ApiKey::DeleteRecords,
    ApiKey::InitProducerId,
    ApiKey::AddPartitionsToTxn,
    ApiKey::AddOffsetsToTxn,
    ApiKey::EndTxn,
    ApiKey::TxnOffsetCommit,
    ApiKey::WriteTxnMarkers,
    ApiKey::DescribeTransactions,
    ApiKey::ListTransactions,
    ApiKey::OffsetForLeaderEpoch,
    ApiKey::DescribeConfigs,
    ApiKey::AlterConfigs,
    ApiKey::DescribeLogDirs,
    ApiKey::CreatePartitions,
    ApiKey::IncrementalAlterConfigs,
    ApiKey::AlterPartitionReassignments,
    ApiKey::ListPartitionReassignments,
    ApiKey::DescribeCluster,
    ApiKey::FindCoordinator,
    ApiKey::JoinGroup,
    ApiKey::SyncGroup,
    ApiKey::Heartbeat,
    ApiKey::LeaveGroup,
    ApiKey::OffsetCommit,
    ApiKey::OffsetFetch,
    ApiKey::ListGroups,
    ApiKey::DescribeGroups,
    ApiKey::DeleteGroups,
    ApiKey::OffsetDelete,
    ApiKey::ConsumerGroupHeartbeat,
    ApiKey::ConsumerGroupDescribe,
    // As Kafka, on every listener: answered as on Kafka's PLAINTEXT listener (handler::sasl).
    ApiKey::SaslHandshake,
    ApiKey::SaslAuthenticate,
];

/// APIs served between brokers and not advertised in ApiVersions (Kafka serves them on
/// its controller listener, which clients never see).
pub const BETWEEN_BROKERS: &[ApiKey] = &[ApiKey::AllocateProducerIds, ApiKey::AlterPartition];

/// The versions served for `key`: the `kafka-protocol` crate's range, which starts at
/// Kafka 4's KIP-896 baseline, capped at the highest version the crate can actually
/// decode (its `valid_versions` overstates a few, e.g. InitProducerId 6) and that the
/// bounds pre-scan knows.
pub fn supported_versions(key: ApiKey) -> Option<VersionRange> {
    static TABLE: std::sync::OnceLock<Vec<(ApiKey, VersionRange)>> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        IMPLEMENTED
            .iter()
            .chain(BETWEEN_BROKERS)
            .filter_map(|&k| {
                let mut range = k.valid_versions();
                // Transactions v1 only: AddPartitionsToTxn v4+ is KIP-890's verification
                // between brokers, EndTxn v5 and TxnOffsetCommit v5 come with transactions v2.
                range.max = match k {
                    ApiKey::AddPartitionsToTxn => range.max.min(3),
                    ApiKey::EndTxn => range.max.min(4),
                    ApiKey::TxnOffsetCommit => range.max.min(4),
                    _ => range.max,
                };
                while range.max >= range.min && bounds::request_schema(k as i16, range.max).is_none() {
                    range.max -= 1;
                }
                (!range.is_empty()).then_some((k, range))
            })
            .collect()
    });
    table.iter().find(|(k, _)| *k == key).map(|(_, r)| *r)
}

/// Who sent a request: group members are described with these.
#[derive(Debug, Clone, Default)]
pub struct Client {
    pub client_id: String,
    /// As Kafka shows it: `/` + the peer's IP address.
    pub host: String,
}

impl Client {
    pub fn new(client_id: Option<&str>, peer: Option<std::net::SocketAddr>) -> Self {
        Client {
            client_id: client_id.unwrap_or_default().to_string(),
            host: peer.map(|p| format!("/{}", p.ip())).unwrap_or_default(),
        }
    }
}

/// The rest of a group request once its state change is made: waits for the change to
/// be durable (and, for joins and syncs, for the group to move on).
pub type GroupReply = Pin<Box<dyn Future<Output = ResponseKind> + Send>>;

/// Where a response goes: the request's key, version and correlation id, and the
/// listener the request came in on (brokers are named by their address on it).
#[derive(Debug, Clone, Copy)]
pub struct ReplyTo {
    pub api_key: ApiKey,
    pub version: i16,
    pub correlation_id: i32,
    pub listener: ListenerId,
}

impl ReplyTo {
    pub fn encode(&self, body: ResponseKind) -> Reply {
        crate::metrics::errors::API_ERRORS.record(self.api_key as i16, &body);
        encode_response(self.api_key, self.version, self.correlation_id, &body).map(|b| Some(Outgoing::new(b)))
    }
}

fn ready(reply: Reply) -> Pending {
    Box::pin(std::future::ready(reply))
}

/// Starts a request. Runs its order-sensitive part now and returns the rest.
pub async fn dispatch(
    broker: &Arc<Broker>,
    request: Request,
    peer: Option<std::net::SocketAddr>,
    listener: ListenerId,
) -> Pending {
    let to = ReplyTo {
        api_key: request.api_key,
        version: request.header.request_api_version,
        correlation_id: request.header.correlation_id,
        listener,
    };
    let v = to.version;
    match request.body {
        RequestKind::Produce(r) => produce::start(broker.clone(), r, to).await,
        RequestKind::Fetch(r) => {
            let broker = broker.clone();
            Box::pin(async move {
                let fetched = fetch::handle(&broker, r, v, to.listener).await;
                let (body, placeholders) = (fetched.response, fetched.placeholders);
                crate::metrics::errors::API_ERRORS.record_fetch(&body);
                let parts = encode_response_parts(to.api_key, v, to.correlation_id, &body, placeholders)?;
                Ok(Some(Outgoing { parts, held: None }))
            })
        }
        RequestKind::InitProducerId(r) => {
            let broker = broker.clone();
            Box::pin(
                async move { to.encode(ResponseKind::InitProducerId(init_producer_id::handle(&broker, r, v).await)) },
            )
        }
        RequestKind::AddPartitionsToTxn(r) => {
            let broker = broker.clone();
            Box::pin(async move {
                to.encode(ResponseKind::AddPartitionsToTxn(add_partitions_to_txn::handle(&broker, r).await))
            })
        }
        RequestKind::AddOffsetsToTxn(r) => {
            let broker = broker.clone();
            Box::pin(
                async move { to.encode(ResponseKind::AddOffsetsToTxn(add_offsets_to_txn::handle(&broker, r).await)) },
            )
        }
        RequestKind::EndTxn(r) => {
            let broker = broker.clone();
            Box::pin(async move { to.encode(ResponseKind::EndTxn(end_txn::handle(&broker, r).await)) })
        }
        RequestKind::DescribeTransactions(r) => {
            let broker = broker.clone();
            Box::pin(async move {
                to.encode(ResponseKind::DescribeTransactions(describe_transactions::handle(&broker, r).await))
            })
        }
        RequestKind::ListTransactions(r) => {
            let broker = broker.clone();
            Box::pin(async move {
                to.encode(ResponseKind::ListTransactions(list_transactions::handle(&broker, r, v).await))
            })
        }
        RequestKind::WriteTxnMarkers(r) => {
            let broker = broker.clone();
            Box::pin(async move {
                let response = write_txn_markers::handle(&broker, r).await;
                to.encode(ResponseKind::WriteTxnMarkers(response))
            })
        }
        RequestKind::ApiVersions(r) => ready(to.encode(ResponseKind::ApiVersions(api_versions::handle(r, v)))),
        RequestKind::SaslHandshake(r) => ready(to.encode(ResponseKind::SaslHandshake(sasl::handshake(r, v)))),
        RequestKind::SaslAuthenticate(r) => ready(to.encode(ResponseKind::SaslAuthenticate(sasl::authenticate(r, v)))),
        RequestKind::JoinGroup(r) => {
            let client = Client::new(request.header.client_id.as_deref(), peer);
            start_group_request(broker, to, move |b| join_group::start(b, r, v, &client)).await
        }
        RequestKind::ConsumerGroupHeartbeat(r) => {
            let client = Client::new(request.header.client_id.as_deref(), peer);
            start_group_request(broker, to, move |b| consumer_group_heartbeat::start(b, r, v, &client)).await
        }
        RequestKind::SyncGroup(r) => start_group_request(broker, to, move |b| sync_group::start(b, r, v)).await,
        RequestKind::LeaveGroup(r) => start_group_request(broker, to, move |b| leave_group::start(b, r, v)).await,
        RequestKind::OffsetCommit(r) => start_group_request(broker, to, move |b| offset_commit::start(b, r, v)).await,
        RequestKind::TxnOffsetCommit(r) => {
            start_group_request(broker, to, move |b| txn_offset_commit::start(b, r, v)).await
        }
        RequestKind::DeleteGroups(r) => start_group_request(broker, to, move |b| delete_groups::start(b, r, v)).await,
        RequestKind::OffsetDelete(r) => start_group_request(broker, to, move |b| offset_delete::start(b, r, v)).await,
        // Reads of group state: answered once the writes they reflect are durable.
        RequestKind::OffsetFetch(r) => start_group_request(broker, to, move |b| offset_fetch::start(b, r, v)).await,
        RequestKind::ListGroups(r) => start_group_request(broker, to, move |b| list_groups::start(b, r, v)).await,
        RequestKind::DescribeGroups(r) => {
            start_group_request(broker, to, move |b| describe_groups::start(b, r, v)).await
        }
        RequestKind::ConsumerGroupDescribe(r) => {
            start_group_request(broker, to, move |b| consumer_group_describe::start(b, r, v)).await
        }
        body => {
            // Everything else may touch the disk (auto-creation, topic directories,
            // fsynced metadata, batch reads): it runs on the blocking pool while this
            // connection's reader waits, so other connections keep being served.
            let broker = broker.clone();
            let reply = tokio::task::spawn_blocking(move || handle_blocking(&broker, body, to)).await;
            ready(reply.unwrap_or_else(|e| Err(EncodeError { api_key: to.api_key, version: v, cause: e.into() })))
        }
    }
}

/// Starts a group request on the blocking pool (it may create `__consumer_offsets` and
/// appends to it) and returns the wait for its answer.
async fn start_group_request(
    broker: &Arc<Broker>,
    to: ReplyTo,
    start: impl FnOnce(&Arc<Broker>) -> GroupReply + Send + 'static,
) -> Pending {
    let b = broker.clone();
    match tokio::task::spawn_blocking(move || start(&b)).await {
        Ok(reply) => Box::pin(async move { to.encode(reply.await) }),
        Err(e) => ready(Err(EncodeError { api_key: to.api_key, version: to.version, cause: e.into() })),
    }
}

/// The handlers that may block on file I/O.
fn handle_blocking(b: &Broker, body: RequestKind, to: ReplyTo) -> Reply {
    let v = to.version;
    let response = match body {
        RequestKind::Metadata(r) => ResponseKind::Metadata(metadata::handle(b, r, v, to.listener)),
        RequestKind::ListOffsets(r) => ResponseKind::ListOffsets(list_offsets::handle(b, r, v)),
        RequestKind::CreateTopics(r) => ResponseKind::CreateTopics(create_topics::handle(b, r, v)),
        RequestKind::DeleteTopics(r) => ResponseKind::DeleteTopics(delete_topics::handle(b, r, v)),
        RequestKind::DeleteRecords(r) => ResponseKind::DeleteRecords(delete_records::handle(b, r, v)),
        RequestKind::AlterPartitionReassignments(r) => {
            ResponseKind::AlterPartitionReassignments(alter_partition_reassignments::handle(b, r, v))
        }
        RequestKind::ListPartitionReassignments(r) => {
            ResponseKind::ListPartitionReassignments(list_partition_reassignments::handle(b, r, v))
        }
        RequestKind::AlterPartition(r) => ResponseKind::AlterPartition(alter_partition::handle(b, r, v)),
        RequestKind::AllocateProducerIds(r) => {
            ResponseKind::AllocateProducerIds(allocate_producer_ids::handle(b, r, v))
        }
        RequestKind::OffsetForLeaderEpoch(r) => {
            ResponseKind::OffsetForLeaderEpoch(offset_for_leader_epoch::handle(b, r, v))
        }
        RequestKind::DescribeConfigs(r) => ResponseKind::DescribeConfigs(describe_configs::handle(b, r, v)),
        RequestKind::AlterConfigs(r) => ResponseKind::AlterConfigs(alter_configs::handle(b, r, v)),
        RequestKind::IncrementalAlterConfigs(r) => {
            ResponseKind::IncrementalAlterConfigs(incremental_alter_configs::handle(b, r, v))
        }
        RequestKind::DescribeLogDirs(r) => ResponseKind::DescribeLogDirs(describe_log_dirs::handle(b, r, v)),
        RequestKind::CreatePartitions(r) => ResponseKind::CreatePartitions(create_partitions::handle(b, r, v)),
        RequestKind::DescribeCluster(r) => {
            ResponseKind::DescribeCluster(describe_cluster::handle(b, r, v, to.listener))
        }
        RequestKind::FindCoordinator(r) => {
            ResponseKind::FindCoordinator(find_coordinator::handle(b, r, v, to.listener))
        }
        RequestKind::Heartbeat(r) => ResponseKind::Heartbeat(heartbeat::handle(b, r, v)),
        _ => {
            // supported_versions() keeps unimplemented keys out; reaching here is a bug
            // in that list: close the connection rather than answer wrongly.
            return Err(EncodeError {
                api_key: to.api_key,
                version: v,
                cause: anyhow::anyhow!("no handler for an advertised API"),
            });
        }
    };
    to.encode(response)
}

/// The brokers a manual replica assignment may name: the live ones (on a single node,
/// this broker alone).
fn registered_brokers(broker: &Broker) -> std::collections::BTreeSet<i32> {
    broker.cluster.live_brokers().iter().map(|b| b.broker_id).collect()
}

/// Kafka's checks of one manually assigned replica list: not empty, registered brokers,
/// none twice.
fn check_replica_list(ids: &[i32], registered: &std::collections::BTreeSet<i32>) -> Result<(), String> {
    if ids.is_empty() {
        return Err("The manual partition assignment includes an empty replica list.".into());
    }
    if let Some(id) = ids.iter().find(|id| !registered.contains(id)) {
        return Err(format!("The manual partition assignment includes broker {id}, but no such broker is registered."));
    }
    let mut sorted = ids.to_vec();
    sorted.sort_unstable();
    if let Some(w) = sorted.windows(2).find(|w| w[0] == w[1]) {
        return Err(format!("The manual partition assignment includes the broker {} more than once.", w[0]));
    }
    Ok(())
}

/// ACL operation codes (Kafka's `AclOperation`), for authorized-operations bit fields.
mod acl_op {
    pub const READ: u8 = 3;
    pub const WRITE: u8 = 4;
    pub const CREATE: u8 = 5;
    pub const DELETE: u8 = 6;
    pub const ALTER: u8 = 7;
    pub const DESCRIBE: u8 = 8;
    pub const CLUSTER_ACTION: u8 = 9;
    pub const DESCRIBE_CONFIGS: u8 = 10;
    pub const ALTER_CONFIGS: u8 = 11;
    pub const IDEMPOTENT_WRITE: u8 = 12;
}

const fn bit_field(ops: &[u8]) -> i32 {
    let mut field = 0;
    let mut i = 0;
    while i < ops.len() {
        field |= 1 << ops[i];
        i += 1;
    }
    field
}

/// What Kafka reports as a topic's authorized operations when no authorizer is
/// configured (Jet has none): every operation a topic supports.
pub const TOPIC_AUTHORIZED_OPERATIONS: i32 = {
    use acl_op::*;
    bit_field(&[READ, WRITE, CREATE, DESCRIBE, DELETE, ALTER, DESCRIBE_CONFIGS, ALTER_CONFIGS])
};

/// The cluster's authorized operations without an authorizer.
pub const CLUSTER_AUTHORIZED_OPERATIONS: i32 = {
    use acl_op::*;
    bit_field(&[CREATE, CLUSTER_ACTION, DESCRIBE_CONFIGS, ALTER_CONFIGS, IDEMPOTENT_WRITE, ALTER, DESCRIBE])
};

/// Splits request entries into those whose key appears once and the keys that appear
/// more than once (in first-seen order). Kafka answers every repeated topic in admin
/// requests with one INVALID_REQUEST and acts on none of its entries.
pub fn split_duplicates<T, K: Clone + Eq + std::hash::Hash>(items: Vec<T>, key: impl Fn(&T) -> K) -> (Vec<T>, Vec<K>) {
    let mut seen = std::collections::HashSet::new();
    let mut repeated = std::collections::HashSet::new();
    let mut duplicates = Vec::new();
    for item in &items {
        let k = key(item);
        if !seen.insert(k.clone()) && repeated.insert(k.clone()) {
            duplicates.push(k);
        }
    }
    let unique = items.into_iter().filter(|item| !repeated.contains(&key(item))).collect();
    (unique, duplicates)
}

/// `Some(message)` → `Option<StrBytes>` for error_message fields.
pub fn message(m: Option<String>) -> Option<kafka_protocol::protocol::StrBytes> {
    m.map(kafka_protocol::protocol::StrBytes::from_string)
}

/// A topic name as the protocol type.
pub fn topic_name(name: &str) -> kafka_protocol::messages::TopicName {
    kafka_protocol::messages::TopicName(kafka_protocol::protocol::StrBytes::from_string(name.to_string()))
}
