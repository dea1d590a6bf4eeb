//! The Produce, Fetch and ListOffsets handlers against the in-memory implementation of
//! the replication seam ([`crate::broker::replica::memory`]): they work with any
//! [`Replica`], and `acks=all` answers exactly when the high watermark covers the append,
//! whoever moves it.

use std::sync::Arc;

use bytes::Bytes;
use futures::FutureExt;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::Decodable;
use kafka_protocol::records::Compression;

use super::test_support::{broker, name};
use super::*;
use crate::broker::Broker;
use crate::broker::meta_store::TopicRecord;
use crate::broker::partition::PartitionError;
use crate::broker::replica::memory::MemoryReplica;
use crate::broker::replica::{Leader, Replica};
use crate::broker::topic_config::EffectiveTopicConfig;
use crate::broker::topics::Topic;
use crate::log::test_util::producer_batch;

/// A broker whose topic `t` is one in-memory partition (no log files).
fn with_memory_topic(dir: &std::path::Path, replica: MemoryReplica) -> (Arc<Broker>, Arc<MemoryReplica>) {
    let b = broker(dir);
    let replica = Arc::new(replica);
    let record = TopicRecord { name: "t".into(), id: uuid::Uuid::new_v4(), partitions: 1, configs: Default::default() };
    b.topics.register(Topic::with_replicas(&record, vec![replica.clone() as Arc<dyn Replica>]));
    (b, replica)
}

fn config() -> EffectiveTopicConfig {
    EffectiveTopicConfig { max_message_bytes: 1 << 20, ..Default::default() }
}

/// `n` records stamped now; `producer` is (id, epoch, base sequence) or all -1.
fn records(n: usize, producer: (i64, i16, i32)) -> Bytes {
    Bytes::from(producer_batch(n, crate::broker::now_ms(), 10, Compression::None, producer))
}

fn produce_request(acks: i16, records: Bytes) -> ProduceRequest {
    let data = produce_request::PartitionProduceData::default().with_index(0).with_records(Some(records));
    ProduceRequest::default().with_acks(acks).with_timeout_ms(30_000).with_topic_data(vec![
        produce_request::TopicProduceData::default().with_name(name("t")).with_partition_data(vec![data]),
    ])
}

/// The partition's answer in an encoded Produce v8 response.
fn produce_answer(reply: Reply) -> produce_response::PartitionProduceResponse {
    let out = reply.expect("encode").expect("a response");
    let crate::protocol::splice::Part::Bytes(bytes) = &out.parts[0] else { panic!("bytes") };
    // v8: size and correlation id, then the body.
    let mut body = bytes.slice(8..);
    let r = ProduceResponse::decode(&mut body, 8).expect("decode");
    r.responses[0].partition_responses[0].clone()
}

async fn start_produce(b: &Arc<Broker>, acks: i16, records: Bytes) -> Pending {
    let to = ReplyTo { api_key: ApiKey::Produce, version: 8, correlation_id: 1, listener: Default::default() };
    produce::start(b.clone(), produce_request(acks, records), to).await
}

#[tokio::test]
async fn acks_all_is_answered_once_the_high_watermark_covers_the_append() {
    let dir = tempfile::tempdir().unwrap();
    let (b, replica) = with_memory_topic(dir.path(), MemoryReplica::holding_commits("t", 0, config()));
    let mut pending = start_produce(&b, -1, records(3, (-1, -1, -1))).await;
    assert!((&mut pending).now_or_never().is_none(), "answered before the high watermark moved");
    replica.commit_to(2).unwrap();
    assert!((&mut pending).now_or_never().is_none(), "answered before the high watermark covered all of it");
    replica.commit_to(3).unwrap();
    let answer = produce_answer(pending.now_or_never().expect("answered once committed"));
    assert_eq!((answer.error_code, answer.base_offset), (0, 0));

    // acks=1 answers once the leader appended, committed or not.
    let answer = produce_answer(start_produce(&b, 1, records(2, (-1, -1, -1))).await.await);
    assert_eq!((answer.error_code, answer.base_offset), (0, 3));
    assert_eq!(replica.high_watermark(), 3);
}

