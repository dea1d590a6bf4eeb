//! The transaction coordinator of the real `jet` binary, driven with Kafka requests as a
//! transactional producer sends them (FindCoordinator, InitProducerId, AddPartitionsToTxn,
//! Produce, EndTxn): commits become visible to read_committed consumers, aborts never do,
//! a new producer instance fences the old one and aborts its open transaction, a
//! transaction past its timeout is aborted, and the coordinator's state survives a
//! SIGKILL.

mod common;

use common::process::JetProcess;
use common::replicated::{TOPIC, create_topic, until};
use common::txn::{
    add_partition, add_partition_when_ready, end_txn, find_txn_coordinator, init_txn, init_txn_expecting, produce_txn,
    read_committed, txn_batch,
};
use kafka_protocol::ResponseError;

fn values(c: &common::txn::Committed) -> Vec<&str> {
    c.records.iter().map(|(_, v)| v.as_str()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_commit_abort_fence_and_time_out() {
    let dir = tempfile::tempdir().expect("temp dir");
    let args = ["--set", "transaction.abort.timed.out.transaction.cleanup.interval.ms=100"];
    let mut jet = JetProcess::start(dir.path(), &args);
    let addr = jet.addr;
    create_topic(addr, TOPIC, 1, 1).await;
    assert_eq!(find_txn_coordinator(addr, "t1").await, (0, 1));
    assert_eq!(init_txn(addr, "t1", 0).await, Err(ResponseError::InvalidTransactionTimeout.code()));
    assert_eq!(init_txn(addr, "t1", 900_001).await, Err(ResponseError::InvalidTransactionTimeout.code()));
    let p = init_txn(addr, "t1", 60_000).await.expect("init");
    assert_eq!(p.1, 0);

    // Committed: visible once its marker is.
    assert_eq!(add_partition(addr, "t1", p).await, 0);
    assert_eq!(produce_txn(addr, Some("t1"), txn_batch(p.0, p.1, 0, &["c1", "c2"])).await, 0);
    assert_eq!(read_committed(addr).await.expect("fetch").last_stable, 0, "open: nothing is stable");
    assert_eq!(end_txn(addr, "t1", p, true).await, 0);
    // A retried commit: CONCURRENT_TRANSACTIONS (retriable) while the markers are being
    // written, as in Kafka, then answered as the first once the transaction is complete.
    until("a retried commit answered as the first", || async move {
        match end_txn(addr, "t1", p, true).await {
            0 => Some(()),
            code => {
                assert_eq!(code, ResponseError::ConcurrentTransactions.code());
                None
            }
        }
    })
    .await;
    until("the commit to become visible", || async move {
        (values(&read_committed(addr).await.ok()?) == ["c1", "c2"]).then_some(())
    })
    .await;

    // Aborted: never visible.
    add_partition_when_ready(addr, "t1", p).await;
    assert_eq!(produce_txn(addr, Some("t1"), txn_batch(p.0, p.1, 2, &["a1"])).await, 0);
    assert_eq!(end_txn(addr, "t1", p, false).await, 0);
    let aborted = until("the abort to complete", || async move {
        let c = read_committed(addr).await.ok()?;
        (c.last_stable == c.high_watermark && !c.aborted.is_empty()).then_some(c)
    })
    .await;
    assert_eq!(values(&aborted), ["c1", "c2"]);

    // A new instance of the producer fences the old one and aborts its open transaction.
    add_partition_when_ready(addr, "t1", p).await;
    assert_eq!(produce_txn(addr, Some("t1"), txn_batch(p.0, p.1, 3, &["zombie"])).await, 0);
    let q = until("the new instance's id", || async move { init_txn(addr, "t1", 60_000).await.ok() }).await;
    assert_eq!((q.0, q.1), (p.0, p.1 + 2), "one bump to abort, one for the new instance");
    assert_eq!(add_partition(addr, "t1", p).await, ResponseError::ProducerFenced.code());
    assert_eq!(end_txn(addr, "t1", p, true).await, ResponseError::ProducerFenced.code());
    let code = produce_txn(addr, Some("t1"), txn_batch(p.0, p.1, 4, &["zombie-2"])).await;
    assert_eq!(code, ResponseError::InvalidProducerEpoch.code(), "the abort marker fenced the old epoch");
    let c = read_committed(addr).await.expect("fetch");
    assert_eq!(values(&c), ["c1", "c2"]);
    assert_eq!(c.last_stable, c.high_watermark);

    // A transaction past its timeout is aborted by the coordinator.
    let t = init_txn(addr, "t2", 500).await.expect("init t2");
    assert_eq!(add_partition(addr, "t2", t).await, 0);
    assert_eq!(produce_txn(addr, Some("t2"), txn_batch(t.0, t.1, 0, &["expired"])).await, 0);
    until("the expired transaction to be aborted", || async move {
        let c = read_committed(addr).await.ok()?;
        (c.last_stable == c.high_watermark).then_some(())
    })
    .await;
    assert_eq!(values(&read_committed(addr).await.expect("fetch")), ["c1", "c2"]);
    assert_eq!(end_txn(addr, "t2", t, true).await, ResponseError::ProducerFenced.code());

    // KIP-360: a producer naming its id and epoch gets the next epoch; a retry of that
    // request (its answer lost) gets the same answer; a stale epoch is fenced.
    let bumped = init_txn_expecting(addr, "t1", 60_000, q).await.expect("bump");
    assert_eq!(bumped, (q.0, q.1 + 1));
    assert_eq!(init_txn_expecting(addr, "t1", 60_000, q).await, Ok(bumped), "a retried bump");
    assert_eq!(init_txn_expecting(addr, "t1", 60_000, p).await, Err(ResponseError::ProducerFenced.code()));
    // Requests naming ids that were never initialised take no state.
    assert_eq!(end_txn(addr, "never", (1, 0), true).await, ResponseError::InvalidProducerIdMapping.code());
    let q = bumped;

    // The coordinator's state survives a crash: the next instance gets the next epoch.
    jet.kill();
    let jet = JetProcess::start(dir.path(), &args);
    let r = until("the reloaded coordinator", || async { init_txn(jet.addr, "t1", 60_000).await.ok() }).await;
    assert_eq!(r, (q.0, q.1 + 1));
    assert_eq!(values(&read_committed(jet.addr).await.expect("fetch")), ["c1", "c2"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_transactional_ids_expire() {
    let dir = tempfile::tempdir().expect("temp dir");
    let args = [
        "--set",
        "transactional.id.expiration.ms=300",
        "--set",
        "transaction.remove.expired.transaction.cleanup.interval.ms=100",
    ];
    let mut jet = JetProcess::start(dir.path(), &args);
    let addr = jet.addr;
    create_topic(addr, TOPIC, 1, 1).await;
    let idle = init_txn(addr, "idle", 60_000).await.expect("init idle");
    let busy = init_txn(addr, "busy", 60_000).await.expect("init busy");
    assert_eq!(add_partition(addr, "busy", busy).await, 0);

    // The idle id is removed; the one with a transaction open is kept.
    until("the idle id to expire", || async move {
        (end_txn(addr, "idle", idle, true).await == ResponseError::InvalidProducerIdMapping.code()).then_some(())
    })
    .await;
    assert_eq!(end_txn(addr, "busy", busy, true).await, 0, "an open transaction's id is kept");

    // The removal is durable: after a crash (restarted without expiry, so nothing removes
    // it again) the id is still gone, and it starts afresh.
    jet.kill();
    let jet = JetProcess::start(dir.path(), &[]);
    let addr = jet.addr;
    let again = until("the reloaded coordinator", || async move { init_txn(addr, "idle", 60_000).await.ok() }).await;
    assert_ne!(again.0, idle.0, "a new producer id for an expired transactional id");
    assert_eq!(again.1, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_outside_the_transaction_are_refused_by_verification() {
    let dir = tempfile::tempdir().expect("temp dir");
    let jet = JetProcess::start(dir.path(), &[]);
    let addr = jet.addr;
    create_topic(addr, TOPIC, 1, 1).await;
    let p = init_txn(addr, "v", 60_000).await.expect("init");
    let stable = || async move {
        let c = read_committed(addr).await.expect("fetch");
        assert_eq!(c.last_stable, c.high_watermark, "no transaction left hanging");
        c
    };

    // Not added to the transaction: KIP-890 refuses it instead of opening a
    // transaction no coordinator would close.
    let unadded = produce_txn(addr, Some("v"), txn_batch(p.0, p.1, 0, &["not added"])).await;
    assert_eq!(unadded, ResponseError::InvalidTxnState.code());
    stable().await;

    // Added: taken, and committed.
    assert_eq!(add_partition(addr, "v", p).await, 0);
    assert_eq!(produce_txn(addr, Some("v"), txn_batch(p.0, p.1, 0, &["in"])).await, 0);
    assert_eq!(end_txn(addr, "v", p, true).await, 0);
    until("the commit to become visible", || async move {
        (values(&read_committed(addr).await.ok()?) == ["in"]).then_some(())
    })
    .await;

    // A late write after its transaction ended (a zombie request) is refused too.
    let late = produce_txn(addr, Some("v"), txn_batch(p.0, p.1, 1, &["late"])).await;
    assert_eq!(late, ResponseError::InvalidTxnState.code());
    // A stale epoch is refused by verification as it is by the partition.
    let q = until("the new instance's id", || async move { init_txn(addr, "v", 60_000).await.ok() }).await;
    assert_eq!(add_partition(addr, "v", q).await, 0);
    let stale = produce_txn(addr, Some("v"), txn_batch(p.0, p.1, 1, &["stale"])).await;
    assert_eq!(stale, ResponseError::InvalidProducerEpoch.code());
    assert_eq!(values(&stable().await), ["in"]);
}
