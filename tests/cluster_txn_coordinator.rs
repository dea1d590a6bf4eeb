//! The transaction coordinator on a three-broker cluster: the coordinator writes its
//! markers to a partition led by another broker (WriteTxnMarkers between brokers), and
//! when the coordinator is killed with a transaction open, the next leader of its
//! `__transaction_state` partition loads the transaction and aborts it for the producer's
//! next instance. Transactional offsets are settled by markers sent to a group
//! coordinator on another broker, and survive that coordinator's death.

mod common;

use std::net::SocketAddr;

use common::cluster::Node;
use common::replicated::{partition_zero, settled_cluster, until};
use common::txn::{
    add_offsets, add_partition, add_partition_when_ready, end_txn, fetch_offset, find_group_coordinator,
    find_txn_coordinator, init_txn, produce_txn, read_committed, txn_batch, txn_offset_commit,
};
use kafka_protocol::ResponseError;

fn values(c: &common::txn::Committed) -> Vec<&str> {
    c.records.iter().map(|(_, v)| v.as_str()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn markers_cross_brokers_and_a_new_coordinator_aborts_an_open_transaction() {
    let nodes: Vec<Node> = (1..=3).map(Node::new).collect();
    let (mut brokers, (leader, _)) = settled_cluster(&nodes, &[]).await;
    let addrs: Vec<SocketAddr> = brokers.iter().map(|b| b.addr).collect();
    let at = |id: i32| addrs[(id - 1) as usize];
    let l = at(leader);

    // A transactional id whose coordinator is not the partition's leader.
    let (id, coordinator) = until("a transactional id coordinated away from the partition's leader", || async move {
        for i in 0..64 {
            let id = format!("txn-{i}");
            match find_txn_coordinator(l, &id).await {
                (0, c) if c != leader => return Some((id, c)),
                (0, _) => continue,
                _ => return None,
            }
        }
        None
    })
    .await;
    let c = at(coordinator);
    let id = id.as_str();
    let p = until("a producer id", || async move { init_txn(c, id, 60_000).await.ok() }).await;
    // KIP-890: the leader asks the coordinator (another broker) before a write opens a
    // transaction; one to a partition not added to the transaction is refused.
    let unadded = produce_txn(l, Some(id), txn_batch(p.0, p.1, 0, &["not added"])).await;
    assert_eq!(unadded, ResponseError::InvalidTxnState.code());
    assert_eq!(add_partition(c, id, p).await, 0);
    assert_eq!(produce_txn(l, Some(id), txn_batch(p.0, p.1, 0, &["committed"])).await, 0);
    assert_eq!(end_txn(c, id, p, true).await, 0);
    until("the commit marker at the leader", || async move {
        let seen = read_committed(l).await.ok()?;
        (values(&seen) == ["committed"] && seen.last_stable == seen.high_watermark).then_some(())
    })
    .await;

    // Open when its coordinator dies.
    add_partition_when_ready(c, id, p).await;
    assert_eq!(produce_txn(l, Some(id), txn_batch(p.0, p.1, 1, &["open"])).await, 0);
    brokers[(coordinator - 1) as usize].kill();
    let survivors: Vec<SocketAddr> = (1..=3).filter(|b| *b != coordinator).map(at).collect();
    let q = until("the next instance, from the new coordinator", || {
        let survivors = survivors.clone();
        async move {
            for s in survivors {
                let (code, node) = find_txn_coordinator(s, id).await;
                if code == 0 && node != coordinator {
                    return init_txn(at(node), id, 60_000).await.ok();
                }
            }
            None
        }
    })
    .await;
    assert_eq!((q.0, q.1), (p.0, p.1 + 2), "aborted with a bumped epoch, then the new instance's epoch");
    // The partition's leader may have changed too (the coordinator's broker held a replica).
    until("the open transaction aborted everywhere", || {
        let survivors = survivors.clone();
        async move {
            for s in &survivors {
                let seen = read_committed(*s).await.ok()?;
                if values(&seen) != ["committed"] || seen.last_stable != seen.high_watermark || seen.aborted.is_empty()
                {
                    return None;
                }
            }
            Some(())
        }
    })
    .await;
    assert!(partition_zero(survivors[0]).await.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactional_offsets_settle_at_a_group_coordinator_on_another_broker() {
    const UNSTABLE: i16 = 88;
    let nodes: Vec<Node> = (1..=3).map(Node::new).collect();
    let (mut brokers, _) = settled_cluster(&nodes, &[]).await;
    let addrs: Vec<SocketAddr> = brokers.iter().map(|b| b.addr).collect();
    let at = |id: i32| addrs[(id - 1) as usize];
    let a = addrs[0];

    // A transactional id and a group whose coordinators are different brokers.
    let (i, txn_node, group_node) = until("coordinators on two brokers", || async move {
        for i in 0..64 {
            let (tc, t) = find_txn_coordinator(a, &format!("eos-{i}")).await;
            let (gc, g) = find_group_coordinator(a, &format!("group-{i}")).await;
            if tc != 0 || gc != 0 {
                return None;
            }
            if t != g {
                return Some((i, t, g));
            }
        }
        None
    })
    .await;
    let (id, group) = (format!("eos-{i}"), format!("group-{i}"));
    let (id, group, tc) = (id.as_str(), group.as_str(), at(txn_node));
    let p = until("a producer id", || async move { init_txn(tc, id, 60_000).await.ok() }).await;
    assert_eq!(add_offsets(tc, id, p, group).await, 0);
    let gc = at(group_node);
    until("the offsets taken by the group coordinator", || async move {
        (txn_offset_commit(gc, id, p, group, 5).await == 0).then_some(())
    })
    .await;
    assert_eq!(fetch_offset(gc, group, true).await, (UNSTABLE, -1));
    assert_eq!(end_txn(tc, id, p, true).await, 0);
    until("the commit settled at the group coordinator", || async move {
        (fetch_offset(gc, group, true).await == (0, 5)).then_some(())
    })
    .await;

    // Pending when the group coordinator dies: its successor replays them from the
    // replicated partition, and the transaction's marker settles them there.
    until("the offsets partition added again", || async move {
        match add_offsets(tc, id, p, group).await {
            0 => Some(()),
            51 => None,
            code => panic!("AddOffsetsToTxn: {code}"),
        }
    })
    .await;
    assert_eq!(txn_offset_commit(gc, id, p, group, 8).await, 0);
    brokers[(group_node - 1) as usize].kill();
    let next = until("the next group coordinator", || async move {
        match find_group_coordinator(tc, group).await {
            (0, node) if node != group_node => Some(at(node)),
            _ => None,
        }
    })
    .await;
    until("the pending offsets replayed", || async move {
        (fetch_offset(next, group, true).await == (UNSTABLE, -1)).then_some(())
    })
    .await;
    assert_eq!(fetch_offset(next, group, false).await, (0, 5));
    assert_eq!(end_txn(tc, id, p, true).await, 0);
    until("the commit settled at the new group coordinator", || async move {
        (fetch_offset(next, group, true).await == (0, 8)).then_some(())
    })
    .await;
}
