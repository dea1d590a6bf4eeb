//! Tests of the leader-epoch history: Kafka's semantics on the bare type, and the
//! checkpoint kept by a `PartitionLog` across appends, truncation, retention, crashes and
//! damaged checkpoint files.

use std::path::Path;

use super::epoch_history::{EpochEntry, EpochHistory, LEADER_EPOCH_CHECKPOINT_FILE};
use super::recovery::RECOVERY_POINT_FILE;
use super::test_util::batch;
use super::{LogConfig, PartitionLog};

fn e(epoch: i32, start_offset: i64) -> EpochEntry {
    EpochEntry { epoch, start_offset }
}

/// 0@0, 2@10, 5@25.
fn three_epochs() -> EpochHistory {
    let mut h = EpochHistory::default();
    for (epoch, start) in [(0, 0), (0, 4), (2, 10), (2, 12), (1, 20), (5, 25)] {
        h.observe_batch(epoch, start);
    }
    h
}

#[test]
fn batches_add_an_entry_only_when_their_epoch_is_newer() {
    let h = three_epochs();
    assert_eq!(h.entries(), &[e(0, 0), e(2, 10), e(5, 25)]);
    let mut unset = EpochHistory::default();
    unset.observe_batch(-1, 0);
    assert!(unset.entries().is_empty(), "batches without an epoch add nothing");
}

#[test]
fn end_offsets_follow_kafka_for_past_current_unknown_and_future_epochs() {
    let h = three_epochs();
    let log_end = 40;
    assert_eq!(h.end_offset_for(0, log_end), (0, 10), "past epoch: start of the next one");
    assert_eq!(h.end_offset_for(1, log_end), (0, 10), "epoch never led here: the one before it");
    assert_eq!(h.end_offset_for(2, log_end), (2, 25));
    assert_eq!(h.end_offset_for(4, log_end), (2, 25));
    assert_eq!(h.end_offset_for(5, log_end), (5, 40), "latest epoch: the log end");
    assert_eq!(h.end_offset_for(6, log_end), (-1, -1), "future epoch");
    assert_eq!(h.end_offset_for(-1, log_end), (-1, -1), "undefined epoch");
    assert_eq!(EpochHistory::default().end_offset_for(0, log_end), (-1, -1), "empty history");
    let mut trimmed = three_epochs();
    trimmed.truncate_from_start(12);
    assert_eq!(trimmed.end_offset_for(0, log_end), (0, 12), "older than every entry: requested epoch, first start");
}

#[test]
fn assign_drops_entries_that_conflict_with_a_new_epoch() {
    let mut h = three_epochs();
    assert!(!h.assign(5, 30), "same epoch starting later changes nothing");
    assert!(h.assign(3, 20), "a follower's divergent history is replaced");
    assert_eq!(h.entries(), &[e(0, 0), e(2, 10), e(3, 20)]);
    assert!(!h.assign(-1, 50));
}

#[test]
fn truncation_from_end_and_start() {
    let mut h = three_epochs();
    h.truncate_from_end(26);
    assert_eq!(h.entries(), &[e(0, 0), e(2, 10), e(5, 25)]);
    h.truncate_from_end(25);
    assert_eq!(h.entries(), &[e(0, 0), e(2, 10)], "an epoch starting at the new end goes");
    let mut h = three_epochs();
    h.truncate_from_start(0);
    assert_eq!(h.entries(), &[e(0, 0), e(2, 10), e(5, 25)]);
    h.truncate_from_start(12);
    assert_eq!(h.entries(), &[e(2, 12), e(5, 25)], "the entry covering the new start moves to it");
    h.truncate_from_start(25);
    assert_eq!(h.entries(), &[e(5, 25)]);
    h.truncate_from_start(30);
    assert_eq!(h.entries(), &[e(5, 30)]);
}

