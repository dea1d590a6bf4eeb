//! Damaged sealed segments seen through a real broker (in process): the damaged range is
//! refused with CORRUPT_MESSAGE, everything before and after it is served, the log end and
//! the high watermark do not move back, and the next produce gets a new offset.

mod common;

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use common::{Client, TestBroker, records, whole_batches};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Record, RecordBatchDecoder};

const TOPIC: &str = "damaged";
const BATCHES: usize = 40;
const PER_BATCH: usize = 10;
const LOG_END: i64 = (BATCHES * PER_BATCH) as i64;

fn keyed_records(n: usize, start: usize) -> Bytes {
    records::encode((start..start + n).map(|i| Record {
        // The encoder starts a new batch where sequences are not consecutive.
        sequence: -1 + (i - start) as i32,
        timestamp: 1_700_000_000_000 + i as i64,
        key: Some(Bytes::from(format!("k{i}"))),
        ..records::record(format!("value-{i}"))
    }))
}

async fn produce(c: &mut Client, data: Bytes) -> produce_response::PartitionProduceResponse {
    let req = ProduceRequest::default().with_acks(-1).with_timeout_ms(10_000).with_topic_data(vec![
        produce_request::TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
            .with_partition_data(vec![
                produce_request::PartitionProduceData::default().with_index(0).with_records(Some(data)),
            ]),
    ]);
    let r: ProduceResponse = c.call(ApiKey::Produce, 9, &req).await;
    r.responses[0].partition_responses[0].clone()
}

async fn fetch(c: &mut Client, offset: i64) -> fetch_response::PartitionData {
    let req = FetchRequest::default().with_max_wait_ms(0).with_min_bytes(1).with_max_bytes(50 << 20).with_topics(vec![
        fetch_request::FetchTopic::default().with_topic(TopicName(StrBytes::from_static_str(TOPIC))).with_partitions(
            vec![
                fetch_request::FetchPartition::default()
                    .with_partition(0)
                    .with_fetch_offset(offset)
                    .with_partition_max_bytes(10 << 20),
            ],
        ),
    ]);
    let r: FetchResponse = c.call(ApiKey::Fetch, 12, &req).await;
    r.responses[0].partitions[0].clone()
}

/// A broker with `BATCHES` batches in segments of a few batches each, stopped cleanly.
/// With `index_every_batch` each segment's open-time tail check reads only its last batch.
async fn broker_with_segments(index_every_batch: bool) -> tempfile::TempDir {
    let broker = TestBroker::start(&[]).await;
    let mut c = broker.client().await;
    let req = CreateTopicsRequest::default().with_topics(vec![
        create_topics_request::CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
            .with_num_partitions(1)
            .with_replication_factor(1)
            .with_configs(
                [("segment.bytes", "2000"), ("index.interval.bytes", if index_every_batch { "1" } else { "4096" })]
                    .into_iter()
                    .map(|(k, v)| {
                        create_topics_request::CreatableTopicConfig::default()
                            .with_name(StrBytes::from_static_str(k))
                            .with_value(Some(StrBytes::from_static_str(v)))
                    })
                    .collect(),
            ),
    ]);
    let r: CreateTopicsResponse = c.call(ApiKey::CreateTopics, 7, &req).await;
    assert_eq!(r.topics[0].error_code, 0, "{:?}", r.topics[0].error_message);
    for i in 0..BATCHES {
        assert_eq!(produce(&mut c, keyed_records(PER_BATCH, i * PER_BATCH)).await.error_code, 0);
    }
    broker.stop().await
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let part = dir.join(format!("{TOPIC}-0"));
    let mut logs: Vec<PathBuf> = std::fs::read_dir(&part)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    logs.sort();
    assert!(logs.len() >= 6, "expected several segments, got {}", logs.len());
    logs
}

/// Position and base offset of the second batch of `segment`.
fn second_batch(segment: &Path) -> (u64, i64) {
    let f = std::fs::File::open(segment).unwrap();
    let mut head = [0u8; 12];
    f.read_exact_at(&mut head, 0).unwrap();
    let pos = 12 + u64::from(u32::from_be_bytes(head[8..12].try_into().unwrap()));
    f.read_exact_at(&mut head, pos).unwrap();
    (pos, i64::from_be_bytes(head[..8].try_into().unwrap()))
}

