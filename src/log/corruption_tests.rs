//! Damage inside sealed segments (fjall-journal style): garbage bytes, a lying length
//! field, a bad tail on an older segment, a missing segment. Reopened repeatedly, the log
//! keeps every later segment, never lowers its end, refuses the damaged range with an
//! error and serves everything else.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::test_util::batch;
use super::*;

const RECORDS_PER_BATCH: usize = 4;
const BATCHES_PER_SEGMENT: usize = 4;
const SEGMENTS: usize = 12;
const OFFSETS_PER_SEGMENT: i64 = (RECORDS_PER_BATCH * BATCHES_PER_SEGMENT) as i64;
const LOG_END: i64 = OFFSETS_PER_SEGMENT * SEGMENTS as i64;

fn one_batch_len() -> u64 {
    batch(RECORDS_PER_BATCH, 0).len() as u64
}

fn cfg() -> LogConfig {
    LogConfig { segment_bytes: one_batch_len() * BATCHES_PER_SEGMENT as u64, ..LogConfig::default() }
}

fn seg_path(dir: &Path, base: i64, ext: &str) -> PathBuf {
    dir.join(format!("{base:020}.{ext}"))
}

fn segment_count(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .expect("read_dir")
        .filter(|e| e.as_ref().is_ok_and(|e| e.path().extension().is_some_and(|x| x == "log")))
        .count()
}

/// 12 segments of 4 batches of 4 records; closed cleanly or dropped (a crash).
fn build(dir: &Path, clean: bool) {
    build_with(dir, clean, &cfg());
}

fn build_with(dir: &Path, clean: bool, c: &LogConfig) {
    let mut log = PartitionLog::open(dir, c.clone()).expect("open");
    for i in 0..SEGMENTS * BATCHES_PER_SEGMENT {
        log.append(&batch(RECORDS_PER_BATCH, i as i64), 0, 1_000).expect("append");
    }
    assert_eq!(log.log_end_offset(), LOG_END);
    assert_eq!(segment_count(dir), SEGMENTS);
    if clean {
        log.close().expect("close");
    }
}

fn write_at(path: &Path, pos: u64, bytes: &[u8]) {
    let f = OpenOptions::new().write(true).open(path).expect("open segment");
    f.write_all_at(bytes, pos).expect("write");
}

fn junk(n: usize, seed: u32) -> Vec<u8> {
    let mut x = seed;
    (0..n)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            (x >> 16) as u8
        })
        .collect()
}

/// Every batch read from `offset` on is whole, passes its CRC and continues the offsets.
fn read_checked(log: &PartitionLog, offset: i64) -> Result<Vec<BatchHeader>, LogError> {
    let bytes = log.read(offset, usize::MAX, i64::MAX, true)?;
    let mut out = Vec::new();
    for item in BatchIter::new(&bytes) {
        let (h, range) = item.expect("a whole batch");
        assert!(batch::verify_crc(&bytes[range]), "a corrupt batch at offset {} was served", h.base_offset);
        out.push(h);
    }
    Ok(out)
}

/// Reads the whole log batch by batch the way a consumer does; returns the offsets
/// served and the offsets refused with an error.
fn consume(log: &PartitionLog) -> (Vec<i64>, Vec<i64>) {
    let (mut served, mut refused) = (Vec::new(), Vec::new());
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        match read_checked(log, offset) {
            Ok(headers) if headers.is_empty() => panic!("an empty read at {offset} below the log end"),
            Ok(headers) => {
                for h in &headers {
                    served.extend(h.base_offset.max(offset)..h.next_offset());
                }
                offset = headers.last().map_or(offset, |h| h.next_offset());
            }
            Err(_) => {
                refused.push(offset);
                offset += 1;
            }
        }
    }
    (served, refused)
}

/// The invariants after any damage below the recovery point, over several reopens: the
/// log end and the segment count stay, appends continue at the old end, reads refuse
/// exactly `damaged` and serve every other offset, never a corrupt batch.
fn assert_survives(dir: &Path, damaged: std::ops::Range<i64>) {
    assert_survives_with(dir, damaged, &cfg(), false);
}

