//! Transactions on a compacted topic of the real `jet` binary (what Kafka Streams'
//! exactly_once_v2 changelogs do): committed and aborted transactions write the same
//! keys, driven by hand as a transaction coordinator would (transactional batches,
//! COMMIT/ABORT markers with WriteTxnMarkers; no coordinator, so KIP-890 verification is
//! turned off). Once the cleaner has compacted the log, a read_committed consumer sees
//! exactly the latest committed value of every key, a read_uncommitted one sees no
//! aborted record (the cleaner removed them) and only the markers still needed, and a
//! SIGKILL keeps all of that.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;

use bytes::Bytes;
use common::process::JetProcess;
use common::replicated::{TOPIC, init_producer_id, name, produce, until};
use common::txn::{produce_txn, read_committed, write_marker};
use common::{Client, records, whole_batches};
use jet::log::batch::BatchIter;
use kafka_protocol::messages::*;
use kafka_protocol::records::{Record, RecordBatchDecoder};

const KEYS: usize = 8;
const ROUNDS: usize = 12;

/// No coordinator knows these transactions (`tests/txn_partition.rs` does the same): the
/// writes are not verified with one (KIP-890).
fn start(dir: &std::path::Path) -> JetProcess {
    JetProcess::start(
        dir,
        &["--set", "log.cleaner.backoff.ms=20", "--set", "transaction.partition.verification.enable=false"],
    )
}

/// [`TOPIC`], one partition, compacted, rolling small segments and cleaning them early;
/// markers without data go 300 ms after the pass that finds them so.
async fn create_compacted(addr: SocketAddr) {
    let mut c = Client::connect(addr).await;
    let config = |k: &str, v: &str| {
        create_topics_request::CreatableTopicConfig::default()
            .with_name(records::str_bytes(k))
            .with_value(Some(records::str_bytes(v)))
    };
    let request = CreateTopicsRequest::default().with_timeout_ms(15_000).with_topics(vec![
        create_topics_request::CreatableTopic::default()
            .with_name(name(TOPIC))
            .with_num_partitions(1)
            .with_replication_factor(1)
            .with_configs(vec![
                config("cleanup.policy", "compact"),
                config("segment.bytes", "1024"),
                config("segment.ms", "100"),
                config("min.cleanable.dirty.ratio", "0.01"),
                config("delete.retention.ms", "300"),
            ]),
    ]);
    let created: CreateTopicsResponse = c.call(ApiKey::CreateTopics, 7, &request).await;
    assert_eq!(created.topics[0].error_code, 0, "{:?}", created.topics[0].error_message);
}

/// One transactional batch of `producer` from `sequence`: value `<prefix>-k<i>` under key
/// `k<i>` for every key.
fn txn_batch(producer: i64, sequence: i32, prefix: &str) -> Bytes {
    records::encode((0..KEYS).map(|i| Record {
        transactional: true,
        producer_id: producer,
        producer_epoch: 0,
        sequence: sequence + i as i32,
        key: Some(Bytes::from(format!("k{i}"))),
        ..records::record(format!("{prefix}-k{i}"))
    }))
}

/// A plain record under key `tick` (it rolls and dirties the log).
fn tick(n: usize) -> Bytes {
    records::encode([Record { key: Some(Bytes::from_static(b"tick")), ..records::record(format!("tick-{n}")) }])
}

/// What a read_uncommitted consumer reads from offset 0: the data records as (offset,
/// value) and the number of control records.
async fn read_uncommitted(addr: SocketAddr) -> (Vec<(i64, String)>, usize) {
    let mut c = Client::connect(addr).await;
    let (mut out, mut markers, mut offset) = (Vec::new(), 0, 0);
    loop {
        let request =
            FetchRequest::default().with_max_wait_ms(0).with_max_bytes(50 << 20).with_session_epoch(-1).with_topics(
                vec![fetch_request::FetchTopic::default().with_topic(name(TOPIC)).with_partitions(vec![
                fetch_request::FetchPartition::default()
                    .with_partition(0)
                    .with_fetch_offset(offset)
                    .with_partition_max_bytes(10 << 20),
            ])],
            );
        let r: FetchResponse = c.call(ApiKey::Fetch, 12, &request).await;
        let p = &r.responses[0].partitions[0];
        assert_eq!(p.error_code, 0, "fetch");
        let whole = whole_batches(p.records.clone().unwrap_or_default());
        if whole.is_empty() {
            return (out, markers);
        }
        for item in BatchIter::new(&whole) {
            // By the header: an empty batch (kept for its producer's sequence) moves the read on too.
            let (h, range) = item.expect("batch");
            offset = h.last_offset() + 1;
            for r in RecordBatchDecoder::decode(&mut whole.slice(range)).expect("decode").records {
                if r.control {
                    markers += 1;
                } else {
                    out.push((r.offset, String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into()));
                }
            }
        }
    }
}

