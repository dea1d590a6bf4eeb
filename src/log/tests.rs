//! Tests of `PartitionLog` as a whole: appends, reads, rolling, reopen, recovery from
//! corruption, retention and truncation.

use std::fs::OpenOptions;
use std::path::Path;

use super::test_util::batch;
use super::*;

fn cfg() -> LogConfig {
    LogConfig { index_interval_bytes: 200, ..LogConfig::default() }
}

fn open(dir: &Path, c: LogConfig) -> PartitionLog {
    PartitionLog::open(dir, c).expect("open")
}

/// Appends one batch of `n` records with timestamp `ts` and returns the stored bytes.
fn append(log: &mut PartitionLog, n: usize, ts: i64) -> (AppendInfo, Vec<u8>) {
    let mut b = batch(n, ts);
    let info = log.append(&b, 0, ts).expect("append");
    // What the log stores: the batch with its base offset and leader epoch rewritten.
    set_base_offset(&mut b, info.base_offset).expect("offset");
    set_partition_leader_epoch(&mut b, 0).expect("epoch");
    (info, b)
}

fn segment_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .expect("read_dir")
        .filter(|e| e.as_ref().is_ok_and(|e| e.path().extension().is_some_and(|x| x == "log")))
        .count()
}

fn headers(bytes: &[u8]) -> Vec<BatchHeader> {
    BatchIter::new(bytes).map(|r| r.expect("batch").0).collect()
}

fn read_all(log: &PartitionLog) -> bytes::Bytes {
    log.read(log.log_start_offset(), usize::MAX, i64::MAX, true).expect("read")
}

#[test]
fn one_append_of_more_batches_than_one_vectored_write_takes() {
    // 700 batches are 1,400 buffers: more than one pwritev (IOV_MAX 1024) carries.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = open(dir.path(), cfg());
    let one = batch(2, 100);
    let many: Vec<u8> = std::iter::repeat_n(&one[..], 700).flatten().copied().collect();
    let info = log.append(&many, 7, 100).expect("append");
    assert_eq!((info.base_offset, info.last_offset), (0, 1_399));
    let stored = read_all(&log);
    assert_eq!(stored.len(), many.len());
    let mut expected_offset = 0;
    for item in BatchIter::new(&stored) {
        let (h, range) = item.expect("a whole batch");
        assert_eq!(h.base_offset, expected_offset);
        assert_eq!(h.partition_leader_epoch, 7);
        assert!(batch::verify_crc(&stored[range]), "the CRC still holds");
        expected_offset += 2;
    }
    assert_eq!(expected_offset, 1_400);
}

#[test]
fn append_assigns_offsets_and_reads_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = open(dir.path(), cfg());
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, 0));
    let (i1, b1) = append(&mut log, 2, 100);
    let (i2, b2) = append(&mut log, 3, 50);
    let (i3, b3) = append(&mut log, 1, 300);
    assert_eq!((i1.base_offset, i1.last_offset, i1.max_timestamp), (0, 1, 101));
    assert_eq!((i2.base_offset, i2.last_offset), (2, 4));
    assert_eq!((i3.base_offset, i3.last_offset, i3.offset_of_max_timestamp), (5, 5, 5));
    assert_eq!(log.log_end_offset(), 6);
    let all = [b1.clone(), b2.clone(), b3.clone()].concat();
    assert_eq!(&read_all(&log)[..], &all[..]);
    // Reading from inside a batch returns that whole batch.
    assert_eq!(&log.read(3, usize::MAX, 6, false).expect("read")[..], &[b2.clone(), b3.clone()].concat()[..]);
    // upto (high watermark) excludes batches starting at or after it.
    assert_eq!(&log.read(0, usize::MAX, 2, false).expect("read")[..], &b1[..]);
    assert_eq!(&log.read(0, usize::MAX, 3, false).expect("read")[..], &[b1.clone(), b2.clone()].concat()[..]);
    assert!(log.read(2, usize::MAX, 2, true).expect("read").is_empty());
    // max_bytes trims to whole batches; min_one returns the first batch regardless.
    assert_eq!(&log.read(0, b1.len() + b2.len() + 5, 6, false).expect("read")[..], &all[..b1.len() + b2.len()]);
    assert!(log.read(0, 10, 6, false).expect("read").is_empty());
    assert_eq!(&log.read(0, 10, 6, true).expect("read")[..], &b1[..]);
    // End of log is empty, beyond is out of range.
    assert!(log.read(6, 1000, 6, true).expect("read").is_empty());
    assert!(matches!(log.read(7, 1000, 7, true), Err(LogError::OffsetOutOfRange { .. })));
    assert!(matches!(log.read(-1, 1000, 7, true), Err(LogError::OffsetOutOfRange { .. })));
    let mut seen = Vec::new();
    log.for_each_batch_header(|h| seen.push(h.base_offset)).expect("headers");
    assert_eq!(seen, vec![0, 2, 5]);
}

