//! Replication across real brokers: three `jet` processes form a cluster from seeds
//! (`--bootstrap-expect 3`), elect a controller, and a replication-factor-3 topic created
//! through a broker that is not the controller (forwarded) gets a leader and two
//! followers on distinct brokers. `acks=all` writes are read back through every broker;
//! the leader is SIGKILLed, a new one is elected and takes writes (failover time is
//! printed), the old leader restarts and catches up, and every replica's segment file ends
//! up byte-identical. Every wait is on a condition.

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::cluster::Node;
use common::process::JetProcess;
use common::replicated::*;
use common::{Client, whole_batches};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::RecordBatchDecoder;

/// How long a broker stays down in the restart test.
const OUTAGE: Duration = Duration::from_secs(6);
/// The segment file of partition 0 in `node`'s data directory.
fn segment(node: &Node) -> Vec<u8> {
    std::fs::read(node.dir.path().join("raft").join(format!("{TOPIC}-0")).join("00000000000000000000.log")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rf3_topic_replicates_fails_over_and_catches_up() {
    let nodes: Vec<Node> = (1..=3).map(Node::new).collect();
    let seed = nodes[0].gossip;
    let mut brokers: Vec<Option<JetProcess>> = nodes.iter().map(|n| Some(n.start(seed, Some(3)))).collect();
    let addr = |brokers: &[Option<JetProcess>], id: i32| brokers[(id - 1) as usize].as_ref().unwrap().addr;

    // One controller, the same on every broker.
    let controller = until("a controller every broker names", || {
        let addrs: Vec<SocketAddr> = brokers.iter().flatten().map(|b| b.addr).collect();
        async move {
            let mut ids = BTreeSet::new();
            for a in addrs {
                ids.insert(metadata(a, TOPIC).await.controller_id.0);
            }
            (ids.len() == 1).then(|| *ids.first().unwrap()).filter(|id| (1..=3).contains(id))
        }
    })
    .await;
    eprintln!("controller: broker {controller}");

    // Created through a broker that is not the controller: forwarded to it.
    let via = if controller == 1 { 2 } else { 1 };
    create_rf3(addr(&brokers, via), 1).await;
    // The broker that answered knows the topic at once.
    assert!(partition_zero(addr(&brokers, via)).await.is_some(), "the creating broker lists the topic");

    let live: Vec<&JetProcess> = brokers.iter().flatten().collect();
    let (leader, epoch) = until("a leader every broker names", || agreed_leader(&live)).await;
    let (_, _, replicas, _) = partition_zero(addr(&brokers, leader)).await.unwrap();
    assert_eq!(replicas, vec![1, 2, 3], "three replicas on distinct brokers");
    until("all three replicas in sync on the leader", || async {
        partition_zero(addr(&brokers, leader)).await.filter(|p| p.3 == vec![1, 2, 3])
    })
    .await;

    // A follower refuses writes, naming the leader's error.
    let follower = (1..=3).find(|&id| id != leader).unwrap();
    let refused = produce(addr(&brokers, follower), values(0, 1)).await;
    assert_eq!(refused.error_code, ResponseError::NotLeaderOrFollower.code());
    // From Produce v10 the refusal names the leader and where it is (KIP-951).
    let r = produce_with(addr(&brokers, follower), values(0, 1), -1, 11).await;
    let p = &r.responses[0].partition_responses[0];
    assert_eq!(p.error_code, ResponseError::NotLeaderOrFollower.code());
    assert_eq!((p.current_leader.leader_id.0, p.current_leader.leader_epoch), (leader, epoch));
    let endpoints: Vec<(i32, i32)> = r.node_endpoints.iter().map(|e| (e.node_id.0, e.port)).collect();
    assert_eq!(endpoints, vec![(leader, i32::from(nodes[(leader - 1) as usize].kafka))]);

    for round in 0..10 {
        let r = produce(addr(&brokers, leader), values(round * 5, 5)).await;
        assert_eq!(r.error_code, 0, "{:?}", r.error_message);
    }
    // The leader counts the appends in its per-topic traffic.
    let admin = brokers[(leader - 1) as usize].as_ref().unwrap().admin;
    let (_, metrics) = common::http_get(admin, "/metrics").await;
    assert!(metrics.lines().any(|l| l == format!("jet_topic_messages_in_total{{topic=\"{TOPIC}\"}} 50")), "{metrics}");
    let (first, hw) = read_all(addr(&brokers, leader)).await;
    assert_eq!(first.len(), 50);
    let expected: Vec<String> = (0..50).map(|i| format!("value-{i}")).collect();
    assert_eq!(first.iter().map(|r| r.1.clone()).collect::<Vec<_>>(), expected);
    // Followers serve the same committed records (reads from followers).
    for id in 1..=3 {
        let a = addr(&brokers, id);
        until("a follower's high watermark to reach the leader's", || async move {
            let (read, their_hw) = read_all(a).await;
            (their_hw >= hw).then_some(read)
        })
        .await;
        assert_eq!(read_all(a).await.0, first, "broker {id} serves the leader's records at the same offsets");
    }

    let producer = init_producer_id(addr(&brokers, leader)).await;
    // SIGKILL the leader: the others elect a new one, which takes acks=all writes.
    let killed_at = Instant::now();
    brokers[(leader - 1) as usize].as_mut().unwrap().kill();
    brokers[(leader - 1) as usize] = None;
    let survivors: Vec<(i32, SocketAddr)> =
        (1..=3).filter_map(|id| brokers[(id - 1) as usize].as_ref().map(|b| (id, b.addr))).collect();
    let (new_leader, _) = acknowledged_by_new_leader(&survivors, leader, epoch, producer, 50, 5).await;
    eprintln!(
        "failover: broker {leader} killed, broker {new_leader} acknowledged a write after {:?}",
        killed_at.elapsed()
    );
    for round in 1..4 {
        let r = produce(addr(&brokers, new_leader), values(50 + round * 5, 5)).await;
        assert_eq!(r.error_code, 0, "{:?}", r.error_message);
    }

    // The old leader restarts on its data and catches up; nothing acknowledged is lost,
    // duplicated or moved, on any replica.
    brokers[(leader - 1) as usize] = Some(nodes[(leader - 1) as usize].start(seed, Some(3)));
    let expected: Vec<String> = (0..70).map(|i| format!("value-{i}")).collect();
    let (all, hw) = read_all(addr(&brokers, new_leader)).await;
    assert_eq!(all.iter().map(|r| r.1.clone()).collect::<Vec<_>>(), expected);
    assert_eq!(all[..50], first[..], "records before the failover keep their offsets");
    for id in 1..=3 {
        let a = addr(&brokers, id);
        let read = until("every replica to serve every acknowledged record", || async move {
            let (read, their_hw) = try_read_all(a).await.ok()?;
            (their_hw >= hw).then_some(read)
        })
        .await;
        assert_eq!(read, all, "broker {id}");
    }
    // Followers' files equal the leader's once everything is committed everywhere.
    let reference = segment(&nodes[(new_leader - 1) as usize]);
    for node in &nodes {
        let mine = until("identical segment files", || async { Some(segment(node)).filter(|s| *s == reference) }).await;
        assert_eq!(mine.len(), reference.len());
    }
}

/// FindCoordinator for `group` as `addr` answers it: (error, node id).
async fn coordinator(addr: SocketAddr, group: &str) -> (i16, i32) {
    let mut c = Client::connect(addr).await;
    let request = FindCoordinatorRequest::default().with_key(StrBytes::from_string(group.into())).with_key_type(0);
    let r: FindCoordinatorResponse = c.call(ApiKey::FindCoordinator, 3, &request).await;
    (r.error_code, r.node_id.0)
}

async fn commit_offset(addr: SocketAddr, group: &str, offset: i64) -> i16 {
    let mut c = Client::connect(addr).await;
    let request = OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.into())))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![
            offset_commit_request::OffsetCommitRequestTopic::default().with_name(name(TOPIC)).with_partitions(vec![
                offset_commit_request::OffsetCommitRequestPartition::default()
                    .with_partition_index(0)
                    .with_committed_offset(offset),
            ]),
        ]);
    let r: OffsetCommitResponse = c.call(ApiKey::OffsetCommit, 8, &request).await;
    r.topics[0].partitions[0].error_code
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_offsets_survive_their_coordinator_being_killed() {
    let nodes: Vec<Node> = (1..=3).map(Node::new).collect();
    let seed = nodes[0].gossip;
    let mut brokers: Vec<Option<JetProcess>> = nodes.iter().map(|n| Some(n.start(seed, Some(3)))).collect();
    let addr_of = |brokers: &[Option<JetProcess>], id: i32| brokers[(id - 1) as usize].as_ref().map(|b| b.addr);
    let first = addr_of(&brokers, 1).unwrap();
    until("a controller", || async move { (metadata(first, TOPIC).await.controller_id.0 > 0).then_some(()) }).await;
    create_rf3(first, 1).await;

    // Every broker names the same coordinator: the leader of the group's partition.
    let group = "durable-group";
    let all: Vec<SocketAddr> = brokers.iter().flatten().map(|b| b.addr).collect();
    let owner = until("one coordinator every broker names", || {
        let all = all.clone();
        async move {
            let mut seen = BTreeSet::new();
            for a in all {
                let (error, node) = coordinator(a, group).await;
                if error != 0 {
                    return None;
                }
                seen.insert(node);
            }
            (seen.len() == 1).then(|| *seen.first().unwrap())
        }
    })
    .await;
    let at = addr_of(&brokers, owner).unwrap();
    let error = until("the coordinator to take a commit", || async move {
        let e = commit_offset(at, group, 42).await;
        (e != ResponseError::CoordinatorLoadInProgress.code()).then_some(e)
    })
    .await;
    assert_eq!(error, 0, "commit at the coordinator");
    assert_eq!(fetch_offset(at, group).await, (0, 42));
    // Another broker is not the coordinator.
    let other = addr_of(&brokers, if owner == 1 { 2 } else { 1 }).unwrap();
    assert_eq!(commit_offset(other, group, 7).await, ResponseError::NotCoordinator.code());

    // SIGKILL the coordinator: a new one is elected and serves the acknowledged commit.
    brokers[(owner - 1) as usize].as_mut().unwrap().kill();
    brokers[(owner - 1) as usize] = None;
    let survivor = brokers.iter().flatten().next().unwrap().addr;
    let ports: Vec<(i32, u16)> = nodes.iter().map(|n| (n.id, n.kafka)).collect();
    let survivors: Vec<SocketAddr> = brokers.iter().flatten().map(|b| b.addr).collect();
    let fetched = until("the new coordinator to serve the committed offset", || {
        let (ports, survivors) = (ports.clone(), survivors.clone());
        async move {
            let (error, node) = coordinator(survivor, group).await;
            if error != 0 || node == owner {
                return None;
            }
            let a = brokers_addr(&survivors, &ports, node)?;
            let (error, offset) = fetch_offset(a, group).await;
            (error == 0).then_some(offset)
        }
    })
    .await;
    assert_eq!(fetched, 42, "the commit acknowledged by the killed coordinator survives");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_that_joins_later_takes_replicas_of_new_topics() {
    let nodes: Vec<Node> = (1..=4).map(Node::new).collect();
    let seed = nodes[0].gossip;
    let first: Vec<JetProcess> = nodes[..3].iter().map(|n| n.start(seed, Some(3))).collect();
    let a = first[0].addr;
    until("a controller", || async move { (metadata(a, TOPIC).await.controller_id.0 > 0).then_some(()) }).await;
    // Without --bootstrap-expect: it joins the running cluster through the seeds.
    let late = nodes[3].start(seed, None);
    let l = late.addr;
    until("the late broker to name the controller", || async move {
        let m = metadata(l, TOPIC).await;
        (m.controller_id.0 > 0 && m.brokers.len() == 4).then_some(())
    })
    .await;
    create_rf3(a, 4).await;
    // Four partitions, three replicas each, spread over four brokers: the late one holds
    // some, and leads its preferred ones once they are formed.
    let led_by_late = until("the late broker to lead a partition and list the topic", || async move {
        let m = metadata(l, TOPIC).await;
        let t = m.topics.first().filter(|t| t.error_code == 0)?;
        let hosts: usize = t.partitions.iter().filter(|p| p.replica_nodes.contains(&BrokerId(4))).count();
        assert!(hosts >= 2, "broker 4 holds replicas of {hosts} of 4 partitions");
        t.partitions.iter().find(|p| p.leader_id.0 == 4).map(|p| p.partition_index)
    })
    .await;
    // It takes acks=all writes as leader: its followers are among the first three.
    let mut c = Client::connect(l).await;
    let request = ProduceRequest::default().with_acks(-1).with_timeout_ms(10_000).with_topic_data(vec![
        produce_request::TopicProduceData::default().with_name(name(TOPIC)).with_partition_data(vec![
            produce_request::PartitionProduceData::default().with_index(led_by_late).with_records(Some(values(0, 3))),
        ]),
    ]);
    let r: ProduceResponse = c.call(ApiKey::Produce, 9, &request).await;
    let p = &r.responses[0].partition_responses[0];
    assert_eq!(p.error_code, 0, "{:?}", p.error_message);
    // A Fetch v16 of a partition broker 4 does not host names its leader (KIP-951).
    let m = until("a leader for a partition broker 4 does not host", || async move {
        let m = metadata(l, TOPIC).await;
        let led = |p: &metadata_response::MetadataResponsePartition| {
            !p.replica_nodes.contains(&BrokerId(4)) && p.leader_id.0 > 0
        };
        m.topics[0].partitions.iter().any(led).then_some(m)
    })
    .await;
    let elsewhere =
        m.topics[0].partitions.iter().find(|p| !p.replica_nodes.contains(&BrokerId(4)) && p.leader_id.0 > 0).unwrap();
    let request = FetchRequest::default().with_max_wait_ms(0).with_session_epoch(-1).with_topics(vec![
        fetch_request::FetchTopic::default().with_topic_id(m.topics[0].topic_id).with_partitions(vec![
            fetch_request::FetchPartition::default()
                .with_partition(elsewhere.partition_index)
                .with_partition_max_bytes(1 << 20),
        ]),
    ]);
    let r: FetchResponse = c.call(ApiKey::Fetch, 16, &request).await;
    let p = &r.responses[0].partitions[0];
    assert_eq!(p.error_code, ResponseError::NotLeaderOrFollower.code());
    assert_eq!(
        (p.current_leader.leader_id.0, p.current_leader.leader_epoch),
        (elsewhere.leader_id.0, elsewhere.leader_epoch)
    );
    let endpoint = r.node_endpoints.iter().find(|e| e.node_id == elsewhere.leader_id).expect("the leader's endpoint");
    assert_eq!(endpoint.port, i32::from(nodes[(elsewhere.leader_id.0 - 1) as usize].kafka));
    // Grown through the cluster metadata: two more partitions, placed by the controller,
    // then two more placed by hand, each with a leader every broker names.
    let grow = |count: i32, assignments: Option<Vec<Vec<i32>>>| {
        CreatePartitionsRequest::default().with_timeout_ms(10_000).with_topics(vec![
            create_partitions_request::CreatePartitionsTopic::default()
                .with_name(name(TOPIC))
                .with_count(count)
                .with_assignments(assignments.map(|a| {
                    a.into_iter()
                        .map(|r| {
                            create_partitions_request::CreatePartitionsAssignment::default()
                                .with_broker_ids(r.into_iter().map(BrokerId).collect())
                        })
                        .collect()
                })),
        ])
    };
    // Manual assignments at creation are honoured (through the controller, from any
    // broker); one naming an unknown broker or mixing replication factors is refused.
    let manual = |lists: Vec<Vec<i32>>| {
        CreateTopicsRequest::default().with_timeout_ms(10_000).with_topics(vec![
            create_topics_request::CreatableTopic::default()
                .with_name(name("manual"))
                .with_num_partitions(-1)
                .with_replication_factor(-1)
                .with_assignments(
                    lists
                        .into_iter()
                        .zip(0..)
                        .map(|(r, i)| {
                            create_topics_request::CreatableReplicaAssignment::default()
                                .with_partition_index(i)
                                .with_broker_ids(r.into_iter().map(BrokerId).collect())
                        })
                        .collect(),
                ),
        ])
    };
    let refused: CreateTopicsResponse = c.call(ApiKey::CreateTopics, 7, &manual(vec![vec![4, 1, 9]])).await;
    assert_eq!(refused.topics[0].error_code, ResponseError::InvalidReplicaAssignment.code());
    let refused: CreateTopicsResponse = c.call(ApiKey::CreateTopics, 7, &manual(vec![vec![4, 1, 2], vec![3, 4]])).await;
    assert_eq!(refused.topics[0].error_code, ResponseError::InvalidReplicationFactor.code());
    let created: CreateTopicsResponse =
        c.call(ApiKey::CreateTopics, 7, &manual(vec![vec![4, 1, 2], vec![3, 4, 1]])).await;
    assert_eq!(created.topics[0].error_code, 0, "{:?}", created.topics[0].error_message);
    assert_eq!((created.topics[0].num_partitions, created.topics[0].replication_factor), (2, 3));
    until("the manually placed topic with a leader per partition", || async move {
        let m = metadata(l, "manual").await;
        let t = m.topics.first().filter(|t| t.error_code == 0 && t.partitions.len() == 2)?;
        let mut got: Vec<(i32, Vec<i32>)> =
            t.partitions.iter().map(|p| (p.partition_index, p.replica_nodes.iter().map(|b| b.0).collect())).collect();
        got.sort_unstable();
        assert_eq!(got, vec![(0, vec![4, 1, 2]), (1, vec![3, 4, 1])], "placed as asked, in order");
        t.partitions.iter().all(|p| p.leader_id.0 > 0).then_some(())
    })
    .await;
    let grown: CreatePartitionsResponse = c.call(ApiKey::CreatePartitions, 3, &grow(6, None)).await;
    assert_eq!(grown.results[0].error_code, 0, "{:?}", grown.results[0].error_message);
    let by_hand = Some(vec![vec![4, 1, 2], vec![3, 4, 1]]);
    let bad: CreatePartitionsResponse =
        c.call(ApiKey::CreatePartitions, 3, &grow(8, Some(vec![vec![4, 1, 9], vec![3, 4, 1]]))).await;
    assert_eq!(bad.results[0].error_code, ResponseError::InvalidReplicaAssignment.code());
    let grown: CreatePartitionsResponse = c.call(ApiKey::CreatePartitions, 3, &grow(8, by_hand)).await;
    assert_eq!(grown.results[0].error_code, 0, "{:?}", grown.results[0].error_message);
    let a = first[0].addr;
    until("8 partitions, each led, on every broker", || async move {
        for addr in [a, l] {
            let m = metadata(addr, TOPIC).await;
            let t = m.topics.first().filter(|t| t.error_code == 0)?;
            if t.partitions.len() != 8 || t.partitions.iter().any(|p| p.leader_id.0 < 0 || p.replica_nodes.len() != 3) {
                return None;
            }
            let mut sixth: Vec<i32> =
                t.partitions.iter().find(|p| p.partition_index == 6)?.replica_nodes.iter().map(|b| b.0).collect();
            sixth.sort_unstable();
            assert_eq!(sixth, vec![1, 2, 4], "partition 6 placed by hand");
        }
        Some(())
    })
    .await;
    drop(first);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_follower_does_not_depose_any_leader() {
    let nodes: Vec<Node> = (1..=3).map(Node::new).collect();
    let seed = nodes[0].gossip;
    let mut brokers: Vec<JetProcess> = nodes.iter().map(|n| n.start(seed, Some(3))).collect();
    let a = brokers[0].addr;
    until("a controller", || async move { (metadata(a, TOPIC).await.controller_id.0 > 0).then_some(()) }).await;
    create_rf3(a, 1).await;
    let ports: Vec<(i32, u16)> = nodes.iter().map(|n| (n.id, n.kafka)).collect();
    let before = until("a settled cluster", || {
        let live: Vec<&JetProcess> = brokers.iter().collect();
        let ports = &ports;
        async move { settled(&live, ports).await }
    })
    .await;
    let (controller, (leader, _)) = before;
    // A broker that leads nothing goes away until gossip declares it failed and its
    // leaders' reconnect backoff has grown, then comes back on its data.
    let victim = (1..=3).find(|id| *id != controller && *id != leader).unwrap();
    let i = (victim - 1) as usize;
    brokers[i].kill();
    let survivors: Vec<SocketAddr> = brokers.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, b)| b.addr).collect();
    until("the survivors to drop the killed broker", || {
        let survivors = survivors.clone();
        async move {
            for s in survivors {
                if metadata(s, TOPIC).await.brokers.len() != 2 {
                    return None;
                }
            }
            Some(())
        }
    })
    .await;
    // The outage itself (a scenario length, not a wait for a condition): long enough for
    // the leaders' reconnect backoff to reach its cap.
    tokio::time::sleep(OUTAGE).await;
    brokers[i] = nodes[i].start(seed, Some(3));
    let after = until("the restarted broker back in sync", || {
        let live: Vec<&JetProcess> = brokers.iter().collect();
        let ports = &ports;
        async move { settled(&live, ports).await }
    })
    .await;
    // Pre-vote: the returning broker could not win, so it raised no term; the controller
    // and the partition keep their leaders and epochs.
    assert_eq!(after, before, "broker {victim} came back: (controller, (leader, epoch)) changed");
}