/// The latest value of each `k<i>` key among `records` (the key is in the value).
fn latest_per_key(records: &[(i64, String)]) -> BTreeMap<String, String> {
    records
        .iter()
        .filter(|(_, v)| !v.starts_with("tick"))
        .map(|(_, v)| (v.rsplit('-').next().unwrap_or_default().to_string(), v.clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_keeps_the_latest_committed_value_per_key_and_drops_aborted_records() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut jet = start(dir.path());
    let addr = jet.addr;
    create_compacted(addr).await;
    let (a, b) = (init_producer_id(addr).await, init_producer_id(addr).await);

    // Each round: a's transaction and b's overlap on every key; a commits, b aborts.
    let seq = |round: usize| (round * KEYS) as i32;
    for round in 0..ROUNDS {
        assert_eq!(produce_txn(addr, Some("t-a"), txn_batch(a, seq(round), &format!("committed{round}"))).await, 0);
        assert_eq!(produce_txn(addr, Some("t-b"), txn_batch(b, seq(round), &format!("aborted{round}"))).await, 0);
        assert_eq!(write_marker(addr, a, 0, true, 0).await, 0);
        assert_eq!(write_marker(addr, b, 0, false, 0).await, 0);
    }
    let want: BTreeMap<String, String> =
        (0..KEYS).map(|i| (format!("k{i}"), format!("committed{}-k{i}", ROUNDS - 1))).collect();
    let seen = read_committed(addr).await.expect("fetch");
    assert_eq!(latest_per_key(&seen.records), want, "before any cleaning");
    assert_eq!(seen.aborted.len(), ROUNDS);

    // Ticks roll the transactions out of the active segment and keep the log dirty; the
    // cleaner has done its work once only the latest committed record of each key is
    // left, with two markers: a's last COMMIT (its transaction has data) and b's last
    // ABORT (its batch is b's last, kept empty for b's sequence). Every other marker
    // went after its delete horizon.
    let mut ticks = 0;
    let (kept, markers) = until("the log compacted", || {
        ticks += 1;
        let n = ticks;
        async move {
            assert_eq!(produce(addr, tick(n)).await.error_code, 0);
            let (records, markers) = read_uncommitted(addr).await;
            let kept: Vec<(i64, String)> = records.into_iter().filter(|(_, v)| !v.starts_with("tick")).collect();
            (kept.len() == KEYS && markers == 2).then_some((kept, markers))
        }
    })
    .await;
    assert_eq!(latest_per_key(&kept), want);
    assert!(kept.iter().all(|(_, v)| !v.starts_with("aborted")), "{kept:?}");

    check(addr, &want, &kept, markers, "compacted").await;
    jet.kill();
    let jet = start(dir.path());
    let addr = jet.addr;
    check(addr, &want, &kept, markers, "after SIGKILL").await;

    // The producers go on where they were: a commits, b aborts once more, and the
    // committed view moves to a's new values.
    assert_eq!(produce_txn(addr, Some("t-a"), txn_batch(a, seq(ROUNDS), "after")).await, 0);
    assert_eq!(produce_txn(addr, Some("t-b"), txn_batch(b, seq(ROUNDS), "aborted-after")).await, 0);
    assert_eq!(write_marker(addr, a, 0, true, 0).await, 0);
    assert_eq!(write_marker(addr, b, 0, false, 0).await, 0);
    let seen = read_committed(addr).await.expect("fetch");
    let after: BTreeMap<String, String> = (0..KEYS).map(|i| (format!("k{i}"), format!("after-k{i}"))).collect();
    assert_eq!(latest_per_key(&seen.records), after);
    assert_eq!(seen.last_stable, seen.high_watermark);
}

/// What consumers see of the compacted log at `addr`: read_committed, exactly the
/// latest committed record of every key (`kept`, whose values are `want`) and no
/// transaction open; read_uncommitted, the same records and `markers` markers.
async fn check(addr: SocketAddr, want: &BTreeMap<String, String>, kept: &[(i64, String)], markers: usize, what: &str) {
    let not_tick = |(_, v): &(i64, String)| !v.starts_with("tick");
    let seen = read_committed(addr).await.expect("fetch");
    assert_eq!(seen.last_stable, seen.high_watermark, "{what}: no transaction looks open");
    assert_eq!(&latest_per_key(&seen.records), want, "{what}: read_committed");
    let committed: Vec<_> = seen.records.into_iter().filter(not_tick).collect();
    assert_eq!(committed, kept, "{what}: read_committed, records");
    let (records, count) = read_uncommitted(addr).await;
    let uncommitted: Vec<_> = records.into_iter().filter(not_tick).collect();
    assert_eq!(uncommitted, kept, "{what}: read_uncommitted");
    assert_eq!(count, markers, "{what}: markers");
}