#[test]
fn rolls_by_size_and_reads_across_segments() {
    let dir = tempfile::tempdir().expect("tempdir");
    let one = batch(2, 0).len() as u64;
    let mut log = open(dir.path(), LogConfig { segment_bytes: one * 3, index_interval_bytes: 1, ..cfg() });
    let mut expected = Vec::new();
    for i in 0..10 {
        expected.extend(append(&mut log, 2, i).1);
    }
    assert_eq!(segment_files(dir.path()), 4);
    assert_eq!(&read_all(&log)[..], &expected[..]);
    // Every offset maps to the batch containing it, via index entries on each batch.
    for off in 0..20 {
        let got = log.read(off, 1, 20, true).expect("read");
        assert_eq!(headers(&got)[0].base_offset, off - off % 2);
    }
    // A window spanning a segment boundary.
    let got = log.read(4, (one * 3) as usize, 20, false).expect("read");
    assert_eq!(headers(&got).iter().map(|h| h.base_offset).collect::<Vec<_>>(), vec![4, 6, 8]);
    assert_eq!(log.size_bytes(), expected.len() as u64);
}

#[test]
fn rolls_by_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = open(dir.path(), LogConfig { segment_ms: 1000, ..cfg() });
    let b = batch(1, 0);
    log.append(&b, 0, 10_000).expect("append");
    let b = batch(1, 0);
    log.append(&b, 0, 10_500).expect("append");
    assert_eq!(segment_files(dir.path()), 1);
    let b = batch(1, 0);
    log.append(&b, 0, 11_000).expect("append");
    assert_eq!(segment_files(dir.path()), 2);
    assert_eq!(headers(&read_all(&log)).len(), 3);
}

#[test]
fn sparse_index_lookups() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = open(dir.path(), cfg()); // interval 200 bytes, batches ~100 bytes
    for i in 0..50 {
        append(&mut log, 3, i);
    }
    log.flush().expect("flush");
    let idx_len = std::fs::metadata(dir.path().join(format!("{:020}.index", 0))).expect("index").len();
    assert!(idx_len > 0 && idx_len.is_multiple_of(8) && idx_len / 8 < 50, "sparse index has {idx_len} bytes");
    for off in 0..150 {
        let got = log.read(off, 1, 150, true).expect("read");
        assert_eq!(headers(&got)[0].base_offset, off - off % 3);
    }
}

#[test]
fn reopen_after_clean_close_and_after_crash() {
    let dir = tempfile::tempdir().expect("tempdir");
    let one = batch(2, 0).len() as u64;
    let c = LogConfig { segment_bytes: one * 4, ..cfg() };
    let mut log = open(dir.path(), c.clone());
    for i in 0..10 {
        append(&mut log, 2, 1000 + i);
    }
    let before = read_all(&log);
    log.close().expect("close");
    assert!(dir.path().join(".clean_shutdown").exists());
    let mut log = open(dir.path(), c.clone());
    assert!(!dir.path().join(".clean_shutdown").exists());
    assert_eq!(log.log_end_offset(), 20);
    assert_eq!(read_all(&log), before);
    assert_eq!(log.max_timestamp_batch().expect("max").map(|(t, _)| t), Some(1010));
    append(&mut log, 2, 5000);
    let before = read_all(&log);
    drop(log); // crash
    let log = open(dir.path(), c);
    assert_eq!(log.log_end_offset(), 22);
    assert_eq!(read_all(&log), before);
    let (ts, b) = log.max_timestamp_batch().expect("max").expect("some");
    assert_eq!((ts, headers(&b)[0].base_offset), (5001, 20));
}

