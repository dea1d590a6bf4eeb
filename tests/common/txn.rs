//! Transactions at the partition level, driven by hand: transactional batches of a
//! producer id from InitProducerId, the markers a transaction coordinator would write
//! (WriteTxnMarkers), and a read_committed consumer's view of partition 0 of
//! [`TOPIC`](super::replicated::TOPIC) that drops aborted records as Kafka's clients do.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use bytes::Bytes;
use kafka_protocol::messages::*;
use kafka_protocol::records::RecordBatchDecoder;

use super::replicated::{TOPIC, name};
use super::{Client, records, whole_batches};

/// One transactional batch of `producer_id` (epoch `epoch`) from `sequence`, with a record
/// per value.
pub fn txn_batch(producer_id: i64, epoch: i16, sequence: i32, values: &[&str]) -> Bytes {
    records::encode(values.iter().enumerate().map(|(i, v)| kafka_protocol::records::Record {
        transactional: true,
        producer_id,
        producer_epoch: epoch,
        sequence: sequence + i as i32,
        ..records::record(v.to_string())
    }))
}

/// Produce v9 (acks=all) of `data` to partition 0 naming `transactional_id`: the
/// partition's error code.
pub async fn produce_txn(addr: SocketAddr, transactional_id: Option<&str>, data: Bytes) -> i16 {
    let mut c = Client::connect(addr).await;
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_transactional_id(transactional_id.map(|t| TransactionalId(records::str_bytes(t))))
        .with_topic_data(vec![
            produce_request::TopicProduceData::default().with_name(name(TOPIC)).with_partition_data(vec![
                produce_request::PartitionProduceData::default().with_index(0).with_records(Some(data)),
            ]),
        ]);
    let r: ProduceResponse = c.call(ApiKey::Produce, 9, &request).await;
    r.responses[0].partition_responses[0].error_code
}

/// WriteTxnMarkers of one COMMIT (`commit`) or ABORT marker to partition 0: its error code.
pub async fn write_marker(addr: SocketAddr, producer_id: i64, epoch: i16, commit: bool, coordinator_epoch: i32) -> i16 {
    let mut c = Client::connect(addr).await;
    let request = WriteTxnMarkersRequest::default().with_markers(vec![
        write_txn_markers_request::WritableTxnMarker::default()
            .with_producer_id(ProducerId(producer_id))
            .with_producer_epoch(epoch)
            .with_transaction_result(commit)
            .with_coordinator_epoch(coordinator_epoch)
            .with_topics(vec![
                write_txn_markers_request::WritableTxnMarkerTopic::default()
                    .with_name(name(TOPIC))
                    .with_partition_indexes(vec![0]),
            ]),
    ]);
    let r: WriteTxnMarkersResponse = c.call(ApiKey::WriteTxnMarkers, 1, &request).await;
    r.markers[0].topics[0].partitions[0].error_code
}

/// What a read_committed consumer of partition 0 sees at `addr`.
#[derive(Debug)]
pub struct Committed {
    /// (offset, value) of every record it returns.
    pub records: Vec<(i64, String)>,
    pub last_stable: i64,
    pub high_watermark: i64,
    /// (producer id, first offset) of the aborted transactions the fetches listed.
    pub aborted: BTreeSet<(i64, i64)>,
}