/// [`assert_survives`] with a config, scrubbing the sealed segments first if `scrub`.
fn assert_survives_with(dir: &Path, damaged: std::ops::Range<i64>, c: &LogConfig, scrub: bool) {
    for round in 0..3 {
        let log = PartitionLog::open(dir, c.clone()).expect("open");
        if scrub {
            scrubber::run_pass(&[("t".to_string(), log.scrub_targets())], u64::MAX, || false);
        }
        assert_eq!(log.log_end_offset(), LOG_END, "round {round}: the log end was lowered");
        assert_eq!(segment_count(dir), SEGMENTS, "round {round}: segments were deleted");
        let (served, refused) = consume(&log);
        let expected_served: Vec<i64> = (0..LOG_END).filter(|o| !damaged.contains(o)).collect();
        assert_eq!(served, expected_served, "round {round}");
        assert_eq!(refused, damaged.clone().collect::<Vec<_>>(), "round {round}");
        drop(log);
    }
    let mut log = PartitionLog::open(dir, c.clone()).expect("open");
    let info = log.append(&batch(2, 9_999), 0, 2_000).expect("append");
    assert_eq!(info.base_offset, LOG_END, "an offset consumers already saw was handed out again");
}

#[test]
fn garbage_inside_a_middle_segment_keeps_later_segments() {
    for clean in [true, false] {
        let dir = tempfile::tempdir().expect("tempdir");
        build(dir.path(), clean);
        // 14 garbage bytes in the middle of the second batch of segment 5 (offsets 80..).
        let base = 5 * OFFSETS_PER_SEGMENT;
        write_at(&seg_path(dir.path(), base, "log"), one_batch_len() + 20, &junk(14, 7));
        let batch = base + RECORDS_PER_BATCH as i64;
        assert_survives(dir.path(), batch..batch + RECORDS_PER_BATCH as i64);
    }
}

#[test]
fn bad_tail_on_an_older_segment_keeps_later_segments() {
    for clean in [true, false] {
        let dir = tempfile::tempdir().expect("tempdir");
        build(dir.path(), clean);
        let path = seg_path(dir.path(), 0, "log");
        let len = std::fs::metadata(&path).expect("meta").len();
        write_at(&path, len, &junk(5_000, 3));
        assert_survives(dir.path(), 0..0);
    }
}

#[test]
fn a_lying_length_field_is_refused_not_served() {
    for clean in [true, false] {
        let dir = tempfile::tempdir().expect("tempdir");
        build(dir.path(), clean);
        // batchLength of the third batch of segment 2 set to 0x7fffffff.
        let base = 2 * OFFSETS_PER_SEGMENT;
        write_at(&seg_path(dir.path(), base, "log"), 2 * one_batch_len() + 8, &0x7fff_ffffu32.to_be_bytes());
        let batch = base + 2 * RECORDS_PER_BATCH as i64;
        assert_survives(dir.path(), batch..batch + RECORDS_PER_BATCH as i64);
    }
}

#[test]
fn a_missing_middle_segment_is_a_damaged_range_not_a_silent_gap() {
    for clean in [true, false] {
        let dir = tempfile::tempdir().expect("tempdir");
        build(dir.path(), clean);
        // The data file is lost; its index files (written after it, deleted before it)
        // say it existed.
        let base = 7 * OFFSETS_PER_SEGMENT;
        std::fs::remove_file(seg_path(dir.path(), base, "log")).expect("remove");
        for round in 0..2 {
            let log = PartitionLog::open(dir.path(), cfg()).expect("open");
            assert_eq!(log.log_end_offset(), LOG_END, "round {round}");
            let (served, refused) = consume(&log);
            let lost = base..base + OFFSETS_PER_SEGMENT;
            assert_eq!(served, (0..LOG_END).filter(|o| !lost.contains(o)).collect::<Vec<_>>());
            assert_eq!(refused, lost.collect::<Vec<_>>());
        }
    }
}