#[derive(Clone, Copy, Debug)]
enum Damage {
    TruncateMidBatch,
    ZeroTail,
    FlipBit,
    Garbage,
}

/// fjall-journal style: damage the tail of the active segment, reopen repeatedly, check the
/// good prefix survives exactly and the log keeps working. After a crash the damaged tail
/// is past the recovery point and cut; after a clean close it was durable, so a damaged
/// batch there stays a refused range and the log end does not move back.
fn corruption_case(damage: Damage, clean_close: bool) {
    let dir = tempfile::tempdir().expect("tempdir");
    let one = batch(3, 0).len() as u64;
    let c = LogConfig { segment_bytes: one * 4, index_interval_bytes: 1, ..cfg() };
    let mut log = open(dir.path(), c.clone());
    for i in 0..7 {
        append(&mut log, 3, i);
    }
    // Segments: [0..12) with 4 batches, active [12..21) with 3 batches.
    let all = read_all(&log);
    let active = dir.path().join(format!("{:020}.log", 12));
    let active_len = std::fs::metadata(&active).expect("meta").len();
    let last_start = active_len - one;
    if clean_close {
        log.close().expect("close");
    } else {
        drop(log);
    }
    let f = OpenOptions::new().write(true).open(&active).expect("open segment");
    use std::os::unix::fs::FileExt;
    let (good_batches, good_end) = match damage {
        Damage::TruncateMidBatch => {
            f.set_len(last_start + 10).expect("set_len");
            (6, 18)
        }
        Damage::ZeroTail => {
            f.write_all_at(&[0u8; 20], active_len - 20).expect("zero");
            (6, 18)
        }
        Damage::FlipBit => {
            let mut byte = [0u8; 1];
            let pos = last_start + 70;
            std::fs::File::open(&active).expect("open").read_exact_at(&mut byte, pos).expect("read");
            f.write_all_at(&[byte[0] ^ 0x10], pos).expect("flip");
            (6, 18)
        }
        Damage::Garbage => {
            let mut x: u32 = 12345;
            let junk: Vec<u8> = (0..97)
                .map(|_| {
                    x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                    (x >> 16) as u8
                })
                .collect();
            f.write_all_at(&junk, active_len).expect("garbage");
            (7, 21)
        }
    };
    drop(f);
    let good = &all[..good_batches * one as usize];
    // Same size as the clean-shutdown marker says: the damage is below the recovery point.
    let durable_damage = clean_close && matches!(damage, Damage::FlipBit | Damage::ZeroTail);
    let end = if durable_damage { 21 } else { good_end };
    for round in 0..3 {
        let log = open(dir.path(), c.clone());
        assert_eq!(log.log_end_offset(), end, "{damage:?} round {round}");
        assert_eq!(&read_all(&log)[..], good, "{damage:?} round {round}");
        if durable_damage {
            assert!(matches!(log.read(good_end, 1000, 21, true), Err(LogError::Corrupt { .. })), "{damage:?}");
            let ranges = log.damaged_ranges();
            assert_eq!(ranges.iter().map(|r| (r.first_offset, r.last_offset)).collect::<Vec<_>>(), vec![(18, 20)]);
        }
        drop(log);
    }
    let mut log = open(dir.path(), c.clone());
    let (info, b) = append(&mut log, 2, 99);
    assert_eq!(info.base_offset, end);
    drop(log);
    let log = open(dir.path(), c);
    assert_eq!(log.log_end_offset(), end + 2);
    if durable_damage {
        assert_eq!(&read_all(&log)[..], good);
        assert_eq!(&log.read(end, 1000, end + 2, true).expect("read")[..], &b[..]);
    } else {
        assert_eq!(&read_all(&log)[..], &[good, &b[..]].concat()[..]);
    }
}

#[test]
fn recovers_from_truncated_tail() {
    corruption_case(Damage::TruncateMidBatch, false);
    corruption_case(Damage::TruncateMidBatch, true);
}

#[test]
fn recovers_from_zeroed_tail() {
    corruption_case(Damage::ZeroTail, false);
    corruption_case(Damage::ZeroTail, true);
}