/// Fetches partition 0 from offset 0 with read_committed (Fetch v12) until nothing more
/// comes, dropping aborted records as Kafka's consumers do: from an aborted
/// transaction's first offset, that producer's records are skipped until its ABORT
/// marker.
pub async fn read_committed(addr: SocketAddr) -> Result<Committed, i16> {
    let mut c = Client::connect(addr).await;
    let mut out = Committed { records: Vec::new(), last_stable: -1, high_watermark: -1, aborted: BTreeSet::new() };
    let mut offset = 0;
    loop {
        let request = FetchRequest::default()
            .with_max_wait_ms(0)
            .with_max_bytes(50 << 20)
            .with_isolation_level(1)
            .with_session_epoch(-1)
            .with_topics(vec![fetch_request::FetchTopic::default().with_topic(name(TOPIC)).with_partitions(vec![
                fetch_request::FetchPartition::default()
                    .with_partition(0)
                    .with_fetch_offset(offset)
                    .with_partition_max_bytes(10 << 20),
            ])]);
        let r: FetchResponse = c.call(ApiKey::Fetch, 12, &request).await;
        let p = &r.responses[0].partitions[0];
        if p.error_code != 0 {
            return Err(p.error_code);
        }
        (out.last_stable, out.high_watermark) = (p.last_stable_offset, p.high_watermark);
        // first offset → producer: the transactions to start dropping as the read passes them.
        let mut pending: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
        for a in p.aborted_transactions.iter().flatten() {
            out.aborted.insert((a.producer_id.0, a.first_offset));
            pending.entry(a.first_offset).or_default().push(a.producer_id.0);
        }
        let mut whole = whole_batches(p.records.clone().unwrap_or_default());
        if whole.is_empty() {
            return Ok(out);
        }
        let mut dropping: BTreeSet<i64> = BTreeSet::new();
        for set in RecordBatchDecoder::decode_all(&mut whole).expect("decode") {
            for r in set.records {
                offset = r.offset + 1;
                while let Some(entry) = pending.first_entry().filter(|e| *e.key() <= r.offset) {
                    dropping.extend(entry.remove());
                }
                if r.control {
                    // An ABORT marker (key type 0) ends its producer's aborted transaction.
                    if r.key.as_deref().is_some_and(|k| k.len() >= 4 && k[2..4] == [0, 0]) {
                        dropping.remove(&r.producer_id);
                    }
                    continue;
                }
                if !(r.transactional && dropping.contains(&r.producer_id)) {
                    out.records
                        .push((r.offset, String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into()));
                }
            }
        }
    }
}

/// ListOffsets v5 LATEST of partition 0 with `isolation_level`.
pub async fn latest(addr: SocketAddr, isolation_level: i8) -> i64 {
    let mut c = Client::connect(addr).await;
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_isolation_level(isolation_level)
        .with_topics(vec![list_offsets_request::ListOffsetsTopic::default().with_name(name(TOPIC)).with_partitions(
            vec![list_offsets_request::ListOffsetsPartition::default().with_partition_index(0).with_timestamp(-1)],
        )]);
    let r: ListOffsetsResponse = c.call(ApiKey::ListOffsets, 5, &request).await;
    let p = &r.topics[0].partitions[0];
    assert_eq!(p.error_code, 0, "ListOffsets");
    p.offset
}

/// FindCoordinator v3 (TRANSACTION) for `transactional_id`: (error, node id).
pub async fn find_txn_coordinator(addr: SocketAddr, transactional_id: &str) -> (i16, i32) {
    let mut c = Client::connect(addr).await;
    let request = FindCoordinatorRequest::default().with_key(records::str_bytes(transactional_id)).with_key_type(1);
    let r: FindCoordinatorResponse = c.call(ApiKey::FindCoordinator, 3, &request).await;
    (r.error_code, r.node_id.0)
}

/// InitProducerId v4 for `transactional_id`: Ok((producer id, epoch)) or the error code.
pub async fn init_txn(addr: SocketAddr, transactional_id: &str, timeout_ms: i32) -> Result<(i64, i16), i16> {
    init_txn_expecting(addr, transactional_id, timeout_ms, (-1, -1)).await
}

/// [`init_txn`] naming the producer id and epoch the producer had (KIP-360).
pub async fn init_txn_expecting(
    addr: SocketAddr,
    transactional_id: &str,
    timeout_ms: i32,
    expected: (i64, i16),
) -> Result<(i64, i16), i16> {
    let mut c = Client::connect(addr).await;
    let request = InitProducerIdRequest::default()
        .with_transactional_id(Some(TransactionalId(records::str_bytes(transactional_id))))
        .with_transaction_timeout_ms(timeout_ms)
        .with_producer_id(ProducerId(expected.0))
        .with_producer_epoch(expected.1);
    let r: InitProducerIdResponse = c.call(ApiKey::InitProducerId, 4, &request).await;
    if r.error_code == 0 { Ok((r.producer_id.0, r.producer_epoch)) } else { Err(r.error_code) }
}

/// AddPartitionsToTxn v3 of partition 0 of [`TOPIC`]: its error code.
pub async fn add_partition(addr: SocketAddr, transactional_id: &str, producer: (i64, i16)) -> i16 {
    let mut c = Client::connect(addr).await;
    let request = AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(TransactionalId(records::str_bytes(transactional_id)))
        .with_v3_and_below_producer_id(ProducerId(producer.0))
        .with_v3_and_below_producer_epoch(producer.1)
        .with_v3_and_below_topics(vec![
            add_partitions_to_txn_request::AddPartitionsToTxnTopic::default()
                .with_name(name(TOPIC))
                .with_partitions(vec![0]),
        ]);
    let r: AddPartitionsToTxnResponse = c.call(ApiKey::AddPartitionsToTxn, 3, &request).await;
    r.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code
}