#[test]
fn a_gap_without_evidence_of_loss_is_served_as_a_gap() {
    // All three files gone: indistinguishable from offsets compaction removed, so the gap
    // is logged and skipped (as Kafka skips compacted offsets), never cut or reused.
    let dir = tempfile::tempdir().expect("tempdir");
    build(dir.path(), true);
    let base = 7 * OFFSETS_PER_SEGMENT;
    for ext in ["log", "index", "timeindex"] {
        std::fs::remove_file(seg_path(dir.path(), base, ext)).expect("remove");
    }
    let log = PartitionLog::open(dir.path(), cfg()).expect("open");
    assert_eq!(log.log_end_offset(), LOG_END);
    let headers = read_checked(&log, base - 1).expect("read");
    assert_eq!(headers[1].base_offset, base + OFFSETS_PER_SEGMENT, "the read skips the gap");
    assert!(log.damaged_ranges().is_empty());
}

/// Every batch indexed: the open-time tail check reads only each segment's last batch, so
/// damage before it is left to the read planner's header checks and to the scrubber.
fn indexed_cfg() -> LogConfig {
    LogConfig { index_interval_bytes: 1, ..cfg() }
}

/// Flips 16 bytes among the records of the second batch of segment 3; returns its offset.
fn flip_16_bytes(dir: &Path) -> i64 {
    let base = 3 * OFFSETS_PER_SEGMENT;
    let path = seg_path(dir, base, "log");
    let pos = one_batch_len() + 70;
    let mut bytes = [0u8; 16];
    std::fs::File::open(&path).expect("open").read_exact_at(&mut bytes, pos).expect("read");
    write_at(&path, pos, &bytes.map(|b| !b));
    base + RECORDS_PER_BATCH as i64
}

#[test]
#[should_panic(expected = "a corrupt batch at offset 52 was served")]
fn flipped_bytes_below_the_last_index_entry_are_served_until_scrubbed() {
    // What the scrubber is for: sendfile serves bytes the broker never looks at.
    let dir = tempfile::tempdir().expect("tempdir");
    build_with(dir.path(), true, &indexed_cfg());
    let batch = flip_16_bytes(dir.path());
    assert_survives_with(dir.path(), batch..batch + RECORDS_PER_BATCH as i64, &indexed_cfg(), false);
}

#[test]
fn flipped_bytes_in_a_sealed_segment_are_found_by_the_scrubber_and_refused() {
    for clean in [true, false] {
        let dir = tempfile::tempdir().expect("tempdir");
        build_with(dir.path(), clean, &indexed_cfg());
        let batch = flip_16_bytes(dir.path());
        assert_survives_with(dir.path(), batch..batch + RECORDS_PER_BATCH as i64, &indexed_cfg(), true);
        // What the scrubber found is persisted: refused after a reopen without a scrub.
        let log = PartitionLog::open(dir.path(), indexed_cfg()).expect("open");
        assert!(matches!(log.read(batch, 1 << 20, LOG_END, true), Err(LogError::Corrupt { .. })));
        let ranges = log.damaged_ranges();
        assert_eq!(ranges.len(), 1);
        let r = &ranges[0];
        assert_eq!((r.first_offset, r.last_offset, r.segment_base), (batch, batch + 3, Some(3 * OFFSETS_PER_SEGMENT)));
        assert_eq!((r.position, r.end_position), (one_batch_len(), 2 * one_batch_len()));
        assert_eq!(r.reason, "CRC mismatch");
    }
}