#[test]
fn recovers_from_flipped_bit() {
    corruption_case(Damage::FlipBit, false);
    corruption_case(Damage::FlipBit, true);
}

#[test]
fn recovers_from_trailing_garbage() {
    corruption_case(Damage::Garbage, false);
    corruption_case(Damage::Garbage, true);
}

#[test]
fn retention_by_time_and_size() {
    let dir = tempfile::tempdir().expect("tempdir");
    let one = batch(1, 0).len() as u64;
    let mut log = open(dir.path(), LogConfig { segment_bytes: one, retention_ms: 1000, ..cfg() });
    for ts in [100, 200, 5000, 6000] {
        append(&mut log, 1, ts); // one batch per segment
    }
    assert_eq!(segment_files(dir.path()), 4);
    assert_eq!(log.apply_retention(1100, i64::MAX).expect("retention"), 0);
    assert_eq!(log.apply_retention(1250, i64::MAX).expect("retention"), 2);
    assert_eq!(log.log_start_offset(), 2);
    // The active segment is never deleted, even when expired.
    assert_eq!(log.apply_retention(100_000, i64::MAX).expect("retention"), 1);
    assert_eq!((segment_files(dir.path()), log.log_start_offset()), (1, 3));

    let dir = tempfile::tempdir().expect("tempdir");
    let c = LogConfig { segment_bytes: one, retention_ms: -1, retention_bytes: (one * 2) as i64, ..cfg() };
    let mut log = open(dir.path(), c.clone());
    for ts in 0..5 {
        append(&mut log, 1, ts);
    }
    assert_eq!(log.apply_retention(0, i64::MAX).expect("retention"), 3);
    assert_eq!((log.size_bytes(), log.log_start_offset()), (one * 2, 3));
    drop(log);
    let log = open(dir.path(), c);
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (3, 5));
}

#[test]
fn advance_log_start_persists() {
    let dir = tempfile::tempdir().expect("tempdir");
    let one = batch(2, 0).len() as u64;
    let c = LogConfig { segment_bytes: one * 2, ..cfg() };
    let mut log = open(dir.path(), c.clone());
    for ts in 0..6 {
        append(&mut log, 2, ts); // segments at 0, 4, 8
    }
    assert_eq!(log.advance_log_start(5).expect("advance"), 5);
    assert_eq!(segment_files(dir.path()), 2);
    assert_eq!(log.advance_log_start(3).expect("no-op"), 5);
    assert!(matches!(log.advance_log_start(13), Err(LogError::OffsetOutOfRange { .. })));
    assert!(matches!(log.read(3, 100, 12, true), Err(LogError::OffsetOutOfRange { .. })));
    assert_eq!(headers(&log.read(5, 1, 12, true).expect("read"))[0].base_offset, 4);
    drop(log);
    let mut log = open(dir.path(), c.clone());
    assert_eq!(log.log_start_offset(), 5);
    let mut seen = Vec::new();
    log.for_each_batch_header(|h| seen.push(h.base_offset)).expect("headers");
    assert_eq!(seen, vec![4, 6, 8, 10]);
    // Deleting everything rolls to a fresh segment.
    assert_eq!(log.advance_log_start(12).expect("advance"), 12);
    assert_eq!((segment_files(dir.path()), log.size_bytes()), (1, 0));
    log.close().expect("close");
    let mut log = open(dir.path(), c);
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (12, 12));
    assert_eq!(append(&mut log, 1, 0).0.base_offset, 12);
}

#[test]
fn truncate_to_batch_boundaries() {
    let dir = tempfile::tempdir().expect("tempdir");
    let one = batch(2, 0).len() as u64;
    let c = LogConfig { segment_bytes: one * 2, ..cfg() };
    let mut log = open(dir.path(), c.clone());
    let mut stored = Vec::new();
    for ts in 0..6 {
        stored.extend(append(&mut log, 2, ts).1); // batches at 0,2,...,10
    }
    log.truncate_to(20).expect("no-op");
    assert_eq!(log.log_end_offset(), 12);
    log.truncate_to(9).expect("inside batch 8..9");
    assert_eq!(log.log_end_offset(), 8);
    assert_eq!(segment_files(dir.path()), 3); // segment 8 stays, now empty
    log.truncate_to(4).expect("segment boundary");
    assert_eq!(log.log_end_offset(), 4);
    assert_eq!(&read_all(&log)[..], &stored[..2 * one as usize]);
    let (info, b) = append(&mut log, 2, 7);
    assert_eq!(info.base_offset, 4);
    drop(log);
    let mut log = open(dir.path(), c);
    assert_eq!(log.log_end_offset(), 6);
    assert_eq!(&read_all(&log)[..], &[&stored[..2 * one as usize], &b[..]].concat()[..]);
    log.truncate_to(0).expect("to zero");
    assert_eq!((log.log_start_offset(), log.log_end_offset(), log.size_bytes()), (0, 0, 0));
}

