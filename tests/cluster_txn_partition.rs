//! Transactions inside a raft-replicated partition (three `jet` processes), driven by
//! hand as a transaction coordinator would: every replica agrees on the last stable
//! offset and the aborted transactions (both come from committed entries), and a new
//! leader takes over an open transaction after the old one is killed. There is no
//! coordinator here, so KIP-890 verification is turned off.

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;

use common::cluster::Node;
use common::replicated::{init_producer_id, partition_zero, produce, settled_cluster, until, values};
use common::txn::{Committed, produce_txn, read_committed, txn_batch, write_marker};

/// Waits until every broker at `addrs` serves `want` (values, last stable offset, high
/// watermark, aborted transactions) to a read_committed consumer.
async fn every_replica_serves(addrs: &[SocketAddr], want: (Vec<&str>, i64, i64, BTreeSet<(i64, i64)>)) {
    for &addr in addrs {
        let want = &want;
        until(&format!("{addr} to serve {want:?}"), || async move {
            let Committed { records, last_stable, high_watermark, aborted } = read_committed(addr).await.ok()?;
            let values: Vec<&str> = records.iter().map(|(_, v)| v.as_str()).collect();
            (values == want.0 && (last_stable, high_watermark) == (want.1, want.2) && aborted == want.3).then_some(())
        })
        .await;
    }
}

/// No coordinator knows these transactions: writes are not verified with one.
const UNVERIFIED: &[&str] = &["--set", "transaction.partition.verification.enable=false"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_agree_on_transactions_and_a_new_leader_completes_an_open_one() {
    let nodes: Vec<Node> = (1..=3).map(Node::new).collect();
    let (mut brokers, (leader, epoch)) = settled_cluster(&nodes, UNVERIFIED).await;
    let addrs_by_id: Vec<SocketAddr> = brokers.iter().map(|b| b.addr).collect();
    let at = |id: i32| addrs_by_id[(id - 1) as usize];
    let l = at(leader);
    let (a, b) = (init_producer_id(l).await, init_producer_id(l).await);

    // Raft's own entries come first: offsets count from the first record's.
    let first = produce(l, values(0, 2)).await;
    assert_eq!(first.error_code, 0);
    let o = first.base_offset; // o, o + 1
    assert_eq!(produce_txn(l, Some("t-a"), txn_batch(a, 0, 0, &["a-aborted"])).await, 0); // o + 2
    assert_eq!(produce_txn(l, Some("t-b"), txn_batch(b, 0, 0, &["b-committed"])).await, 0); // o + 3
    assert_eq!(produce(l, values(2, 1)).await.error_code, 0); // o + 4
    let all: Vec<SocketAddr> = brokers.iter().map(|b| b.addr).collect();
    every_replica_serves(&all, (vec!["value-0", "value-1"], o + 2, o + 5, BTreeSet::new())).await;

    assert_eq!(write_marker(l, a, 0, false, 0).await, 0); // o + 5
    every_replica_serves(&all, (vec!["value-0", "value-1"], o + 3, o + 6, BTreeSet::from([(a, o + 2)]))).await;
    assert_eq!(write_marker(l, b, 0, true, 0).await, 0); // o + 6
    assert_eq!(produce_txn(l, Some("t-a"), txn_batch(a, 0, 1, &["a-open"])).await, 0); // o + 7
    let committed = vec!["value-0", "value-1", "b-committed", "value-2"];
    every_replica_serves(&all, (committed.clone(), o + 7, o + 8, BTreeSet::from([(a, o + 2)]))).await;

    // The leader dies with a's transaction open; the new leader's replica knows it.
    brokers[(leader - 1) as usize].kill();
    let survivors: Vec<(i32, SocketAddr)> = (1..=3).filter(|id| *id != leader).map(|id| (id, at(id))).collect();
    let new_leader = until("a new leader", || {
        let first = survivors[0].1;
        async move {
            let (l, e, _, _) = partition_zero(first).await?;
            (l != leader && l > 0 && e > epoch).then_some(l)
        }
    })
    .await;
    let nl = survivors.iter().find(|(id, _)| *id == new_leader).expect("a survivor leads").1;
    // A marker of an older coordinator epoch than the last one is fenced on the new
    // leader too; the current one completes the transaction.
    assert_eq!(
        write_marker(nl, b, 0, true, -1).await,
        kafka_protocol::ResponseError::TransactionCoordinatorFenced.code()
    );
    until(
        "the new leader to take a's COMMIT",
        || async move { (write_marker(nl, a, 0, true, 0).await == 0).then_some(()) },
    )
    .await;
    let addrs: Vec<SocketAddr> = survivors.iter().map(|(_, a)| *a).collect();
    let (_, _, hw, _) = until("the marker committed", || async move {
        let c = read_committed(nl).await.ok()?;
        (c.last_stable == c.high_watermark && c.high_watermark > o + 8).then_some(((), (), c.high_watermark, ()))
    })
    .await;
    let mut committed = committed;
    committed.push("a-open");
    every_replica_serves(&addrs, (committed.clone(), hw, hw, BTreeSet::from([(a, o + 2)]))).await;

    // The killed broker comes back and catches up to the same view.
    let i = (leader - 1) as usize;
    brokers[i] = common::replicated::start(&nodes[i], nodes[0].gossip, UNVERIFIED);
    every_replica_serves(&[brokers[i].addr], (committed, hw, hw, BTreeSet::from([(a, o + 2)]))).await;
}
