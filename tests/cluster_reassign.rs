//! Moving a partition to a broker that joined later (AlterPartitionReassignments, as
//! `kafka-reassign-partitions.sh` sends it): the new broker receives the log, the raft
//! group's voters become the target (here without the old leader, the hardest case), the
//! removed replica's files go, and every acknowledged write — before, during and after
//! the move — is served by every new replica at its offset.

mod common;

use std::net::SocketAddr;

use common::Client;
use common::cluster::Node;
use common::replicated::*;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::*;

async fn reassign(addr: SocketAddr, target: Option<Vec<i32>>) -> (i16, Option<String>) {
    reassign_topic(addr, TOPIC, target).await
}

async fn reassign_topic(addr: SocketAddr, topic: &str, target: Option<Vec<i32>>) -> (i16, Option<String>) {
    let mut c = Client::connect(addr).await;
    let request = AlterPartitionReassignmentsRequest::default().with_timeout_ms(15_000).with_topics(vec![
        alter_partition_reassignments_request::ReassignableTopic::default().with_name(name(topic)).with_partitions(
            vec![
                alter_partition_reassignments_request::ReassignablePartition::default()
                    .with_partition_index(0)
                    .with_replicas(target.map(|t| t.into_iter().map(BrokerId).collect())),
            ],
        ),
    ]);
    let r: AlterPartitionReassignmentsResponse = c.call(ApiKey::AlterPartitionReassignments, 0, &request).await;
    assert_eq!(r.error_code, 0, "{:?}", r.error_message);
    let p = &r.responses[0].partitions[0];
    (p.error_code, p.error_message.as_ref().map(|m| m.to_string()))
}

/// The partitions `addr` lists as moving: (replicas, adding, removing) of partition 0.
async fn ongoing(addr: SocketAddr) -> Option<(Vec<i32>, Vec<i32>, Vec<i32>)> {
    let mut c = Client::connect(addr).await;
    let r: ListPartitionReassignmentsResponse =
        c.call(ApiKey::ListPartitionReassignments, 0, &ListPartitionReassignmentsRequest::default()).await;
    assert_eq!(r.error_code, 0);
    let p = r.topics.first()?.partitions.first()?;
    let ids = |v: &[BrokerId]| v.iter().map(|b| b.0).collect::<Vec<_>>();
    Some((ids(&p.replicas), ids(&p.adding_replicas), ids(&p.removing_replicas)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_moves_to_a_new_broker_without_losing_a_write() {
    let nodes: Vec<Node> = (1..=4).map(Node::new).collect();
    let (mut brokers, (leader, _)) = settled_cluster(&nodes[..3], &[]).await;
    let at = |brokers: &[common::process::JetProcess], id: i32| brokers[(id - 1) as usize].addr;
    // A topic nothing is written to: its leader's raft lease has long run out when it moves.
    create_topic(at(&brokers, 1), "quiet", 1, 3).await;
    let mut ledger = Ledger::default();
    for round in 0..4 {
        let r = produce(at(&brokers, leader), values(round * 10, 10)).await;
        assert!(ledger.record(&r, round * 10, 10), "{:?}", r.error_message);
    }

    // A fourth broker joins through the seeds.
    brokers.push(nodes[3].start(nodes[0].gossip, None));
    let first = brokers[0].addr;
    until(
        "four brokers in the cluster",
        || async move { (metadata(first, TOPIC).await.brokers.len() == 4).then_some(()) },
    )
    .await;

    // Refused: a broker that does not exist, a cancel with nothing moving.
    let via = if leader == 1 { 2 } else { 1 };
    let (code, message) = reassign(at(&brokers, via), Some(vec![4, 9, 2])).await;
    assert_eq!(code, ResponseError::InvalidReplicaAssignment.code(), "{message:?}");
    let (code, _) = reassign(at(&brokers, via), None).await;
    assert_eq!(code, ResponseError::NoReassignmentInProgress.code());

    // Replace the leader with broker 4, through a broker that is not the controller or
    // not the leader (forwarded).
    let mut target: Vec<i32> = vec![4];
    target.extend((1..=3).filter(|id| *id != leader));
    let (code, message) = reassign(at(&brokers, via), Some(target.clone())).await;
    assert_eq!(code, 0, "{message:?}");
    // Writes go on while it moves, to whichever broker leads, from an idempotent producer:
    // a write answered with an error while leadership moves may still be committed, and its
    // retry must not be written twice.
    let producer = init_producer_id(at(&brokers, 1)).await;
    let mut next = 40;
    for _ in 0..3 {
        let addrs: Vec<(i32, SocketAddr)> = (1..=4).map(|id| (id, at(&brokers, id))).collect();
        let r = until("a write acknowledged during the move", || {
            let addrs = addrs.clone();
            async move {
                let (l, _, _, _) = partition_zero(addrs[0].1).await?;
                let addr = addrs.iter().find(|(id, _)| *id == l)?.1;
                let r = produce(addr, idempotent_values(producer, (next - 40) as i32, next, 10)).await;
                (r.error_code == 0).then_some(r)
            }
        })
        .await;
        assert!(ledger.record(&r, next, 10));
        next += 10;
    }

    // Done: nothing listed as moving, Metadata names the target as replicas and in sync,
    // led by one of them.
    let four = at(&brokers, 4);
    let mut sorted = target.clone();
    sorted.sort_unstable();
    until("the move to complete", || {
        let sorted = sorted.clone();
        async move {
            if ongoing(four).await.is_some() {
                return None;
            }
            let (l, _, replicas, isr) = partition_zero(four).await?;
            (replicas == sorted && isr == sorted && sorted.contains(&l)).then_some(())
        }
    })
    .await;
    // The removed replica's files are gone.
    let removed = nodes[(leader - 1) as usize].dir.path().join("raft").join(format!("{TOPIC}-0"));
    until("the removed replica's directory to go", || {
        let removed = removed.clone();
        async move { (!removed.exists()).then_some(()) }
    })
    .await;

    let (new_leader, _, _, _) = partition_zero(four).await.unwrap();
    let r = produce(at(&brokers, new_leader), values(next, 10)).await;
    assert!(ledger.record(&r, next, 10), "{:?}", r.error_message);
    let (reference, hw) = read_all(at(&brokers, new_leader)).await;
    ledger.check(&reference, "the new leader");
    for id in &target {
        let addr = at(&brokers, *id);
        let served = until("every new replica to serve up to the high watermark", || async move {
            let (read, their_hw) = try_read_all(addr).await.ok()?;
            (their_hw >= hw).then_some(read)
        })
        .await;
        assert_eq!(served, reference, "broker {id} serves other records than the leader");
    }

    // The quiet topic moves too, its leader idle all along.
    let (code, message) = reassign_topic(four, "quiet", Some(vec![4, 1, 2])).await;
    assert_eq!(code, 0, "{message:?}");
    until("the quiet topic's move to complete", || async move {
        if ongoing(four).await.is_some() {
            return None;
        }
        let m = metadata(four, "quiet").await;
        let p = m.topics.first()?.partitions.first()?;
        let mut replicas: Vec<i32> = p.replica_nodes.iter().map(|b| b.0).collect();
        replicas.sort_unstable();
        (replicas == vec![1, 2, 4] && p.leader_id.0 > 0).then_some(())
    })
    .await;
}