#[test]
fn timestamp_lookups() {
    let dir = tempfile::tempdir().expect("tempdir");
    let one = batch(2, 0).len() as u64;
    let mut log = open(dir.path(), LogConfig { segment_bytes: one * 3, index_interval_bytes: 1, ..cfg() });
    assert!(log.batch_for_timestamp(0).expect("ts").is_none());
    assert!(log.max_timestamp_batch().expect("max").is_none());
    // Batch max timestamps: 11, 21, ..., 101 (ten batches over four segments).
    for i in 1..=10 {
        append(&mut log, 2, i * 10);
    }
    let base_for = |ts| log.batch_for_timestamp(ts).expect("ts").map(|b| headers(&b)[0].base_offset);
    assert_eq!(base_for(0), Some(0));
    assert_eq!(base_for(11), Some(0));
    assert_eq!(base_for(12), Some(2));
    assert_eq!(base_for(55), Some(10));
    assert_eq!(base_for(101), Some(18));
    assert_eq!(base_for(102), None);
    let (ts, b) = log.max_timestamp_batch().expect("max").expect("some");
    assert_eq!((ts, headers(&b)[0].base_offset), (101, 18));
}

#[tokio::test]
async fn flusher_syncs_the_active_segment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = open(dir.path(), cfg());
    append(&mut log, 3, 1);
    let flusher = Flusher::start();
    assert_eq!(flusher.sync(log.sync_target()).await.expect("sync"), 3);
    assert_eq!(flusher.fsync_count(), 1);
}

#[test]
fn open_creates_missing_ancestors_durably() {
    let dir = tempfile::tempdir().expect("tempdir");
    let nested = dir.path().join("a").join("b").join("topic-0");
    let mut log = open(&nested, cfg());
    append(&mut log, 2, 1);
    drop(log);
    // Reopened without a clean close: recovery (and its fsync of the tail) runs.
    let log = open(&nested, cfg());
    assert_eq!(log.log_end_offset(), 2);
}

#[test]
fn reads_across_segments_bounded_by_upto_and_log_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let one = batch(3, 0).len() as u64;
    // Two 3-record batches per segment.
    let mut log = open(dir.path(), LogConfig { segment_bytes: one * 2, index_interval_bytes: 1, ..cfg() });
    let stored: Vec<Vec<u8>> = (0..6).map(|i| append(&mut log, 3, i).1).collect();
    assert_eq!(segment_files(dir.path()), 3);
    // From the middle of batch 1 (offset 4) with upto at batch 4's base (12): batches 1..=3,
    // crossing a segment boundary, nothing at or beyond upto.
    assert_eq!(&log.read(4, usize::MAX, 12, false).expect("read")[..], &stored[1..4].concat()[..]);
    // max_bytes ending inside batch 3 (second segment) stops after batch 2.
    let limit = stored[1].len() + stored[2].len() + 1;
    assert_eq!(&log.read(4, limit, 18, false).expect("read")[..], &stored[1..3].concat()[..]);
    // upto inside the data of the next segment: nothing from it.
    assert_eq!(&log.read(6, usize::MAX, 12, true).expect("read")[..], &stored[2..4].concat()[..]);
    assert!(log.read(12, usize::MAX, 12, true).expect("read").is_empty());
    // DeleteRecords into the middle of the second segment (inside batch 2).
    assert_eq!(log.advance_log_start(7).expect("delete records"), 7);
    assert_eq!(segment_files(dir.path()), 2);
    assert!(matches!(log.read(5, 100, 18, true), Err(LogError::OffsetOutOfRange { .. })));
    // The batch containing the log start is returned whole (consumers skip offsets < 7).
    assert_eq!(&log.read(7, usize::MAX, 18, false).expect("read")[..], &stored[2..].concat()[..]);
    // KIP-74: a first batch larger than max_bytes comes whole with min_one, not without.
    assert_eq!(&log.read(7, 1, 18, true).expect("read")[..], &stored[2][..]);
    assert!(log.read(7, 1, 18, false).expect("read").is_empty());
}