#[tokio::test]
async fn acks_all_fails_with_the_loss_when_the_uncommitted_append_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let (b, replica) = with_memory_topic(dir.path(), MemoryReplica::holding_commits("t", 0, config()));
    let mut pending = start_produce(&b, -1, records(1, (7, 0, 0))).await;
    assert!((&mut pending).now_or_never().is_none());
    // As when a new raft leader truncates the tail this leader never committed.
    replica.lose_uncommitted(PartitionError::Rejected(ResponseError::NotLeaderOrFollower)).unwrap();
    let answer = produce_answer(pending.await);
    assert_eq!(answer.error_code, ResponseError::NotLeaderOrFollower.code());
    assert_eq!(replica.offsets().unwrap(), (0, 0, 0), "the lost append is gone");
    // The idempotent producer's retry is appended anew (its state was rebuilt), not
    // answered as a duplicate of what was lost.
    let mut retry = start_produce(&b, -1, records(1, (7, 0, 0))).await;
    replica.commit_to(1).unwrap();
    let answer = produce_answer((&mut retry).await);
    assert_eq!((answer.error_code, answer.base_offset), (0, 0));
}

#[tokio::test]
async fn an_idempotent_retry_is_answered_with_the_original_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let (b, replica) = with_memory_topic(dir.path(), MemoryReplica::new("t", 0, config()));
    let batch = records(2, (9, 0, 0));
    assert_eq!(produce_answer(start_produce(&b, -1, records(1, (-1, -1, -1))).await.await).base_offset, 0);
    assert_eq!(produce_answer(start_produce(&b, -1, batch.clone()).await.await).base_offset, 1);
    let retry = produce_answer(start_produce(&b, -1, batch).await.await);
    assert_eq!((retry.error_code, retry.base_offset), (0, 1));
    assert_eq!(replica.offsets().unwrap(), (0, 3, 3), "the retry was not appended again");
    let gap = produce_answer(start_produce(&b, -1, records(1, (9, 0, 5))).await.await);
    assert_eq!(gap.error_code, ResponseError::OutOfOrderSequenceNumber.code());
}

fn fetch_request(offset: i64, max_wait_ms: i32) -> FetchRequest {
    let partition = fetch_request::FetchPartition::default()
        .with_partition(0)
        .with_fetch_offset(offset)
        .with_partition_max_bytes(1 << 20)
        .with_current_leader_epoch(-1);
    FetchRequest::default()
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_topics(vec![fetch_request::FetchTopic::default().with_topic(name("t")).with_partitions(vec![partition])])
}

#[tokio::test]
async fn fetch_waits_for_the_high_watermark_and_returns_only_committed_batches() {
    let dir = tempfile::tempdir().unwrap();
    let (b, replica) = with_memory_topic(dir.path(), MemoryReplica::holding_commits("t", 0, config()));
    let first = records(2, (-1, -1, -1));
    produce_answer(start_produce(&b, 1, first.clone()).await.await);
    produce_answer(start_produce(&b, 1, records(3, (-1, -1, -1))).await.await);
    let mut fetch = Box::pin(fetch::handle(&b, fetch_request(0, 30_000), 12, Default::default()));
    assert!((&mut fetch).now_or_never().is_none(), "nothing is committed: the fetch long-polls");
    replica.commit_to(2).unwrap();
    let response = fetch.await.materialized();
    let p = &response.responses[0].partitions[0];
    assert_eq!((p.error_code, p.high_watermark, p.last_stable_offset, p.log_start_offset), (0, 2, 2, 0));
    let got = p.records.clone().expect("records");
    // The stored batch is the produced one with its base offset (0) and leader epoch (0)
    // set: byte for byte what was sent.
    assert_eq!(got, first, "only the committed batch, as stored");

    let response = fetch::handle(&b, fetch_request(9, 0), 12, Default::default()).await.materialized();
    let p = &response.responses[0].partitions[0];
    assert_eq!((p.error_code, p.high_watermark), (ResponseError::OffsetOutOfRange.code(), 2));
}