/// A Fetch v12 of partition 0 from offset 0 at `addr`, naming `rack` (KIP-392):
/// (error, preferred read replica, high watermark, record values).
async fn fetch_with_rack(addr: SocketAddr, rack: &str) -> (i16, i32, i64, Vec<String>) {
    let mut c = Client::connect(addr).await;
    let request = FetchRequest::default()
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_rack_id(StrBytes::from_string(rack.into()))
        .with_topics(vec![fetch_request::FetchTopic::default().with_topic(name(TOPIC)).with_partitions(vec![
                fetch_request::FetchPartition::default()
                    .with_partition(0)
                    .with_fetch_offset(0)
                    .with_partition_max_bytes(1 << 20),
            ])]);
    let r: FetchResponse = c.call(ApiKey::Fetch, 12, &request).await;
    let p = &r.responses[0].partitions[0];
    let mut whole = whole_batches(p.records.clone().unwrap_or_default());
    let mut values = Vec::new();
    if !whole.is_empty() {
        for set in RecordBatchDecoder::decode_all(&mut whole).unwrap() {
            values.extend(
                set.records
                    .iter()
                    .filter(|r| !r.control)
                    .map(|r| String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned()),
            );
        }
    }
    (p.error_code, p.preferred_read_replica.0, p.high_watermark, values)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_in_a_followers_rack_is_sent_to_that_follower() {
    let nodes: Vec<Node> = (1..=3).map(Node::new).collect();
    let (brokers, (leader, _)) = settled_cluster(&nodes, &[]).await;
    let at = |id: i32| brokers[(id - 1) as usize].addr;
    let r = produce(at(leader), values(0, 10)).await;
    assert_eq!(r.error_code, 0, "{:?}", r.error_message);
    // The high watermark the leader reports with the redirect (raft's own entries take
    // offsets before the records).
    let end = r.base_offset + 10;
    let expected: Vec<String> = (0..10).map(|i| format!("value-{i}")).collect();
    let rack = |id: i32| nodes[(id - 1) as usize].rack.clone();

    // Both followers hold everything committed (the leader sends clients only to those).
    wait_settled(&brokers, &nodes).await;
    for follower in (1..=3).filter(|id| *id != leader) {
        // The leader names the follower in the client's rack, with no records.
        // (Waited for: under load a follower can drop out of the leader's in-sync set for
        // a moment, and the leader sends clients only to in-sync followers.)
        let (error, preferred, hw, records) = until("the leader to name the follower", || async move {
            let got = fetch_with_rack(at(leader), &rack(follower)).await;
            (got.1 == follower).then_some(got)
        })
        .await;
        assert_eq!((error, preferred, hw), (0, follower, end), "rack {} at the leader", rack(follower));
        assert!(records.is_empty(), "records sent along with the redirect: {records:?}");
        // That follower serves the committed records to the same client.
        let (error, preferred, _, records) = until("the follower to serve what is committed", || async move {
            let got = fetch_with_rack(at(follower), &rack(follower)).await;
            (got.3.len() == 10).then_some(got)
        })
        .await;
        assert_eq!((error, preferred), (0, -1));
        assert_eq!(records, expected);
    }
    // A client in the leader's rack, in no rack or in an unknown one stays on the leader.
    for client_rack in [rack(leader), String::new(), "rack-elsewhere".to_string()] {
        let (error, preferred, _, records) = fetch_with_rack(at(leader), &client_rack).await;
        assert_eq!((error, preferred), (0, -1), "rack {client_rack:?}");
        assert_eq!(records, expected, "rack {client_rack:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_leader_hands_its_leadership_to_a_follower_first() {
    let nodes: Vec<Node> = (1..=3).map(Node::new).collect();
    let (mut brokers, (leader, epoch)) = settled_cluster(&nodes, &[]).await;
    let i = (leader - 1) as usize;
    let r = produce(brokers[i].addr, values(0, 10)).await;
    assert_eq!(r.error_code, 0, "{:?}", r.error_message);

    let producer = init_producer_id(brokers[i].addr).await;
    // SIGTERM the leader: it moves the leadership to a follower before it stops.
    let stopped_at = Instant::now();
    brokers[i].signal(libc::SIGTERM);
    let mut stopping = brokers.swap_remove(i);
    // (`swap_remove` reordered them: ids by Kafka port.)
    let id_of = |addr: SocketAddr| nodes.iter().find(|n| n.kafka == addr.port()).map(|n| n.id).unwrap();
    let survivors: Vec<(i32, SocketAddr)> = brokers.iter().map(|b| (id_of(b.addr), b.addr)).collect();
    let (new_leader, _) = acknowledged_by_new_leader(&survivors, leader, epoch, producer, 10, 5).await;
    eprintln!("SIGTERM to broker {leader}: broker {new_leader} acknowledged a write after {:?}", stopped_at.elapsed());
    let (status, log) = tokio::task::spawn_blocking(move || {
        let status = stopping.child.wait();
        // Every line up to its exit (the reader ends at end of file).
        let log: Vec<String> = stopping.log.iter().collect();
        (status, log)
    })
    .await
    .unwrap();
    assert!(status.expect("wait for the stopped broker").success(), "a SIGTERMed broker exits 0");
    // The leadership moved while the broker was still there (not by an election after it
    // was gone): its own account of the hand-off.
    let handed = log.iter().find(|l| l.contains("leadership handed off")).expect("a hand-off line in the log");
    let field = |name: &str| -> usize {
        let value = handed.split(&format!(" {name}=")).nth(1).unwrap_or_else(|| panic!("{name} in {handed}"));
        value.split_whitespace().next().and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("{name} in {handed}"))
    };
    assert!(field("partitions_led") >= 1, "{handed}");
    assert_eq!(field("partitions_moved"), field("partitions_led"), "{handed}");
    // Nothing acknowledged is lost or moved.
    let expected: Vec<String> = (0..15).map(|i| format!("value-{i}")).collect();
    let new_addr = survivors.iter().find(|(id, _)| *id == new_leader).unwrap().1;
    let (read, _) = read_all(new_addr).await;
    assert_eq!(read.iter().map(|r| r.1.clone()).collect::<Vec<_>>(), expected);
}

/// How long the idle cluster is watched (a scenario length, not a wait for a condition).
const IDLE_WINDOW: Duration = Duration::from_secs(3);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_partition_groups_send_nothing() {
    const PARTITIONS: i32 = 30;
    let nodes: Vec<Node> = (1..=3).map(Node::new).collect();
    let seed = nodes[0].gossip;
    let brokers: Vec<JetProcess> = nodes.iter().map(|n| n.start(seed, Some(3))).collect();
    let a = brokers[0].addr;
    until("a controller", || async move { (metadata(a, TOPIC).await.controller_id.0 > 0).then_some(()) }).await;
    create_rf3(a, PARTITIONS).await;
    for b in &brokers {
        let admin = b.admin;
        until("every replica on the broker to know its leader and be in sync", || async move {
            let hosted = sample(admin, "jet_partitions").await?;
            let leaderless = sample(admin, "jet_leaderless_partitions").await?;
            let under = sample(admin, "jet_under_replicated_partitions").await?;
            (hosted >= f64::from(PARTITIONS) && leaderless == 0.0 && under == 0.0).then_some(())
        })
        .await;
    }
    // Partition groups have no timers: with nothing written, the only raft traffic is the
    // controller's heartbeats (every 100 ms to each follower). Ticking groups would send
    // each broker 20 groups x 10 heartbeats a second.
    let before: Vec<f64> = futures::future::join_all(brokers.iter().map(|b| async move {
        sample(b.admin, "jet_raft_requests_received_total").await.expect("the raft request counter")
    }))
    .await;
    tokio::time::sleep(IDLE_WINDOW).await;
    let controller_heartbeats = IDLE_WINDOW.as_secs_f64() * 10.0;
    for (b, before) in brokers.iter().zip(before) {
        let after = sample(b.admin, "jet_raft_requests_received_total").await.unwrap();
        let received = after - before;
        eprintln!("broker at {}: {received} raft requests in {IDLE_WINDOW:?} idle", b.addr);
        assert!(received <= 2.0 * controller_heartbeats, "{received} raft requests in {IDLE_WINDOW:?} idle");
    }
    // Quiesced, a group still commits, and its followers learn the commit without
    // heartbeats: every replica serves the write.
    let leader =
        until("partition 0's leader", || async move { partition_zero(a).await.map(|p| p.0).filter(|l| *l > 0) }).await;
    let r = produce(brokers[(leader - 1) as usize].addr, values(0, 3)).await;
    assert_eq!(r.error_code, 0, "{:?}", r.error_message);
    for b in &brokers {
        let addr = b.addr;
        until("every replica to serve the write", || async move {
            let (read, _) = try_read_all(addr).await.ok()?;
            (read.len() == 3).then_some(())
        })
        .await;
    }
}

/// Producer ids come from blocks the controller hands out: two idempotent producers never
/// share an id, whichever brokers they ask, including a broker that restarted (a shared
/// id would make one producer's batch look like a duplicate of the other's and be
/// acknowledged without being written).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producer_ids_are_unique_across_brokers_and_restarts() {
    let nodes: Vec<Node> = (1..=3).map(Node::new).collect();
    let (mut brokers, _) = settled_cluster(&nodes, &[]).await;
    let mut seen = BTreeSet::new();
    for round in 0..2 {
        for b in &brokers {
            let id = init_producer_id(b.addr).await;
            assert!(seen.insert(id), "producer id {id} handed out twice (round {round}, through {})", b.addr);
        }
    }
    brokers[1].kill();
    brokers[1] = start(&nodes[1], nodes[0].gossip, &[]);
    wait_settled(&brokers, &nodes).await;
    for b in &brokers {
        let id = init_producer_id(b.addr).await;
        assert!(seen.insert(id), "producer id {id} handed out twice after a restart (through {})", b.addr);
    }
}

/// `auto.leader.rebalance.enable` (checked every second here): a preferred leader that was
/// killed and came back gets its partition back once it is in sync, and the partition keeps
/// every acknowledged write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_preferred_leader_takes_its_partition_back() {
    let nodes: Vec<Node> = (1..=3).map(Node::new).collect();
    let args = ["--set", "leader.imbalance.check.interval.seconds=1"];
    let (mut brokers, (preferred, epoch)) = settled_cluster(&nodes, &args).await;
    let mut ledger = Ledger::default();
    let r = produce(brokers[(preferred - 1) as usize].addr, values(0, 5)).await;
    assert!(ledger.record(&r, 0, 5), "{:?}", r.error_message);
    let producer = init_producer_id(brokers[(preferred - 1) as usize].addr).await;
    brokers[(preferred - 1) as usize].kill();
    let survivors: Vec<(i32, SocketAddr)> =
        nodes.iter().zip(&brokers).filter(|(n, _)| n.id != preferred).map(|(n, b)| (n.id, b.addr)).collect();
    let (stand_in, r) = acknowledged_by_new_leader(&survivors, preferred, epoch, producer, 5, 5).await;
    assert!(ledger.record(&r, 5, 5));
    brokers[(preferred - 1) as usize] = start(&nodes[(preferred - 1) as usize], nodes[0].gossip, &args);
    let started = Instant::now();
    let back = brokers[(preferred - 1) as usize].addr;
    until("the preferred leader to lead again", || async move {
        let (l, _, _, _) = partition_zero(back).await?;
        (l == preferred).then_some(())
    })
    .await;
    eprintln!(
        "broker {preferred} leads again {:?} after restarting (broker {stand_in} led meanwhile)",
        started.elapsed()
    );
    let r = until("a write acknowledged by the preferred leader", || async move {
        let r = produce(back, idempotent_values(producer, 5, 10, 5)).await;
        (r.error_code == 0).then_some(r)
    })
    .await;
    assert!(ledger.record(&r, 10, 5));
    let (read, _) = read_all(back).await;
    ledger.check(&read, "the preferred leader");
    assert_eq!(read.len(), 15, "nothing but the acknowledged writes");
}