/// Reads the partition the way a consumer that skips refused offsets would: returns the
/// offsets served and those refused with CORRUPT_MESSAGE. Any other error fails the test.
async fn consume(c: &mut Client) -> (Vec<i64>, Vec<i64>) {
    let (mut served, mut refused) = (Vec::new(), Vec::new());
    let mut offset = 0;
    while offset < LOG_END {
        let p = fetch(c, offset).await;
        assert_eq!(p.high_watermark, LOG_END);
        if p.error_code == ResponseError::CorruptMessage.code() {
            assert!(p.records.as_ref().is_none_or(|r| r.is_empty()), "no bytes with the error");
            refused.push(offset);
            offset += 1;
            continue;
        }
        assert_eq!(p.error_code, 0, "at offset {offset}");
        let mut whole = whole_batches(p.records.unwrap());
        assert!(!whole.is_empty(), "an empty fetch at {offset} below the high watermark");
        // decode_all verifies every batch's CRC.
        for set in RecordBatchDecoder::decode_all(&mut whole).expect("only intact batches are served") {
            for r in set.records {
                if r.offset >= offset {
                    assert_eq!(r.value.as_deref(), Some(format!("value-{}", r.offset).as_bytes()));
                    served.push(r.offset);
                }
            }
        }
        offset = *served.last().unwrap() + 1;
    }
    (served, refused)
}

async fn assert_damaged_range_refused_rest_served(broker: &TestBroker, damaged_base: i64) {
    let mut c = broker.client().await;
    let (served, refused) = consume(&mut c).await;
    let damaged = damaged_base..damaged_base + PER_BATCH as i64;
    assert_eq!(refused, damaged.clone().collect::<Vec<_>>());
    assert_eq!(served, (0..LOG_END).filter(|o| !damaged.contains(o)).collect::<Vec<_>>());
    // The damage is queryable, and no offset is handed out twice.
    let partition = broker.broker.topic(TOPIC).unwrap().partition(0).unwrap();
    let ranges = partition.damaged_ranges().unwrap();
    assert_eq!(
        ranges.iter().map(|r| (r.first_offset, r.last_offset)).collect::<Vec<_>>(),
        vec![(damaged_base, damaged_base + PER_BATCH as i64 - 1)]
    );
    let p = produce(&mut c, keyed_records(1, 0)).await;
    assert_eq!((p.error_code, p.base_offset), (0, LOG_END));
}

#[tokio::test]
async fn flipped_bytes_in_a_sealed_segment_are_refused_after_a_scrub() {
    let dir = broker_with_segments(true).await;
    let segment = &segments(dir.path())[2];
    let (pos, base) = second_batch(segment);
    let f = std::fs::OpenOptions::new().read(true).write(true).open(segment).unwrap();
    let mut bytes = [0u8; 16];
    f.read_exact_at(&mut bytes, pos + 70).unwrap();
    f.write_all_at(&bytes.map(|b| !b), pos + 70).unwrap();
    drop(f);
    let broker = TestBroker::start_in(dir, &[]).await;
    let partition = broker.broker.topic(TOPIC).unwrap().partition(0).unwrap();
    assert!(partition.damaged_ranges().unwrap().is_empty(), "the open-time check reads only the last batch");
    let inner = broker.broker.clone();
    let (verified, found) = tokio::task::spawn_blocking(move || inner.scrub_now()).await.unwrap();
    assert!(verified >= 5, "the scrub verified {verified} segments");
    assert_eq!(found, 1);
    assert_damaged_range_refused_rest_served(&broker, base).await;
    broker.stop().await;
}

#[tokio::test]
async fn a_lying_length_field_is_refused_with_corrupt_message() {
    let dir = broker_with_segments(false).await;
    let segment = &segments(dir.path())[2];
    let (pos, base) = second_batch(segment);
    let f = std::fs::OpenOptions::new().write(true).open(segment).unwrap();
    f.write_all_at(&0x7fff_ffffu32.to_be_bytes(), pos + 8).unwrap();
    drop(f);
    let broker = TestBroker::start_in(dir, &[]).await;
    assert_damaged_range_refused_rest_served(&broker, base).await;
    broker.stop().await;
}

#[tokio::test]
async fn garbage_in_a_middle_segment_loses_only_the_damaged_batch_across_restarts() {
    let dir = broker_with_segments(false).await;
    let segment = &segments(dir.path())[3];
    let (pos, base) = second_batch(segment);
    let f = std::fs::OpenOptions::new().write(true).open(segment).unwrap();
    f.write_all_at(&[0xA5; 14], pos + 20).unwrap();
    drop(f);
    let broker = TestBroker::start_in(dir, &[]).await;
    let mut c = broker.client().await;
    let (_, refused) = consume(&mut c).await;
    assert_eq!(refused, (base..base + PER_BATCH as i64).collect::<Vec<_>>());
    let dir = broker.stop().await;
    let broker = TestBroker::start_in(dir, &[]).await;
    assert_damaged_range_refused_rest_served(&broker, base).await;
    broker.stop().await;
}
