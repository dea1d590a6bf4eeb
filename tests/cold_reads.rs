//! A fetch of data that is not in the page cache reads it on the blocking pool first
//! (`jet::log::page_cache`), so `sendfile` never waits for the disk on an async worker;
//! data in the cache is sent straight away. The only test in this binary, so the
//! process-wide counters it reads move only for it.

mod common;

use bytes::Bytes;
use common::{Client, TestBroker, records, whole_batches};
use jet::log::page_cache::{cold_ranges, hot_ranges};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

const TOPIC: &str = "cold";

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// One batch of 64 records of 1 KiB, values tagged with `round`.
fn batch(round: u8) -> Bytes {
    records::values((0..64).map(|_| vec![round; 1024]))
}

async fn fetch_all(c: &mut Client) -> Vec<u8> {
    let req = FetchRequest::default().with_max_bytes(50 << 20).with_session_epoch(-1).with_topics(vec![
        fetch_request::FetchTopic::default().with_topic(TopicName(s(TOPIC))).with_partitions(vec![
            fetch_request::FetchPartition::default().with_fetch_offset(0).with_partition_max_bytes(10 << 20),
        ]),
    ]);
    let r: FetchResponse = c.call(ApiKey::Fetch, 12, &req).await;
    let p = &r.responses[0].partitions[0];
    assert_eq!(p.error_code, 0);
    let mut bytes = whole_batches(p.records.clone().unwrap_or_default());
    let sets = kafka_protocol::records::RecordBatchDecoder::decode_all(&mut bytes).expect("decode");
    sets.iter().flat_map(|set| set.records.iter().map(|r| r.value.as_ref().unwrap()[0])).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetch_of_uncached_data_reads_it_on_the_blocking_pool() {
    // Not tmpfs: its pages cannot be dropped from the cache.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let broker = TestBroker::start_in(dir, &[]).await;
    let mut c = broker.client().await;
    let topic = metadata_request::MetadataRequestTopic::default().with_name(Some(TopicName(s(TOPIC))));
    let req = MetadataRequest::default().with_allow_auto_topic_creation(true).with_topics(Some(vec![topic]));
    let _: MetadataResponse = c.call(ApiKey::Metadata, 12, &req).await;
    for round in 0..4u8 {
        let req = ProduceRequest::default().with_acks(-1).with_timeout_ms(30_000).with_topic_data(vec![
            produce_request::TopicProduceData::default().with_name(TopicName(s(TOPIC))).with_partition_data(vec![
                produce_request::PartitionProduceData::default().with_index(0).with_records(Some(batch(round))),
            ]),
        ]);
        let r: ProduceResponse = c.call(ApiKey::Produce, 9, &req).await;
        assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
    }
    let expected: Vec<u8> = (0..4u8).flat_map(|round| [round; 64]).collect();

    // Just written: in the page cache, sent without the blocking pool.
    let (cold, hot) = (cold_ranges(), hot_ranges());
    assert_eq!(fetch_all(&mut c).await, expected);
    assert_eq!(cold_ranges(), cold, "a cached range went to the blocking pool");
    assert!(hot_ranges() > hot);

    // Not in the cache: read on the blocking pool, and served whole. Advice to drop the
    // pages (POSIX_FADV_DONTNEED) is best effort — on this kernel it sometimes keeps every
    // page of a just-sent segment for good — so the segment is replaced, between a clean
    // stop and a restart, by a copy written around the cache (O_DIRECT): a new inode none
    // of whose pages were ever cached.
    let dir = broker.stop().await;
    let segment = dir.path().join(format!("{TOPIC}-0")).join(format!("{:020}.log", 0));
    let len = replace_uncached(&segment);
    let file = std::fs::File::open(&segment).unwrap();
    assert!(!jet::log::page_cache::is_resident(&file, 0, len), "the copy written with O_DIRECT is cached");
    let broker = TestBroker::start_in(dir, &[]).await;
    let mut c = broker.client().await;
    let cold = cold_ranges();
    assert_eq!(fetch_all(&mut c).await, expected);
    assert!(cold_ranges() > cold, "an uncached range was sent without being read on the blocking pool");
    broker.stop().await;
}

/// Replaces `path` with a copy of its bytes written with `O_DIRECT` (so the page cache
/// never held them) and synced; returns the length.
fn replace_uncached(path: &std::path::Path) -> usize {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    const BLOCK: usize = 4096;
    let bytes = std::fs::read(path).unwrap();
    let padded = bytes.len().div_ceil(BLOCK) * BLOCK;
    let layout = std::alloc::Layout::from_size_align(padded, BLOCK).unwrap();
    // SAFETY: a non-zero-sized layout; freed below with the same layout.
    let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
    assert!(!ptr.is_null());
    // SAFETY: `ptr` is `padded` zeroed bytes owned here until freed below.
    let buf = unsafe { std::slice::from_raw_parts_mut(ptr, padded) };
    buf[..bytes.len()].copy_from_slice(&bytes);
    let copy = path.with_extension("direct");
    let mut f =
        std::fs::OpenOptions::new().write(true).create_new(true).custom_flags(libc::O_DIRECT).open(&copy).unwrap();
    f.write_all(buf).unwrap();
    // SAFETY: allocated above with this layout; `buf` is not used after this.
    unsafe { std::alloc::dealloc(ptr, layout) };
    f.set_len(bytes.len() as u64).unwrap();
    f.sync_all().unwrap();
    std::fs::rename(&copy, path).unwrap();
    bytes.len()
}
