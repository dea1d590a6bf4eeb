//! Tests of the real `jet` binary as a process: readiness, graceful SIGTERM, and no
//! acknowledged write lost to a SIGKILL in the middle of producing.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::process::JetProcess;
use common::{Client, records, whole_batches};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::RecordBatchDecoder;

fn batch(values: &[u64]) -> Bytes {
    records::values(values.iter().map(|v| v.to_string()))
}

fn produce_req(data: Bytes) -> ProduceRequest {
    ProduceRequest::default().with_acks(-1).with_timeout_ms(30_000).with_topic_data(vec![
        produce_request::TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_static_str("crash")))
            .with_partition_data(vec![
                produce_request::PartitionProduceData::default().with_index(0).with_records(Some(data)),
            ]),
    ])
}

async fn read_all(addr: std::net::SocketAddr) -> Vec<u64> {
    let mut c = Client::connect(addr).await;
    let mut out = Vec::new();
    loop {
        let req = FetchRequest::default().with_max_bytes(50 << 20).with_session_epoch(-1).with_topics(vec![
            fetch_request::FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_static_str("crash")))
                .with_partitions(vec![
                    fetch_request::FetchPartition::default()
                        .with_fetch_offset(out.len() as i64)
                        .with_partition_max_bytes(10 << 20),
                ]),
        ]);
        let r: FetchResponse = c.call(ApiKey::Fetch, 12, &req).await;
        // A fetch may end inside a batch, as with Kafka: decode the whole ones.
        let mut bytes = whole_batches(r.responses[0].partitions[0].records.clone().unwrap());
        if bytes.is_empty() {
            return out;
        }
        for set in RecordBatchDecoder::decode_all(&mut bytes).unwrap() {
            for rec in set.records {
                assert_eq!(rec.offset, out.len() as i64, "offsets must be contiguous");
                out.push(std::str::from_utf8(rec.value.as_deref().unwrap()).unwrap().parse().unwrap());
            }
        }
    }
}

/// Creates the test topic through Metadata auto-creation.
async fn auto_create(c: &mut Client) {
    let topic = metadata_request::MetadataRequestTopic::default()
        .with_name(Some(TopicName(StrBytes::from_static_str("crash"))));
    let req = MetadataRequest::default().with_allow_auto_topic_creation(true).with_topics(Some(vec![topic]));
    let r: MetadataResponse = c.call(ApiKey::Metadata, 12, &req).await;
    assert_eq!(r.topics[0].error_code, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_produce_loses_no_acknowledged_record() {
    let dir = tempfile::tempdir().unwrap();
    let mut jet = JetProcess::start(dir.path(), &[]);
    let addr = jet.addr;
    // Create the topic through Metadata auto-creation.
    let mut c = Client::connect(addr).await;
    auto_create(&mut c).await;
    // Pipeline batches of 10 values, 8 in flight; record each acknowledged batch.
    let mut acked: Vec<u64> = Vec::new();
    let mut in_flight = std::collections::VecDeque::new();
    let mut next = 0u64;
    let mut killed = false;
    loop {
        while in_flight.len() < 8 && !killed {
            let values: Vec<u64> = (next..next + 10).collect();
            next += 10;
            let (id, bytes) = c.encode_request(ApiKey::Produce, 9, &produce_req(batch(&values)));
            c.send_raw(&bytes).await;
            in_flight.push_back((id, values));
        }
        let Some((id, values)) = in_flight.pop_front() else { break };
        let Some(mut frame) = c.read_frame().await else { break };
        let header = <ResponseHeader as kafka_protocol::protocol::Decodable>::decode(
            &mut frame,
            ApiKey::Produce.response_header_version(9),
        )
        .unwrap();
        assert_eq!(header.correlation_id, id);
        let r = <ProduceResponse as kafka_protocol::protocol::Decodable>::decode(&mut frame, 9).unwrap();
        let p = &r.responses[0].partition_responses[0];
        assert_eq!(p.error_code, 0);
        acked.extend(values);
        if acked.len() >= 20_000 && !killed {
            jet.signal(libc::SIGKILL);
            killed = true;
        }
    }
    jet.child.wait().unwrap();
    assert!(acked.len() >= 20_000);

    let mut jet = JetProcess::start(dir.path(), &[]);
    let stored = read_all(jet.addr).await;
    // Every acknowledged value is there exactly once, in order; unacknowledged batches
    // that reached the disk may follow but never precede or duplicate.
    assert!(stored.len() >= acked.len(), "lost acknowledged records: {} stored, {} acked", stored.len(), acked.len());
    assert_eq!(&stored[..acked.len()], &acked[..]);
    let mut seen = std::collections::HashSet::new();
    assert!(stored.iter().all(|v| seen.insert(*v)), "duplicated records");
    jet.signal(libc::SIGTERM);
    assert!(jet.child.wait().unwrap().success(), "SIGTERM must exit 0");
    let _ = jet.log.try_recv();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_cleanly_and_restart_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let mut jet = JetProcess::start(dir.path(), &[]);
    let mut c = Client::connect(jet.addr).await;
    auto_create(&mut c).await;
    let values: Vec<u64> = (0..100).collect();
    let r: ProduceResponse = c.call(ApiKey::Produce, 9, &produce_req(batch(&values))).await;
    assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
    jet.signal(libc::SIGTERM);
    assert!(jet.child.wait().unwrap().success());
    let saw_shutdown = std::iter::from_fn(|| jet.log.recv_timeout(Duration::from_secs(5)).ok())
        .any(|l| l.contains("shutdown complete"));
    assert!(saw_shutdown);
    let mut jet = JetProcess::start(dir.path(), &[]);
    assert_eq!(read_all(jet.addr).await, values);
    jet.signal(libc::SIGTERM);
    assert!(jet.child.wait().unwrap().success());
}
