use std::collections::BTreeMap;

use kafka_protocol::messages::{ApiKey, produce_request};

use super::*;
use crate::handler::test_support::{broker, name};
use crate::log::test_util::producer_batch;

fn config(compression: Option<Compression>) -> EffectiveTopicConfig {
    EffectiveTopicConfig { max_message_bytes: 1 << 20, compression, ..Default::default() }
}

#[test]
fn scratch_is_planned_only_for_compressed_or_rewritten_data() {
    let plain = producer_batch(10, 1, 10, Compression::None, (-1, -1, -1));
    let zstd = producer_batch(10, 1, 10, Compression::Zstd, (-1, -1, -1));
    let pool = 256 << 20;
    let none = ScratchPlan { limit: 0, reserve: 0 };
    assert_eq!(scratch_plan(&plain, &config(None), pool, false), none);
    assert_eq!(scratch_plan(&plain, &config(Some(Compression::None)), pool, true), none);
    let first = scratch_plan(&zstd, &config(None), pool, false);
    assert_eq!(first, ScratchPlan { limit: FIRST_GUESS_MIN, reserve: FIRST_GUESS_MIN });
    let full = scratch_plan(&zstd, &config(None), pool, true);
    assert_eq!(full, ScratchPlan { limit: 64 << 20, reserve: 64 << 20 });
    // Rewriting holds plain records and output: three times the bound, within the pool.
    let rewrite = scratch_plan(&plain, &config(Some(Compression::Lz4)), 96 << 20, true);
    assert_eq!(rewrite, ScratchPlan { limit: 32 << 20, reserve: 96 << 20 });
    // Garbage is planned as compressed (validation refuses it).
    assert_eq!(scratch_plan(b"garbage", &config(None), pool, false).limit, FIRST_GUESS_MIN);
}

fn request_with_acks(records: Vec<u8>, acks: i16) -> ProduceRequest {
    let data = produce_request::PartitionProduceData::default().with_index(0).with_records(Some(records.into()));
    ProduceRequest::default().with_acks(acks).with_timeout_ms(10_000).with_topic_data(vec![
        produce_request::TopicProduceData::default().with_name(name("t")).with_partition_data(vec![data]),
    ])
}

async fn produce(b: &Arc<Broker>, records: Vec<u8>) -> PartitionProduceResponse {
    produce_with_acks(b, records, 1).await
}

async fn produce_with_acks(b: &Arc<Broker>, records: Vec<u8>, acks: i16) -> PartitionProduceResponse {
    use kafka_protocol::protocol::Decodable;
    // v8: the last version with a plain response header (size, correlation id).
    let to = ReplyTo { api_key: ApiKey::Produce, version: 8, correlation_id: 1, listener: Default::default() };
    let request = request_with_acks(records, acks);
    let out = start(b.clone(), request, to).await.await.expect("encode").expect("acks 1 and -1 answer");
    let crate::protocol::splice::Part::Bytes(bytes) = &out.parts[0] else { panic!("bytes") };
    let mut body = bytes.slice(8..);
    let r = ProduceResponse::decode(&mut body, 8).expect("decode");
    r.responses[0].partition_responses[0].clone()
}

#[tokio::test]
async fn compressed_batches_wait_for_scratch_and_decompress_beyond_the_first_guess() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path());
    b.create_topic("t", 1, 1, BTreeMap::new(), false).expect("create");
    // 200 records of 5 000 identical bytes: ~1 MB plain, a few KB of gzip, so more
    // than the first guess (16 times the compressed size, at least 256 KiB).
    let gzip = producer_batch(200, now_ms(), 5_000, Compression::Gzip, (-1, -1, -1));
    assert!(gzip.len() * FIRST_GUESS_RATIO < FIRST_GUESS_MIN);
    let all = b.scratch_budget.reserve(b.scratch_budget.capacity()).await.expect("reserve");
    let pending = tokio::spawn({
        let b = b.clone();
        async move { produce(&b, gzip).await }
    });
    // The pool is held: the produce waits rather than allocating.
    let finished = async {
        while !pending.is_finished() {
            tokio::task::yield_now().await;
        }
    };
    assert!(tokio::time::timeout(Duration::from_millis(200), finished).await.is_err());
    drop(all);
    let answer = tokio::time::timeout(Duration::from_secs(30), pending).await.expect("produce done").unwrap();
    assert_eq!(answer.error_code, 0, "{:?}", answer.error_message);
    assert_eq!(answer.base_offset, 0);
    assert_eq!(b.scratch_budget.available(), b.scratch_budget.capacity());
}

#[tokio::test]
async fn acks_all_needs_min_insync_replicas_in_sync() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path());
    let configs = BTreeMap::from([("min.insync.replicas".to_string(), "2".to_string())]);
    b.create_topic("t", 1, 1, configs, false).expect("create");
    let batch = || producer_batch(3, now_ms(), 10, Compression::None, (-1, -1, -1));
    // One replica is in sync, two are required: refused before anything is appended.
    let refused = produce_with_acks(&b, batch(), -1).await;
    assert_eq!(refused.error_code, ResponseError::NotEnoughReplicas.code());
    let message = refused.error_message.map(|m| m.to_string()).unwrap_or_default();
    assert!(message.contains("min.insync.replicas=2"), "{message}");
    // acks=1 does not ask for the in-sync replicas (as in Kafka).
    let taken = produce_with_acks(&b, batch(), 1).await;
    assert_eq!((taken.error_code, taken.base_offset), (0, 0), "{:?}", taken.error_message);
    // One is enough for a topic that asks for one.
    b.create_topic("u", 1, 1, BTreeMap::new(), false).expect("create");
    let topic = b.topic("u").expect("topic u");
    let replica = topic.replica(0).expect("partition 0");
    assert!(replica.held_by(1).await.is_ok());
    assert!(matches!(
        replica.held_by(2).await,
        Err(PartitionError::NotEnoughReplicas { held: 1, required: 2, after_append: true })
    ));
}