/// EndTxn v3: its error code.
pub async fn end_txn(addr: SocketAddr, transactional_id: &str, producer: (i64, i16), commit: bool) -> i16 {
    let mut c = Client::connect(addr).await;
    let request = EndTxnRequest::default()
        .with_transactional_id(TransactionalId(records::str_bytes(transactional_id)))
        .with_producer_id(ProducerId(producer.0))
        .with_producer_epoch(producer.1)
        .with_committed(commit);
    let r: EndTxnResponse = c.call(ApiKey::EndTxn, 3, &request).await;
    r.error_code
}

/// [`add_partition`] until it succeeds: CONCURRENT_TRANSACTIONS (retriable) while the
/// producer's previous transaction is still being completed, as Kafka answers; any other
/// error fails the test.
pub async fn add_partition_when_ready(addr: SocketAddr, transactional_id: &str, producer: (i64, i16)) {
    super::replicated::until("the partition added to a new transaction", || async move {
        match add_partition(addr, transactional_id, producer).await {
            0 => Some(()),
            51 => None,
            code => panic!("AddPartitionsToTxn: error {code}"),
        }
    })
    .await;
}

/// AddOffsetsToTxn v3 for `group`: its error code.
pub async fn add_offsets(addr: SocketAddr, transactional_id: &str, producer: (i64, i16), group: &str) -> i16 {
    let mut c = Client::connect(addr).await;
    let request = AddOffsetsToTxnRequest::default()
        .with_transactional_id(TransactionalId(records::str_bytes(transactional_id)))
        .with_producer_id(ProducerId(producer.0))
        .with_producer_epoch(producer.1)
        .with_group_id(GroupId(records::str_bytes(group)));
    let r: AddOffsetsToTxnResponse = c.call(ApiKey::AddOffsetsToTxn, 3, &request).await;
    r.error_code
}

/// TxnOffsetCommit v3 of `offset` for partition 0 of [`TOPIC`] in `group` (no member:
/// generation -1): the partition's error code.
pub async fn txn_offset_commit(
    addr: SocketAddr,
    transactional_id: &str,
    producer: (i64, i16),
    group: &str,
    offset: i64,
) -> i16 {
    let mut c = Client::connect(addr).await;
    let request = TxnOffsetCommitRequest::default()
        .with_transactional_id(TransactionalId(records::str_bytes(transactional_id)))
        .with_group_id(GroupId(records::str_bytes(group)))
        .with_producer_id(ProducerId(producer.0))
        .with_producer_epoch(producer.1)
        .with_generation_id(-1)
        .with_topics(vec![
            txn_offset_commit_request::TxnOffsetCommitRequestTopic::default().with_name(name(TOPIC)).with_partitions(
                vec![
                    txn_offset_commit_request::TxnOffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(offset)
                        .with_committed_leader_epoch(-1),
                ],
            ),
        ]);
    let r: TxnOffsetCommitResponse = c.call(ApiKey::TxnOffsetCommit, 3, &request).await;
    r.topics[0].partitions[0].error_code
}

/// OffsetFetch v7 of partition 0 of [`TOPIC`] in `group`: (error code, committed offset);
/// a group-level error (e.g. NOT_COORDINATOR) comes back as (that code, -1).
pub async fn fetch_offset(addr: SocketAddr, group: &str, require_stable: bool) -> (i16, i64) {
    let mut c = Client::connect(addr).await;
    let request = OffsetFetchRequest::default()
        .with_group_id(GroupId(records::str_bytes(group)))
        .with_require_stable(require_stable)
        .with_topics(Some(vec![
            offset_fetch_request::OffsetFetchRequestTopic::default()
                .with_name(name(TOPIC))
                .with_partition_indexes(vec![0]),
        ]));
    let r: OffsetFetchResponse = c.call(ApiKey::OffsetFetch, 7, &request).await;
    if r.error_code != 0 {
        return (r.error_code, -1);
    }
    let p = &r.topics[0].partitions[0];
    (p.error_code, p.committed_offset)
}

/// FindCoordinator v3 (GROUP) for `group`: (error, node id).
pub async fn find_group_coordinator(addr: SocketAddr, group: &str) -> (i16, i32) {
    let mut c = Client::connect(addr).await;
    let request = FindCoordinatorRequest::default().with_key(records::str_bytes(group)).with_key_type(0);
    let r: FindCoordinatorResponse = c.call(ApiKey::FindCoordinator, 3, &request).await;
    (r.error_code, r.node_id.0)
}
