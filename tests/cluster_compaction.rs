//! Compaction of a replicated partition: every replica's cleaner rewrites the segments
//! below raft's log (their entries purged after a snapshot), so each keeps the latest
//! record of every key at its offset; a follower too far behind installs the leader's
//! snapshot *with* that retained data and serves the same records.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;

use common::cluster::Node;
use common::records;
use common::replicated::*;

/// Small segments, every topic compacted, the cleaner eager.
const ARGS: &[&str] = &[
    "--set",
    "log.segment.bytes=16384",
    "--set",
    "log.cleanup.policy=compact",
    "--set",
    "log.cleaner.backoff.ms=100",
    "--set",
    "log.cleaner.min.cleanable.ratio=0.01",
    "--set",
    "offsets.topic.segment.bytes=16384",
];

/// Records per produce request.
const BATCH: usize = 100;

/// Produces one request of keyed records `key(i)` → `value-{i}` for `i` in `from..from + BATCH`;
/// records each record's offset in `written` (offset → (key, value)).
async fn produce_keyed(
    leader: SocketAddr,
    from: usize,
    key: impl Fn(usize) -> String,
    written: &mut BTreeMap<i64, (String, String)>,
) {
    let pairs: Vec<(String, String)> = (from..from + BATCH).map(|i| (key(i), format!("value-{i}"))).collect();
    let data = records::encode(pairs.iter().map(|(k, v)| kafka_protocol::records::Record {
        key: Some(k.clone().into_bytes().into()),
        ..records::record(v.clone().into_bytes())
    }));
    let r = produce(leader, data).await;
    assert_eq!(r.error_code, 0, "{:?}", r.error_message);
    for (i, pair) in pairs.into_iter().enumerate() {
        written.insert(r.base_offset + i as i64, pair);
    }
}

/// The latest offset of every key written.
fn latest(written: &BTreeMap<i64, (String, String)>) -> BTreeMap<String, i64> {
    written.iter().map(|(offset, (key, _))| (key.clone(), *offset)).collect()
}

