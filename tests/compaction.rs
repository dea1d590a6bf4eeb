//! Log compaction end to end, in process: an idle group's committed offsets survive time
//! retention and a restart (`__consumer_offsets` is compacted, never time-deleted), a
//! compacted topic keeps the latest value per key and shrinks, and records without a key
//! are refused by a compacted topic.

mod common;

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use indexmap::IndexMap;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};

use common::{Client, TestBroker};
use jet::broker::replica::Replica;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn batch(records: &[(Option<&str>, Option<&str>)]) -> Bytes {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let recs: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (k, v))| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: -1 + i as i32,
            timestamp: now,
            key: k.map(|k| Bytes::from(k.to_string())),
            value: v.map(|v| Bytes::from(v.to_string())),
            headers: IndexMap::new(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(&mut buf, &recs, &RecordEncodeOptions { version: 2, compression: Compression::None })
        .unwrap();
    buf.freeze()
}

async fn create(c: &mut Client, topic: &str, configs: &[(&str, &str)]) {
    let req = CreateTopicsRequest::default().with_topics(vec![
        create_topics_request::CreatableTopic::default()
            .with_name(TopicName(s(topic)))
            .with_num_partitions(1)
            .with_replication_factor(1)
            .with_configs(
                configs
                    .iter()
                    .map(|(k, v)| {
                        create_topics_request::CreatableTopicConfig::default().with_name(s(k)).with_value(Some(s(v)))
                    })
                    .collect(),
            ),
    ]);
    let r: CreateTopicsResponse = c.call(ApiKey::CreateTopics, 7, &req).await;
    assert_eq!(r.topics[0].error_code, 0, "{:?}", r.topics[0].error_message);
}

async fn produce(c: &mut Client, topic: &str, data: Bytes) -> produce_response::PartitionProduceResponse {
    let req = ProduceRequest::default().with_acks(-1).with_timeout_ms(10_000).with_topic_data(vec![
        produce_request::TopicProduceData::default()
            .with_name(TopicName(s(topic)))
            .with_partition_data(vec![produce_request::PartitionProduceData::default().with_records(Some(data))]),
    ]);
    let r: ProduceResponse = c.call(ApiKey::Produce, 9, &req).await;
    r.responses[0].partition_responses[0].clone()
}

async fn commit(c: &mut Client, group: &str, offset: i64) {
    let req = OffsetCommitRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![
            offset_commit_request::OffsetCommitRequestTopic::default().with_name(TopicName(s("t"))).with_partitions(
                vec![offset_commit_request::OffsetCommitRequestPartition::default().with_committed_offset(offset)],
            ),
        ]);
    let r: OffsetCommitResponse = c.call(ApiKey::OffsetCommit, 9, &req).await;
    assert_eq!(r.topics[0].partitions[0].error_code, 0);
}

async fn committed(c: &mut Client, group: &str) -> Option<i64> {
    let req = OffsetFetchRequest::default().with_groups(vec![
        offset_fetch_request::OffsetFetchRequestGroup::default().with_group_id(GroupId(s(group))).with_topics(None),
    ]);
    let r: OffsetFetchResponse = c.call(ApiKey::OffsetFetch, 8, &req).await;
    r.groups[0].topics.first().map(|t| t.partitions[0].committed_offset)
}

const SHORT: &[&str] = &[
    "--set",
    "log.retention.ms=200",
    "--set",
    "log.retention.check.interval.ms=50",
    "--set",
    "log.roll.ms=50",
    "--set",
    "offsets.topic.num.partitions=1",
    "--set",
    "log.cleaner.backoff.ms=50",
    "--set",
    "log.cleaner.min.cleanable.ratio=0.01",
];

