//! Connection limits (`max.connections`, `max.connections.per.ip`, its overrides) and
//! the bounds on idempotent-producer state (`max.producer.ids.per.partition`,
//! `max.producer.ids`, `producer.id.expiration.ms`) on a real broker.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{Client, TestBroker, records};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Record;
use tokio::io::AsyncReadExt;

const PATIENCE: Duration = Duration::from_secs(20);

async fn api_versions(c: &mut Client) -> ApiVersionsResponse {
    c.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default()).await
}

/// Whether the broker closes `c` (reads EOF or a reset) within `within`.
async fn closed_by_broker(c: &mut Client, within: Duration) -> bool {
    let mut byte = [0u8; 1];
    matches!(tokio::time::timeout(within, c.stream.read(&mut byte)).await, Ok(Ok(0) | Err(_)))
}

#[tokio::test]
async fn connections_over_the_per_ip_limit_are_closed_at_once_and_room_returns() {
    let b = TestBroker::start(&["--set", "max.connections.per.ip=3"]).await;
    let mut open = Vec::new();
    for _ in 0..3 {
        let mut c = b.client().await;
        assert_eq!(api_versions(&mut c).await.error_code, 0);
        open.push(c);
    }
    let mut fourth = b.client().await;
    assert!(closed_by_broker(&mut fourth, PATIENCE).await, "a fourth connection from one address must be closed");
    // Those admitted keep working.
    assert_eq!(api_versions(&mut open[0]).await.error_code, 0);
    drop(open.pop());
    // Once one closes (the broker notices the EOF), a new one is admitted.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let mut c = b.client().await;
        if !closed_by_broker(&mut c, Duration::from_millis(200)).await {
            assert_eq!(api_versions(&mut c).await.error_code, 0);
            break;
        }
        assert!(Instant::now() < deadline, "no room after a connection closed");
    }
}

#[tokio::test]
async fn per_ip_overrides_raise_or_lower_the_limit_for_one_host() {
    let b =
        TestBroker::start(&["--set", "max.connections.per.ip=1,max.connections.per.ip.overrides=127.0.0.1:4"]).await;
    let mut open = Vec::new();
    for _ in 0..4 {
        let mut c = b.client().await;
        assert_eq!(api_versions(&mut c).await.error_code, 0);
        open.push(c);
    }
    let mut fifth = b.client().await;
    assert!(closed_by_broker(&mut fifth, PATIENCE).await);

    let b = TestBroker::start(&["--set", "max.connections.per.ip.overrides=localhost:0"]).await;
    let mut c = b.client().await;
    assert!(closed_by_broker(&mut c, PATIENCE).await, "an override of 0 refuses the host");
}

