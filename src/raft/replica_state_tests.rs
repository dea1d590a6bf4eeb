//! ReplicaState without openraft: snapshots, recovery of the applied point, proposals
//! that were never sent.

use super::*;
use crate::broker::producer_state::ProducerIdGate;
use crate::log::test_util::producer_batch;
use crate::log::{LogConfig, validate_produced_batches};

fn entries(batch: &[u8]) -> Vec<super::super::Entry> {
    use super::super::log_store::log_id;
    vec![
        super::super::Entry { log_id: log_id(Term(1), 0), payload: EntryPayload::Blank },
        super::super::Entry {
            log_id: log_id(Term(1), 1),
            payload: EntryPayload::Normal(AppendBatches(bytes::Bytes::copy_from_slice(batch))),
        },
    ]
}

fn small() -> LogConfig {
    LogConfig { segment_bytes: 1024, index_interval_bytes: 200, ..LogConfig::default() }
}

/// A blank, then 30 entries of one idempotent batch each: producer 7 writes the first
/// three, producer 5 the rest.
fn producer_entries() -> Vec<super::super::Entry> {
    use super::super::log_store::log_id;
    let mut out = vec![super::super::Entry { log_id: log_id(Term(1), 0), payload: EntryPayload::Blank }];
    for i in 0..30u64 {
        let (producer, seq) = if i < 3 { (7, i as i32 * 2) } else { (5, (i as i32 - 3) * 2) };
        let batch = producer_batch(2, 1_000, 10, kafka_protocol::records::Compression::None, (producer, 0, seq));
        out.push(super::super::Entry {
            log_id: log_id(Term(1), i + 1),
            payload: EntryPayload::Normal(AppendBatches(bytes::Bytes::from(batch))),
        });
    }
    out
}

fn open_small(dir: &std::path::Path, entries: Vec<super::super::Entry>) -> Arc<ReplicaState> {
    let mut log = PartitionRaftLog::open(dir, small()).expect("open");
    log.append(entries).expect("append");
    ReplicaState::open(RaftLogStore::new(log)).expect("state")
}

/// Applies every entry of `state`'s log, the last with a log start of `log_start`.
fn apply_all(state: &ReplicaState, log_start: i64) -> LogId {
    let (entries, end) = {
        let log = state.log().expect("log");
        (log.entries(..).expect("entries"), log.log().log_end_offset())
    };
    let normal: Vec<bytes::Bytes> = entries
        .iter()
        .filter_map(|e| match &e.payload {
            EntryPayload::Normal(AppendBatches(b)) => Some(b.clone()),
            _ => None,
        })
        .collect();
    let refs: Vec<&[u8]> = normal.iter().map(|b| &b[..]).collect();
    let last = entries.last().expect("entries").log_id;
    state.applied(&refs, last, Vec::new(), end, Some(log_start)).expect("applied");
    last
}