/// Checks what a replica serves: only records written, each at its offset, and the
/// latest record of every key.
fn check_compacted(served: &[(i64, String)], written: &BTreeMap<i64, (String, String)>, replica: &str) {
    for (offset, value) in served {
        let (_, wrote) =
            written.get(offset).unwrap_or_else(|| panic!("{replica} serves offset {offset}, never written"));
        assert_eq!(value, wrote, "{replica} at offset {offset}");
    }
    let offsets: std::collections::BTreeSet<i64> = served.iter().map(|(o, _)| *o).collect();
    for (key, offset) in latest(written) {
        assert!(offsets.contains(&offset), "{replica} lost the latest record of {key} (offset {offset})");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_replica_compacts_and_a_far_behind_follower_gets_the_retained_data_with_the_snapshot() {
    let nodes: Vec<Node> = (1..=3).map(Node::new).collect();
    let (mut brokers, (leader, _)) = settled_cluster(&nodes, ARGS).await;
    let at = |brokers: &[common::process::JetProcess], id: i32| brokers[(id - 1) as usize].addr;
    let followers: Vec<i32> = (1..=3).filter(|id| *id != leader).collect();
    let (behind, other) = (followers[0], followers[1]);
    let mut written = BTreeMap::new();
    // Keys written once, first: their records stay through every cleaning.
    produce_keyed(at(&brokers, leader), 0, |i| format!("once-{i}"), &mut written).await;

    // One follower stops; the others take many rewrites of a few keys.
    brokers[(behind - 1) as usize].kill();
    for round in 0..40 {
        produce_keyed(at(&brokers, leader), (round + 1) * BATCH, |i| format!("hot-{}", i % 20), &mut written).await;
    }
    let produced = written.len();
    for id in [leader, other] {
        let addr = at(&brokers, id);
        let served = until("the replica's cleaner to compact below raft's log", || async move {
            let (served, _) = try_read_all(addr).await.ok()?;
            (served.len() < produced / 2).then_some(served)
        })
        .await;
        check_compacted(&served, &written, &format!("broker {id}"));
    }

    // The stopped follower returns: the leader's raft log no longer has what it lacks, so
    // it installs a snapshot; the compacted data below it comes along.
    let (_, hw) = offsets_served(at(&brokers, leader)).await.expect("leader offsets");
    let seed = nodes[0].gossip;
    brokers[(behind - 1) as usize] = start(&nodes[(behind - 1) as usize], seed, ARGS);
    let addr = at(&brokers, behind);
    let served = until("the returned follower to reach the high watermark", || async move {
        let (served, served_hw) = try_read_all(addr).await.ok()?;
        (served_hw >= hw).then_some(served)
    })
    .await;
    let installed: Vec<String> =
        brokers[(behind - 1) as usize].log.try_iter().filter(|l| l.contains("installed a leader's snapshot")).collect();
    assert!(
        installed.iter().any(|l| l.contains("restarted=true") && l.contains("with_retained_data=true")),
        "the follower installed a snapshot with its retained data: {installed:?}"
    );
    check_compacted(&served, &written, "the returned follower");
    assert!(served.len() < produced / 2, "it holds the compacted log, not a full copy: {} records", served.len());
    // Reads from offset 0 on it start with the keys written once, at their offsets.
    assert_eq!(served.first().map(|(o, _)| *o), written.keys().next().copied());
}

/// Bytes of segment files of `__consumer_offsets` in a broker's data directory.
fn offsets_topic_bytes(node: &Node) -> u64 {
    let raft = node.dir.path().join("raft");
    let Ok(dirs) = std::fs::read_dir(&raft) else { return 0 };
    dirs.filter_map(|d| d.ok())
        .filter(|d| d.file_name().to_string_lossy().starts_with("__consumer_offsets-"))
        .filter_map(|d| std::fs::read_dir(d.path()).ok())
        .flatten()
        .filter_map(|f| f.ok())
        .filter(|f| f.file_name().to_string_lossy().ends_with(".log"))
        .filter_map(|f| f.metadata().ok())
        .map(|m| m.len())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_replicated_offsets_topic_stays_compacted_on_every_replica() {
    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::StrBytes;
    let nodes: Vec<Node> = (1..=3).map(Node::new).collect();
    let (brokers, _) = settled_cluster(&nodes, ARGS).await;
    let group = "compacted-commits";
    let first = brokers[0].addr;
    let owner = until("a coordinator for the group", || async move {
        let mut c = common::Client::connect(first).await;
        let request = FindCoordinatorRequest::default().with_key(StrBytes::from_string(group.into())).with_key_type(0);
        let r: FindCoordinatorResponse = c.call(ApiKey::FindCoordinator, 3, &request).await;
        (r.error_code == 0).then_some(r.node_id.0)
    })
    .await;
    let mut c = common::Client::connect(brokers[(owner - 1) as usize].addr).await;
    let commit = |offset: i64| {
        OffsetCommitRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.into())))
            .with_generation_id_or_member_epoch(-1)
            .with_topics(vec![
                offset_commit_request::OffsetCommitRequestTopic::default().with_name(name(TOPIC)).with_partitions(
                    vec![
                        offset_commit_request::OffsetCommitRequestPartition::default()
                            .with_partition_index(0)
                            .with_committed_offset(offset),
                    ],
                ),
            ])
    };
    // Thousands of commits of one partition: far more than a few 16 KiB segments.
    const COMMITS: i64 = 4_000;
    let mut offset = 0;
    while offset < COMMITS {
        let r: OffsetCommitResponse = c.call(ApiKey::OffsetCommit, 8, &commit(offset + 1)).await;
        match r.topics[0].partitions[0].error_code {
            0 => offset += 1,
            // The offsets topic is still being created and loaded: retriable, as for clients.
            code if code == kafka_protocol::ResponseError::CoordinatorLoadInProgress.code()
                || code == kafka_protocol::ResponseError::CoordinatorNotAvailable.code() => {}
            code => panic!("commit {}: error {code}", offset + 1),
        }
    }
    for node in &nodes {
        until("every replica to compact the offsets topic", || async move {
            let bytes = offsets_topic_bytes(node);
            (bytes < 64 * 1024).then_some(())
        })
        .await;
    }
    let at = brokers[(owner - 1) as usize].addr;
    assert_eq!(fetch_offset(at, group).await, (0, COMMITS), "the latest commit survives compaction");
    // The group's partition of the offsets topic (led by the coordinator) took every
    // commit, each a batch of its own of at least 61 bytes: far more than the bound every
    // replica came under.
    let request = ListOffsetsRequest::default().with_replica_id(BrokerId(-1)).with_topics(vec![
        list_offsets_request::ListOffsetsTopic::default().with_name(name("__consumer_offsets")).with_partitions(
            (0..50)
                .map(|p| {
                    list_offsets_request::ListOffsetsPartition::default().with_partition_index(p).with_timestamp(-1)
                })
                .collect(),
        ),
    ]);
    let r: ListOffsetsResponse = c.call(ApiKey::ListOffsets, 7, &request).await;
    let end = r.topics[0].partitions.iter().filter(|p| p.error_code == 0).map(|p| p.offset).max();
    assert!(end.is_some_and(|e| e >= COMMITS), "the offsets partition's end: {end:?}");
}