#[test]
fn checkpoint_text_is_kafkas_and_damaged_text_is_refused() {
    let h = three_epochs();
    assert_eq!(h.render(), "0\n3\n0 0\n2 10\n5 25\n");
    assert_eq!(EpochHistory::parse(&h.render()).expect("parse").entries(), h.entries());
    assert_eq!(EpochHistory::parse("0\n0\n").expect("empty").entries(), &[]);
    for bad in [
        "",
        "0\n",
        "1\n1\n0 0\n",
        "0\n3\n0 0\n2 10\n",
        "0\n3\n0 0\n2 10\n5 2",
        "0\n2\n0 0\n2 x\n",
        "0\n2\n2 0\n1 10\n",
        "0\n2\n0 10\n1 10\n",
        "0\n1\n0 0\n1 10\n",
        "0\n1\n-1 0\n",
        "0\n1\n0 0 0\n",
    ] {
        assert!(EpochHistory::parse(bad).is_err(), "{bad:?} was accepted");
    }
}

// --- A PartitionLog keeping the checkpoint ---

/// Segments of four two-record batches; an index entry after every batch.
fn small_segments() -> LogConfig {
    let one = batch(2, 0).len() as u64;
    LogConfig { segment_bytes: one * 4, index_interval_bytes: 1, ..LogConfig::default() }
}

/// Appends one two-record batch per epoch in `epochs`.
fn append_epochs(log: &mut PartitionLog, epochs: &[i32]) {
    for &epoch in epochs {
        log.append(&batch(2, 1_000), epoch, 1_000).expect("append");
    }
}

fn checkpoint_on_disk(dir: &Path) -> Option<String> {
    std::fs::read_to_string(dir.join(LEADER_EPOCH_CHECKPOINT_FILE)).ok()
}

fn recovery_point(dir: &Path) -> i64 {
    std::fs::read_to_string(dir.join(RECOVERY_POINT_FILE)).expect("recovery point").trim().parse().expect("offset")
}

/// Epochs 0, 0, 3, 3, 3, 7, 7, 9 over offsets 0..16 (two per batch); segments at 0, 8.
const EPOCHS: [i32; 8] = [0, 0, 3, 3, 3, 7, 7, 9];
const HISTORY: [EpochEntry; 4] = [
    EpochEntry { epoch: 0, start_offset: 0 },
    EpochEntry { epoch: 3, start_offset: 4 },
    EpochEntry { epoch: 7, start_offset: 10 },
    EpochEntry { epoch: 9, start_offset: 14 },
];

#[test]
fn history_follows_appends_and_survives_close_and_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = PartitionLog::open(dir.path(), small_segments()).expect("open");
    append_epochs(&mut log, &EPOCHS);
    assert_eq!(log.epoch_history().entries(), &HISTORY);
    assert_eq!(log.end_offset_for_epoch(3), Some((3, 10)));
    assert_eq!(log.end_offset_for_epoch(9), Some((9, 16)));
    log.close().expect("close");
    assert_eq!(checkpoint_on_disk(dir.path()).as_deref(), Some("0\n4\n0 0\n3 4\n7 10\n9 14\n"));
    let log = PartitionLog::open(dir.path(), small_segments()).expect("reopen");
    assert!(log.recovery_report().clean);
    assert_eq!(log.epoch_history().entries(), &HISTORY);
}

#[test]
fn a_roll_makes_the_history_durable_before_the_recovery_point_passes_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = PartitionLog::open(dir.path(), small_segments()).expect("open");
    append_epochs(&mut log, &EPOCHS);
    // Inline seals (no sealer): segment 0 is sealed, the recovery point is 8.
    assert_eq!(recovery_point(dir.path()), 8);
    let on_disk = EpochHistory::parse(&checkpoint_on_disk(dir.path()).expect("checkpoint")).expect("parse");
    let below: Vec<EpochEntry> = HISTORY.iter().copied().filter(|e| e.start_offset < 8).collect();
    assert_eq!(on_disk.entries(), &below[..], "every epoch starting below the recovery point is on disk");
    drop(log); // crash: the active segment's epochs come back from its batches
    let log = PartitionLog::open(dir.path(), small_segments()).expect("reopen");
    assert!(!log.recovery_report().clean);
    assert_eq!(log.epoch_history().entries(), &HISTORY);
    assert_eq!(checkpoint_on_disk(dir.path()).as_deref(), Some("0\n4\n0 0\n3 4\n7 10\n9 14\n"));
}

