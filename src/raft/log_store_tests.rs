//! The raft log store against openraft's storage conformance suite, and Jet's own
//! properties: entries survive reopen, truncation, purge, term = leader epoch, raft's own
//! entries are control batches.

use std::collections::BTreeSet;

use openraft::testing::log::{StoreBuilder, Suite};
use openraft::{EntryPayload, Membership, StorageError};
use tempfile::TempDir;

use super::control::{RAFT_BLANK, RAFT_MEMBERSHIP};
use super::log_store::{PartitionRaftLog, RaftLogStore, log_id};
use super::test_state_machine::TestStateMachine;
use super::{AppendBatches, Entry, StoredMembership, Term, TypeConfig};
use crate::log::test_util::batch;
use crate::log::{BatchIter, Flusher, LogConfig};

/// Small segments so the suite's entries span several of them.
fn small_config() -> LogConfig {
    LogConfig { segment_bytes: 1024, index_interval_bytes: 200, ..LogConfig::default() }
}

/// A fresh temp dir per build.
struct Builder;

impl StoreBuilder<TypeConfig, RaftLogStore, TestStateMachine, TempDir> for Builder {
    async fn build(&self) -> Result<(TempDir, RaftLogStore, TestStateMachine), StorageError<TypeConfig>> {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = PartitionRaftLog::open(dir.path(), small_config()).expect("open raft log");
        Ok((dir, RaftLogStore::new(log), TestStateMachine::default()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openraft_storage_conformance_suite() {
    Suite::test_all(Builder).await.expect("openraft storage suite");
}

/// A fresh temp dir per build; appends made durable by a shared group-commit flusher.
struct FlusherBuilder(Flusher);

impl StoreBuilder<TypeConfig, RaftLogStore, TestStateMachine, TempDir> for FlusherBuilder {
    async fn build(&self) -> Result<(TempDir, RaftLogStore, TestStateMachine), StorageError<TypeConfig>> {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = PartitionRaftLog::open(dir.path(), small_config()).expect("open raft log");
        Ok((dir, RaftLogStore::with_flusher(log, self.0.clone()), TestStateMachine::default()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openraft_storage_conformance_suite_with_the_group_commit_flusher() {
    let flusher = Flusher::start();
    Suite::test_all(FlusherBuilder(flusher.clone())).await.expect("openraft storage suite");
    assert!(flusher.fsync_count() > 0, "appends were made durable by the flusher");
}

/// `IOFlushed` completes only after the flusher's fsync, for several partitions at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn io_flushed_completes_after_the_flushers_sync() {
    use openraft::storage::{IOFlushed, RaftLogStorage};
    use openraft::type_config::TypeConfigExt;
    let flusher = Flusher::start();
    let dirs: Vec<TempDir> = (0..3).map(|_| tempfile::tempdir().expect("temp dir")).collect();
    let mut waits = Vec::new();
    for dir in &dirs {
        let log = PartitionRaftLog::open(dir.path(), small_config()).expect("open raft log");
        let mut store = RaftLogStore::with_flusher(log, flusher.clone());
        let (tx, rx) = TypeConfig::oneshot();
        store.append([blank(1, 0), normal(1, 1, &[batch(2, 1_000)])], IOFlushed::signal(tx)).await.expect("append");
        waits.push(rx);
    }
    for rx in waits {
        let result = rx.await.expect("callback completed");
        assert!(result.is_ok(), "flushed without error: {result:?}");
        assert!(flusher.fsync_count() >= 1, "IOFlushed came after a flusher fsync");
    }
}

fn normal(term: u64, index: u64, batches: &[Vec<u8>]) -> Entry {
    let bytes: Vec<u8> = batches.concat();
    Entry { log_id: log_id(Term(term), index), payload: EntryPayload::Normal(AppendBatches(bytes.into())) }
}

fn blank(term: u64, index: u64) -> Entry {
    Entry { log_id: log_id(Term(term), index), payload: EntryPayload::Blank }
}

fn membership(term: u64, index: u64) -> Entry {
    let m = Membership::new_with_defaults(vec![BTreeSet::from([1u64, 2, 3])], []);
    Entry { log_id: log_id(Term(term), index), payload: EntryPayload::Membership(m) }
}

/// Blank, membership, then normal entries of one and of several batches, enough to roll
/// several 1 KiB segments.
fn fill(log: &mut PartitionRaftLog) -> Vec<(u64, u64, usize)> {
    log.append([blank(1, 0), membership(1, 1)]).expect("append raft entries");
    let mut shape = vec![(0, 1, 1), (1, 1, 1)];
    for i in 2..30u64 {
        let n = if i % 3 == 0 { 3 } else { 1 };
        let batches: Vec<Vec<u8>> = (0..n).map(|_| batch(2, 1_000)).collect();
        log.append([normal(1 + i / 10, i, &batches)]).expect("append normal entry");
        shape.push((i, 1 + i / 10, n));
    }
    shape
}

/// Every expected entry reads back with its term and batch count.
fn check(log: &PartitionRaftLog, shape: &[(u64, u64, usize)]) {
    for &(index, term, n) in shape {
        let e = log.entry(index).expect("entry");
        assert_eq!(e.log_id, log_id(Term(term), index));
        match &e.payload {
            EntryPayload::Normal(AppendBatches(b)) => assert_eq!(BatchIter::new(b).count(), n, "entry {index}"),
            EntryPayload::Blank => assert_eq!(index, 0),
            EntryPayload::Membership(_) => assert_eq!(index, 1),
        }
    }
}

#[test]
fn entries_survive_reopen_across_segments() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut log = PartitionRaftLog::open(dir.path(), small_config()).expect("open");
    let shape = fill(&mut log);
    log.save_vote(&super::Vote::new(Term(3), 2)).expect("vote");
    assert!(log.log().raft_index().expect("raft index").segments().len() > 2, "several segments");
    check(&log, &shape);
    drop(log);
    let log = PartitionRaftLog::open(dir.path(), small_config()).expect("reopen");
    check(&log, &shape);
    assert_eq!(log.log_state().last_log_id, Some(log_id(Term(3), 29)));
    assert_eq!(log.state().vote, Some(super::Vote::new(Term(3), 2)));
    // The groups (entries of 3 batches) came back from the sidecars, not a guess.
    assert_eq!(log.entries(..).expect("entries").len(), 30);
}

#[test]
fn truncate_then_append_continues_from_the_cut() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut log = PartitionRaftLog::open(dir.path(), small_config()).expect("open");
    let mut shape = fill(&mut log);
    let cut_offset = log.log().read_entry(12).expect("read").expect("entry 12").first_offset;
    log.truncate_after(Some(log_id(Term(2), 11))).expect("truncate");
    assert_eq!(log.log().log_end_offset(), cut_offset);
    assert_eq!(log.log_state().last_log_id, Some(log_id(Term(2), 11)));
    assert!(log.log().read_entry(12).expect("read").is_none());
    log.append([normal(5, 12, &[batch(1, 2_000), batch(4, 2_000)]), blank(5, 13)]).expect("append after cut");
    shape.truncate(12);
    shape.extend([(12, 5, 2), (13, 5, 1)]);
    drop(log);
    let log = PartitionRaftLog::open(dir.path(), small_config()).expect("reopen");
    let normal_at_13 = matches!(log.entry(13).expect("entry 13").payload, EntryPayload::Blank);
    assert!(normal_at_13, "entry 13 is the new blank");
    check(&log, &shape[..13]);
    assert_eq!(log.log().read_entry(12).expect("read").expect("entry").first_offset, cut_offset);
    assert_eq!(log.log_state().last_log_id, Some(log_id(Term(5), 13)));
}

#[test]
fn purge_keeps_the_data_and_survives_reopen() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut log = PartitionRaftLog::open(dir.path(), small_config()).expect("open");
    let shape = fill(&mut log);
    let end = log.log().log_end_offset();
    let data = log.log().read(0, 1 << 20, end, true).expect("read");
    log.purge(log_id(Term(2), 15)).expect("purge");
    // Only a log-start entry moves the log start; the data below raft's log stays.
    assert_eq!(log.log().log_start_offset(), 0);
    assert!(log.entry(15).is_err());
    assert_eq!(log.entries(..).expect("entries").len(), 14);
    drop(log);
    let mut log = PartitionRaftLog::open(dir.path(), small_config()).expect("reopen");
    assert_eq!(log.log_state().last_purged_log_id, Some(log_id(Term(2), 15)));
    check(&log, &shape[16..]);
    // Purging past the end leaves an empty log that continues after the purged id.
    log.purge(log_id(Term(4), 40)).expect("purge all");
    log.append([blank(4, 41)]).expect("append after purge");
    drop(log);
    let log = PartitionRaftLog::open(dir.path(), small_config()).expect("reopen");
    assert_eq!(log.log_state().last_log_id, Some(log_id(Term(4), 41)));
    assert_eq!(log.entries(..).expect("entries").len(), 1);
    assert_eq!(log.log().log_start_offset(), 0);
    assert_eq!(log.log().read(0, 1 << 20, end, true).expect("read"), data, "the data below raft's log");
}

#[test]
fn term_is_the_batches_leader_epoch() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut log = PartitionRaftLog::open(dir.path(), small_config()).expect("open");
    log.append([blank(7, 0), normal(7, 1, &[batch(3, 1_000)]), normal(9, 2, &[batch(1, 1_000)])]).expect("append");
    let bytes = log.log().read(0, usize::MAX, i64::MAX, true).expect("read");
    let epochs: Vec<i32> = BatchIter::new(&bytes).map(|b| b.expect("batch").0.partition_leader_epoch).collect();
    assert_eq!(epochs, vec![7, 7, 9]);
    assert_eq!(Term(9).to_leader_epoch(), Ok(9));
    assert_eq!(Term::from_leader_epoch(9), Some(Term(9)));
    assert_eq!(Term::from_leader_epoch(-1), None);
    assert!(Term(u64::from(u32::MAX)).to_leader_epoch().is_err());
    // A term Kafka cannot carry is refused, not wrapped.
    assert!(log.append([blank(1 << 31, 3)]).is_err());
}

#[test]
fn raft_entries_are_control_batches_a_fetch_skips() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut log = PartitionRaftLog::open(dir.path(), small_config()).expect("open");
    log.append([blank(1, 0), membership(1, 1), normal(1, 2, &[batch(2, 1_000)])]).expect("append");
    let bytes = log.log().read(0, usize::MAX, i64::MAX, true).expect("fetch read");
    let mut kinds = Vec::new();
    let mut buf = bytes.clone();
    while !buf.is_empty() {
        let set = kafka_protocol::records::RecordBatchDecoder::decode(&mut buf).expect("decode");
        for r in &set.records {
            let key = r.key.clone().unwrap_or_default();
            let control_type = (r.control && key.len() >= 4).then(|| i16::from_be_bytes([key[2], key[3]]));
            kinds.push((r.offset, r.control, control_type));
        }
    }
    // A consumer returns only records of non-control batches: offsets 2 and 3.
    assert_eq!(
        kinds,
        vec![(0, true, Some(RAFT_BLANK)), (1, true, Some(RAFT_MEMBERSHIP)), (2, false, None), (3, false, None)]
    );
    let consumer_visible: Vec<i64> = kinds.iter().filter(|k| !k.1).map(|k| k.0).collect();
    assert_eq!(consumer_visible, vec![2, 3]);
}

#[test]
fn vote_committed_applied_point_and_membership_survive_reopen() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut log = PartitionRaftLog::open(dir.path(), small_config()).expect("open");
    log.append([blank(2, 0), membership(2, 1)]).expect("append");
    let vote = super::Vote::new(Term(2), 1);
    let stored = StoredMembership::new(
        Some(log_id(Term(2), 1)),
        Membership::new_with_defaults(vec![BTreeSet::from([1u64, 2, 3])], []),
    );
    log.save_vote(&vote).expect("vote");
    log.save_committed(Some(log_id(Term(2), 1))).expect("committed");
    log.save_applied(Some(log_id(Term(2), 1)), Some(stored.clone()), &[]).expect("applied");
    drop(log);
    let log = PartitionRaftLog::open(dir.path(), small_config()).expect("reopen");
    let state = log.state();
    assert_eq!(state.vote, Some(vote));
    assert_eq!(state.committed, Some(log_id(Term(2), 1)));
    assert_eq!(state.applied, Some(log_id(Term(2), 1)));
    assert_eq!(state.membership, Some(stored));
    // A damaged state file is an error, not an empty state (which would forget the vote).
    std::fs::write(dir.path().join(super::log_store::RAFT_STATE_FILE), b"{\"vote\":").expect("damage");
    drop(log);
    assert!(PartitionRaftLog::open(dir.path(), small_config()).is_err());
}

#[test]
fn a_restart_after_a_snapshot_that_a_crash_interrupted_is_redone_at_open() {
    use super::log_store::{RAFT_STATE_FILE, RaftState};
    let dir = tempfile::tempdir().expect("temp dir");
    let mut log = PartitionRaftLog::open(dir.path(), small_config()).expect("open");
    log.append([blank(1, 0), normal(1, 1, &[batch(2, 1_000)]), normal(1, 2, &[batch(2, 1_000)])]).expect("append");
    drop(log);
    // The state write of an install went through, the files were not replaced yet.
    let path = dir.path().join(RAFT_STATE_FILE);
    let state = RaftState {
        last_purged: Some(log_id(Term(3), 40)),
        applied: Some(log_id(Term(3), 40)),
        restarting: Some((40, 1_000)),
        ..RaftState::default()
    };
    std::fs::write(&path, serde_json::to_vec(&state).expect("json")).expect("write");
    let mut log = PartitionRaftLog::open(dir.path(), small_config()).expect("reopen");
    assert_eq!((log.log().log_start_offset(), log.log().log_end_offset()), (1_000, 1_000));
    assert_eq!(log.log_state().last_log_id, Some(log_id(Term(3), 40)));
    assert_eq!(log.state().restarting, None, "done, and recorded as done");
    log.append([blank(4, 41)]).expect("the next entry follows the snapshot");
    assert_eq!(log.log().read_entry(41).expect("read").expect("entry").first_offset, 1_000);
    drop(log);
    let log = PartitionRaftLog::open(dir.path(), small_config()).expect("reopen again");
    assert_eq!(log.log_state().last_log_id, Some(log_id(Term(4), 41)));
}
