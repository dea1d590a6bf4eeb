//! Cleaner tests over logs holding transactions: aborted records never win, markers stay
//! while their transaction has data and go after their delete horizon, nothing at or past
//! the last stable offset is touched, the cleaned group's `.txnindex` holds the entries of
//! the markers it keeps (and survives a reopen and a swap stopped at any step).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use indexmap::IndexMap;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use super::tests::{one, pass, settings, small_log, tempdir};
use super::*;
use crate::log::BatchIter;
use crate::log::txn::{AbortedTxn, TxnMarker, marker_batch};

/// A transactional batch of `producer` (epoch 0) from `sequence`, a record per (key, value).
fn txn(producer: i64, sequence: i32, recs: &[(&str, &str)]) -> Vec<u8> {
    let records: Vec<Record> = recs
        .iter()
        .enumerate()
        .map(|(i, (k, v))| Record {
            transactional: true,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: producer,
            producer_epoch: 0,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: sequence + i as i32,
            timestamp: 1_000,
            key: Some(Bytes::from(k.to_string())),
            value: Some(Bytes::from(v.to_string())),
            headers: IndexMap::new(),
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions { version: 2, compression: Compression::None };
    RecordBatchEncoder::encode(&mut buf, &records, &options).unwrap();
    buf.to_vec()
}

fn marker(producer: i64, commit: bool) -> Vec<u8> {
    marker_batch(producer, 0, TxnMarker { commit, coordinator_epoch: 0 }, 1_000).unwrap().to_vec()
}

/// Appends `batch`; its first offset.
fn add(log: &mut PartitionLog, batch: &[u8]) -> i64 {
    log.append(batch, 0, 1_000).unwrap().base_offset
}

/// Appends an ABORT marker of `producer` closing its transaction from `first`, indexed as
/// a partition does; the entry.
fn abort(log: &mut PartitionLog, producer: i64, first: i64) -> AbortedTxn {
    let at = add(log, &marker(producer, false));
    let entry = AbortedTxn { producer_id: producer, first_offset: first, last_offset: at, last_stable_offset: at + 1 };
    log.append_aborted_txns(&[entry]).unwrap();
    entry
}

/// Every batch: (base offset, control, record count).
fn batches(log: &PartitionLog) -> Vec<(i64, bool, i32)> {
    let bytes = log.read(log.log_start_offset(), usize::MAX, i64::MAX, true).unwrap();
    BatchIter::new(&bytes).map(|b| b.unwrap().0).map(|h| (h.base_offset, h.is_control(), h.records_count)).collect()
}

fn offsets(log: &PartitionLog) -> Vec<i64> {
    batches(log).into_iter().filter(|b| b.2 > 0).map(|b| b.0).collect()
}

/// What a read_committed consumer reading the whole log sees, as Kafka's consumers drop
/// aborted records (the fetch's aborted list): the latest value of each key.
fn read_committed(log: &PartitionLog) -> BTreeMap<String, String> {
    let end = log.log_end_offset();
    let mut pending: Vec<AbortedTxn> = log.aborted_txns(log.log_start_offset(), end).unwrap();
    pending.sort_by_key(|e| std::cmp::Reverse(e.first_offset));
    let mut dropping = BTreeSet::new();
    let mut seen = BTreeMap::new();
    let bytes = log.read(log.log_start_offset(), usize::MAX, i64::MAX, true).unwrap();
    for item in BatchIter::new(&bytes) {
        let (h, range) = item.unwrap();
        while pending.last().is_some_and(|e| e.first_offset <= h.last_offset()) {
            dropping.insert(pending.pop().unwrap().producer_id);
        }
        let set = RecordBatchDecoder::decode(&mut bytes.slice(range)).unwrap();
        if h.is_control() {
            if set.records.first().and_then(|r| r.key.as_deref()).is_some_and(|k| k[2..4] == [0, 0]) {
                dropping.remove(&h.producer_id);
            }
            continue;
        }
        if h.is_transactional() && dropping.contains(&h.producer_id) {
            continue;
        }
        for r in set.records {
            let s = |b: Option<Bytes>| String::from_utf8(b.unwrap().to_vec()).unwrap();
            seen.insert(s(r.key), s(r.value));
        }
    }
    seen
}

fn owned(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[test]
fn aborted_values_never_win_over_committed_or_earlier_plain_ones() {
    let dir = tempdir();
    let mut log = small_log(dir.path());
    let plain = super::tests::encode(
        &[(Some("k1".into()), Some("plain".into())), (Some("k3".into()), Some("plain".into()))],
        1_000,
        Compression::None,
        (-1, -1, -1),
        false,
    );
    add(&mut log, &plain); // 0, 1
    add(&mut log, &txn(1, 0, &[("k1", "c1"), ("k2", "c1")])); // 2, 3
    add(&mut log, &marker(1, true)); // 4
    let first = add(&mut log, &txn(2, 0, &[("k1", "aborted"), ("k2", "aborted"), ("k3", "aborted")])); // 5..7
    abort(&mut log, 2, first); // 8
    add(&mut log, &one("zz", Some("x"))); // 9: the active segment
    let want = owned(&[("k1", "c1"), ("k2", "c1"), ("k3", "plain"), ("zz", "x")]);
    assert_eq!(read_committed(&log), want);
    pass(&mut log, 2_000);
    assert_eq!(read_committed(&log), want);
    // Nothing aborted is left for a read_uncommitted consumer either, and the markers stay
    // (their transactions had data in this pass).
    assert_eq!(offsets(&log), vec![0, 2, 4, 8, 9]);
    let bytes = log.read(0, usize::MAX, i64::MAX, true).unwrap();
    let kept: Vec<_> = BatchIter::new(&bytes).map(|b| b.unwrap().0).collect();
    assert_eq!((kept[0].records_count, kept[1].records_count), (1, 2), "k1=plain went, the committed batch stayed");
    assert!(kept[1].is_transactional() && kept[1].producer_id == 1, "a committed batch keeps its producer fields");
    // Cleaning again (all of it mapped) changes nothing a consumer sees.
    pass(&mut log, 2_000);
    assert_eq!(read_committed(&log), want);
}

#[test]
fn markers_stay_while_their_data_does_then_go_after_their_horizon() {
    let dir = tempdir();
    let mut log = small_log(dir.path());
    add(&mut log, &txn(1, 0, &[("a", "1")])); // 0
    add(&mut log, &marker(1, true)); // 1
    add(&mut log, &one("a", Some("2"))); // 2: supersedes producer 1's record
    let first = add(&mut log, &txn(2, 0, &[("b", "x")])); // 3
    let gone = abort(&mut log, 2, first); // 4
    add(&mut log, &txn(1, 1, &[("c", "1")])); // 5
    add(&mut log, &marker(1, true)); // 6
    add(&mut log, &txn(2, 1, &[("d", "1")])); // 7
    add(&mut log, &marker(2, true)); // 8
    add(&mut log, &one("zz", Some("x"))); // 9: the active segment
    assert_eq!(log.aborted_txns(0, 10).unwrap(), vec![gone]);
    // The first pass drops the superseded and the aborted records; both markers had data
    // in it, so they stay as they are.
    let outcome = pass(&mut log, 2_000);
    assert_eq!(offsets(&log), vec![1, 2, 4, 5, 6, 7, 8, 9]);
    assert_eq!(outcome.next_tombstone_horizon, None);
    // The next pass finds their transactions without data: they get a delete horizon.
    let outcome = pass(&mut log, 2_000);
    assert_eq!(offsets(&log), vec![1, 2, 4, 5, 6, 7, 8, 9]);
    assert_eq!(outcome.next_tombstone_horizon, Some(3_000));
    assert_eq!(read_checkpoint_file(dir.path()).unwrap().unwrap().tombstone_horizon, Some(3_000));
    assert_eq!(log.aborted_txns(0, 10).unwrap(), vec![gone], "the ABORT marker is still there");
    pass(&mut log, 2_999);
    assert_eq!(offsets(&log), vec![1, 2, 4, 5, 6, 7, 8, 9]);
    // Past it, both go (each producer wrote again after them); the markers of the later
    // transactions, which have data, stay.
    pass(&mut log, 3_000);
    assert_eq!(offsets(&log), vec![2, 5, 6, 7, 8, 9]);
    assert_eq!(log.aborted_txns(0, 10).unwrap(), vec![], "the entry went with its marker");
    assert_eq!(read_committed(&log), owned(&[("a", "2"), ("c", "1"), ("d", "1"), ("zz", "x")]));
}

#[test]
fn an_aborted_producers_last_batch_is_kept_empty_and_keeps_its_marker() {
    let dir = tempdir();
    let mut log = small_log(dir.path());
    let first = add(&mut log, &txn(2, 0, &[("b", "x")])); // 0: producer 2's last batch
    let entry = abort(&mut log, 2, first); // 1
    add(&mut log, &one("zz", Some("x"))); // 2
    let hw = log.log_end_offset();
    let last = HashMap::from([(2, 0)]);
    for now in [2_000, 2_000, 9_000] {
        log.clean(hw, now, &settings(), &mut OffsetMap::with_buffer(1 << 20), &last).unwrap();
    }
    assert_eq!(batches(&log), vec![(0, false, 0), (1, true, 1), (2, false, 1)]);
    assert_eq!(log.aborted_txns(0, hw).unwrap(), vec![entry]);
    assert_eq!(read_committed(&log), owned(&[("zz", "x")]));
}

#[test]
fn nothing_at_or_past_the_upper_bound_is_touched() {
    let dir = tempdir();
    let mut log = small_log(dir.path());
    add(&mut log, &one("k", Some("v0"))); // 0
    add(&mut log, &txn(1, 0, &[("k", "open")])); // 1: a transaction still open
    add(&mut log, &one("k", Some("v2"))); // 2
    add(&mut log, &one("zz", Some("x"))); // 3: the active segment
    let before = batches(&log);
    // The partition's bound is its last stable offset, 1: only the segment of offset 0
    // may be cleaned, and nothing newer counts against it.
    let outcome = log.clean(1, 2_000, &settings(), &mut OffsetMap::with_buffer(1 << 20), &HashMap::new()).unwrap();
    assert_eq!((outcome.end_offset, outcome.groups_swapped), (1, 0));
    assert_eq!(batches(&log), before);
    let c = log.cleanable(0, 1, 2_000, 0).unwrap();
    assert_eq!((c.first_uncleanable, c.segments.len()), (1, 1));
}

/// Cleans the whole cleanable part of `log` as one group (every segment in it), with
/// `step` stopping the swap after a step as a crash would; whether the swap was stopped.
fn clean_as_one_group(log: &mut PartitionLog, now: i64, last: &HashMap<i64, i64>, stop_at: Option<usize>) -> bool {
    let hw = log.log_end_offset();
    let c = log.cleanable(read_checkpoint(&log.dir).unwrap(), hw, now, 0).unwrap();
    let mut map = OffsetMap::with_buffer(1 << 20);
    let mut stopped = false;
    clean::clean(&c, &settings(), u64::MAX, &mut map, now, last, &|| false, |group, cleaned| {
        let mut hook =
            |step: usize| if Some(step) == stop_at { ControlFlow::Break(()) } else { ControlFlow::Continue(()) };
        let r = swap_in(log, group, cleaned, &mut hook)?;
        stopped = r == Swapped::Stopped;
        Ok(r == Swapped::Done)
    })
    .unwrap();
    stopped
}

/// Producer 2 aborts a transaction (its marker then has no data), writes again and
/// commits; producer 3 aborts one whose batch is its last (kept empty, so its marker and
/// entry stay). Two passes: the first drops the aborted records, the second stamps the
/// horizon on producer 2's ABORT marker. Returns the entries (producer 2's, producer 3's).
fn build_aborted(dir: &Path) -> (PartitionLog, AbortedTxn, AbortedTxn) {
    let mut log = small_log(dir);
    let first = add(&mut log, &txn(2, 0, &[("a", "x")])); // 0
    let two = abort(&mut log, 2, first); // 1
    let first = add(&mut log, &txn(3, 0, &[("b", "y")])); // 2: producer 3's last batch
    let three = abort(&mut log, 3, first); // 3
    add(&mut log, &txn(2, 1, &[("c", "1")])); // 4
    add(&mut log, &marker(2, true)); // 5
    add(&mut log, &one("zz", Some("x"))); // 6: the active segment
    pass_with_last(&mut log, 2_000);
    pass_with_last(&mut log, 2_000);
    log.flush().unwrap();
    (log, two, three)
}

fn producer_three_last() -> HashMap<i64, i64> {
    HashMap::from([(3, 2)])
}

fn pass_with_last(log: &mut PartitionLog, now: i64) {
    let hw = log.log_end_offset();
    log.clean(hw, now, &settings(), &mut OffsetMap::with_buffer(1 << 20), &producer_three_last()).unwrap();
}

fn txn_index_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("txnindex"))
        .collect();
    names.sort();
    names
}

#[test]
fn the_cleaned_group_holds_the_entries_of_the_markers_it_keeps_and_reopens_with_them() {
    let dir = tempdir();
    let (mut log, two, three) = build_aborted(dir.path());
    assert_eq!(log.aborted_txns(0, 7).unwrap(), vec![two, three]);
    // The second pass merged the emptied segment 0 with segment 1, whose entry moved along.
    assert_eq!(txn_index_files(dir.path()), ["00000000000000000000.txnindex", "00000000000000000003.txnindex"]);
    assert!(!clean_as_one_group(&mut log, 3_000, &producer_three_last(), None));
    // Producer 2's marker went (past its horizon, and producer 2 wrote again), with its
    // entry; producer 3's stays, its entry now in the group's index.
    assert_eq!(batches(&log), vec![(2, false, 0), (3, true, 1), (4, false, 1), (5, true, 1), (6, false, 1)]);
    assert_eq!(txn_index_files(dir.path()), ["00000000000000000000.txnindex"]);
    assert_eq!(log.aborted_txns(0, 7).unwrap(), vec![three]);
    assert_eq!(log.segments()[0].aborted_txns, 1);
    drop(log);
    let log = small_log(dir.path());
    assert_eq!(log.aborted_txns(0, 7).unwrap(), vec![three]);
    assert_eq!(log.segments()[0].aborted_txns, 1);
    assert_eq!(read_committed(&log), owned(&[("c", "1"), ("zz", "x")]));
}

#[test]
fn a_swap_stopped_after_any_step_reopens_as_the_old_or_the_new_set_with_its_entries() {
    let reference = tempdir();
    let (mut log, two, three) = build_aborted(reference.path());
    let old = (batches(&log), vec![two, three]);
    clean_as_one_group(&mut log, 3_000, &producer_three_last(), None);
    let new = (batches(&log), vec![three]);
    assert_ne!(old.0, new.0);
    let mut completed = false;
    for stop_at in 0.. {
        let dir = tempdir();
        let (mut log, _, _) = build_aborted(dir.path());
        let stopped = clean_as_one_group(&mut log, 3_000, &producer_three_last(), Some(stop_at));
        drop(log); // the "crash": no close, no clean-shutdown marker
        let reopened = small_log(dir.path());
        let got = (batches(&reopened), reopened.aborted_txns(0, 7).unwrap());
        assert!(got == old || got == new, "stopped after step {stop_at}: {got:?}");
        let counted: u32 = reopened.segments().iter().map(|s| s.aborted_txns).sum();
        assert_eq!(counted as usize, got.1.len(), "stopped after step {stop_at}");
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

mod partition {
    //! The same through a partition: its last stable offset bounds the cleaner, and its
    //! read_committed view and aborted list survive the cleaning and a reopen.

    use super::*;
    use crate::broker::log_cleaner::clean_partition;
    use crate::broker::partition::Partition;
    use crate::broker::replica::Replica;
    use crate::broker::topic_config::EffectiveTopicConfig;
    use crate::log::{Flusher, LogConfig, validate_produced_batches};

    fn open(dir: &Path) -> Arc<Partition> {
        let log = LogConfig { segment_bytes: 100, index_interval_bytes: 100, ..LogConfig::default() };
        let mut config = EffectiveTopicConfig { log, max_message_bytes: 1 << 20, ..Default::default() };
        config.cleanup_compact = true;
        config.compaction = settings();
        Partition::open("t", 0, dir, config, &Flusher::start()).unwrap()
    }

    fn append(p: &Partition, batch: &[u8]) {
        let headers = validate_produced_batches(batch, 1 << 20).unwrap();
        p.append_unlimited(Bytes::copy_from_slice(batch), &headers, 1_000).unwrap();
        p.flush().unwrap();
    }

    fn clean(p: &Partition, now: i64) -> CleanOutcome {
        clean_partition(p, &mut OffsetMap::with_buffer(1 << 20), now, &|| false).unwrap()
    }

    fn values(p: &Partition) -> Vec<(i64, String)> {
        let all = p.with_log(|log| log.read(log.log_start_offset(), usize::MAX, i64::MAX, true)).unwrap();
        let mut out = Vec::new();
        for set in RecordBatchDecoder::decode_all(&mut all.clone()).unwrap() {
            for r in set.records.into_iter().filter(|r| !r.control) {
                out.push((r.offset, String::from_utf8(r.value.unwrap().to_vec()).unwrap()));
            }
        }
        out
    }

    #[test]
    fn the_last_stable_offset_bounds_the_cleaner_and_a_reopen_keeps_the_view() {
        let dir = tempdir();
        let p = open(dir.path());
        append(&p, &one("k", Some("v0"))); // 0
        append(&p, &txn(1, 0, &[("k", "aborted")])); // 1: open
        append(&p, &one("k", Some("v2"))); // 2
        append(&p, &one("zz", Some("x"))); // 3
        append(&p, &one("zz", Some("y"))); // 4: the active segment
        let offsets = p.offsets().unwrap();
        assert_eq!((offsets.last_stable, offsets.high_watermark), (1, 5));
        let (c, _, _) = p.cleaning_view(2_000).unwrap();
        assert_eq!(c.first_uncleanable, 1, "nothing at or past the last stable offset");
        clean(&p, 2_000);
        assert_eq!(values(&p).len(), 5, "k=v0 is older than the open transaction: untouched");

        append(&p, &marker(1, false)); // 5: the transaction is aborted
        append(&p, &one("zz", Some("z"))); // 6: the active segment
        let offsets = p.offsets().unwrap();
        assert_eq!((offsets.last_stable, offsets.high_watermark), (7, 7));
        let aborted = p.aborted_transactions(0, 7).unwrap();
        let listed = |p: &Partition| {
            let all = p.aborted_transactions(0, 7).unwrap();
            all.iter().map(|e| (e.producer_id, e.first_offset, e.last_offset)).collect::<Vec<_>>()
        };
        assert_eq!(listed(&p), [(1, 1, 5)]);
        clean(&p, 2_000);
        let want = vec![(2, "v2".to_string()), (4, "y".to_string()), (6, "z".to_string())];
        assert_eq!(values(&p), want, "the aborted record went, v2 and the latest zz stay");
        // The aborted batch is producer 1's last: kept empty (its sequence), so its
        // marker and entry stay.
        let empty = p.with_log(|log| log.read(1, usize::MAX, 2, true)).unwrap();
        let (h, _) = BatchIter::new(&empty).next().unwrap().unwrap();
        assert_eq!((h.base_offset, h.records_count, h.is_transactional()), (1, 0, true));
        assert_eq!(p.aborted_transactions(0, 7).unwrap(), aborted);
        // A clean restart keeps the cleaned log's index; a crash rebuilds it from the log.
        p.close().unwrap();
        drop(p);
        for restart in ["clean", "crash"] {
            let p = open(dir.path());
            let offsets = p.offsets().unwrap();
            assert_eq!((offsets.last_stable, offsets.high_watermark), (7, 7), "{restart}: no transaction looks open");
            assert_eq!(listed(&p), [(1, 1, 5)], "{restart}");
            assert_eq!(values(&p), want, "{restart}");
            // Nothing more to do: no horizon asks for another pass.
            assert_eq!(clean(&p, 9_000).next_tombstone_horizon, None, "{restart}");
            assert_eq!(values(&p), want, "{restart}");
        }
    }
}

mod model {
    //! Random plain writes and transactions of three producers over the same keys,
    //! committed or aborted: whatever the passes (a small offset map, delete horizons
    //! passing), a read_committed consumer sees what it saw before cleaning, no aborted
    //! record is left, and every transactional batch left is closed by a marker of its
    //! producer (a replay finds no transaction open).

    use proptest::prelude::*;

    use super::*;

    /// (what, producer, key): 0 plain write, 1 transactional write, 2 commit, 3 abort.
    fn op() -> impl Strategy<Value = (u8, i64, u8)> {
        (0u8..4, 1i64..4, 0u8..6)
    }

    fn check(ops: &[(u8, i64, u8)], buffer_keys: usize, segment_bytes: u64) -> Result<(), TestCaseError> {
        let dir = tempdir();
        let config = crate::log::LogConfig { segment_bytes, index_interval_bytes: 100, ..Default::default() };
        let mut log = PartitionLog::open(dir.path(), config).unwrap();
        let mut open: BTreeMap<i64, i64> = BTreeMap::new();
        let mut sequences: HashMap<i64, i32> = HashMap::new();
        let mut last: HashMap<i64, i64> = HashMap::new();
        // Offsets of each open transaction's records, then of every aborted one's.
        let mut pending: HashMap<i64, Vec<i64>> = HashMap::new();
        let mut aborted = BTreeSet::new();
        let end_txn = |log: &mut PartitionLog, open: &mut BTreeMap<i64, i64>, p: i64, commit: bool| {
            let first = open.remove(&p)?;
            let at = add(log, &marker(p, commit));
            if !commit {
                let last_stable_offset = open.values().copied().min().unwrap_or(at + 1);
                let entry = AbortedTxn { producer_id: p, first_offset: first, last_offset: at, last_stable_offset };
                log.append_aborted_txns(&[entry]).unwrap();
            }
            Some(())
        };
        for (i, &(what, p, k)) in ops.iter().enumerate() {
            let key = format!("k{k}");
            match what {
                0 => {
                    add(&mut log, &one(&key, Some(&format!("plain{i}"))));
                }
                1 => {
                    let seq = sequences.entry(p).or_insert(0);
                    let at = add(&mut log, &txn(p, *seq, &[(&key, &format!("txn{i}"))]));
                    *seq += 1;
                    last.insert(p, at);
                    open.entry(p).or_insert(at);
                    pending.entry(p).or_default().push(at);
                }
                _ => {
                    let commit = what == 2;
                    if end_txn(&mut log, &mut open, p, commit).is_some() {
                        let offsets = pending.remove(&p).unwrap_or_default();
                        if !commit {
                            aborted.extend(offsets);
                        }
                    }
                }
            }
        }
        for p in open.keys().copied().collect::<Vec<_>>() {
            end_txn(&mut log, &mut open, p, true);
        }
        // Past segment.ms (7 days): alone in the active segment, which is never cleaned.
        log.append(&one("zz-active", Some("x")), 0, 1_000 + 8 * 86_400_000).unwrap();
        let hw = log.log_end_offset();
        let want = read_committed(&log);
        let mut map = OffsetMap::with_buffer(24 * buffer_keys * 10 / 9 + 24);
        let s = settings();
        let mut passes = 0;
        while read_checkpoint(dir.path()).unwrap() < hw - 1 {
            log.clean(hw, 2_000, &s, &mut map, &last).unwrap();
            passes += 1;
            prop_assert!(passes <= 60);
            prop_assert_eq!(read_committed(&log), want.clone(), "pass {}", passes);
        }
        // Markers find their data gone, get a horizon, and go after it.
        for now in [2_000, 5_000, 5_000] {
            log.clean(hw, now, &s, &mut map, &last).unwrap();
            prop_assert_eq!(read_committed(&log), want.clone(), "at {}", now);
        }
        // A replay (a crash's rebuild) must find the same outcomes: every transactional
        // batch closed by a marker of its producer, none of the records left closed by an
        // ABORT marker (none of them was aborted).
        let bytes = log.read(0, usize::MAX, i64::MAX, true).unwrap();
        let mut open_now: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
        for item in BatchIter::new(&bytes) {
            let (h, range) = item.unwrap();
            let set = RecordBatchDecoder::decode(&mut bytes.slice(range)).unwrap();
            if h.is_control() {
                let abort = set.records.first().and_then(|r| r.key.as_deref()).is_some_and(|k| k[2..4] == [0, 0]);
                let closed = open_now.remove(&h.producer_id).unwrap_or_default();
                prop_assert!(!abort || closed.is_empty(), "a replay would abort the records at {:?}", closed);
                continue;
            }
            for r in &set.records {
                prop_assert!(!aborted.contains(&r.offset), "aborted record at {} left", r.offset);
            }
            if h.is_transactional() {
                open_now.entry(h.producer_id).or_default().extend(set.records.iter().map(|r| r.offset));
            }
        }
        prop_assert!(open_now.is_empty(), "transactions left without their marker: {:?}", open_now);
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
        #[test]
        fn read_committed_sees_the_same_before_and_after_cleaning(ops in proptest::collection::vec(op(), 1..60), buffer_keys in 2usize..10, segment_bytes in 100u64..400) {
            check(&ops, buffer_keys, segment_bytes)?;
        }
    }
}