#[test]
fn entries_past_data_lost_in_a_crash_are_cut_on_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = PartitionLog::open(dir.path(), small_segments()).expect("open");
    append_epochs(&mut log, &EPOCHS);
    log.close().expect("close");
    // The checkpoint went out, then the tail it describes was lost (its batches never
    // reached the disk): the active segment ends at 12, inside epoch 7.
    let mut log = PartitionLog::open(dir.path(), small_segments()).expect("reopen");
    log.truncate_to(12).expect("truncate");
    drop(log);
    std::fs::write(dir.path().join(LEADER_EPOCH_CHECKPOINT_FILE), "0\n4\n0 0\n3 4\n7 10\n9 14\n").expect("stale");
    std::fs::write(dir.path().join(RECOVERY_POINT_FILE), "8\n").expect("recovery point");
    let log = PartitionLog::open(dir.path(), small_segments()).expect("reopen");
    assert_eq!(log.log_end_offset(), 12);
    assert_eq!(log.epoch_history().entries(), &HISTORY[..3]);
    assert_eq!(log.end_offset_for_epoch(9), None, "epoch 9 is gone with its data");
}

#[test]
fn truncating_the_end_cuts_the_history_and_its_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = PartitionLog::open(dir.path(), small_segments()).expect("open");
    append_epochs(&mut log, &EPOCHS);
    log.truncate_to(10).expect("truncate");
    assert_eq!(log.epoch_history().entries(), &HISTORY[..2]);
    assert_eq!(checkpoint_on_disk(dir.path()).as_deref(), Some("0\n2\n0 0\n3 4\n"));
    assert_eq!(log.end_offset_for_epoch(3), Some((3, 10)), "epoch 3 is the latest again");
    // A new leader's epoch after the truncation.
    append_epochs(&mut log, &[8]);
    assert_eq!(log.epoch_history().latest(), Some(e(8, 10)));
    // Below the log start: everything goes.
    log.advance_log_start(6).expect("delete records");
    log.truncate_to(2).expect("truncate below start");
    assert!(log.epoch_history().entries().is_empty());
    assert_eq!(checkpoint_on_disk(dir.path()).as_deref(), Some("0\n0\n"));
}

#[test]
fn moving_the_log_start_keeps_the_entry_covering_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = PartitionLog::open(dir.path(), small_segments()).expect("open");
    append_epochs(&mut log, &EPOCHS);
    log.advance_log_start(5).expect("delete records");
    assert_eq!(log.epoch_history().entries(), &[e(3, 5), e(7, 10), e(9, 14)]);
    assert_eq!(log.end_offset_for_epoch(0), Some((0, 5)), "epochs before the start end at the start");
    // Retention deletes segment 0: the log starts at 8.
    assert_eq!(log.apply_retention(i64::MAX, 16).expect("retention"), 1);
    assert_eq!(log.epoch_history().entries(), &[e(3, 8), e(7, 10), e(9, 14)]);
    drop(log); // crash before any checkpoint write: open cuts the older file's entries
    let log = PartitionLog::open(dir.path(), small_segments()).expect("reopen");
    assert_eq!(log.log_start_offset(), 8);
    assert_eq!(log.epoch_history().entries(), &[e(3, 8), e(7, 10), e(9, 14)]);
}

/// Reopens after a clean close with the checkpoint replaced by `contents` (`None`:
/// deleted) and checks the history is rebuilt from the batches.
fn rebuilt_after(contents: Option<&[u8]>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = PartitionLog::open(dir.path(), small_segments()).expect("open");
    append_epochs(&mut log, &EPOCHS);
    log.close().expect("close");
    let path = dir.path().join(LEADER_EPOCH_CHECKPOINT_FILE);
    match contents {
        Some(bytes) => std::fs::write(&path, bytes).expect("damage checkpoint"),
        None => std::fs::remove_file(&path).expect("remove checkpoint"),
    }
    let log = PartitionLog::open(dir.path(), small_segments()).expect("reopen");
    assert!(log.recovery_report().clean, "the segments are trusted; only the checkpoint is bad");
    assert_eq!(log.epoch_history().entries(), &HISTORY, "{contents:?}");
    assert_eq!(checkpoint_on_disk(dir.path()).as_deref(), Some("0\n4\n0 0\n3 4\n7 10\n9 14\n"));
}

#[test]
fn a_missing_partial_or_garbage_checkpoint_is_rebuilt_from_the_batches() {
    rebuilt_after(None);
    rebuilt_after(Some(b""));
    rebuilt_after(Some(b"0\n4\n0 0\n3 4\n7 1"));
    rebuilt_after(Some(b"\x00\x00\x00\x00\x00\x00"));
    rebuilt_after(Some(&[0xff, 0xfe, b'\n']));
}