/// A config change of a replicated topic goes through the controller (forwarded from any
/// broker): every broker describes it, and the leader enforces it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_config_change_reaches_every_broker_and_the_leader_enforces_it() {
    let nodes: Vec<Node> = (1..=3).map(Node::new).collect();
    let (brokers, (leader, _)) = settled_cluster(&nodes, &[]).await;
    let via = brokers[(leader % 3) as usize].addr;
    let mut c = Client::connect(via).await;
    let topic_resource = |name: &str| StrBytes::from_string(name.to_string());
    let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
        incremental_alter_configs_request::AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(topic_resource(TOPIC))
            .with_configs(vec![
                incremental_alter_configs_request::AlterableConfig::default()
                    .with_name(StrBytes::from_static_str("max.message.bytes"))
                    .with_config_operation(0)
                    .with_value(Some(StrBytes::from_static_str("2000"))),
            ]),
    ]);
    let r: IncrementalAlterConfigsResponse = c.call(ApiKey::IncrementalAlterConfigs, 1, &request).await;
    assert_eq!(r.responses[0].error_code, 0, "{:?}", r.responses[0].error_message);
    // Answered once the controller committed it; each broker applies the metadata on its
    // own, moments later (as Kafka's brokers do).
    for b in &brokers {
        let addr = b.addr;
        until("every broker to describe the new value", || async move {
            let mut c = Client::connect(addr).await;
            let request = DescribeConfigsRequest::default().with_resources(vec![
                describe_configs_request::DescribeConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(StrBytes::from_static_str(TOPIC))
                    .with_configuration_keys(Some(vec![StrBytes::from_static_str("max.message.bytes")])),
            ]);
            let d: DescribeConfigsResponse = c.call(ApiKey::DescribeConfigs, 4, &request).await;
            let value = d.results[0].configs.first().and_then(|c| c.value.as_ref()).map(|v| v.to_string());
            (value.as_deref() == Some("2000")).then_some(())
        })
        .await;
    }
    let at_leader = brokers[(leader - 1) as usize].addr;
    until("the leader to refuse a record over the new limit", || async move {
        let r = produce(at_leader, common::records::values(["x".repeat(5000)])).await;
        (r.error_code == ResponseError::MessageTooLarge.code()).then_some(())
    })
    .await;
    let r = produce(at_leader, values(0, 1)).await;
    assert_eq!(r.error_code, 0, "{:?}", r.error_message);
}
