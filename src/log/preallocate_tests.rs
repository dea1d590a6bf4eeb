//! Tests of `preallocate`: segment files grow in zeroed chunks, the zero tail is cut on
//! seal and close, and after a crash recovery cuts it only past the recovery point (zeros
//! below it are damage, as without preallocation).

use std::path::Path;

use super::segment::{PREALLOCATE_CHUNK, segment_path};
use super::test_util::batch;
use super::*;

fn preallocating(segment_bytes: u64) -> LogConfig {
    LogConfig { segment_bytes, preallocate: true, ..LogConfig::default() }
}

fn file_len(dir: &Path, base: i64) -> u64 {
    std::fs::metadata(segment_path(dir, base, "log")).expect("segment").len()
}

fn values(log: &PartitionLog) -> usize {
    let bytes = log.read(log.log_start_offset(), usize::MAX, i64::MAX, true).expect("read");
    BatchIter::new(&bytes).map(|b| b.expect("batch").0.last_offset_delta as usize + 1).sum()
}

#[test]
fn files_grow_in_zeroed_chunks_and_are_trimmed_on_seal_and_close() {
    let dir = tempfile::tempdir().expect("tempdir");
    let one = batch(4, 0).len() as u64;
    let mut log = PartitionLog::open(dir.path(), preallocating(3 * one)).expect("open");
    log.append(&batch(4, 0), 0, 1).expect("append");
    assert_eq!(file_len(dir.path(), 0), PREALLOCATE_CHUNK, "one chunk ahead of the data");
    assert_eq!(log.size_bytes(), one);
    for i in 1..4 {
        log.append(&batch(4, i), 0, 1).expect("append"); // the fourth rolls
    }
    // Sealed (inline: no sealer): cut to its data.
    assert_eq!(file_len(dir.path(), 0), 3 * one);
    assert_eq!(file_len(dir.path(), 12), PREALLOCATE_CHUNK);
    log.close().expect("close");
    assert_eq!(file_len(dir.path(), 12), one);
    drop(log);
    let log = PartitionLog::open(dir.path(), preallocating(3 * one)).expect("reopen");
    assert!(log.recovery_report().clean, "the marker matches the trimmed file");
    assert_eq!((log.log_end_offset(), values(&log)), (16, 16));
}

#[test]
fn after_a_crash_the_zero_tail_past_the_recovery_point_is_the_end() {
    let dir = tempfile::tempdir().expect("tempdir");
    let one = batch(4, 0).len() as u64;
    let mut log = PartitionLog::open(dir.path(), preallocating(3 * one)).expect("open");
    for i in 0..5 {
        log.append(&batch(4, i), 0, 1).expect("append");
    }
    drop(log); // a crash: the active segment keeps its zero tail
    assert_eq!(file_len(dir.path(), 12), PREALLOCATE_CHUNK);
    let mut log = PartitionLog::open(dir.path(), preallocating(3 * one)).expect("reopen");
    assert!(!log.recovery_report().clean);
    assert_eq!((log.log_end_offset(), values(&log)), (20, 20));
    assert!(log.damaged_ranges().is_empty(), "a zero tail is not damage: {:?}", log.damaged_ranges());
    assert_eq!(file_len(dir.path(), 12), 2 * one, "the zero tail is cut");
    log.append(&batch(4, 9), 0, 1).expect("append after recovery");
    assert_eq!(log.log_end_offset(), 24);
}

#[test]
fn zeros_below_the_recovery_point_are_damage_not_the_end() {
    let dir = tempfile::tempdir().expect("tempdir");
    let one = batch(4, 0).len() as u64;
    let mut log = PartitionLog::open(dir.path(), preallocating(3 * one)).expect("open");
    for i in 0..8 {
        log.append(&batch(4, i), 0, 1).expect("append");
    }
    drop(log);
    // Segment 0 ([0, 12)) is sealed and below the recovery point: its last batch zeroed.
    let path = segment_path(dir.path(), 0, "log");
    let file = std::fs::OpenOptions::new().write(true).open(&path).expect("open segment");
    std::os::unix::fs::FileExt::write_all_at(&file, &vec![0u8; one as usize], 2 * one).expect("zero");
    let log = PartitionLog::open(dir.path(), preallocating(3 * one)).expect("reopen");
    assert_eq!(log.log_end_offset(), 32, "later segments kept, no offset reused");
    let damaged = log.damaged_ranges();
    assert_eq!(damaged.len(), 1, "{damaged:?}");
    assert_eq!((damaged[0].first_offset, damaged[0].last_offset), (8, 11));
}