#[test]
fn a_snapshot_covers_the_segments_below_the_log_start_and_restarts_a_log_that_lacks_them() {
    use super::super::log_store::log_id;
    let (a, b, c) = (tempfile::tempdir().expect("a"), tempfile::tempdir().expect("b"), tempfile::tempdir().expect("c"));
    let source = open_small(a.path(), producer_entries());
    let bases: Vec<i64> = source.log().expect("log").log().segments().iter().map(|s| s.base_offset).collect();
    assert!(bases.len() > 3, "several segments: {bases:?}");
    assert!(!source.purgeable().expect("purgeable"), "nothing below the log start");
    let applied = apply_all(&source, bases[2] + 1);
    assert_eq!(source.log().expect("log").log().log_start_offset(), bases[2] + 1, "applying moved the log start");
    assert!(source.purgeable().expect("purgeable"));
    let snapshot = source.build_snapshot().expect("snapshot");
    let last = snapshot.meta.last_log_id.expect("a point");
    assert!(last.index < applied.index, "the snapshot is at the purge point, not the applied one");
    assert_eq!(source.log().expect("log").end_offset_of(last.index).expect("end"), bases[2]);
    assert!(!source.purgeable().expect("purgeable"), "covered now");
    let data = snapshot.snapshot.into_inner();

    // A replica lacking the entries restarts its log after the snapshot's point.
    let empty = open_small(c.path(), Vec::new());
    empty.install_snapshot(&snapshot.meta, data.clone()).expect("install");
    assert_eq!(empty.high_watermark(), bases[2]);
    assert_eq!(empty.applied_state().expect("applied").0, Some(last));
    {
        let mut log = empty.log().expect("log");
        assert_eq!((log.log().log_start_offset(), log.log().log_end_offset()), (bases[2], bases[2]));
        let next = source.log().expect("log").entry(last.index + 1).expect("next entry");
        log.append([next]).expect("the next entry follows");
        assert_eq!(log.log().read_entry(last.index + 1).expect("read").expect("entry").first_offset, bases[2]);
    }
    // Producer 7's batches were all below the point: the snapshot carried them, so its
    // retry is a duplicate, not a new write.
    let retry = producer_batch(2, 1_000, 10, kafka_protocol::records::Compression::None, (7, 0, 4));
    let headers = validate_produced_batches(&retry, 1 << 20).expect("valid");
    let gate = ProducerIdGate::unlimited();
    let limits = ProducerLimits {
        per_partition: usize::MAX,
        gate: &gate,
        txn: crate::broker::txn_verification::TxnVerification::Off,
    };
    let checked = empty.check(Term(2), &headers, &retry, 1_000, limits).expect("checked");
    assert!(matches!(checked, Checked::Duplicate(Placed { base_offset: 5, end_offset: 7, .. })), "{checked:?}");
    drop(empty);
    // Reopened, it is where the snapshot left it.
    let reopened = ReplicaState::open(RaftLogStore::new(PartitionRaftLog::open(c.path(), small()).expect("reopen")))
        .expect("state");
    assert_eq!(reopened.high_watermark(), bases[2]);
    assert_eq!(reopened.current_snapshot().expect("current").map(|s| s.meta.last_log_id), Some(Some(last)));
    let checked = reopened.check(Term(3), &headers, &retry, 1_000, limits).expect("checked");
    assert!(
        matches!(checked, Checked::Duplicate(Placed { base_offset: 5, end_offset: 7, .. })),
        "the snapshot's producers survive a restart: {checked:?}"
    );

    // A replica holding the entries fast-forwards: its log stays.
    let holding = open_small(b.path(), producer_entries());
    holding.install_snapshot(&snapshot.meta, data).expect("install");
    assert_eq!(holding.high_watermark(), bases[2]);
    assert_eq!(holding.applied_state().expect("applied").0, Some(last));
    assert_eq!(
        holding.log().expect("log").entry(last.index + 1).expect("kept").log_id,
        log_id(Term(1), last.index + 1)
    );
}

#[test]
fn an_applied_point_past_the_logs_end_opens_at_the_log_end() {
    use super::super::log_store::log_id;
    let dir = tempfile::tempdir().expect("temp dir");
    let batch = producer_batch(2, 1_000, 10, kafka_protocol::records::Compression::None, (-1, -1, -1));
    let mut log = PartitionRaftLog::open(dir.path(), LogConfig::default()).expect("open");
    log.append(entries(&batch)).expect("append");
    // Entries 2..=5 were applied, then lost by a crash before this replica synced them.
    log.save_applied(Some(log_id(Term(1), 5)), None, &[]).expect("save applied");
    let state = ReplicaState::open(RaftLogStore::new(log)).expect("opens");
    assert_eq!(state.high_watermark(), 3, "everything left is committed");
}

#[test]
fn a_proposal_that_was_not_sent_leaves_no_trace_in_the_producer_table() {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = PartitionRaftLog::open(dir.path(), LogConfig::default()).expect("open");
    let state = ReplicaState::open(RaftLogStore::new(log)).expect("state");
    let batch = producer_batch(2, 1_000, 10, kafka_protocol::records::Compression::None, (5, 0, 0));
    let headers = validate_produced_batches(&batch, 1 << 20).expect("valid");
    let gate = ProducerIdGate::unlimited();
    let limits = || ProducerLimits {
        per_partition: usize::MAX,
        gate: &gate,
        txn: crate::broker::txn_verification::TxnVerification::Off,
    };
    let check = || state.check(Term(1), &headers, &batch, 1_000, limits());
    assert!(matches!(check(), Ok(Checked::Propose(_))));
    // While it is in flight, its retry cannot be answered yet.
    let in_flight = check().expect_err("retry of an in-flight batch");
    assert_eq!(in_flight.code(), ResponseError::RequestTimedOut);
    state.unpropose(Term(1));
    // It was not sent: the batch is new again.
    assert!(matches!(check(), Ok(Checked::Propose(_))), "the abandoned proposal was forgotten");
}
