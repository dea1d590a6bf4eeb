//! ReplicaState without openraft: snapshots, recovery of the applied point, proposals
//! that were never sent.

use super::*;
use crate::broker::producer_state::ProducerIdGate;
use crate::log::test_util::producer_batch;
use crate::log::{LogConfig, validate_produced_batches};

fn open_with(dir: &std::path::Path, entries: Vec<super::super::Entry>) -> Arc<ReplicaState> {
    let mut log = PartitionRaftLog::open(dir, LogConfig::default()).expect("open");
    log.append(entries).expect("append");
    ReplicaState::open(RaftLogStore::new(log)).expect("state")
}

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

#[test]
fn a_snapshot_fast_forwards_a_replica_holding_its_entries_and_is_refused_by_one_lacking_them() {
    use super::super::log_store::log_id;
    let batch = producer_batch(2, 1_000, 10, kafka_protocol::records::Compression::None, (5, 0, 0));
    let headers = validate_produced_batches(&batch, 1 << 20).expect("valid");
    let (a, b, c) = (tempfile::tempdir().expect("a"), tempfile::tempdir().expect("b"), tempfile::tempdir().expect("c"));
    let source = open_with(a.path(), entries(&batch));
    let stored = source.log().expect("log").entry(1).expect("entry 1");
    let EntryPayload::Normal(AppendBatches(stored)) = stored.payload else { panic!("normal entry") };
    source.applied(&[&stored[..]], log_id(Term(1), 1), None, 3).expect("applied");
    let snapshot = source.build_snapshot().expect("snapshot");
    assert_eq!(snapshot.meta.last_log_id, Some(log_id(Term(1), 1)));

    let behind = open_with(b.path(), entries(&batch));
    assert_eq!(behind.high_watermark(), 0, "nothing applied yet");
    behind.install_snapshot(&snapshot.meta, snapshot.snapshot.into_inner()).expect("install");
    assert_eq!(behind.high_watermark(), 3);
    assert_eq!(behind.applied_state().expect("applied").0, Some(log_id(Term(1), 1)));
    // The producer state came with it: a retry is a duplicate of the original.
    let gate = ProducerIdGate::unlimited();
    let limits = ProducerLimits { per_partition: usize::MAX, gate: &gate };
    let retry = behind.check(Term(2), &headers, 1_000, limits).expect("checked");
    assert!(matches!(retry, Checked::Duplicate(Placed { base_offset: 1, end_offset: 3, .. })), "{retry:?}");

    let empty =
        ReplicaState::open(RaftLogStore::new(PartitionRaftLog::open(c.path(), LogConfig::default()).expect("open")))
            .expect("state");
    let snapshot = source.current_snapshot().expect("current").expect("built");
    let refused = empty.install_snapshot(&snapshot.meta, snapshot.snapshot.into_inner());
    assert!(matches!(refused, Err(PartitionError::Snapshot(SnapshotError::Missing(1)))), "{refused:?}");
    assert_eq!(empty.high_watermark(), 0);
}

#[test]
fn an_applied_point_past_the_logs_end_opens_at_the_log_end() {
    use super::super::log_store::log_id;
    let dir = tempfile::tempdir().expect("temp dir");
    let batch = producer_batch(2, 1_000, 10, kafka_protocol::records::Compression::None, (-1, -1, -1));
    let mut log = PartitionRaftLog::open(dir.path(), LogConfig::default()).expect("open");
    log.append(entries(&batch)).expect("append");
    // Entries 2..=5 were applied, then lost by a crash before this replica synced them.
    log.save_applied(Some(log_id(Term(1), 5)), None).expect("save applied");
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
    let limits = || ProducerLimits { per_partition: usize::MAX, gate: &gate };
    let check = || state.check(Term(1), &headers, 1_000, limits());
    assert!(matches!(check(), Ok(Checked::Propose(_))));
    // While it is in flight, its retry cannot be answered yet.
    let in_flight = check().expect_err("retry of an in-flight batch");
    assert_eq!(in_flight.code(), ResponseError::RequestTimedOut);
    state.unpropose(Term(1));
    // It was not sent: the batch is new again.
    assert!(matches!(check(), Ok(Checked::Propose(_))), "the abandoned proposal was forgotten");
}
