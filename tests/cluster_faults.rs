//! Faults a replicated cluster survives with nothing acknowledged lost, duplicated or
//! moved, checked by reading every record back through every broker ([`Ledger`]):
//!
//! - a leader paused (SIGSTOP) long enough for gossip to declare it failed: the others
//!   elect a new leader that takes writes, and the paused one, resumed, acknowledges
//!   nothing it was sent while paused and follows the new leader;
//! - every broker SIGKILLed at once and restarted: the partition elects a leader again
//!   (partition groups have no election timers, so this is the broker's own campaign), the
//!   controller takes a new topic, and every acknowledged write is there;
//! - a follower lost under `min.insync.replicas=3`: `acks=all` writes are refused with
//!   `NOT_ENOUGH_REPLICAS` until it is back in sync, `acks=1` writes are still taken.
//!
//! The first two print how long the cluster took to acknowledge a write again. Every wait is on a
//! condition.

mod common;

use std::net::SocketAddr;
use std::time::Instant;

use common::cluster::Node;
use common::process::JetProcess;
use common::replicated::*;
use kafka_protocol::ResponseError;

/// Every broker serves the same records, and they hold everything `ledger` says was
/// acknowledged, once each, at its offset. `brokers[i]` is node `i + 1`. Returns what they
/// serve.
async fn check_every_replica(brokers: &[JetProcess], ledger: &Ledger) -> Vec<(i64, String)> {
    let live: Vec<&JetProcess> = brokers.iter().collect();
    let (leader, _) = until("one leader", || agreed_leader(&live)).await;
    let (reference, hw) = read_all(brokers[(leader - 1) as usize].addr).await;
    ledger.check(&reference, "the leader");
    for b in brokers {
        let addr = b.addr;
        let served = until("every replica to serve up to the leader's high watermark", || async move {
            let (read, their_hw) = try_read_all(addr).await.ok()?;
            (their_hw >= hw).then_some(read)
        })
        .await;
        assert_eq!(served, reference, "broker at {addr} serves other records than the leader");
    }
    reference
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_leader_is_replaced_and_acknowledges_nothing_sent_to_it_while_paused() {
    let nodes: Vec<Node> = (1..=3).map(Node::new).collect();
    let (brokers, (leader, epoch)) = settled_cluster(&nodes, &[]).await;
    let at = |id: i32| brokers[(id - 1) as usize].addr;
    let mut ledger = Ledger::default();
    for round in 0..4 {
        let r = produce(at(leader), values(round * 5, 5)).await;
        assert!(ledger.record(&r, round * 5, 5), "{:?}", r.error_message);
    }

    let producer = init_producer_id(at(leader)).await;
    // Pause the leader: its sockets stay open, only gossip can tell it is gone.
    let paused = &brokers[(leader - 1) as usize];
    paused.signal(libc::SIGSTOP);
    let paused_at = Instant::now();
    // A producer that still believes in it: the request waits in the paused broker's socket.
    let stale = tokio::spawn(produce(at(leader), values(100, 5)));
    let survivors: Vec<(i32, SocketAddr)> = (1..=3).filter(|id| *id != leader).map(|id| (id, at(id))).collect();
    let (new_leader, acked) = acknowledged_by_new_leader(&survivors, leader, epoch, producer, 20, 5).await;
    assert!(ledger.record(&acked, 20, 5));
    eprintln!("SIGSTOP of leader {leader}: broker {new_leader} acknowledged a write after {:?}", paused_at.elapsed());

    // Resume it: what it was sent while paused is not acknowledged (it no longer leads a
    // majority), and it follows the new leader.
    paused.signal(libc::SIGCONT);
    let stale = stale.await.expect("the stale producer");
    assert_ne!(stale.error_code, 0, "the deposed leader acknowledged a write: {stale:?}");
    assert!(!ledger.record(&stale, 100, 5));
    let (settled_leader, _) = wait_settled(&brokers, &nodes).await;
    let r = produce(at(settled_leader), values(25, 5)).await;
    assert!(ledger.record(&r, 25, 5), "{:?}", r.error_message);
    assert_eq!(ledger.len(), 30);
    let served = check_every_replica(&brokers, &ledger).await;
    // What the paused leader was sent was never committed: it is on no replica.
    assert!(!served.iter().any(|(_, v)| (100..105).any(|i| *v == format!("value-{i}"))), "{served:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_broker_killed_at_once_comes_back_with_every_acknowledged_write() {
    let nodes: Vec<Node> = (1..=3).map(Node::new).collect();
    let (mut brokers, (leader, epoch)) = settled_cluster(&nodes, &[]).await;
    let mut ledger = Ledger::default();
    for round in 0..4 {
        let r = produce(brokers[(leader - 1) as usize].addr, values(round * 5, 5)).await;
        assert!(ledger.record(&r, round * 5, 5), "{:?}", r.error_message);
    }

    let producer = init_producer_id(brokers[0].addr).await;
    for b in &mut brokers {
        b.kill();
    }
    drop(brokers);
    // All three start together, each on its data.
    let restarted_at = Instant::now();
    let seed = nodes[0].gossip;
    let brokers: Vec<JetProcess> = std::thread::scope(|s| {
        let starting: Vec<_> = nodes.iter().map(|n| s.spawn(move || n.start(seed, Some(3)))).collect();
        starting.into_iter().map(|h| h.join().expect("a broker to start")).collect()
    });
    let at = |id: i32| brokers[(id - 1) as usize].addr;
    let (new_leader, acked) = until("a write acknowledged after the restart", || {
        let addrs: Vec<SocketAddr> = brokers.iter().map(|b| b.addr).collect();
        async move {
            let (l, e, _, _) = partition_zero(addrs[0]).await?;
            // A leader restarted on its data may take up its term again (its vote is
            // durable), so the epoch may stay.
            if !(1..=3).contains(&l) || e < epoch {
                return None;
            }
            let r = produce(addrs[(l - 1) as usize], idempotent_values(producer, 0, 20, 5)).await;
            (r.error_code == 0).then_some((l, r))
        }
    })
    .await;
    assert!(ledger.record(&acked, 20, 5));
    eprintln!("all brokers restarted: broker {new_leader} acknowledged a write after {:?}", restarted_at.elapsed());

    // The controller is back too: once gossip lists every broker again (placement needs
    // three live brokers, as Kafka needs three registered), a new topic is created.
    for b in &brokers {
        let addr = b.addr;
        until("every broker to list all three again", || async move {
            (metadata(addr, TOPIC).await.brokers.len() == 3).then_some(())
        })
        .await;
    }
    create_topic(at(1), "after-restart", 1, 3).await;
    wait_settled(&brokers, &nodes).await;
    check_every_replica(&brokers, &ledger).await;
    assert_eq!(ledger.len(), 25);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_all_writes_need_min_insync_replicas() {
    const MIN_INSYNC: &[&str] = &["--min-insync-replicas", "3"];
    let nodes: Vec<Node> = (1..=3).map(Node::new).collect();
    let (mut brokers, (leader, _)) = settled_cluster(&nodes, MIN_INSYNC).await;
    let leader_addr = brokers[(leader - 1) as usize].addr;
    let mut ledger = Ledger::default();
    // All three in sync: acknowledged once all three hold it (raft alone would answer at two).
    let r = produce(leader_addr, values(0, 5)).await;
    assert!(ledger.record(&r, 0, 5), "{:?}", r.error_message);

    // A follower goes: once the leader's in-sync set shrinks, acks=all writes are refused
    // before they are appended, and acks=1 writes are still taken.
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    brokers[(follower - 1) as usize].kill();
    until("the leader to drop the killed follower from the in-sync replicas", || async move {
        partition_zero(leader_addr).await.filter(|p| p.0 == leader && !p.3.contains(&follower))
    })
    .await;
    let refused = produce(leader_addr, values(100, 5)).await;
    assert_eq!(refused.error_code, ResponseError::NotEnoughReplicas.code(), "{refused:?}");
    let message = refused.error_message.as_deref().map(ToString::to_string).unwrap_or_default();
    assert!(message.contains("min.insync.replicas=3"), "{message}");
    let r = produce_acks(leader_addr, values(5, 5), 1).await;
    assert!(ledger.record(&r, 5, 5), "{:?}", r.error_message);

    // Back in sync, acks=all writes are taken again.
    let seed = nodes[0].gossip;
    brokers[(follower - 1) as usize] = start(&nodes[(follower - 1) as usize], seed, MIN_INSYNC);
    let (leader, _) = wait_settled(&brokers, &nodes).await;
    let r = produce(brokers[(leader - 1) as usize].addr, values(10, 5)).await;
    assert!(ledger.record(&r, 10, 5), "{:?}", r.error_message);
    check_every_replica(&brokers, &ledger).await;
}