#[tokio::test]
async fn at_max_connections_new_connections_wait_for_a_slot() {
    let b = TestBroker::start(&["--set", "max.connections=2"]).await;
    let mut first = b.client().await;
    let mut second = b.client().await;
    assert_eq!(api_versions(&mut first).await.error_code, 0);
    assert_eq!(api_versions(&mut second).await.error_code, 0);
    // The third connects (the kernel's backlog holds it) but is not served...
    let mut third = b.client().await;
    let (id, request) = third.encode_request(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    third.send_raw(&request).await;
    let mut byte = [0u8; 1];
    assert!(
        tokio::time::timeout(Duration::from_millis(500), third.stream.peek(&mut byte)).await.is_err(),
        "served beyond max.connections"
    );
    // ... nor closed: once a slot frees, it is accepted and answered.
    drop(first);
    let answered =
        tokio::time::timeout(PATIENCE, third.read_response::<ApiVersionsResponse>(ApiKey::ApiVersions, 3, id))
            .await
            .expect("the waiting connection was served once a slot freed");
    assert_eq!(answered.error_code, 0);
    assert_eq!(api_versions(&mut second).await.error_code, 0);
}

fn idempotent_batch(producer_id: i64, sequence: i32) -> Bytes {
    records::encode([Record {
        producer_id,
        producer_epoch: 0,
        sequence,
        timestamp: jet::broker::now_ms(),
        key: Some(Bytes::from_static(b"k")),
        ..records::record(Bytes::from_static(b"v"))
    }])
}

fn topic(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

/// Produces one batch to partition `partition` of `t`; returns (error code, base offset, message).
async fn produce(c: &mut Client, t: &str, partition: i32, batch: Bytes) -> (i16, i64, Option<String>) {
    let request = ProduceRequest::default().with_acks(-1).with_timeout_ms(10_000).with_topic_data(vec![
        produce_request::TopicProduceData::default().with_name(topic(t)).with_partition_data(vec![
            produce_request::PartitionProduceData::default().with_index(partition).with_records(Some(batch)),
        ]),
    ]);
    let response: ProduceResponse = c.call(ApiKey::Produce, 9, &request).await;
    let p = &response.responses[0].partition_responses[0];
    (p.error_code, p.base_offset, p.error_message.as_ref().map(|m| m.to_string()))
}

async fn create_topic(c: &mut Client, name: &str, partitions: i32) {
    let request = CreateTopicsRequest::default().with_timeout_ms(10_000).with_topics(vec![
        create_topics_request::CreatableTopic::default()
            .with_name(topic(name))
            .with_num_partitions(partitions)
            .with_replication_factor(1),
    ]);
    let response: CreateTopicsResponse = c.call(ApiKey::CreateTopics, 5, &request).await;
    assert_eq!(response.topics[0].error_code, 0);
}

const POLICY_VIOLATION: i16 = 44;

#[tokio::test]
async fn producer_caps_refuse_new_ids_with_a_clear_error_and_tracked_producers_continue() {
    assert_eq!(ResponseError::PolicyViolation.code(), POLICY_VIOLATION);
    let b = TestBroker::start(&["--set", "max.producer.ids.per.partition=3,max.producer.ids=5"]).await;
    let mut c = b.client().await;
    create_topic(&mut c, "t", 2).await;
    for pid in 1..=3 {
        assert_eq!(produce(&mut c, "t", 0, idempotent_batch(pid, 0)).await.0, 0);
    }
    let (code, _, message) = produce(&mut c, "t", 0, idempotent_batch(4, 0)).await;
    assert_eq!(code, POLICY_VIOLATION);
    let message = message.expect("a message naming the limit");
    assert!(message.contains("max.producer.ids.per.partition=3"), "{message}");
    // A tracked producer goes on, and its retries are still deduplicated.
    let (code, offset, _) = produce(&mut c, "t", 0, idempotent_batch(2, 1)).await;
    assert_eq!(code, 0);
    assert_eq!(produce(&mut c, "t", 0, idempotent_batch(2, 1)).await, (0, offset, None));
    // The broker-wide cap: 3 ids on partition 0, 2 more on partition 1, then refused.
    assert_eq!(produce(&mut c, "t", 1, idempotent_batch(10, 0)).await.0, 0);
    assert_eq!(produce(&mut c, "t", 1, idempotent_batch(11, 0)).await.0, 0);
    let (code, _, message) = produce(&mut c, "t", 1, idempotent_batch(12, 0)).await;
    assert_eq!(code, POLICY_VIOLATION);
    assert!(message.unwrap_or_default().contains("max.producer.ids=5"));
    // Non-idempotent producers are not counted.
    assert_eq!(produce(&mut c, "t", 1, idempotent_batch(-1, -1)).await.0, 0);
}

/// Producer ids tracked by the broker's partitions.
fn tracked(b: &TestBroker) -> usize {
    b.broker.topics.all().iter().flat_map(|t| t.partitions()).map(|p| p.producer_count().unwrap()).sum()
}

#[tokio::test]
async fn idle_producers_expire_live_ones_keep_their_state_and_expiry_frees_the_cap() {
    let expiration = Duration::from_millis(1_500);
    let b = TestBroker::start(&[
        "--set",
        "producer.id.expiration.ms=1500,producer.id.expiration.check.interval.ms=50,max.producer.ids.per.partition=2",
    ])
    .await;
    let mut c = b.client().await;
    create_topic(&mut c, "t", 1).await;
    assert_eq!(produce(&mut c, "t", 0, idempotent_batch(1, 0)).await.0, 0); // goes idle
    let (code, mut last_offset, _) = produce(&mut c, "t", 0, idempotent_batch(2, 0)).await; // stays live
    assert_eq!(code, 0);
    assert_eq!(produce(&mut c, "t", 0, idempotent_batch(3, 0)).await.0, POLICY_VIOLATION);
    // Producer 2 writes well within every window, for longer than one window; its
    // state survives: each retry of its last batch is recognised as a duplicate.
    let started = Instant::now();
    let mut seq = 0;
    let mut last_write = Instant::now();
    while started.elapsed() < expiration * 2 {
        if last_write.elapsed() >= expiration / 4 {
            seq += 1;
            let (code, offset, _) = produce(&mut c, "t", 0, idempotent_batch(2, seq)).await;
            assert_eq!(code, 0);
            last_write = Instant::now();
            last_offset = offset;
        }
        assert_eq!(produce(&mut c, "t", 0, idempotent_batch(2, seq)).await, (0, last_offset, None));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Producer 1 (silent since the start) has expired, which made room for producer 3.
    assert_eq!(tracked(&b), 1, "only the live producer is tracked");
    assert_eq!(produce(&mut c, "t", 0, idempotent_batch(3, 0)).await.0, 0);
    // An expired producer is unknown: accepted at any sequence (KIP-360), not refused.
    let deadline = Instant::now() + PATIENCE;
    while tracked(&b) > 0 {
        assert!(Instant::now() < deadline, "producers never expired");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(produce(&mut c, "t", 0, idempotent_batch(1, 57)).await.0, 0);
}