#[test]
fn crash_between_log_start_checkpoint_and_segment_deletion() {
    let dir = tempfile::tempdir().expect("tempdir");
    let one = batch(3, 0).len() as u64;
    let c = LogConfig { segment_bytes: one, ..cfg() };
    let mut log = open(dir.path(), c.clone());
    let stored: Vec<Vec<u8>> = (0..4).map(|i| append(&mut log, 3, i).1).collect();
    log.flush().expect("flush");
    drop(log);
    // As if DeleteRecords(7) crashed right after persisting the checkpoint, and a deletion
    // of the first segment got as far as its index.
    std::fs::write(dir.path().join("log-start-offset"), "7\n").expect("checkpoint");
    std::fs::remove_file(dir.path().join(format!("{:020}.index", 0))).expect("rm index");
    let log = open(dir.path(), c);
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (7, 12));
    assert_eq!(segment_files(dir.path()), 2);
    assert_eq!(&read_all(&log)[..], &stored[2..].concat()[..]);
}

#[test]
fn a_read_plan_outlives_segment_deletion_and_ignores_later_appends() {
    let dir = tempfile::tempdir().expect("tempdir");
    let one = batch(2, 0).len() as u64;
    let mut log = open(dir.path(), LogConfig { segment_bytes: one * 2, index_interval_bytes: 1, ..cfg() });
    let mut expected = Vec::new();
    for i in 0..6 {
        expected.extend(append(&mut log, 2, i).1);
    }
    let plan = log.plan_read(0, usize::MAX, i64::MAX, true).expect("plan");
    // Made after the plan: deleting the segments it covers and appending more.
    log.advance_log_start(8).expect("advance");
    append(&mut log, 2, 9);
    assert_eq!(&plan.execute().expect("execute")[..], &expected[..]);
    // A plan bounded by `upto` mid-log stops there.
    let plan = log.plan_read(8, usize::MAX, 10, false).expect("plan");
    assert_eq!(headers(&plan.execute().expect("execute")).iter().map(|h| h.base_offset).collect::<Vec<_>>(), vec![8]);
}

/// The bytes a plan's ranges cover, read as they would be sent.
fn ranges_bytes(plan: super::ReadPlan) -> Vec<u8> {
    let mut out = Vec::new();
    for r in plan.into_ranges() {
        let start = out.len();
        out.resize(start + r.len, 0);
        std::os::unix::fs::FileExt::read_exact_at(&*r.file, &mut out[start..], r.pos).expect("read range");
    }
    out
}

#[test]
fn planned_ranges_hold_whole_batches_up_to_the_high_watermark_and_max_bytes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let one = batch(2, 0).len();
    // Several segments, and index entries that skip batches.
    let mut log =
        open(dir.path(), LogConfig { segment_bytes: one as u64 * 3, index_interval_bytes: one as u64 * 2, ..cfg() });
    let stored: Vec<Vec<u8>> = (0..10).map(|i| append(&mut log, 2, i).1).collect();
    // Everything visible: the ranges are the log's bytes from the batch holding offset 3.
    assert_eq!(ranges_bytes(log.plan_read(3, usize::MAX, 20, false).expect("plan")), stored[1..].concat());
    // Visible up to offset 13: whole batches up to (not including) the one at 14, across
    // segments, without reading them.
    assert_eq!(ranges_bytes(log.plan_read(3, usize::MAX, 14, false).expect("plan")), stored[1..7].concat());
    // `upto` inside a batch keeps that batch, as whole-batch reads always did.
    assert_eq!(ranges_bytes(log.plan_read(0, usize::MAX, 13, false).expect("plan")), stored[..7].concat());
    // max_bytes ending inside a batch ends the plan before that batch, within a segment and
    // in a later one, and also when index entries (every second batch here) are passed.
    for (offset, limit, batches) in [(0, one * 2 + 10, 0..2), (0, one * 5 - 1, 0..4), (2, one * 4 + 1, 1..5)] {
        let plan = log.plan_read(offset, limit, 20, false).expect("plan");
        assert_eq!(ranges_bytes(plan), stored[batches.clone()].concat(), "from {offset} within {limit}");
        assert_eq!(&log.read(offset, limit, 20, false).expect("read")[..], &stored[batches].concat()[..]);
    }
    // KIP-74: the first batch whole even when larger than max_bytes; without min_one
    // nothing.
    assert_eq!(ranges_bytes(log.plan_read(4, 10, 20, true).expect("plan")), stored[2]);
    assert!(log.plan_read(4, 10, 20, false).expect("plan").is_empty());
    // Nothing visible from here.
    assert!(log.plan_read(14, usize::MAX, 14, false).expect("plan").is_empty());
}

