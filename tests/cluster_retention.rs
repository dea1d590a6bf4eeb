//! The log start of a replicated partition: DeleteRecords and retention move it on every
//! replica alike (a log-start entry through raft), the segments below it go on every
//! replica, and a follower too far behind for the leader's log installs a snapshot and
//! continues from it — serving exactly what the leader serves.

mod common;

use std::net::SocketAddr;

use common::Client;
use common::cluster::Node;
use common::replicated::*;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

/// Small segments (16 KiB: a few hundred records each), retention checked often, no time
/// limit (the test's records carry old timestamps) until the test sets a size limit.
const ARGS: &[&str] = &[
    "--set",
    "log.segment.bytes=16384",
    "--set",
    "log.retention.check.interval.ms=200",
    "--set",
    "log.retention.ms=-1",
];

/// Records per produce request.
const BATCH: usize = 100;

async fn delete_records(addr: SocketAddr, offset: i64) -> (i16, i64) {
    let mut c = Client::connect(addr).await;
    let request = DeleteRecordsRequest::default().with_timeout_ms(10_000).with_topics(vec![
        delete_records_request::DeleteRecordsTopic::default().with_name(name(TOPIC)).with_partitions(vec![
            delete_records_request::DeleteRecordsPartition::default().with_partition_index(0).with_offset(offset),
        ]),
    ]);
    let r: DeleteRecordsResponse = c.call(ApiKey::DeleteRecords, 2, &request).await;
    let p = &r.topics[0].partitions[0];
    (p.error_code, p.low_watermark)
}

async fn set_topic_config(addr: SocketAddr, key: &str, value: &str) {
    let mut c = Client::connect(addr).await;
    let config = incremental_alter_configs_request::AlterableConfig::default()
        .with_name(StrBytes::from_string(key.into()))
        .with_config_operation(0)
        .with_value(Some(StrBytes::from_string(value.into())));
    let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
        incremental_alter_configs_request::AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_string(TOPIC.into()))
            .with_configs(vec![config]),
    ]);
    let r: IncrementalAlterConfigsResponse = c.call(ApiKey::IncrementalAlterConfigs, 1, &request).await;
    assert_eq!(r.responses[0].error_code, 0, "{key}={value}: {:?}", r.responses[0].error_message);
}

/// Base offsets of the segment files in a replica's partition directory.
fn segment_bases(node: &Node) -> Vec<i64> {
    let dir = node.dir.path().join("raft").join(format!("{TOPIC}-0"));
    let mut bases: Vec<i64> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().to_str()?.strip_suffix(".log")?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    bases.sort_unstable();
    bases
}

/// Produces `rounds` requests of [`BATCH`] records to the leader, recording each answer.
async fn produce_rounds(leader: SocketAddr, ledger: &mut Ledger, next: &mut usize, rounds: usize) {
    for _ in 0..rounds {
        let r = produce(leader, values(*next, BATCH)).await;
        assert!(ledger.record(&r, *next, BATCH), "{:?}", r.error_message);
        *next += BATCH;
    }
}

/// Waits until the replica at `addr` serves the log start and high watermark of the
/// leader's `expected`, then checks it serves the acknowledged records from there.
async fn serves_like_the_leader(addr: SocketAddr, expected: (i64, i64), ledger: &Ledger, replica: &str) {
    until("the replica to serve the leader's log start and high watermark", || async move {
        (offsets_served(addr).await? == expected).then_some(())
    })
    .await;
    let (served, _) = try_read_from(addr, expected.0).await.expect("read from the log start");
    assert_eq!(served.first().map(|(o, _)| *o), Some(expected.0), "{replica} serves from the log start");
    ledger.check_from(&served, expected.0, replica);
}

fn has_files_below(node: &Node, offset: i64) -> bool {
    segment_bases(node).first().is_none_or(|first| *first < offset)
}

