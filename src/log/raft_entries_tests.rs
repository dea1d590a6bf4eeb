//! The raft index as the partition log keeps it: sidecars trusted only when a seal wrote
//! them, refused when damaged.

use super::raft_index::SegmentEntries;
use super::recovery::{RECOVERY_POINT_FILE, write_durably};
use super::test_util::batch;
use super::{LogConfig, LogError, PartitionLog};

fn config() -> LogConfig {
    LogConfig { segment_bytes: 1024, index_interval_bytes: 200, ..LogConfig::default() }
}

/// Appends 24 entries (every third of 3 batches) over several segments; returns each
/// entry's (raft index, first offset, last offset).
fn fill(log: &mut PartitionLog) -> Vec<(u64, i64, i64)> {
    let mut out = Vec::new();
    for i in 0..24 {
        let n = if i % 3 == 1 { 3 } else { 1 };
        let bytes: Vec<u8> = (0..n).flat_map(|_| batch(2, 1_000)).collect();
        let (info, index) = log.append_entry(&bytes, 1, 1_000).expect("append entry");
        out.push((index, info.base_offset, info.last_offset));
    }
    out
}

/// Each entry's (raft index, first offset, last offset).
type Entries = Vec<(u64, i64, i64)>;

/// A raft log in `dir` holding [`fill`]'s entries over several segments: the log, the
/// entries, and each segment's (base offset, next offset).
fn filled_raft_log(dir: &std::path::Path) -> (PartitionLog, Entries, Vec<(i64, i64)>) {
    let mut log = PartitionLog::open_raft(dir, config()).expect("open");
    log.open_raft_index(0, i64::MIN).expect("raft index");
    let expected = fill(&mut log);
    let segs: Vec<(i64, i64)> = log.segments().iter().map(|s| (s.base_offset, s.next_offset)).collect();
    assert!(segs.len() > 3, "several segments: {segs:?}");
    (log, expected, segs)
}

fn check(log: &PartitionLog, expected: &[(u64, i64, i64)]) {
    for &(index, first, last) in expected {
        let e = log.read_entry(index).expect("read").unwrap_or_else(|| panic!("entry {index} missing"));
        assert_eq!((e.first_offset, e.last_offset), (first, last), "entry {index}");
    }
}

fn sidecar_path(dir: &std::path::Path, base: i64) -> std::path::PathBuf {
    dir.join(format!("{base:020}.raftindex"))
}

fn working_path(dir: &std::path::Path, base: i64) -> std::path::PathBuf {
    dir.join(format!("{base:020}.raftgroups"))
}

#[test]
fn sidecar_of_a_segment_whose_seal_did_not_run_is_rebuilt_not_trusted() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut log = PartitionLog::open(dir.path(), config()).expect("open");
    log.open_raft_index(0, i64::MIN).expect("raft index");
    let expected = fill(&mut log);
    let first_seg = log.raft_index().expect("index").segments()[0].clone();
    assert!(log.raft_index().expect("index").segments().len() > 2, "several segments");
    drop(log);
    // A crash after the roll, before the seal: the recovery point is still at 0 and the
    // first segment's sidecar is what the append path last wrote (its first entry and
    // groups, not its final entry count).
    let mut stale = SegmentEntries::new(first_seg.segment_base, first_seg.first_index);
    stale.points = first_seg.points[..1].to_vec();
    stale.groups = first_seg.groups.clone();
    stale.next_index = stale.groups.keys().last().map_or(stale.first_index, |i| i + 1).max(stale.first_index + 1);
    assert!(stale.next_index < first_seg.next_index, "the test's sidecar is stale");
    std::fs::remove_file(sidecar_path(dir.path(), first_seg.segment_base)).expect("no final sidecar");
    std::fs::write(working_path(dir.path(), first_seg.segment_base), stale.encode()).expect("write stale sidecar");
    write_durably(dir.path(), RECOVERY_POINT_FILE, "0\n").expect("recovery point");
    let mut log = PartitionLog::open(dir.path(), config()).expect("reopen");
    log.open_raft_index(0, i64::MIN).expect("raft index");
    check(&log, &expected);
    assert_eq!(log.raft_index().expect("index").next_index(), 24);
    // Open wrote the rebuilt segment's final sidecar.
    let bytes = std::fs::read(sidecar_path(dir.path(), first_seg.segment_base)).expect("final sidecar");
    assert_eq!(SegmentEntries::decode(&bytes).expect("decode").next_index, first_seg.next_index);
}

