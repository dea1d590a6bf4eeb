//! Fetch sessions checked against Kafka's FetchSession.scala / FetchManager.newContext.

use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::*;

use super::test_support::{batch, broker, broker_with, name};
use super::*;
use crate::broker::Broker;

/// Appends one single-record batch to each of `partitions` of `t`, durably.
async fn produce(b: &Arc<Broker>, t: &str, partitions: &[i32]) {
    let data = partitions
        .iter()
        .map(|&p| produce_request::PartitionProduceData::default().with_index(p).with_records(Some(batch())))
        .collect();
    let req = ProduceRequest::default().with_acks(-1).with_timeout_ms(10_000).with_topic_data(vec![
        produce_request::TopicProduceData::default().with_name(name(t)).with_partition_data(data),
    ]);
    let to = ReplyTo { api_key: ApiKey::Produce, version: 9, correlation_id: 1, listener: Default::default() };
    produce::start(b.clone(), req, to).await.await.unwrap().unwrap();
}

fn part(p: i32, offset: i64) -> fetch_request::FetchPartition {
    fetch_request::FetchPartition::default()
        .with_partition(p)
        .with_fetch_offset(offset)
        .with_partition_max_bytes(1 << 20)
        .with_current_leader_epoch(-1)
}

fn request(session_id: i32, epoch: i32, topics: Vec<fetch_request::FetchTopic>) -> FetchRequest {
    FetchRequest::default()
        .with_max_wait_ms(0)
        .with_max_bytes(1)
        .with_session_id(session_id)
        .with_session_epoch(epoch)
        .with_topics(topics)
}

fn topic(t: &str, parts: Vec<fetch_request::FetchPartition>) -> fetch_request::FetchTopic {
    fetch_request::FetchTopic::default().with_topic(name(t)).with_partitions(parts)
}

/// `(partition, has records)` of a response's partitions, in order.
fn shape(r: &FetchResponse) -> Vec<(i32, bool)> {
    r.responses
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| (p.partition_index, p.records.as_ref().is_some_and(|r| !r.is_empty())))
        })
        .collect()
}

#[tokio::test]
async fn incremental_fetch_rotates_partitions_that_returned_records() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path());
    b.create_topic("t", 2, 1, Default::default(), false).unwrap();
    for _ in 0..3 {
        produce(&b, "t", &[0, 1]).await;
    }
    // max_bytes 1: only the first partition with data gets its first batch (KIP-74).
    let full = fetch::handle(&b, request(0, 0, vec![topic("t", vec![part(0, 0), part(1, 0)])]), 12, Default::default())
        .await
        .response;
    assert_eq!(shape(&full), vec![(0, true), (1, false)]);
    let id = full.session_id;
    // A full fetch keeps the request's order; the first incremental one still starts at 0...
    let inc =
        fetch::handle(&b, request(id, 1, vec![topic("t", vec![part(0, 1)])]), 12, Default::default()).await.response;
    assert_eq!(shape(&inc).first(), Some(&(0, true)));
    // ...and moves partition 0, which returned records, behind partition 1.
    let inc =
        fetch::handle(&b, request(id, 2, vec![topic("t", vec![part(0, 2)])]), 12, Default::default()).await.response;
    assert_eq!(inc.session_id, id);
    assert_eq!(shape(&inc).first(), Some(&(1, true)));
}

#[tokio::test]
async fn forgetting_every_partition_closes_the_session() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path());
    b.create_topic("t", 1, 1, Default::default(), false).unwrap();
    let full =
        fetch::handle(&b, request(0, 0, vec![topic("t", vec![part(0, 0)])]), 12, Default::default()).await.response;
    assert!(full.session_id > 0);
    let forget = fetch_request::ForgottenTopic::default().with_topic(name("t")).with_partitions(vec![0]);
    let inc = fetch::handle(
        &b,
        request(full.session_id, 1, vec![]).with_forgotten_topics_data(vec![forget]),
        12,
        Default::default(),
    )
    .await
    .response;
    assert_eq!((inc.error_code, inc.session_id), (0, 0));
    assert!(b.fetch_sessions.is_empty());
}