/// Segments of a replica that lie wholly below `offset` (the next one starts at or below it).
fn whole_segments_below(node: &Node, offset: i64) -> usize {
    segment_bases(node).windows(2).filter(|w| w[1] <= offset).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_records_and_retention_move_every_replicas_log_start_and_a_far_behind_follower_catches_up() {
    let nodes: Vec<Node> = (1..=3).map(Node::new).collect();
    let (mut brokers, (leader, _)) = settled_cluster(&nodes, ARGS).await;
    let at = |brokers: &[common::process::JetProcess], id: i32| brokers[(id - 1) as usize].addr;
    let node = |id: i32| &nodes[(id - 1) as usize];
    let followers: Vec<i32> = (1..=3).filter(|id| *id != leader).collect();
    let (behind, other) = (followers[0], followers[1]);
    let mut ledger = Ledger::default();
    let mut next = 0;
    produce_rounds(at(&brokers, leader), &mut ledger, &mut next, 20).await;

    // One follower stops; the other two go on.
    brokers[(behind - 1) as usize].kill();
    produce_rounds(at(&brokers, leader), &mut ledger, &mut next, 20).await;
    let (log_start, hw) = offsets_served(at(&brokers, leader)).await.expect("leader offsets");
    assert_eq!(log_start, 0);

    // DeleteRecords goes to the leader, as with Kafka; past the high watermark it is refused.
    let (code, _) = delete_records(at(&brokers, other), hw - BATCH as i64).await;
    assert_eq!(code, ResponseError::NotLeaderOrFollower.code());
    let (code, _) = delete_records(at(&brokers, leader), hw + 1).await;
    assert_eq!(code, ResponseError::OffsetOutOfRange.code());
    let target = hw - BATCH as i64 - 7;
    let (code, low_watermark) = delete_records(at(&brokers, leader), target).await;
    assert_eq!((code, low_watermark), (0, target));
    // The log-start entry is a control batch: it takes an offset, as Kafka's markers do.
    let after = offsets_served(at(&brokers, leader)).await.expect("leader offsets");
    assert_eq!(after, (target, hw + 1));

    // Both live replicas start there, serve nothing below, and drop the segments below.
    for id in [leader, other] {
        serves_like_the_leader(at(&brokers, id), after, &ledger, &format!("broker {id}")).await;
        until("the segments below the log start to go", || async move {
            let first = *segment_bases(node(id)).first()?;
            (first > 0 && first <= target && whole_segments_below(node(id), target) == 0).then_some(())
        })
        .await;
    }
    let mut c = Client::connect(at(&brokers, leader)).await;
    let below = FetchRequest::default().with_max_wait_ms(0).with_session_epoch(-1).with_topics(vec![
        fetch_request::FetchTopic::default().with_topic(name(TOPIC)).with_partitions(vec![
            fetch_request::FetchPartition::default().with_partition(0).with_fetch_offset(target - 1),
        ]),
    ]);
    let r: FetchResponse = c.call(ApiKey::Fetch, 12, &below).await;
    assert_eq!(r.responses[0].partitions[0].error_code, ResponseError::OffsetOutOfRange.code());

    // The stopped follower returns: the entries it lacks were purged on the leader, so it
    // installs a snapshot, restarts its log after it and fetches the rest.
    assert!(has_files_below(node(behind), 1), "the stopped follower still holds offset 0");
    let seed = nodes[0].gossip;
    brokers[(behind - 1) as usize] = start(node(behind), seed, ARGS);
    serves_like_the_leader(at(&brokers, behind), after, &ledger, "the returned follower").await;
    assert!(
        !has_files_below(node(behind), 1),
        "its stale log was replaced, not kept: {:?}",
        segment_bases(node(behind))
    );
    produce_rounds(at(&brokers, leader), &mut ledger, &mut next, 5).await;

    // Retention by size, decided by the leader, applied by every replica.
    set_topic_config(at(&brokers, leader), "retention.bytes", "40000").await;
    produce_rounds(at(&brokers, leader), &mut ledger, &mut next, 10).await;
    let retained = until("retention to move the log start", || async {
        let (start, hw) = offsets_served(at(&brokers, leader)).await?;
        (start > target).then_some((start, hw))
    })
    .await;
    for id in 1..=3 {
        serves_like_the_leader(at(&brokers, id), retained, &ledger, &format!("broker {id} after retention")).await;
        until("every replica to drop the segments retention passed", || async move {
            (whole_segments_below(node(id), retained.0) == 0).then_some(())
        })
        .await;
    }
}
