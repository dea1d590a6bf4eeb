//! Cleaner tests over real logs: what survives a pass, tombstone horizons, the high
//! watermark and active segment bounds, a small offset map, producer batches, control
//! batches, compressed batches, the swap crash-safety, and a property test against a model.

use std::collections::{BTreeMap, HashMap};
use std::ops::ControlFlow;
use std::path::Path;

use bytes::{Bytes, BytesMut};
use indexmap::IndexMap;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use super::*;
use crate::log::{BatchIter, LogConfig};

pub(super) fn encode(
    recs: &[(Option<String>, Option<String>)],
    ts: i64,
    codec: Compression,
    producer: (i64, i16, i32),
    control: bool,
) -> Vec<u8> {
    let records: Vec<Record> = recs
        .iter()
        .enumerate()
        .map(|(i, (k, v))| Record {
            transactional: control,
            control,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: producer.0,
            producer_epoch: producer.1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: producer.2.wrapping_add(i as i32),
            timestamp: ts + i as i64,
            key: k.as_ref().map(|k| Bytes::from(k.clone())),
            value: v.as_ref().map(|v| Bytes::from(v.clone())),
            headers: IndexMap::new(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(&mut buf, &records, &RecordEncodeOptions { version: 2, compression: codec }).unwrap();
    buf.to_vec()
}

pub(super) fn one(key: &str, value: Option<&str>) -> Vec<u8> {
    encode(&[(Some(key.to_string()), value.map(String::from))], 1_000, Compression::None, (-1, -1, -1), false)
}

/// A temporary directory, on tmpfs when there is one: every roll and swap fsyncs, and
/// these tests are about what the cleaner keeps and what a reopen finds, not the disk.
pub(super) fn tempdir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() { tempfile::tempdir_in(shm).unwrap() } else { tempfile::tempdir().unwrap() }
}

/// A log rolling after every batch (tiny segment.bytes).
pub(super) fn small_log(dir: &Path) -> PartitionLog {
    PartitionLog::open(dir, LogConfig { segment_bytes: 100, index_interval_bytes: 100, ..LogConfig::default() })
        .unwrap()
}

/// Every record: (offset, key, value, timestamp).
pub(super) fn records(log: &PartitionLog) -> Vec<(i64, Option<String>, Option<String>, i64)> {
    let bytes = log.read(log.log_start_offset(), usize::MAX, i64::MAX, true).unwrap();
    let mut out = Vec::new();
    for item in BatchIter::new(&bytes) {
        let (_, range) = item.unwrap();
        let set = RecordBatchDecoder::decode(&mut bytes.slice(range)).unwrap();
        for r in set.records {
            let s = |b: Option<Bytes>| b.map(|b| String::from_utf8(b.to_vec()).unwrap());
            out.push((r.offset, s(r.key), s(r.value), r.timestamp));
        }
    }
    out
}

pub(super) fn settings() -> CompactionSettings {
    CompactionSettings { delete_retention_ms: 1_000, ..CompactionSettings::default() }
}

pub(super) fn pass(log: &mut PartitionLog, now: i64) -> CleanOutcome {
    let hw = log.log_end_offset();
    log.clean(hw, now, &settings(), &mut OffsetMap::with_buffer(1 << 20), &HashMap::new()).unwrap()
}

#[test]
fn latest_value_per_key_survives_at_its_offset_and_the_log_shrinks() {
    let dir = tempdir();
    let mut log = small_log(dir.path());
    for round in 0..3 {
        for k in 0..4 {
            log.append(&one(&format!("k{k}"), Some(&format!("v{round}"))), 0, 1_000).unwrap();
        }
    }
    log.append(&one("active", Some("x")), 0, 1_000).unwrap();
    let before = log.size_bytes();
    let outcome = pass(&mut log, 2_000);
    assert!(outcome.groups_swapped > 0);
    assert!(log.size_bytes() < before, "{} < {before}", log.size_bytes());
    let got: Vec<_> = records(&log).into_iter().map(|(o, k, v, _)| (o, k.unwrap(), v.unwrap())).collect();
    let want: Vec<_> =
        (0..4).map(|k| (8 + k, format!("k{k}"), "v2".to_string())).chain([(12, "active".into(), "x".into())]).collect();
    assert_eq!(got, want);
    // Reopened, the same: the swap is on disk, indexes included.
    drop(log);
    let log = small_log(dir.path());
    assert_eq!(records(&log).len(), 5);
    assert_eq!(log.log_end_offset(), 13);
}

#[test]
fn tombstones_stay_for_delete_retention_ms_then_go() {
    let dir = tempdir();
    let mut log = small_log(dir.path());
    log.append(&one("a", Some("1")), 0, 1_000).unwrap();
    log.append(&one("b", Some("1")), 0, 1_000).unwrap();
    log.append(&one("a", None), 0, 1_000).unwrap();
    log.append(&one("filler", Some("x")), 0, 1_000).unwrap();
    pass(&mut log, 10_000);
    let keys = |log: &PartitionLog| records(log).into_iter().map(|(o, k, v, _)| (o, k.unwrap(), v)).collect::<Vec<_>>();
    assert_eq!(
        keys(&log),
        vec![(1, "b".into(), Some("1".into())), (2, "a".into(), None), (3, "filler".into(), Some("x".into()))]
    );
    // The horizon is kept in the cleaner checkpoint, so a restarted broker knows when the
    // log is due again.
    let checkpoint = read_checkpoint_file(dir.path()).unwrap().unwrap();
    assert_eq!(checkpoint, Checkpoint { clean_up_to: 3, tombstone_horizon: Some(11_000) });
    // Within delete.retention.ms (1 s) of that pass the tombstone stays.
    pass(&mut log, 10_999);
    assert_eq!(keys(&log).len(), 3);
    let outcome = pass(&mut log, 11_001);
    assert_eq!(outcome.next_tombstone_horizon, None);
    assert_eq!(read_checkpoint_file(dir.path()).unwrap().unwrap().tombstone_horizon, None);
    assert_eq!(keys(&log), vec![(1, "b".into(), Some("1".into())), (3, "filler".into(), Some("x".into()))]);
}

#[test]
fn nothing_at_or_above_the_high_watermark_or_in_the_active_segment_is_cleaned() {
    let dir = tempdir();
    let mut log = small_log(dir.path());
    for _ in 0..4 {
        log.append(&one("k", Some("v")), 0, 1_000).unwrap();
    }
    // High watermark 2: only segments [0] and [1] are below it.
    log.clean(2, 2_000, &settings(), &mut OffsetMap::with_buffer(1 << 20), &HashMap::new()).unwrap();
    assert_eq!(records(&log).iter().map(|r| r.0).collect::<Vec<_>>(), vec![1, 2, 3]);
    // Everything visible: the active segment (offset 3) is not cleaned, so it does not
    // count as newer than 2 either (as in Kafka, the map stops at the active segment).
    pass(&mut log, 2_000);
    assert_eq!(records(&log).iter().map(|r| r.0).collect::<Vec<_>>(), vec![2, 3]);
}

#[test]
fn a_small_dedupe_buffer_takes_several_passes_and_each_is_correct() {
    let dir = tempdir();
    let mut log = small_log(dir.path());
    let mut model = BTreeMap::new();
    for i in 0..40i64 {
        let key = format!("k{}", i % 10);
        log.append(&one(&key, Some(&i.to_string())), 0, 1_000).unwrap();
        model.insert(key, i);
    }
    log.append(&one("active", Some("x")), 0, 1_000).unwrap();
    let hw = log.log_end_offset();
    // Room for 3 keys (120 bytes: a 4-slot table).
    let mut map = OffsetMap::with_buffer(24 * 5);
    assert_eq!(map.capacity(), 3);
    let mut passes = 0;
    loop {
        let outcome = log.clean(hw, 2_000, &settings(), &mut map, &HashMap::new()).unwrap();
        passes += 1;
        // Never loses a key's latest value, whatever the pass.
        let got: BTreeMap<String, i64> = records(&log)
            .into_iter()
            .map(|(_, k, v, _)| (k.unwrap(), v.unwrap().parse::<i64>().unwrap_or(-1)))
            .collect();
        for (k, v) in &model {
            assert_eq!(got.get(k), Some(v), "pass {passes}");
        }
        if outcome.end_offset >= 40 {
            break;
        }
        assert!(passes < 20);
    }
    assert!(passes > 2, "{passes} passes");
    let offsets: Vec<i64> = records(&log).iter().map(|r| r.0).collect();
    assert_eq!(offsets, (30..41).collect::<Vec<_>>());
}

#[test]
fn a_producers_last_batch_is_kept_empty_and_its_state_rebuilds() {
    let dir = tempdir();
    let mut log = small_log(dir.path());
    let producer = |seq| encode(&[(Some("a".into()), Some("p".into()))], 1_000, Compression::None, (7, 0, seq), false);
    log.append(&producer(0), 0, 1_000).unwrap(); // 0: dropped (not the producer's last)
    log.append(&producer(1), 0, 1_000).unwrap(); // 1: the producer's last batch
    log.append(&one("a", Some("plain")), 0, 1_000).unwrap(); // 2: a's latest
    log.append(&one("z", Some("x")), 0, 1_000).unwrap();
    let last = HashMap::from([(7, 1)]);
    let hw = log.log_end_offset();
    log.clean(hw, 2_000, &settings(), &mut OffsetMap::with_buffer(1 << 20), &last).unwrap();
    let bytes = log.read(0, usize::MAX, i64::MAX, true).unwrap();
    let headers: Vec<_> = BatchIter::new(&bytes).map(|i| i.unwrap().0).collect();
    let empty = headers.iter().find(|h| h.producer_id == 7).expect("the producer's last batch");
    assert_eq!((empty.base_offset, empty.last_offset(), empty.records_count), (1, 1, 0));
    assert_eq!((empty.producer_epoch, empty.base_sequence), (0, 1));
    assert!(crate::log::batch::verify_crc(&bytes[..headers[0].total_size()]));
    assert_eq!(headers.iter().filter(|h| h.producer_id == 7).count(), 1);
    assert_eq!(records(&log).iter().map(|r| r.0).collect::<Vec<_>>(), vec![2, 3]);
}

#[test]
fn control_batches_are_kept_as_they_are() {
    let dir = tempdir();
    let mut log = small_log(dir.path());
    // A raft blank entry: a control batch without a producer.
    let blank = crate::raft::control::blank_batch(1_000).unwrap();
    log.append(&one("a", Some("1")), 0, 1_000).unwrap();
    log.append(&blank, 0, 1_000).unwrap();
    log.append(&one("a", Some("2")), 0, 1_000).unwrap();
    log.append(&one("z", Some("x")), 0, 1_000).unwrap();
    pass(&mut log, 2_000);
    let bytes = log.read(0, usize::MAX, i64::MAX, true).unwrap();
    let headers: Vec<_> = BatchIter::new(&bytes).map(|i| i.unwrap().0).collect();
    assert!(headers.iter().any(|h| h.is_control() && h.base_offset == 1 && h.records_count == 1));
    assert_eq!(headers.iter().map(|h| h.base_offset).collect::<Vec<_>>(), vec![1, 2, 3]);
}

#[test]
fn a_log_holding_transactions_is_compacted_and_markers_without_data_wait_for_their_horizon() {
    let dir = tempdir();
    let mut log = small_log(dir.path());
    // COMMIT markers (key version 0, type 1) of transactions with no data in the log.
    let marker =
        encode(&[(Some("\0\0\0\x01".into()), Some("\0\0\0\0\0\0".into()))], 1_000, Compression::None, (9, 0, -1), true);
    log.append(&one("a", Some("1")), 0, 1_000).unwrap();
    log.append(&marker, 0, 1_000).unwrap();
    log.append(&one("a", Some("2")), 0, 1_000).unwrap();
    log.append(&marker, 0, 1_000).unwrap();
    log.append(&one("z", Some("x")), 0, 1_000).unwrap();
    let outcome = pass(&mut log, 2_000);
    assert_eq!(outcome.next_tombstone_horizon, Some(3_000), "the markers' delete horizon");
    let offsets = |log: &PartitionLog| records(log).iter().map(|r| r.0).collect::<Vec<_>>();
    assert_eq!(offsets(&log), vec![1, 2, 3, 4], "a=1 went, the markers stay until their horizon");
    let bytes = log.read(0, usize::MAX, i64::MAX, true).unwrap();
    let (h, _) = BatchIter::new(&bytes).next().unwrap().unwrap();
    assert!(h.is_control() && h.is_transactional() && records::delete_horizon(&h) == Some(3_000));
    pass(&mut log, 2_999);
    assert_eq!(offsets(&log), vec![1, 2, 3, 4]);
    let outcome = pass(&mut log, 3_000);
    // The first marker goes; the second is its producer's last word (its epoch): it stays,
    // and asks for no further pass.
    assert_eq!(offsets(&log), vec![2, 3, 4], "removed by the first pass after its horizon");
    assert_eq!(outcome.next_tombstone_horizon, None);
}

#[test]
fn compressed_batches_are_recompressed_with_their_codec_keeping_offsets_and_timestamps() {
    for codec in [Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd] {
        let dir = tempdir();
        let mut log = small_log(dir.path());
        let recs: Vec<_> = (0..10).map(|i| (Some(format!("k{i}")), Some(format!("old{i}")))).collect();
        log.append(&encode(&recs, 5_000, codec, (-1, -1, -1), false), 0, 5_000).unwrap();
        let newer: Vec<_> = (0..5).map(|i| (Some(format!("k{i}")), Some(format!("new{i}")))).collect();
        log.append(&encode(&newer, 9_000, Compression::None, (-1, -1, -1), false), 0, 9_000).unwrap();
        log.append(&one("active", Some("x")), 0, 9_000).unwrap();
        pass(&mut log, 20_000);
        let bytes = log.read(0, usize::MAX, i64::MAX, true).unwrap();
        let first = BatchIter::new(&bytes).next().unwrap().unwrap().0;
        assert_eq!(first.compression(), codec);
        assert_eq!((first.base_offset, first.last_offset(), first.records_count), (0, 9, 5));
        let got = records(&log);
        let kept: Vec<_> =
            got.iter().take(5).map(|(o, k, v, ts)| (*o, k.clone().unwrap(), v.clone().unwrap(), *ts)).collect();
        let want: Vec<_> = (5..10).map(|i| (i, format!("k{i}"), format!("old{i}"), 5_000 + i)).collect();
        assert_eq!(kept, want, "{codec:?}");
        assert_eq!(got.len(), 11);
    }
}

#[test]
fn a_swap_stopped_after_any_step_reopens_as_the_old_or_the_new_set() {
    let build = |dir: &Path| {
        let mut log = small_log(dir);
        for round in 0..3 {
            for k in 0..3 {
                log.append(&one(&format!("k{k}"), Some(&format!("v{round}"))), 0, 1_000).unwrap();
            }
        }
        log.append(&one("active", Some("x")), 0, 1_000).unwrap();
        log.flush().unwrap();
        log
    };
    let (reference, reference2) = (tempdir(), tempdir());
    let old = records(&build(reference.path()));
    let mut log = build(reference2.path());
    pass(&mut log, 2_000);
    let new = records(&log);
    assert_ne!(old, new);
    let mut completed = false;
    for stop_at in 0.. {
        let dir = tempdir();
        let mut log = build(dir.path());
        let hw = log.log_end_offset();
        let c = log.cleanable(0, hw, 2_000, 0).unwrap();
        let mut map = OffsetMap::with_buffer(1 << 20);
        let mut stopped = false;
        // One group: segment.bytes 100 fits one segment each, so allow big groups here.
        clean::clean(&c, &settings(), u64::MAX, &mut map, 2_000, &HashMap::new(), &|| false, |group, cleaned| {
            let mut hook =
                |step: usize| if step == stop_at { ControlFlow::Break(()) } else { ControlFlow::Continue(()) };
            let r = swap_in(&mut log, group, cleaned, &mut hook)?;
            stopped = r == Swapped::Stopped;
            Ok(r == Swapped::Done)
        })
        .unwrap();
        drop(log); // the "crash": no close, no clean-shutdown marker
        let reopened = small_log(dir.path());
        let got = records(&reopened);
        assert!(got == old || got == new, "stopped after step {stop_at}: {got:?}");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".swap") || n.ends_with(".cleaned"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        if !stopped {
            assert_eq!(got, new);
            completed = true;
            break;
        }
    }
    assert!(completed);
}

#[test]
fn a_half_written_cleaned_file_is_removed_at_start_up() {
    let dir = tempdir();
    let mut log = small_log(dir.path());
    log.append(&one("a", Some("1")), 0, 1_000).unwrap();
    log.append(&one("a", Some("2")), 0, 1_000).unwrap();
    let before = records(&log);
    drop(log);
    std::fs::write(dir.path().join(clean::cleaned_name(0, 1)), b"partial").unwrap();
    let log = small_log(dir.path());
    assert_eq!(records(&log), before);
    assert!(!dir.path().join(clean::cleaned_name(0, 1)).exists());
}

mod model {
    use proptest::prelude::*;

    use super::*;

    fn op() -> impl Strategy<Value = (u8, Option<u8>)> {
        (0u8..8, proptest::option::weighted(0.8, any::<u8>()))
    }

    /// Random keyed writes and tombstones: after cleaning (and after the tombstones'
    /// horizon), the log holds exactly the latest value of each live key, at the
    /// offset it was written, in increasing offsets.
    fn check(ops: &[(u8, Option<u8>)], buffer_keys: usize, segment_bytes: u64) -> Result<(), TestCaseError> {
        let dir = tempdir();
        let config = LogConfig { segment_bytes, index_interval_bytes: 100, ..LogConfig::default() };
        let mut log = PartitionLog::open(dir.path(), config).unwrap();
        let mut latest: BTreeMap<String, (i64, Option<String>)> = BTreeMap::new();
        for (k, v) in ops {
            let key = format!("k{k}");
            let value = v.map(|v| v.to_string());
            let info = log.append(&one(&key, value.as_deref()), 0, 1_000).unwrap();
            latest.insert(key, (info.base_offset, value));
        }
        // Appended past segment.ms (7 days): alone in the active segment, which is never cleaned.
        log.append(&one("zz-active", Some("x")), 0, 1_000 + 8 * 86_400_000).unwrap();
        let hw = log.log_end_offset();
        let mut map = OffsetMap::with_buffer(24 * buffer_keys * 10 / 9 + 24);
        let s = settings();
        // Passes until the whole log was mapped (a small map takes several), then one
        // past every tombstone's delete horizon (set at 2,000 + 1,000).
        let mut passes = 0;
        prop_assert_eq!(log.cleanable(0, hw, 2_000, 0).unwrap().first_uncleanable, hw - 1);
        while read_checkpoint(dir.path()).unwrap() < hw - 1 {
            log.clean(hw, 2_000, &s, &mut map, &HashMap::new()).unwrap();
            passes += 1;
            prop_assert!(passes <= 60);
        }
        log.clean(hw, 5_000, &s, &mut map, &HashMap::new()).unwrap();
        let got = records(&log);
        let offsets: Vec<i64> = got.iter().map(|r| r.0).collect();
        prop_assert!(offsets.windows(2).all(|w| w[0] < w[1]));
        let got: Vec<_> = got
            .into_iter()
            .filter(|r| r.1.as_deref() != Some("zz-active"))
            .map(|(o, k, v, _)| (o, k.unwrap(), v))
            .collect();
        let mut want: Vec<_> =
            latest.into_iter().filter(|(_, (_, v))| v.is_some()).map(|(k, (o, v))| (o, k, v)).collect();
        want.sort();
        prop_assert_eq!(got, want);
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
        #[test]
        fn compacted_log_equals_the_latest_value_per_key(ops in proptest::collection::vec(op(), 1..60), buffer_keys in 2usize..12, segment_bytes in 100u64..400) {
            check(&ops, buffer_keys, segment_bytes)?;
        }
    }

    /// Cases the property once failed on (shrunk by proptest), kept as plain tests.
    #[test]
    fn cases_that_once_failed() {
        let mixed: Vec<(u8, Option<u8>)> = vec![
            (0, None),
            (1, None),
            (2, None),
            (0, None),
            (1, None),
            (2, None),
            (0, None),
            (3, None),
            (1, None),
            (0, None),
            (1, None),
            (2, None),
            (2, None),
            (0, None),
            (3, None),
            (2, None),
            (0, None),
            (1, None),
            (3, Some(6)),
            (4, Some(155)),
            (0, Some(147)),
            (5, Some(142)),
            (1, Some(113)),
            (4, None),
            (1, None),
        ];
        for segment_bytes in [100, 148, 399] {
            check(&mixed, 3, segment_bytes).expect("mixed writes and tombstones");
            check(&[(0, None); 13], 2, segment_bytes).expect("one key's tombstones");
        }
    }
}

#[test]
fn min_compaction_lag_keeps_young_segments_and_the_dirty_ratio_and_max_lag_say_when() {
    let dir = tempdir();
    let mut log = small_log(dir.path());
    for ts in [1_000, 2_000, 3_000, 4_000] {
        let b = encode(&[(Some("k".into()), Some(ts.to_string()))], ts, Compression::None, (-1, -1, -1), false);
        log.append(&b, 0, ts).unwrap();
    }
    let hw = log.log_end_offset();
    // At 5,000 with min.compaction.lag.ms 2,500 only records written by 2,500 may go.
    let c = log.cleanable(0, hw, 5_000, 2_500).unwrap();
    assert_eq!((c.first_dirty, c.first_uncleanable, c.segments.len()), (0, 2, 2));
    assert!((c.dirty_ratio() - 1.0).abs() < f64::EPSILON);
    // max.compaction.lag.ms: the oldest dirty record (written at 1,000) is 4,000 old.
    assert!(c.past_max_lag(5_000, 3_999) && !c.past_max_lag(5_000, 4_000));
    let s = CompactionSettings { min_compaction_lag_ms: 2_500, ..settings() };
    log.clean(hw, 5_000, &s, &mut OffsetMap::with_buffer(1 << 20), &HashMap::new()).unwrap();
    assert_eq!(records(&log).iter().map(|r| r.0).collect::<Vec<_>>(), vec![1, 2, 3]);
    // Cleaned up to 2: the clean part now counts against the dirty ratio.
    let c = log.cleanable(read_checkpoint(dir.path()).unwrap(), hw, 9_000, 0).unwrap();
    assert_eq!((c.first_dirty, c.first_uncleanable), (2, 3));
    assert!(c.dirty_ratio() > 0.0 && c.dirty_ratio() < 1.0, "{}", c.dirty_ratio());
}

#[test]
fn timestamp_lookups_skip_the_empty_batches_compaction_keeps_for_producers() {
    let dir = tempdir();
    let mut log = small_log(dir.path());
    let producer = |seq| encode(&[(Some("a".into()), Some("p".into()))], 9_000, Compression::None, (7, 0, seq), false);
    let plain = |k: &str, ts| encode(&[(Some(k.into()), Some("v".into()))], ts, Compression::None, (-1, -1, -1), false);
    log.append(&producer(0), 0, 1_000).unwrap(); // 0: dropped
    log.append(&producer(1), 0, 1_000).unwrap(); // 1: kept empty, maxTimestamp 9000
    log.append(&plain("a", 4_000), 0, 1_000).unwrap(); // 2
    log.append(&plain("z", 5_000), 0, 1_000).unwrap(); // 3
    log.append(&plain("active", 1_000), 0, 1_000).unwrap(); // 4: active segment
    let hw = log.log_end_offset();
    log.clean(hw, 20_000, &settings(), &mut OffsetMap::with_buffer(1 << 20), &HashMap::from([(7, 1)])).unwrap();
    let first_offset = |b: Bytes| BatchIter::new(&b).next().unwrap().unwrap().0.base_offset;
    let by_time = log.batch_for_timestamp(4_500).unwrap().map(first_offset);
    assert_eq!(by_time, Some(3), "the first batch with a record at or after 4500 is z's");
    assert!(log.batch_for_timestamp(6_000).unwrap().is_none(), "only the empty batch is that late");
    let (ts, batch) = log.max_timestamp_batch().unwrap().expect("a batch with records");
    assert_eq!((ts, first_offset(batch)), (5_000, 3));
}