#[test]
fn a_checkpoint_disagreeing_with_the_batches_is_rebuilt() {
    // Well-formed but stale: it misses epochs 7 and 9, whose batches recovery reads.
    rebuilt_after(Some(b"0\n2\n0 0\n3 4\n"));
    // Missing epoch 3: the last batch of segment 0 (at 6) says otherwise.
    rebuilt_after(Some(b"0\n3\n0 0\n7 10\n9 14\n"));
    // Epoch 9 from 8 on: the first batch of segment 8 (epoch 3) says otherwise.
    rebuilt_after(Some(b"0\n3\n0 0\n3 4\n9 8\n"));
}

#[test]
fn a_crash_while_writing_the_checkpoint_leaves_the_old_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = PartitionLog::open(dir.path(), small_segments()).expect("open");
    append_epochs(&mut log, &EPOCHS);
    log.close().expect("close");
    // The crash hit between writing the tmp file and the rename.
    let tmp = dir.path().join(format!("{LEADER_EPOCH_CHECKPOINT_FILE}.tmp"));
    std::fs::write(&tmp, "0\n9\n0 0\n3 4\n7").expect("partial tmp");
    let log = PartitionLog::open(dir.path(), small_segments()).expect("reopen");
    assert!(!tmp.exists(), "the leftover is removed");
    assert_eq!(log.epoch_history().entries(), &HISTORY);
}

#[test]
fn a_leader_epoch_is_assigned_at_the_log_end_and_only_forward() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = PartitionLog::open(dir.path(), small_segments()).expect("open");
    log.assign_leader_epoch(0);
    assert_eq!(log.end_offset_for_epoch(0), Some((0, 0)), "an empty log's leader answers for its epoch");
    append_epochs(&mut log, &[0, 4]);
    log.assign_leader_epoch(2);
    assert_eq!(log.epoch_history().entries(), &[e(0, 0), e(4, 2)], "an older epoch is not assigned");
    log.assign_leader_epoch(6);
    assert_eq!(log.epoch_history().latest(), Some(e(6, 4)));
    append_epochs(&mut log, &[6]);
    assert_eq!(log.epoch_history().latest(), Some(e(6, 4)));
}

#[test]
fn seals_on_the_sealer_thread_write_the_history_in_roll_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (gate, sealer) = super::test_util::SealGate::closed();
    let mut log = PartitionLog::open(dir.path(), small_segments()).expect("open");
    log.set_sealer(sealer);
    // Segments [0, 8), [8, 16), [16, 18): two rolls, the first seal held at the gate.
    append_epochs(&mut log, &[0, 0, 3, 3, 3, 7, 7, 9, 11]);
    gate.wait_arrived(0);
    assert_eq!(recovery_point(dir.path()), 0);
    assert_eq!(checkpoint_on_disk(dir.path()), None, "nothing written before the seal ran");
    gate.open();
    log.wait_for_seals().expect("seals");
    assert_eq!(recovery_point(dir.path()), 16);
    assert_eq!(checkpoint_on_disk(dir.path()).as_deref(), Some("0\n4\n0 0\n3 4\n7 10\n9 14\n"));
    drop(log); // crash: epoch 11, in the active segment, comes back from its batch
    let log = PartitionLog::open(dir.path(), small_segments()).expect("reopen");
    assert_eq!(log.epoch_history().latest(), Some(e(11, 16)));
    assert_eq!(log.epoch_history().entries().len(), 5);
}

#[test]
fn a_crash_while_a_seal_is_held_loses_no_epoch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (gate, sealer) = super::test_util::SealGate::closed();
    let mut log = PartitionLog::open(dir.path(), small_segments()).expect("open");
    log.set_sealer(sealer);
    append_epochs(&mut log, &EPOCHS);
    gate.wait_arrived(0);
    drop(log); // nothing vouches for segment 0 yet: both segments are re-read
    let log = PartitionLog::open(dir.path(), small_segments()).expect("reopen");
    assert_eq!(log.recovery_report().recovery_point, 0);
    assert_eq!(log.epoch_history().entries(), &HISTORY);
    drop(log);
    gate.open();
}