#[test]
fn a_damaged_sidecar_of_a_segment_with_entries_refuses_to_open() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut log = PartitionLog::open(dir.path(), config()).expect("open");
    log.open_raft_index(0, i64::MIN).expect("raft index");
    let expected = fill(&mut log);
    log.close().expect("close");
    drop(log);
    let mut log = PartitionLog::open(dir.path(), config()).expect("reopen");
    log.open_raft_index(0, i64::MIN).expect("raft index");
    check(&log, &expected);
    drop(log);
    let path = sidecar_path(dir.path(), 0);
    let mut bytes = std::fs::read(&path).expect("sidecar");
    bytes[12] ^= 0x40;
    std::fs::write(&path, bytes).expect("damage sidecar");
    // The working sidecar still holds the segment's groups: rebuilt from it.
    let mut log = PartitionLog::open(dir.path(), config()).expect("reopen");
    log.open_raft_index(0, i64::MIN).expect("raft index from the working sidecar");
    check(&log, &expected);
    drop(log);
    std::fs::write(&path, b"damaged").expect("damage sidecar");
    std::fs::remove_file(working_path(dir.path(), 0)).expect("remove working sidecar");
    let mut log = PartitionLog::open(dir.path(), config()).expect("reopen");
    assert!(matches!(log.open_raft_index(0, i64::MIN), Err(LogError::CorruptMetadata { .. })));
}

#[test]
fn truncation_and_purge_keep_the_translation_and_the_files_in_step() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut log = PartitionLog::open(dir.path(), config()).expect("open");
    log.open_raft_index(0, i64::MIN).expect("raft index");
    let mut expected = fill(&mut log);
    log.truncate_entries_from(10).expect("truncate");
    assert_eq!(log.log_end_offset(), expected[10].1);
    expected.truncate(10);
    expected.extend(fill(&mut log).into_iter().take(3));
    assert_eq!(expected[10].0, 10, "new entries continue at the cut");
    log.purge_entries_through(4).expect("purge");
    // Purged from raft's log; the data stays (only a log-start entry moves the start).
    assert_eq!(log.log_start_offset(), 0);
    assert!(log.read_entry(4).expect("read").is_none());
    drop(log);
    let mut log = PartitionLog::open(dir.path(), config()).expect("reopen");
    log.open_raft_index(5, expected[4].2 + 1).expect("raft index");
    check(&log, &expected[5..]);
    assert!(log.read_entry(4).expect("read").is_none());
    // No sidecar outlives its segment, and every segment holding entries has one (the
    // segments below the purged entries' end hold data only).
    let data_only: std::collections::BTreeSet<String> = log
        .segments()
        .iter()
        .filter(|s| s.next_offset <= expected[4].2 + 1 && s.base_offset < log.log_end_offset())
        .map(|s| format!("{:020}", s.base_offset))
        .collect();
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .expect("list")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let stem = |n: &String| n.split('.').next().map(str::to_owned);
    let logs: std::collections::BTreeSet<_> = names.iter().filter(|n| n.ends_with(".log")).filter_map(stem).collect();
    let sidecars: std::collections::BTreeSet<_> =
        names.iter().filter(|n| n.ends_with(".raftindex") || n.ends_with(".raftgroups")).filter_map(stem).collect();
    assert_eq!(sidecars, logs.difference(&data_only).cloned().collect());
}

