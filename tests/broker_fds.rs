//! File descriptors are bounded by `log.max.open.segment.files`, not by the number of
//! partitions: the `jet` binary hosts 2 topics × 2,000 partitions, every partition is
//! written and read, the broker is SIGKILLed and recovers them all, and the process's
//! open descriptors (`/proc/<pid>/fd`) stay under the cap plus a fixed allowance
//! (connections, the metadata store, the runtime) throughout. Before, every segment
//! held its `.log` file open for the life of the broker: 4,000+ descriptors here.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::process::JetProcess;
use common::{Client, records, whole_batches};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

const PARTITIONS: i32 = 2_000;
const TOPICS: [&str; 2] = ["fds-a", "fds-b"];
const CAP: usize = 256;
/// Descriptors that are not segment files: stdio, the runtime's epoll and eventfds, the
/// listener and test connections, the fjall metadata store, index and checkpoint files
/// open for a moment, helper threads' files.
const ALLOWANCE: usize = 150;

/// The broker under test: the `jet` binary with the cap on open segment files.
struct Jet(JetProcess);

impl Jet {
    fn start(dir: &std::path::Path) -> Jet {
        Jet(JetProcess::start(dir, &["--set", &format!("log.max.open.segment.files={CAP}")]))
    }

    fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.0.child.id())).expect("/proc/<pid>/fd").count()
    }

    /// Waits (up to 30 s) for the descriptors to settle under the bound. A fetch response
    /// being written holds each of its partitions' files (`sendfile`) until it is sent,
    /// and the client sees the last byte before the broker drops them; a leak never
    /// settles.
    fn assert_fds_bounded(&self, when: &str) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let first = self.open_fds();
        let mut n = first;
        while n > CAP + ALLOWANCE && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
            n = self.open_fds();
        }
        eprintln!("{when}: {n} open file descriptors (first seen {first}; cap {CAP} + allowance {ALLOWANCE})");
        assert!(n <= CAP + ALLOWANCE, "{when}: {n} open file descriptors for {CAP} segment files");
    }
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn batch(value: &str) -> Bytes {
    records::values([value.to_string()])
}

async fn create_topics(c: &mut Client) {
    let topics = TOPICS
        .iter()
        .map(|t| {
            create_topics_request::CreatableTopic::default()
                .with_name(TopicName(s(t)))
                .with_num_partitions(PARTITIONS)
                .with_replication_factor(1)
        })
        .collect();
    let req = CreateTopicsRequest::default().with_timeout_ms(300_000).with_topics(topics);
    let r: CreateTopicsResponse = c.call(ApiKey::CreateTopics, 7, &req).await;
    for t in &r.topics {
        assert_eq!(t.error_code, 0, "{:?}", t.error_message);
    }
}

async fn produce_everywhere(c: &mut Client, round: usize) {
    let topic_data = TOPICS
        .iter()
        .map(|t| {
            let partitions = (0..PARTITIONS)
                .map(|i| {
                    produce_request::PartitionProduceData::default()
                        .with_index(i)
                        .with_records(Some(batch(&format!("{t}/{i}/{round}"))))
                })
                .collect();
            produce_request::TopicProduceData::default().with_name(TopicName(s(t))).with_partition_data(partitions)
        })
        .collect();
    let req = ProduceRequest::default().with_acks(-1).with_timeout_ms(300_000).with_topic_data(topic_data);
    let r: ProduceResponse = c.call(ApiKey::Produce, 9, &req).await;
    for t in &r.responses {
        for p in &t.partition_responses {
            assert_eq!((p.error_code, p.base_offset), (0, round as i64), "{:?} {}", t.name, p.index);
        }
    }
}

/// Fetches every partition from offset 0; returns how many records came back.
async fn fetch_everywhere(c: &mut Client) -> usize {
    let topics = TOPICS
        .iter()
        .map(|t| {
            let partitions = (0..PARTITIONS)
                .map(|i| {
                    fetch_request::FetchPartition::default()
                        .with_partition(i)
                        .with_fetch_offset(0)
                        .with_partition_max_bytes(1 << 16)
                })
                .collect();
            fetch_request::FetchTopic::default().with_topic(TopicName(s(t))).with_partitions(partitions)
        })
        .collect();
    let req = FetchRequest::default().with_max_bytes(64 << 20).with_session_epoch(-1).with_topics(topics);
    let r: FetchResponse = c.call(ApiKey::Fetch, 12, &req).await;
    let mut records = 0;
    for t in &r.responses {
        for p in &t.partitions {
            assert_eq!(p.error_code, 0);
            let mut bytes = whole_batches(p.records.clone().unwrap_or_default());
            let sets = kafka_protocol::records::RecordBatchDecoder::decode_all(&mut bytes).expect("decode");
            records += sets.iter().map(|set| set.records.len()).sum::<usize>();
        }
    }
    records
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_files_stay_under_the_cap_with_thousands_of_partitions() {
    // tmpfs where there is one: this test is about descriptors, not the disk.
    let shm = std::path::Path::new("/dev/shm");
    let dir = if shm.is_dir() { tempfile::tempdir_in(shm).unwrap() } else { tempfile::tempdir().unwrap() };
    let jet = Jet::start(dir.path());
    let mut c = Client::connect(jet.0.addr).await;
    create_topics(&mut c).await;
    jet.assert_fds_bounded("after creating 4,000 partitions");
    produce_everywhere(&mut c, 0).await;
    jet.assert_fds_bounded("after producing to every partition");
    produce_everywhere(&mut c, 1).await;
    assert_eq!(fetch_everywhere(&mut c).await, 2 * TOPICS.len() * PARTITIONS as usize);
    jet.assert_fds_bounded("after reading every partition");
    drop(c);

    // Unclean restart: recovery walks every partition's active segment.
    drop(jet);
    let jet = Jet::start(dir.path());
    jet.assert_fds_bounded("after recovering 4,000 partitions");
    let mut c = Client::connect(jet.0.addr).await;
    produce_everywhere(&mut c, 2).await;
    assert_eq!(fetch_everywhere(&mut c).await, 3 * TOPICS.len() * PARTITIONS as usize);
    jet.assert_fds_bounded("after writing and reading every partition again");
}