#[tokio::test]
async fn a_partition_is_resent_once_its_error_clears() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path());
    b.create_topic("t", 1, 1, Default::default(), false).unwrap();
    // Out of range: the error carries the real high watermark and log start offset.
    let full =
        fetch::handle(&b, request(0, 0, vec![topic("t", vec![part(0, 99)])]), 12, Default::default()).await.response;
    assert_eq!(full.responses[0].partitions[0].error_code, ResponseError::OffsetOutOfRange.code());
    let inc =
        fetch::handle(&b, request(full.session_id, 1, vec![topic("t", vec![part(0, 0)])]), 12, Default::default())
            .await
            .response;
    assert_eq!(inc.responses.len(), 1, "the recovered partition is reported");
    assert_eq!(inc.responses[0].partitions[0].error_code, 0);
}

#[tokio::test]
async fn session_version_must_stay_on_its_side_of_topic_ids() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path());
    b.create_topic("t", 1, 1, Default::default(), false).unwrap();
    let full =
        fetch::handle(&b, request(0, 0, vec![topic("t", vec![part(0, 0)])]), 12, Default::default()).await.response;
    let inc = fetch::handle(&b, request(full.session_id, 1, vec![]), 13, Default::default()).await.response;
    assert_eq!(inc.error_code, ResponseError::FetchSessionTopicIdError.code());
}

#[tokio::test]
async fn unknown_topic_ids_are_answered_separately() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path());
    let (x, y) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    let by_id = |id| fetch_request::FetchTopic::default().with_topic_id(id).with_partitions(vec![part(0, 0)]);
    for epoch in [-1, 0] {
        let r = fetch::handle(&b, request(0, epoch, vec![by_id(x), by_id(y)]), 13, Default::default()).await.response;
        let ids: Vec<_> = r.responses.iter().map(|t| t.topic_id).collect();
        assert_eq!(ids, vec![x, y], "epoch {epoch}");
        for t in &r.responses {
            assert_eq!(t.partitions.len(), 1);
            assert_eq!(t.partitions[0].error_code, ResponseError::UnknownTopicId.code());
        }
    }
}

#[tokio::test]
async fn fetched_records_are_placeholders_for_exact_file_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker_with(dir.path(), &["--set", "fetch.max.bytes=1024"]);
    b.create_topic("t", 2, 1, Default::default(), false).unwrap();
    for _ in 0..8 {
        produce(&b, "t", &[0, 1]).await;
    }
    let one = batch().len();
    let fetch = request(0, -1, vec![topic("t", vec![part(0, 0), part(1, 0)])]).with_max_bytes(1024);
    let fetched = fetch::handle(&b, fetch, 12, Default::default()).await;
    // Nothing was read: each record set is a placeholder standing for file ranges, the
    // second partition getting the whole batches that fit in what is left of 1024 bytes.
    let whole = (1024 - 8 * one) / one;
    let lens: Vec<usize> = fetched.response.responses[0]
        .partitions
        .iter()
        .map(|p| {
            let records = p.records.as_ref().unwrap();
            assert!(fetched.placeholders.resolve(records).is_some());
            records.len()
        })
        .collect();
    assert_eq!(lens, vec![8 * one, whole * one]);
    // Materialised, they hold the logs' batches from offset 0.
    let response = fetched.materialized();
    let offsets = |records: &[u8]| -> Vec<i64> {
        crate::log::BatchIter::new(records).map(|b| b.expect("whole batch").0.base_offset).collect()
    };
    let first = response.responses[0].partitions[0].records.clone().unwrap();
    assert_eq!(offsets(&first), (0..8).collect::<Vec<_>>());
    let second = response.responses[0].partitions[1].records.clone().unwrap();
    assert_eq!(offsets(&second), (0..whole as i64).collect::<Vec<_>>());
}