#[test]
fn a_group_whose_batches_were_lost_does_not_number_a_later_entry() {
    let dir = tempfile::tempdir().expect("temp dir");
    let big = LogConfig { segment_bytes: 1 << 20, ..config() };
    let mut log = PartitionLog::open(dir.path(), big.clone()).expect("open");
    log.open_raft_index(0, i64::MIN).expect("raft index");
    log.append_entry(&batch(1, 1_000), 1, 1_000).expect("entry 0");
    log.flush().expect("flush");
    let durable = std::fs::metadata(dir.path().join(format!("{:020}.log", 0))).expect("size").len();
    // Entry 1 of three batches: its group reaches the sidecar, its batches are lost (a
    // crash before the fsync, simulated by cutting the file).
    let three: Vec<u8> = (0..3).flat_map(|_| batch(1, 1_000)).collect();
    log.append_entry(&three, 1, 1_000).expect("entry 1");
    drop(log);
    let file = std::fs::OpenOptions::new().write(true).open(dir.path().join(format!("{:020}.log", 0))).expect("log");
    file.set_len(durable).expect("cut the unsynced tail");
    let mut log = PartitionLog::open(dir.path(), big.clone()).expect("reopen");
    log.open_raft_index(0, i64::MIN).expect("raft index");
    assert_eq!(log.raft_index().expect("index").next_index(), 1);
    // A new entry 1 of one batch, then one more: after another reopen both are single.
    log.append_entry(&batch(1, 2_000), 2, 2_000).expect("new entry 1");
    log.append_entry(&batch(1, 2_000), 2, 2_000).expect("entry 2");
    drop(log);
    let mut log = PartitionLog::open(dir.path(), big).expect("reopen");
    log.open_raft_index(0, i64::MIN).expect("raft index");
    assert_eq!(log.raft_index().expect("index").next_index(), 3);
    for (index, offset) in [(0u64, 0i64), (1, 1), (2, 2)] {
        let e = log.read_entry(index).expect("read").expect("entry");
        assert_eq!((e.first_offset, e.last_offset), (offset, offset), "entry {index}");
    }
}

#[test]
fn recovery_from_a_failed_fsync_cuts_the_raft_index_with_the_log() {
    use std::sync::atomic::Ordering;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut log = PartitionLog::open(dir.path(), config()).expect("open");
    log.open_raft_index(0, i64::MIN).expect("raft index");
    let expected = fill(&mut log);
    // An fsync failed; only the first 15 entries are known durable.
    log.sync_target().failed.store(true, Ordering::SeqCst);
    let durable_end = expected[15].1;
    log.recover_from_failed_sync(durable_end).expect("recover");
    assert_eq!(log.log_end_offset(), durable_end);
    assert_eq!(log.raft_index().expect("index").next_index(), 15);
    check(&log, &expected[..15]);
    assert!(log.read_entry(15).expect("read").is_none());
    let (info, index) = log.append_entry(&batch(1, 3_000), 2, 3_000).expect("append after recovery");
    assert_eq!((index, info.base_offset), (15, durable_end));
}

#[test]
fn a_moved_log_start_keeps_segments_until_raft_purges_their_entries() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut log, expected, segs) = filled_raft_log(dir.path());
    assert!(log.raft_purge_point(None).is_none(), "nothing below the log start yet");
    // The log start moves into the third segment: nothing is deleted before raft purges.
    let start = segs[2].0 + 1;
    assert_eq!(log.move_log_start(start).expect("move"), start);
    assert_eq!(log.move_log_start(start - 1).expect("never back"), start);
    assert_eq!(log.segments().len(), segs.len(), "segments stay until the purge");
    drop(log);
    let mut log = PartitionLog::open_raft(dir.path(), config()).expect("reopen");
    log.open_raft_index(0, i64::MIN).expect("raft index");
    assert_eq!(log.log_start_offset(), start);
    assert_eq!(log.segments().len(), segs.len(), "a raft log's open deletes nothing below the start");
    check(&log, &expected);
    // The purge point: the last entry of the two whole segments below the start.
    let (index, end) = log.raft_purge_point(None).expect("purge point");
    assert_eq!(end, segs[1].1);
    let last_below = expected.iter().filter(|e| e.2 < end).map(|e| e.0).max().expect("entries below");
    assert_eq!(index, last_below);
    log.purge_entries_through(index).expect("purge");
    assert_eq!(log.log_start_offset(), start, "a purge never moves the log start past what was asked");
    assert_eq!(log.segments()[0].base_offset, segs[2].0, "the two segments went");
    assert!(log.read_entry(index).expect("read").is_none());
    check(&log, &expected[index as usize + 1..]);
    assert!(log.raft_purge_point(None).is_none(), "nothing left to purge");
}

