//! A segment roll keeps its fsyncs off the produce path: with the data directory on the
//! FUSE test file system of `tests/lazyfs` and every fsync stalled, `acks=1` produce
//! requests that roll segments are still answered; `acks=all` ones (and the high
//! watermark) wait until the syncs go through. Before the sealer, the roll's
//! `fdatasync` ran inside the append, under the partition lock, and the produce hung.

mod common;
mod lazyfs;

use std::time::Duration;

use bytes::Bytes;
use common::{Client, records};
use jet::broker::replica::Replica;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use lazyfs::LazyMount;

const TOPIC: &str = "rolls";

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// One batch of one record with a `len`-byte value.
fn batch(len: usize) -> Bytes {
    records::values([vec![b'r'; len]])
}

async fn produce(c: &mut Client, acks: i16, data: Bytes) -> ProduceResponse {
    let req = ProduceRequest::default().with_acks(acks).with_timeout_ms(60_000).with_topic_data(vec![
        produce_request::TopicProduceData::default().with_name(TopicName(s(TOPIC))).with_partition_data(vec![
            produce_request::PartitionProduceData::default().with_index(0).with_records(Some(data)),
        ]),
    ]);
    c.call(ApiKey::Produce, 9, &req).await
}

fn partition(r: &ProduceResponse) -> &produce_response::PartitionProduceResponse {
    &r.responses[0].partition_responses[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_produce_that_rolls_is_not_blocked_by_the_rolled_segments_fsync() {
    let Some(mount) = LazyMount::mount_or_skip() else { return };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut config = common::config(&mount.join("data"), &["--set", "log.segment.bytes=4096"]);
    config.advertised_listener = Some(addr.to_string());
    let broker = jet::broker::Broker::open(config).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(jet::server::run(listener, broker.clone(), async move {
        let _ = stopped.await;
    }));
    let mut c = Client::connect(addr).await;
    let topic = metadata_request::MetadataRequestTopic::default().with_name(Some(TopicName(s(TOPIC))));
    let req = MetadataRequest::default().with_allow_auto_topic_creation(true).with_topics(Some(vec![topic]));
    let r: MetadataResponse = c.call(ApiKey::Metadata, 12, &req).await;
    assert_eq!(r.topics[0].error_code, 0);
    assert_eq!(partition(&produce(&mut c, -1, batch(1500)).await).error_code, 0);

    mount.stall_syncs(true);
    // 1.5 KB batches into 4 KiB segments: a roll every other request.
    for i in 1..=6 {
        let answered = tokio::time::timeout(Duration::from_secs(20), produce(&mut c, 1, batch(1500))).await;
        let r = answered.unwrap_or_else(|_| panic!("acks=1 produce {i} waited for a stalled fsync"));
        assert_eq!((partition(&r).error_code, partition(&r).base_offset), (0, i));
    }
    let segments = || std::fs::read_dir(mount.join(&format!("data/{TOPIC}-0"))).unwrap().count();
    assert!(segments() > 3, "the produces rolled segments");
    let p = broker.topics.get(TOPIC).unwrap().partitions()[0].clone();
    assert_eq!(p.high_watermark(), 1, "nothing past the first record is durable yet");

    // acks=all waits for the syncs, and gets its answer once they go through.
    let mut all = Client::connect(addr).await;
    let waiting = tokio::spawn(async move { produce(&mut all, -1, batch(10)).await });
    mount.stall_syncs(false);
    let r = tokio::time::timeout(Duration::from_secs(60), waiting).await.expect("acks=all answered").unwrap();
    assert_eq!((partition(&r).error_code, partition(&r).base_offset), (0, 7));
    assert_eq!(p.high_watermark(), 8);

    let _ = stop.send(());
    server.await.unwrap();
    drop(broker);
    drop(mount);
}