#[tokio::test]
async fn an_idle_groups_offsets_survive_retention_and_a_restart() {
    let b = TestBroker::start(SHORT).await;
    let mut c = b.client().await;
    create(&mut c, "t", &[]).await;
    commit(&mut c, "idle", 42).await;
    // A delete-policy canary with the same retention: once retention has removed the
    // record produced now, the idle commit's segment is just as old.
    let canary = produce(&mut c, "t", batch(&[(Some("k"), Some("v"))])).await.base_offset;
    let offsets = b.broker.topic("__consumer_offsets").unwrap().partition(0).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut busy = 0;
    loop {
        // Another group keeps committing (rolling and dirtying __consumer_offsets).
        busy += 1;
        commit(&mut c, "busy", busy).await;
        produce(&mut c, "t", batch(&[(Some("k"), Some("v"))])).await;
        let canary_gone = b.broker.topic("t").unwrap().partition(0).unwrap().offsets().unwrap().log_start > canary;
        let cleaned = offsets.dir().join("cleaner-offset-checkpoint").exists();
        if canary_gone && cleaned {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "retention or the cleaner never ran");
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    assert_eq!(offsets.offsets().unwrap().log_start, 0, "__consumer_offsets is never time-deleted");
    assert_eq!(committed(&mut c, "idle").await, Some(42));
    let dir = b.stop().await;

    let b = TestBroker::start_in(dir, SHORT).await;
    let mut c = b.client().await;
    assert_eq!(committed(&mut c, "idle").await, Some(42));
    assert_eq!(committed(&mut c, "busy").await, Some(busy));
    b.stop().await;
}

#[tokio::test]
async fn a_compacted_topic_keeps_the_latest_value_per_key_and_shrinks() {
    let b = TestBroker::start(&["--set", "log.cleaner.backoff.ms=50"]).await;
    let mut c = b.client().await;
    create(&mut c, "c", &[("cleanup.policy", "compact"), ("segment.ms", "50"), ("min.cleanable.dirty.ratio", "0.01")])
        .await;
    let p = b.broker.topic("c").unwrap().partition(0).unwrap();
    let mut latest = std::collections::BTreeMap::new();
    // What was written (the cleaner may already be at work while it is).
    let mut written = 0;
    for round in 0..20 {
        for k in 0..5 {
            let (key, value) = (format!("k{k}"), format!("v{round}"));
            let data = batch(&[(Some(&key), Some(&value))]);
            written += data.len() as u64;
            let r = produce(&mut c, "c", data).await;
            latest.insert(key, (r.base_offset, value));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    // Wait until everything but the active segment holds one record per key.
    loop {
        produce(&mut c, "c", batch(&[(Some("tick"), Some("x"))])).await;
        let read = p.read(0, 1 << 20, true).unwrap().records;
        let mut records = Vec::new();
        for set in kafka_protocol::records::RecordBatchDecoder::decode_all(&mut read.clone()).unwrap() {
            records.extend(set.records);
        }
        let kept: Vec<_> = records
            .iter()
            .filter(|r| r.key.as_deref() != Some(b"tick".as_ref()))
            .map(|r| (r.offset, String::from_utf8(r.key.clone().unwrap().to_vec()).unwrap()))
            .collect();
        let want: Vec<_> = latest
            .iter()
            .map(|(k, (o, _))| (*o, k.clone()))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        if kept == want {
            for r in records.iter().filter(|r| r.key.as_deref() != Some(b"tick".as_ref())) {
                let key = String::from_utf8(r.key.clone().unwrap().to_vec()).unwrap();
                assert_eq!(r.value.as_deref(), Some(latest[&key].1.as_bytes()));
            }
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "not compacted: {kept:?}");
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    let size = p.size_bytes().unwrap();
    assert!(size < written / 4, "the topic shrinks: {size} bytes of {written} written");
    b.stop().await;
}

#[tokio::test]
async fn a_record_without_a_key_is_refused_by_a_compacted_topic() {
    let b = TestBroker::start(&[]).await;
    let mut c = b.client().await;
    create(&mut c, "c", &[("cleanup.policy", "compact,delete")]).await;
    let r = produce(&mut c, "c", batch(&[(Some("a"), Some("1")), (None, Some("2")), (Some("b"), Some("3"))])).await;
    assert_eq!(r.error_code, ResponseError::InvalidRecord.code());
    assert_eq!(r.record_errors.iter().map(|e| e.batch_index).collect::<Vec<_>>(), vec![1]);
    assert!(r.error_message.as_deref().unwrap_or("").contains("without key"));
    // Nothing of the batch was appended.
    assert_eq!(b.broker.topic("c").unwrap().partition(0).unwrap().offsets().unwrap().log_end, 0);
    let ok = produce(&mut c, "c", batch(&[(Some("a"), Some("1"))])).await;
    assert_eq!((ok.error_code, ok.base_offset), (0, 0));
    b.stop().await;
}