#[test]
fn a_log_restarted_after_a_snapshot_numbers_its_next_entry_after_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut log = PartitionLog::open_raft(dir.path(), config()).expect("open");
    log.open_raft_index(0, i64::MIN).expect("raft index");
    // A stale follower: a few entries, far behind the leader's snapshot at entry 40.
    for _ in 0..3 {
        log.append_entry(&batch(2, 1_000), 1, 1_000).expect("append");
    }
    log.restart_after_snapshot(40, 1_000).expect("restart");
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (1_000, 1_000));
    let (info, index) = log.append_entry(&batch(2, 1_000), 2, 1_000).expect("append after the snapshot");
    assert_eq!((index, info.base_offset), (41, 1_000));
    drop(log);
    let mut log = PartitionLog::open_raft(dir.path(), config()).expect("reopen");
    log.open_raft_index(41, i64::MIN).expect("raft index");
    let e = log.read_entry(41).expect("read").expect("entry 41");
    assert_eq!((e.first_offset, e.last_offset), (1_000, 1_001));
    assert!(log.read_entry(2).expect("read").is_none(), "the stale entries are gone");
}

#[test]
fn a_compacted_log_purges_sealed_segments_below_the_high_watermark_and_keeps_their_data() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut log, expected, segs) = filled_raft_log(dir.path());
    assert!(log.raft_purge_point(None).is_none(), "nothing below the log start");
    // Committed up to the middle of the third segment: the first two are purgeable.
    let hw = segs[2].0 + 1;
    let (index, end) = log.raft_purge_point(Some(hw)).expect("compaction purge point");
    assert_eq!(end, segs[1].1);
    assert_eq!(index, expected.iter().filter(|e| e.2 < end).map(|e| e.0).max().expect("entries below"));
    log.purge_entries_through(index).expect("purge");
    assert_eq!(log.log_start_offset(), 0, "the data stays");
    assert_eq!(log.segments().len(), segs.len());
    assert!(log.raft_purge_point(Some(hw)).is_none(), "nothing more to purge below the high watermark");
    let data = log.read(0, 1 << 20, end, true).expect("read the data below raft's log");
    let batches = crate::log::batch::BatchIter::new(&data).count();
    let written: usize = expected.iter().filter(|e| e.2 < end).map(|e| if e.0 % 3 == 1 { 3 } else { 1 }).sum();
    assert_eq!(batches, written);
    drop(log);
    // Reopened: the data-only segments are not translated, the entries after them are.
    let mut log = PartitionLog::open_raft(dir.path(), config()).expect("reopen");
    log.open_raft_index(index + 1, end).expect("raft index");
    assert_eq!(log.raft_index().and_then(|r| r.segments().first().map(|s| s.segment_base)), Some(segs[2].0));
    check(&log, &expected[index as usize + 1..]);
    assert!(log.read_entry(index).expect("read").is_none());
    assert_eq!(log.read(0, 1 << 20, end, true).expect("read again"), data);
    // Every entry purged: the active segment is sealed and raft's log restarts after it.
    let last = expected.last().expect("entries").0;
    log.purge_entries_through(last).expect("purge all");
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, expected.last().expect("last").2 + 1));
    let (info, next) = log.append_entry(&batch(1, 2_000), 2, 2_000).expect("append after");
    assert_eq!((next, info.base_offset), (last + 1, expected.last().expect("last").2 + 1));
}

