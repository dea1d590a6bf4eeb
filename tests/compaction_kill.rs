//! SIGKILL of the real `jet` binary while its log cleaner compacts: after every restart the
//! log is a valid compaction of what was written — offsets strictly increase, every record
//! is the one written at its offset, and every key's latest acknowledged record is there.
//! A swap cut short would show as overlapping offsets (old and new segments both present)
//! or as a missing latest record (a hole).

mod common;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use bytes::Bytes;
use common::process::JetProcess;
use common::{Client, records, whole_batches};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Record, RecordBatchDecoder};

const TOPIC: &str = "compacted";
const KEYS: u64 = 40;

fn start(dir: &std::path::Path) -> JetProcess {
    JetProcess::start(dir, &["--set", "log.cleaner.backoff.ms=5", "--set", "log.cleaner.min.cleanable.ratio=0.01"])
}

/// One batch: value `v` under key `k{v % KEYS}` for each of `values`.
fn batch(values: &[u64]) -> Bytes {
    let now = jet::broker::now_ms();
    records::encode(values.iter().enumerate().map(|(i, v)| Record {
        sequence: -1 + i as i32,
        timestamp: now,
        key: Some(Bytes::from(format!("k{}", v % KEYS))),
        ..records::record(v.to_string())
    }))
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

async fn create(c: &mut Client) {
    let config = |k: &str, v: &str| {
        create_topics_request::CreatableTopicConfig::default().with_name(s(k)).with_value(Some(s(v)))
    };
    let req = CreateTopicsRequest::default().with_topics(vec![
        create_topics_request::CreatableTopic::default()
            .with_name(TopicName(s(TOPIC)))
            .with_num_partitions(1)
            .with_replication_factor(1)
            .with_configs(vec![config("cleanup.policy", "compact"), config("segment.bytes", "2048")]),
    ]);
    let r: CreateTopicsResponse = c.call(ApiKey::CreateTopics, 7, &req).await;
    assert_eq!(r.topics[0].error_code, 0, "{:?}", r.topics[0].error_message);
}

/// Every record up to the high watermark: (offset, key, value).
async fn read_all(c: &mut Client) -> Vec<(i64, String, u64)> {
    let mut out: Vec<(i64, String, u64)> = Vec::new();
    let mut next = 0;
    loop {
        let req = FetchRequest::default().with_max_bytes(50 << 20).with_session_epoch(-1).with_topics(vec![
            fetch_request::FetchTopic::default().with_topic(TopicName(s(TOPIC))).with_partitions(vec![
                fetch_request::FetchPartition::default().with_fetch_offset(next).with_partition_max_bytes(10 << 20),
            ]),
        ]);
        let r: FetchResponse = c.call(ApiKey::Fetch, 12, &req).await;
        assert_eq!(r.responses[0].partitions[0].error_code, 0);
        let mut bytes = whole_batches(r.responses[0].partitions[0].records.clone().unwrap());
        if bytes.is_empty() {
            return out;
        }
        for set in RecordBatchDecoder::decode_all(&mut bytes).unwrap() {
            for rec in set.records {
                let key = String::from_utf8(rec.key.unwrap().to_vec()).unwrap();
                let value = std::str::from_utf8(rec.value.as_deref().unwrap()).unwrap().parse().unwrap();
                out.push((rec.offset, key, value));
                next = rec.offset + 1;
            }
        }
    }
}

/// The log must be a compaction of `written` (offset → value) holding `latest`.
fn check(stored: &[(i64, String, u64)], written: &HashMap<i64, u64>, latest: &BTreeMap<String, i64>, round: usize) {
    assert!(stored.windows(2).all(|w| w[0].0 < w[1].0), "round {round}: offsets not strictly increasing");
    for (offset, key, value) in stored {
        if let Some(w) = written.get(offset) {
            assert_eq!((value, key), (w, &format!("k{}", w % KEYS)), "round {round}: offset {offset}");
        }
    }
    let at: HashMap<i64, u64> = stored.iter().map(|(o, _, v)| (*o, *v)).collect();
    for (key, offset) in latest {
        assert!(at.contains_key(offset), "round {round}: {key}'s latest record (offset {offset}) is missing");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_while_compacting_leaves_a_valid_compacted_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut written: HashMap<i64, u64> = HashMap::new();
    let mut latest: BTreeMap<String, i64> = BTreeMap::new();
    let mut next = 0u64;
    let mut cleanings = 0;
    let mut recovered_swaps = 0;
    for round in 0..6 {
        let mut jet = start(dir.path());
        recovered_swaps +=
            jet.startup.iter().filter(|l| l.contains("cleaner swap") || l.contains("cleaner rewrite")).count();
        let mut c = Client::connect(jet.addr).await;
        if round == 0 {
            create(&mut c).await;
        }
        check(&read_all(&mut c).await, &written, &latest, round);
        // Write until the cleaner has swapped segments in a few times, then a little more
        // (a different amount each round), then SIGKILL while it goes on.
        let mut seen_cleanings = 0;
        let extra = 20 + 37 * round as u64;
        let mut after = None;
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let values: Vec<u64> = (next..next + 5).collect();
            next += 5;
            let req = ProduceRequest::default().with_acks(-1).with_timeout_ms(30_000).with_topic_data(vec![
                produce_request::TopicProduceData::default().with_name(TopicName(s(TOPIC))).with_partition_data(vec![
                    produce_request::PartitionProduceData::default().with_records(Some(batch(&values))),
                ]),
            ]);
            let r: ProduceResponse = c.call(ApiKey::Produce, 9, &req).await;
            let p = &r.responses[0].partition_responses[0];
            assert_eq!(p.error_code, 0, "{:?}", p.error_message);
            for (i, v) in values.iter().enumerate() {
                let offset = p.base_offset + i as i64;
                written.insert(offset, *v);
                latest.insert(format!("k{}", v % KEYS), offset);
            }
            while let Ok(line) = jet.log.try_recv() {
                seen_cleanings += usize::from(line.contains("cleaned log"));
            }
            if seen_cleanings >= 2 && after.is_none() {
                after = Some(next + extra);
            }
            if after.is_some_and(|a| next >= a) {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "round {round}: the cleaner never ran");
        }
        cleanings += seen_cleanings;
        jet.kill();
    }
    let jet = start(dir.path());
    let mut c = Client::connect(jet.addr).await;
    let stored = read_all(&mut c).await;
    check(&stored, &written, &latest, 6);
    assert!(cleanings >= 12);
    // How many kills fell inside a rewrite or a swap varies from run to run.
    eprintln!(
        "{cleanings} cleanings, {recovered_swaps} rewrites/swaps cut short by the kills and recovered; {} of {} records left",
        stored.len(),
        written.len()
    );
    // Compaction did its job: far fewer records than written.
    assert!(stored.len() < written.len() / 2, "{} of {} records left", stored.len(), written.len());
}