#[test]
fn a_lying_length_field_is_caught_by_the_read_planner() {
    for clean in [true, false] {
        let dir = tempfile::tempdir().expect("tempdir");
        build_with(dir.path(), clean, &indexed_cfg());
        let base = 2 * OFFSETS_PER_SEGMENT;
        write_at(&seg_path(dir.path(), base, "log"), one_batch_len() + 8, &0x7fff_ffffu32.to_be_bytes());
        let batch = base + RECORDS_PER_BATCH as i64;
        let log = PartitionLog::open(dir.path(), indexed_cfg()).expect("open");
        assert!(log.damaged_ranges().is_empty(), "the tail check does not read that header");
        // A fetch landing on the batch: its header is checked, the damage recorded.
        let err = log.plan_read(batch, 1 << 20, LOG_END, true).expect_err("refused");
        assert!(
            matches!(err, LogError::Corrupt { first_offset, last_offset, .. } if (first_offset, last_offset) == (batch, batch + 3)),
            "{err}"
        );
        drop(log);
        assert_survives_with(dir.path(), batch..batch + RECORDS_PER_BATCH as i64, &indexed_cfg(), false);
    }
}

#[test]
fn damage_past_the_recovery_point_is_still_truncated() {
    let dir = tempfile::tempdir().expect("tempdir");
    build(dir.path(), false);
    // As if the last checkpoint was taken when segment 3 was rolled: segments 3.. may
    // hold unsynced data, so damage there ends the log (Kafka's recovery).
    let recovery_point = 3 * OFFSETS_PER_SEGMENT;
    std::fs::write(dir.path().join("recovery-point-offset-checkpoint"), format!("{recovery_point}\n")).expect("rp");
    let base = 5 * OFFSETS_PER_SEGMENT;
    write_at(&seg_path(dir.path(), base, "log"), one_batch_len() + 20, &junk(14, 7));
    let log = PartitionLog::open(dir.path(), cfg()).expect("open");
    let report = log.recovery_report().clone();
    assert_eq!(report.recovery_point, recovery_point);
    // Every segment past the recovery point was walked and fsynced before open returned.
    assert_eq!(report.synced_segments, vec![3 * OFFSETS_PER_SEGMENT, 4 * OFFSETS_PER_SEGMENT, base]);
    assert_eq!(log.log_end_offset(), base + RECORDS_PER_BATCH as i64);
    assert_eq!(segment_count(dir.path()), 6);
    assert!(log.damaged_ranges().is_empty());
    drop(log);
    // Recovery moved the recovery point to the (synced) log end.
    let rp = std::fs::read_to_string(dir.path().join("recovery-point-offset-checkpoint")).expect("rp");
    assert_eq!(rp.trim(), (base + RECORDS_PER_BATCH as i64).to_string());
}

#[test]
fn an_unclean_open_syncs_every_segment_past_the_recovery_point() {
    let dir = tempfile::tempdir().expect("tempdir");
    build(dir.path(), false);
    let recovery_point = 9 * OFFSETS_PER_SEGMENT;
    std::fs::write(dir.path().join("recovery-point-offset-checkpoint"), format!("{recovery_point}\n")).expect("rp");
    let log = PartitionLog::open(dir.path(), cfg()).expect("open");
    let expected: Vec<i64> = (9..SEGMENTS as i64).map(|i| i * OFFSETS_PER_SEGMENT).collect();
    assert_eq!(log.recovery_report().synced_segments, expected);
    assert!(!log.recovery_report().clean);
    assert_eq!(log.log_end_offset(), LOG_END);
    drop(log);
    // Without the checkpoint file (a data directory from before it existed): rolled
    // segments were fsynced when rolled, so only the last one is walked and synced.
    std::fs::remove_file(dir.path().join("recovery-point-offset-checkpoint")).expect("rm");
    let mut log = PartitionLog::open(dir.path(), cfg()).expect("open");
    assert_eq!(log.recovery_report().synced_segments, vec![11 * OFFSETS_PER_SEGMENT]);
    log.close().expect("close");
    drop(log);
    let log = PartitionLog::open(dir.path(), cfg()).expect("open");
    assert!(log.recovery_report().clean);
    assert!(log.recovery_report().synced_segments.is_empty());
}