#[test]
fn list_offsets_answers_from_any_replica() {
    let dir = tempfile::tempdir().unwrap();
    let (b, replica) = with_memory_topic(dir.path(), MemoryReplica::holding_commits("t", 0, config()));
    replica.set_leader_epoch(4);
    let gate = crate::broker::producer_state::ProducerIdGate::unlimited();
    let limits = || crate::broker::producer_state::ProducerLimits {
        per_partition: usize::MAX,
        gate: &gate,
        txn: crate::broker::txn_verification::TxnVerification::Off,
    };
    for ts in [100, 200, 300] {
        let batch = producer_batch(1, ts, 10, Compression::None, (-1, -1, -1));
        let headers = crate::log::validate_produced_batches(&batch, 1 << 20).unwrap();
        futures::executor::block_on(replica.append(Bytes::from(batch), &headers, 1, limits())).unwrap();
    }
    replica.commit_to(2).unwrap();
    let ask = |timestamp: i64, current_leader_epoch: i32| {
        let partition = list_offsets_request::ListOffsetsPartition::default()
            .with_partition_index(0)
            .with_timestamp(timestamp)
            .with_current_leader_epoch(current_leader_epoch);
        let request = ListOffsetsRequest::default().with_topics(vec![
            list_offsets_request::ListOffsetsTopic::default().with_name(name("t")).with_partitions(vec![partition]),
        ]);
        let p = list_offsets::handle(&b, request, 8).topics[0].partitions[0].clone();
        (p.error_code, p.timestamp, p.offset, p.leader_epoch)
    };
    assert_eq!(ask(-1, -1), (0, -1, 2, 4), "latest is the high watermark");
    assert_eq!(ask(-2, 4), (0, -1, 0, 4));
    assert_eq!(ask(150, -1), (0, 200, 1, 4));
    assert_eq!(ask(250, -1), (0, -1, -1, -1), "offset 2 is not committed");
    assert_eq!(ask(-3, -1), (0, 200, 1, 4), "max timestamp among committed records");
    assert_eq!(ask(-1, 3).0, ResponseError::FencedLeaderEpoch.code());
    assert_eq!(ask(-1, 5).0, ResponseError::UnknownLeaderEpoch.code());
}

#[tokio::test]
async fn appends_go_to_the_leader_and_metadata_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let (b, replica) = with_memory_topic(dir.path(), MemoryReplica::new("t", 0, config()));
    replica.set_leader(Leader::Broker(2));
    replica.set_leader_epoch(7);
    let answer = produce_answer(start_produce(&b, -1, records(1, (-1, -1, -1))).await.await);
    assert_eq!(answer.error_code, ResponseError::NotLeaderOrFollower.code());
    assert_eq!(replica.offsets().unwrap(), (0, 0, 0), "nothing appended on a follower");
    let described = metadata::describe_topic(&b, &b.topic("t").unwrap());
    let p = &described.partitions[0];
    assert_eq!((p.leader_id.0, p.leader_epoch), (2, 7));
    // A client of a listener broker 2 does not have cannot reach the leader.
    let unlisted = std::collections::HashSet::from([2]);
    for (version, code) in [(12, ResponseError::ListenerNotFound), (5, ResponseError::LeaderNotAvailable)] {
        let p = &metadata::describe_topic_for(&b, &b.topic("t").unwrap(), &unlisted, version).partitions[0];
        assert_eq!((p.leader_id.0, p.error_code), (-1, code.code()), "v{version}");
    }
    replica.set_leader(Leader::ThisBroker);
    let answer = produce_answer(start_produce(&b, -1, records(1, (-1, -1, -1))).await.await);
    assert_eq!((answer.error_code, answer.base_offset), (0, 0));
    let p = &metadata::describe_topic(&b, &b.topic("t").unwrap()).partitions[0];
    assert_eq!(p.leader_id.0, b.node_id);
}

/// A broker whose topic `t` is `replica`.
fn with_replica(dir: &std::path::Path, replica: Arc<dyn Replica>) -> Arc<Broker> {
    let b = broker(dir);
    let record = TopicRecord { name: "t".into(), id: uuid::Uuid::new_v4(), partitions: 1, configs: Default::default() };
    b.topics.register(Topic::with_replicas(&record, vec![replica]));
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_through_a_raft_leader_answers_acks_all_once_committed_and_followers_refuse() {
    let cluster = crate::broker::raft_replica::tests::Cluster::three().await;
    let leader_id = cluster.leader(&[1, 2, 3]).await;
    let leader = cluster.replica(leader_id).clone();
    let dir = tempfile::tempdir().unwrap();
    let b = with_replica(dir.path(), leader.clone());
    let start = leader.offsets().unwrap().log_end;
    let answer = produce_answer(start_produce(&b, -1, records(3, (-1, -1, -1))).await.await);
    assert_eq!((answer.error_code, answer.base_offset), (0, start));
    assert!(leader.high_watermark() >= start + 3, "acks=all answered once committed");
    let answer = produce_answer(start_produce(&b, 1, records(2, (5, 0, 0))).await.await);
    assert_eq!((answer.error_code, answer.base_offset), (0, start + 3));

    let follower_id = [1, 2, 3].into_iter().find(|id| *id != leader_id).unwrap();
    let follower_dir = tempfile::tempdir().unwrap();
    let follower = with_replica(follower_dir.path(), cluster.replica(follower_id).clone());
    let answer = produce_answer(start_produce(&follower, -1, records(1, (-1, -1, -1))).await.await);
    assert_eq!(answer.error_code, ResponseError::NotLeaderOrFollower.code());
}