#[test]
fn plans_cut_between_batches_larger_than_the_header_walk_chunk() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = open(dir.path(), LogConfig { index_interval_bytes: 1 << 20, ..cfg() });
    let mut stored = Vec::new();
    for i in 0..4 {
        let mut b = test_util::batch_sized(1, i, 40_000, Compression::None);
        let info = log.append(&b, 0, i).expect("append");
        set_base_offset(&mut b, info.base_offset).expect("offset");
        set_partition_leader_epoch(&mut b, 0).expect("epoch");
        stored.push(b);
    }
    let one = stored[0].len();
    // No index entry to start from: the walk hops header to header.
    let plan = log.plan_read(0, one * 2 + one / 2, 10, false).expect("plan");
    assert_eq!(ranges_bytes(plan), stored[..2].concat());
    let plan = log.plan_read(1, one * 3 - 1, 10, true).expect("plan");
    assert_eq!(ranges_bytes(plan), stored[1..3].concat());
}

#[test]
fn cut_older_segment_keeps_everything_after_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let one = batch(2, 0).len() as u64;
    let c = LogConfig { segment_bytes: one * 2, ..cfg() };
    let mut log = open(dir.path(), c.clone());
    for ts in 0..6 {
        append(&mut log, 2, ts); // segments at 0, 4, 8
    }
    let all = read_all(&log);
    drop(log);
    // Garbage index for segment 0 (must be rebuilt), damaged last batch of segment 4:
    // segment 4 was fsynced when it rolled, so its damage is refused, not truncated, and
    // segment 8 stays.
    std::fs::write(dir.path().join(format!("{:020}.index", 0)), [9u8; 5]).expect("index");
    let seg4 = dir.path().join(format!("{:020}.log", 4));
    let len = std::fs::metadata(&seg4).expect("meta").len();
    OpenOptions::new().write(true).open(&seg4).expect("open").set_len(len - 1).expect("cut");
    for _ in 0..2 {
        let log = open(dir.path(), c.clone());
        assert_eq!(log.log_end_offset(), 12);
        assert_eq!(&read_all(&log)[..], &all[..3 * one as usize]);
        assert!(matches!(log.read(6, 1000, 12, true), Err(LogError::Corrupt { .. })));
        assert_eq!(&log.read(8, 1000, 12, false).expect("read")[..], &all[4 * one as usize..]);
        assert_eq!(segment_files(dir.path()), 3);
    }
}

#[test]
fn reopen_rebuilds_missing_indexes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let c = LogConfig { index_interval_bytes: 1, ..cfg() };
    let mut log = open(dir.path(), c.clone());
    for ts in 0..20 {
        append(&mut log, 2, ts);
    }
    log.close().expect("close");
    std::fs::remove_file(dir.path().join(format!("{:020}.index", 0))).expect("rm index");
    std::fs::remove_file(dir.path().join(format!("{:020}.timeindex", 0))).expect("rm timeindex");
    let log = open(dir.path(), c);
    assert_eq!(log.log_end_offset(), 40);
    for off in [0, 17, 39] {
        assert_eq!(headers(&log.read(off, 1, 40, true).expect("read"))[0].base_offset, off - off % 2);
    }
    let b = log.batch_for_timestamp(10).expect("ts").expect("some");
    assert_eq!(headers(&b)[0].base_offset, 18);
}
