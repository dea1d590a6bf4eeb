//! Transactions inside one partition of the real `jet` binary, driven by hand as a
//! transaction coordinator would: transactional batches, COMMIT/ABORT markers written
//! with WriteTxnMarkers, the last stable offset, and the aborted transactions a
//! read_committed fetch lists — across a SIGKILL and a clean restart. There is no
//! coordinator here, so KIP-890 verification (`tests/txn_coordinator.rs`) is turned off.

mod common;

use std::collections::BTreeSet;

use common::process::JetProcess;
use common::replicated::{TOPIC, create_topic, init_producer_id, produce, read_all, values};
use common::txn::{latest, produce_txn, read_committed, txn_batch, write_marker};
use kafka_protocol::ResponseError;

/// No coordinator knows these transactions: writes are not verified with one.
const UNVERIFIED: &[&str] = &["--set", "transaction.partition.verification.enable=false"];

fn values_of(records: &[(i64, String)]) -> Vec<&str> {
    records.iter().map(|(_, v)| v.as_str()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_committed_sees_committed_transactions_only_across_restarts() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut jet = JetProcess::start(dir.path(), UNVERIFIED);
    let addr = jet.addr;
    create_topic(addr, TOPIC, 1, 1).await;
    let (a, b) = (init_producer_id(addr).await, init_producer_id(addr).await);

    assert_eq!(produce(addr, values(0, 2)).await.error_code, 0); // 0, 1
    assert_eq!(produce_txn(addr, Some("t-a"), txn_batch(a, 0, 0, &["a-aborted-1", "a-aborted-2"])).await, 0); // 2, 3
    assert_eq!(produce(addr, values(2, 1)).await.error_code, 0); // 4

    // Producer a's transaction is open: read_committed stops before it.
    let seen = read_committed(addr).await.expect("fetch");
    assert_eq!((seen.last_stable, seen.high_watermark), (2, 5));
    assert_eq!(values_of(&seen.records), ["value-0", "value-1"]);
    assert_eq!((latest(addr, 1).await, latest(addr, 0).await), (2, 5));
    assert_eq!(read_all(addr).await.0.len(), 5, "read_uncommitted sees the open transaction");

    // Refused: transactional batches without a transactional id, control batches from a
    // client, and a plain batch of a producer inside its transaction.
    let code = produce_txn(addr, None, txn_batch(b, 0, 0, &["x"])).await;
    assert_eq!(code, ResponseError::TransactionalIdAuthorizationFailed.code());
    let marker = jet::log::txn::marker_batch(b, 0, jet::log::txn::TxnMarker { commit: true, coordinator_epoch: 0 }, 1)
        .expect("marker");
    assert_eq!(produce_txn(addr, Some("t-b"), marker).await, ResponseError::InvalidRecord.code());
    let plain_of_a = common::replicated::idempotent_values(a, 2, 9, 1);
    assert_eq!(produce(addr, plain_of_a).await.error_code, ResponseError::InvalidTxnState.code());

    // ABORT: the read_committed consumer skips a's records, listed as aborted.
    assert_eq!(write_marker(addr, a, 0, false, 3).await, 0); // 5
    let seen = read_committed(addr).await.expect("fetch");
    assert_eq!((seen.last_stable, seen.high_watermark), (6, 6));
    assert_eq!(values_of(&seen.records), ["value-0", "value-1", "value-2"]);
    assert_eq!(seen.aborted, BTreeSet::from([(a, 2)]));
    // An older coordinator epoch is fenced.
    let code = write_marker(addr, a, 0, true, 2).await;
    assert_eq!(code, ResponseError::TransactionCoordinatorFenced.code());

    // b commits a transaction; a opens another and is killed with it open.
    assert_eq!(produce_txn(addr, Some("t-b"), txn_batch(b, 0, 0, &["b-committed"])).await, 0); // 6
    assert_eq!(write_marker(addr, b, 0, true, 0).await, 0); // 7
    assert_eq!(produce_txn(addr, Some("t-a"), txn_batch(a, 0, 2, &["a-open"])).await, 0); // 8
    let seen = read_committed(addr).await.expect("fetch");
    assert_eq!((seen.last_stable, seen.high_watermark), (8, 9));
    assert_eq!(values_of(&seen.records), ["value-0", "value-1", "value-2", "b-committed"]);

    jet.kill();
    let mut jet = JetProcess::start(dir.path(), UNVERIFIED);
    let addr = jet.addr;
    let seen = read_committed(addr).await.expect("fetch after SIGKILL");
    assert_eq!((seen.last_stable, seen.high_watermark), (8, 9), "the open transaction survives a crash");
    assert_eq!(seen.aborted, BTreeSet::from([(a, 2)]), "the aborted-transaction index is rebuilt");

    // Aborted after the crash, then a clean restart with b's next transaction open.
    assert_eq!(write_marker(addr, a, 0, false, 3).await, 0); // 9
    assert_eq!(produce_txn(addr, Some("t-b"), txn_batch(b, 0, 1, &["b-open"])).await, 0); // 10
    jet.signal(libc::SIGTERM);
    jet.child.wait().expect("clean stop");
    let jet = JetProcess::start(dir.path(), UNVERIFIED);
    let seen = read_committed(jet.addr).await.expect("fetch after a clean restart");
    assert_eq!((seen.last_stable, seen.high_watermark), (10, 11), "the open transaction survives a clean stop");
    assert_eq!(seen.aborted, BTreeSet::from([(a, 2), (a, 8)]));
    assert_eq!(values_of(&seen.records), ["value-0", "value-1", "value-2", "b-committed"]);
    assert_eq!(write_marker(jet.addr, b, 0, true, 0).await, 0); // 11
    let seen = read_committed(jet.addr).await.expect("fetch");
    assert_eq!(values_of(&seen.records), ["value-0", "value-1", "value-2", "b-committed", "b-open"]);
    assert_eq!(latest(jet.addr, 1).await, 12);
}