#[test]
fn a_restart_with_staged_data_keeps_it_below_raft_and_is_redone_from_any_point() {
    use super::retained::{StagedData, ready_dir, staging_dir};
    // The leader's data below its snapshot at entry 30, ending at offset `end`.
    let leader_dir = tempfile::tempdir().expect("temp dir");
    let mut leader = PartitionLog::open_raft(leader_dir.path(), config()).expect("open");
    leader.open_raft_index(0, i64::MIN).expect("raft index");
    let expected = fill(&mut leader);
    let end = leader.log_end_offset();
    let data = leader.read(0, 1 << 20, end, true).expect("read");
    // A stale follower stages it in chunks (split at a batch boundary) and restarts.
    for crash_after_staging in [false, true] {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut log = PartitionLog::open_raft(dir.path(), config()).expect("open");
        log.open_raft_index(0, i64::MIN).expect("raft index");
        log.append_entry(&batch(3, 9_000), 1, 9_000).expect("stale entry");
        let mut staged = StagedData::create(dir.path(), 30, 1024).expect("stage");
        let cut: usize = crate::log::batch::BatchIter::new(&data).nth(5).expect("batch").expect("framed").1.end;
        staged.append(&data[..cut], end).expect("chunk 1");
        assert!(staged.append(&data[..cut], end).is_err(), "a chunk that does not follow is refused");
        staged.append(&data[cut..], end).expect("chunk 2");
        staged.finish().expect("finish");
        assert_eq!(staged.next(), end);
        assert!(dir.path().join(staging_dir(30)).is_dir());
        if crash_after_staging {
            // The old log is gone and the staged files made ready, then a crash: redone.
            log.restart_at(end).expect("old log gone");
            std::fs::rename(dir.path().join(staging_dir(30)), dir.path().join(ready_dir(30))).expect("ready");
            drop(log);
            let mut log = PartitionLog::open_raft(dir.path(), config()).expect("reopen");
            log.open_raft_index(0, i64::MIN).expect("raft index");
            log.restart_with_staged(31, end, 2, end).expect("restart");
            log.restart_with_staged(31, end, 2, end).expect("redone once more");
            drop(log);
        } else {
            log.restart_with_staged(31, end, 2, end).expect("restart");
            drop(log);
        }
        let mut log = PartitionLog::open_raft(dir.path(), config()).expect("reopen");
        log.open_raft_index(31, end).expect("raft index");
        assert_eq!((log.log_start_offset(), log.log_end_offset()), (2, end));
        assert_eq!(log.read(2, 1 << 20, end, true).expect("read"), leader.read(2, 1 << 20, end, true).expect("read"));
        assert!(!dir.path().join(staging_dir(30)).exists());
        let (info, index) = log.append_entry(&batch(1, 9_000), 2, 9_000).expect("append after");
        assert_eq!((index, info.base_offset), (31, end));
        assert_eq!(expected.len(), 24);
    }
}

#[test]
fn a_restart_with_staged_data_indexes_its_aborted_transactions_again() {
    use super::retained::StagedData;
    use super::test_util::{fix_crc, producer_batch};
    use super::txn::{AbortedTxn, TxnMarker, marker_batch};
    use kafka_protocol::records::Compression;
    let txn = |producer: i64, sequence: i32| {
        let mut b = producer_batch(2, 1_000, 10, Compression::None, (producer, 0, sequence));
        b[22] |= 0x10; // transactional
        fix_crc(&mut b);
        b
    };
    let marker = |producer: i64, commit: bool| {
        marker_batch(producer, 0, TxnMarker { commit, coordinator_epoch: 0 }, 1_000).expect("marker").to_vec()
    };
    // The leader's data below its snapshot: transactions of producers 7 and 8, an ABORT
    // of producer 9 with nothing to hide, and enough else for several segments.
    let leader_dir = tempfile::tempdir().expect("temp dir");
    let mut leader = PartitionLog::open_raft(leader_dir.path(), config()).expect("open");
    leader.open_raft_index(0, i64::MIN).expect("raft index");
    for entry in
        [txn(7, 0), txn(8, 0), marker(7, false), marker(8, true), txn(7, 2), marker(7, false), marker(9, false)]
    {
        leader.append_entry(&entry, 1, 1_000).expect("append entry"); // 0-1, 2-3, 4, 5, 6-7, 8, 9
    }
    fill(&mut leader);
    let end = leader.log_end_offset();
    let want = vec![
        AbortedTxn { producer_id: 7, first_offset: 0, last_offset: 4, last_stable_offset: 2 },
        AbortedTxn { producer_id: 7, first_offset: 6, last_offset: 8, last_stable_offset: 9 },
    ];
    let data = leader.read(0, 1 << 20, end, true).expect("read");
    let dir = tempfile::tempdir().expect("temp dir");
    let mut log = PartitionLog::open_raft(dir.path(), config()).expect("open");
    log.open_raft_index(0, i64::MIN).expect("raft index");
    let mut staged = StagedData::create(dir.path(), 30, 1024).expect("stage");
    staged.append(&data, end).expect("stage data");
    staged.finish().expect("finish");
    log.restart_with_staged(31, end, 0, end).expect("restart");
    assert_eq!(log.aborted_txns(0, end).expect("aborted"), want);
    // Redone (a crash before the caller recorded it done): the same entries, once.
    log.restart_with_staged(31, end, 0, end).expect("redone");
    assert_eq!(log.aborted_txns(0, end).expect("aborted"), want);
    drop(log);
    let mut log = PartitionLog::open_raft(dir.path(), config()).expect("reopen");
    log.open_raft_index(31, end).expect("raft index");
    assert_eq!(log.aborted_txns(0, end).expect("aborted"), want);
    assert!(log.segments().len() > 2, "several segments");
}
