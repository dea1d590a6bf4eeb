//! Transactional offset commits on the real `jet` binary, driven with the requests a
//! transactional producer's `sendOffsetsToTransaction` sends (AddOffsetsToTxn,
//! TxnOffsetCommit) and a read_committed consumer's OffsetFetch (require_stable): the
//! offsets stay pending (UNSTABLE_OFFSET_COMMIT for a stable fetch, the previous offset
//! otherwise) until the transaction's marker; a commit makes them the group's, an abort
//! drops them, a fenced producer's commit is refused, and pending offsets survive a
//! SIGKILL and are settled by the reloaded coordinator.

mod common;

use common::process::JetProcess;
use common::replicated::{TOPIC, create_topic, until};
use common::txn::{add_offsets, end_txn, fetch_offset, init_txn, produce_txn, txn_batch, txn_offset_commit};
use kafka_protocol::ResponseError;

const GROUP: &str = "eos-group";
const UNSTABLE: i16 = 88;

/// AddOffsetsToTxn until the producer's previous transaction is complete.
async fn add_offsets_when_ready(addr: std::net::SocketAddr, producer: (i64, i16)) {
    until("the offsets partition added to a new transaction", || async move {
        match add_offsets(addr, "t", producer, GROUP).await {
            0 => Some(()),
            code => {
                assert_eq!(code, ResponseError::ConcurrentTransactions.code(), "AddOffsetsToTxn");
                None
            }
        }
    })
    .await;
}

/// Waits until a stable fetch answers `offset`.
async fn until_committed(addr: std::net::SocketAddr, offset: i64) {
    until("the group's offset to settle", || async move {
        (fetch_offset(addr, GROUP, true).await == (0, offset)).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactional_offsets_are_visible_only_once_committed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut jet = JetProcess::start(dir.path(), &[]);
    let addr = jet.addr;
    create_topic(addr, TOPIC, 1, 1).await;
    let p = init_txn(addr, "t", 60_000).await.expect("init");

    // Clients may not write a producer's batch without sequence numbers (only a group
    // coordinator does).
    let unsequenced = produce_txn(addr, Some("t"), txn_batch(p.0, p.1, -1, &["x"])).await;
    assert_eq!(unsequenced, ResponseError::InvalidRecord.code());

    // Committed: pending until the marker, then the group's.
    assert_eq!(add_offsets(addr, "t", p, GROUP).await, 0);
    assert_eq!(txn_offset_commit(addr, "t", p, GROUP, 5).await, 0);
    assert_eq!(fetch_offset(addr, GROUP, true).await, (UNSTABLE, -1));
    assert_eq!(fetch_offset(addr, GROUP, false).await, (0, -1), "pending offsets are not the group's");
    assert_eq!(end_txn(addr, "t", p, true).await, 0);
    until_committed(addr, 5).await;

    // Aborted: dropped.
    add_offsets_when_ready(addr, p).await;
    assert_eq!(txn_offset_commit(addr, "t", p, GROUP, 9).await, 0);
    assert_eq!(fetch_offset(addr, GROUP, false).await, (0, 5));
    assert_eq!(end_txn(addr, "t", p, false).await, 0);
    until_committed(addr, 5).await;

    // A new instance fences the old one: its AddOffsetsToTxn (which clients send before
    // the offsets) is refused, and once the new epoch has written to the group's
    // partition so is a stale TxnOffsetCommit. (Without KIP-890 verification, a stale
    // TxnOffsetCommit sent without AddOffsetsToTxn before that is not caught.)
    let q = until("the new instance's id", || async move { init_txn(addr, "t", 60_000).await.ok() }).await;
    assert!(q.1 > p.1);
    assert_eq!(add_offsets(addr, "t", p, GROUP).await, ResponseError::ProducerFenced.code());
    add_offsets_when_ready(addr, q).await;
    assert_eq!(txn_offset_commit(addr, "t", q, GROUP, 7).await, 0);
    let fenced = txn_offset_commit(addr, "t", p, GROUP, 11).await;
    assert_eq!(fenced, ResponseError::InvalidProducerEpoch.code(), "a stale epoch's offsets");
    assert_eq!(end_txn(addr, "t", q, true).await, 0);
    until_committed(addr, 7).await;

    // Pending offsets survive a crash, and the reloaded coordinators settle them.
    add_offsets_when_ready(addr, q).await;
    assert_eq!(txn_offset_commit(addr, "t", q, GROUP, 12).await, 0);
    jet.kill();
    let jet = JetProcess::start(dir.path(), &[]);
    let addr = jet.addr;
    until(
        "the reloaded group",
        || async move { (fetch_offset(addr, GROUP, true).await == (UNSTABLE, -1)).then_some(()) },
    )
    .await;
    assert_eq!(fetch_offset(addr, GROUP, false).await, (0, 7));
    let end = until("the reloaded transaction coordinator", || async move {
        match end_txn(addr, "t", q, true).await {
            0 => Some(()),
            code if code == ResponseError::CoordinatorLoadInProgress.code()
                || code == ResponseError::NotCoordinator.code() =>
            {
                None
            }
            code => panic!("EndTxn after restart: {code}"),
        }
    });
    end.await;
    until_committed(addr, 12).await;
}
