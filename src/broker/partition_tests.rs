//! Tests of [`Partition`]: idempotent appends, the high watermark and durability.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::records::Compression;

use super::*;
use crate::broker::producer_state::{ProducerIdGate, ProducerLimits};
use crate::broker::replica::{Offsets, Replica};
use crate::log::test_util::producer_batch;
use crate::log::{LogConfig, validate_produced_batches};

fn config(log: LogConfig) -> EffectiveTopicConfig {
    EffectiveTopicConfig { log, max_message_bytes: 1 << 20, ..Default::default() }
}

fn open(dir: &Path, log: LogConfig) -> Arc<Partition> {
    Partition::open("t", 0, dir, config(log), &Flusher::start()).expect("open partition")
}

fn append(p: &Partition, bytes: &[u8]) -> Result<Appended, PartitionError> {
    let headers = validate_produced_batches(bytes, 1 << 20).expect("valid batch");
    p.append_unlimited(Bytes::copy_from_slice(bytes), &headers, 1_000)
}

fn new_sync(a: Appended) -> SyncTarget {
    match a {
        Appended::New { sync: Some(t), .. } => t,
        _ => panic!("expected a new append with a sync target"),
    }
}

#[tokio::test]
async fn duplicate_of_unsynced_batch_waits_for_fsync() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = open(dir.path(), LogConfig::default());
    let first = producer_batch(5, 1, 10, Compression::None, (7, 0, 0));
    let target = new_sync(append(&p, &first).expect("append"));
    // The retry arrives before the fsync: answering it at once would acknowledge an
    // acks=all write that is not durable yet (or whose fsync is about to fail).
    match append(&p, &first).expect("retry") {
        Appended::Duplicate { base_offset, sync, .. } => {
            assert_eq!(base_offset, 0);
            let sync = sync.expect("a duplicate beyond the high watermark must wait for the fsync");
            assert!(sync.end_offset >= 5);
        }
        Appended::New { .. } => panic!("retry was appended twice"),
    }
    let flusher = Flusher::start();
    p.commit(&flusher, target).await.expect("commit");
    assert_eq!(p.high_watermark(), 5);
    // Once durable, a retry is answered at once.
    assert!(matches!(append(&p, &first).expect("retry"), Appended::Duplicate { sync: None, base_offset: 0, .. }));
}

#[tokio::test]
async fn failed_fsync_fences_the_partition() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = open(dir.path(), LogConfig::default());
    let a = new_sync(append(&p, &producer_batch(5, 1, 10, Compression::None, (-1, -1, -1))).expect("append a"));
    // fdatasync fails on /dev/null (EINVAL), standing in for an EIO on the segment.
    let devnull = crate::log::open_files::SegmentFile::lazy("/dev/null".into());
    let broken = SyncTarget { file: devnull, ..a.clone() };
    let flusher = Flusher::start();
    assert!(p.commit(&flusher, broken).await.is_err());
    assert_eq!(p.high_watermark(), 0);
    // After a failed fsync the kernel may have dropped the dirty pages and later fsyncs
    // succeed: nothing may be appended or declared durable any more.
    let b = append(&p, &producer_batch(1, 2, 10, Compression::None, (-1, -1, -1)));
    assert!(matches!(&b, Err(e) if e.code() == ResponseError::KafkaStorageError), "append after failed fsync");
    assert!(p.commit(&flusher, a).await.is_err(), "a later fsync must not make lost data durable");
    assert_eq!(p.high_watermark(), 0);
}

#[tokio::test]
async fn a_log_fenced_by_a_failed_fsync_recovers_in_place_cutting_what_was_never_durable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = open(dir.path(), LogConfig::default());
    let flusher = Flusher::start();
    let durable = new_sync(append(&p, &producer_batch(3, 1, 10, Compression::None, (7, 0, 0))).expect("append"));
    p.commit(&flusher, durable).await.expect("commit");
    assert_eq!(p.high_watermark(), 3);
    // Two more batches reach the page cache; their fsync fails (EINVAL on /dev/null
    // standing in for EIO/ENOSPC): the kernel may have dropped those pages.
    let lost = new_sync(append(&p, &producer_batch(4, 2, 10, Compression::None, (7, 0, 3))).expect("append"));
    let devnull = crate::log::open_files::SegmentFile::lazy("/dev/null".into());
    assert!(p.commit(&flusher, SyncTarget { file: devnull, ..lost.clone() }).await.is_err());
    assert!(p.storage_failed());
    assert!(append(&p, &producer_batch(1, 3, 10, Compression::None, (-1, -1, -1))).is_err(), "fenced");

    // Recovery needs no restart; it cuts the log back to the durable end.
    assert!(p.recover_failed_log().expect("recover"));
    assert!(!p.storage_failed());
    assert_eq!(p.recovery_epoch(), 1);
    assert_eq!(p.offsets().expect("offsets"), (0, 3, 3), "offsets 3..7 were never durable: cut off");
    // A request made before the failure stays failed: its bytes may be gone.
    assert!(p.commit(&flusher, lost).await.is_err(), "a pre-failure sync must never report success");
    // The idempotent producer's lost batch may be sent again (its state was rebuilt), and
    // gets the offsets the lost one had; new writes are durable and visible again.
    let again = new_sync(append(&p, &producer_batch(4, 2, 10, Compression::None, (7, 0, 3))).expect("resend"));
    p.commit(&flusher, again).await.expect("commit after recovery");
    assert_eq!(p.offsets().expect("offsets"), (0, 7, 7));
    let read = p.read(0, 1 << 20, true).expect("read");
    let batches: Vec<_> = crate::log::BatchIter::new(&read.records).map(|b| b.expect("batch").0).collect();
    assert_eq!(batches.iter().map(|h| (h.base_offset, h.next_offset())).collect::<Vec<_>>(), vec![(0, 3), (3, 7)]);
    drop(p);
    // And the files agree after a reopen.
    let p = open(dir.path(), LogConfig::default());
    assert_eq!(p.offsets().expect("offsets").log_end, 7);
}

#[tokio::test]
async fn with_interval_flushing_a_failed_fsync_cuts_back_to_the_last_successful_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = EffectiveTopicConfig { flush_interval_ms: Some(1_000), ..config(LogConfig::default()) };
    let p = Partition::open("t", 0, dir.path(), cfg, &Flusher::start()).expect("open partition");
    let flusher = Flusher::start();
    let t0 = crate::broker::now_ms();
    append(&p, &producer_batch(3, 1, 10, Compression::None, (-1, -1, -1))).expect("append");
    let synced = p.interval_flush_due(t0 + 5_000).expect("due").expect("a flush is due");
    p.commit(&flusher, synced).await.expect("interval flush");
    append(&p, &producer_batch(2, 2, 10, Compression::None, (-1, -1, -1))).expect("append");
    assert_eq!(p.high_watermark(), 5, "interval flushing shows appends at once");
    let failing = p.interval_flush_due(t0 + 6_000).expect("due").expect("a flush is due");
    let devnull = crate::log::open_files::SegmentFile::lazy("/dev/null".into());
    assert!(p.commit(&flusher, SyncTarget { file: devnull, ..failing }).await.is_err());
    // The high watermark had passed what was durable: the recovery may not keep 3..5,
    // whose pages the failed fsync may have dropped.
    assert!(p.recover_failed_log().expect("recover"));
    assert_eq!(p.offsets().expect("offsets"), (0, 3, 3));
}

#[test]
fn retention_never_deletes_beyond_high_watermark() {
    let dir = tempfile::tempdir().expect("tempdir");
    let one = producer_batch(1, 1, 10, Compression::None, (-1, -1, -1));
    let log = LogConfig { segment_bytes: one.len() as u64, retention_bytes: 0, ..LogConfig::default() };
    let p = open(dir.path(), log);
    for _ in 0..4 {
        append(&p, &one).expect("append");
    }
    // Nothing has been fsynced by the flusher yet: the high watermark is still 0.
    assert_eq!(p.high_watermark(), 0);
    p.apply_retention(i64::MAX).expect("retention");
    let Offsets { log_start: start, high_watermark: hw, log_end: end, .. } = p.offsets().expect("offsets");
    assert!(start <= hw, "log start {start} beyond high watermark {hw} (log end {end})");
    p.flush().expect("flush");
    assert_eq!(p.apply_retention(i64::MAX).expect("retention"), 3);
    assert_eq!(p.offsets().expect("offsets"), (3, 4, 4));
}

#[test]
fn producer_state_survives_reopen_including_sequence_wrap() {
    let dir = tempfile::tempdir().expect("tempdir");
    let near_max = i32::MAX - 1;
    let a = producer_batch(3, 1, 10, Compression::None, (9, 2, near_max)); // seqs MAX-1, MAX, 0
    let b = producer_batch(2, 2, 10, Compression::None, (9, 2, 1));
    {
        let p = open(dir.path(), LogConfig::default());
        append(&p, &a).expect("a");
        append(&p, &b).expect("b");
        p.flush().expect("flush");
        // No close: reopen as after a crash.
    }
    let p = open(dir.path(), LogConfig::default());
    assert!(matches!(append(&p, &a).expect("retry a"), Appended::Duplicate { base_offset: 0, .. }));
    assert!(matches!(append(&p, &b).expect("retry b"), Appended::Duplicate { base_offset: 3, .. }));
    let gap = append(&p, &producer_batch(1, 3, 10, Compression::None, (9, 2, 5)));
    assert!(matches!(gap, Err(PartitionError::Rejected(ResponseError::OutOfOrderSequenceNumber))));
    assert!(matches!(
        append(&p, &producer_batch(1, 3, 10, Compression::None, (9, 2, 3))).expect("c"),
        Appended::New { base_offset: 5, .. }
    ));
    let fenced = append(&p, &producer_batch(1, 3, 10, Compression::None, (9, 1, 4)));
    assert!(matches!(fenced, Err(PartitionError::Rejected(ResponseError::InvalidProducerEpoch))));
}

#[test]
fn clean_close_restores_producer_state_from_the_snapshot_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = producer_batch(3, 1, 10, Compression::None, (4, 0, 0));
    {
        let p = open(dir.path(), LogConfig::default());
        append(&p, &a).expect("a");
        p.close().expect("close");
    }
    assert!(dir.path().join(PRODUCER_SNAPSHOT).exists());
    {
        let p = open(dir.path(), LogConfig::default());
        // The snapshot is consumed on open, so no later crash can reuse it.
        assert!(!dir.path().join(PRODUCER_SNAPSHOT).exists());
        assert!(matches!(append(&p, &a).expect("retry"), Appended::Duplicate { base_offset: 0, .. }));
        let b = producer_batch(1, 2, 10, Compression::None, (4, 0, 3));
        assert!(matches!(append(&p, &b).expect("b"), Appended::New { base_offset: 3, .. }));
        p.close().expect("close");
    }
    // A snapshot that does not match the log's end is ignored in favour of a rebuild.
    let stale = ProducerStateTable::default().to_snapshot(3).expect("json");
    std::fs::write(dir.path().join(PRODUCER_SNAPSHOT), stale).expect("write");
    {
        let p = open(dir.path(), LogConfig::default());
        assert!(matches!(append(&p, &a).expect("retry"), Appended::Duplicate { base_offset: 0, .. }));
    }
    // A matching snapshot is trusted without reading the log: an (artificially) empty
    // one makes the producer unknown, so the old batch is accepted as new.
    let empty = ProducerStateTable::default().to_snapshot(4).expect("json");
    std::fs::write(dir.path().join(PRODUCER_SNAPSHOT), empty).expect("write");
    let p = open(dir.path(), LogConfig::default());
    assert!(matches!(append(&p, &a).expect("accepted"), Appended::New { base_offset: 4, .. }));
}

#[tokio::test]
async fn interval_flushing_hands_out_what_to_sync_once_per_interval() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = EffectiveTopicConfig { flush_interval_ms: Some(1_000), ..config(LogConfig::default()) };
    let t0 = crate::broker::now_ms();
    let p = Partition::open("t", 0, dir.path(), cfg, &Flusher::start()).expect("open partition");
    let batch = producer_batch(3, 1, 10, Compression::None, (-1, -1, -1));
    assert!(matches!(append(&p, &batch).expect("append"), Appended::New { sync: None, .. }));
    assert_eq!(p.high_watermark(), 3, "interval flushing makes appends visible at once");
    // The first interval runs from the open (a broker started with flush.ms=1h must not
    // fsync at its first check).
    assert!(p.interval_flush_due(t0 + 500).expect("not due").is_none(), "the interval counts from the open");
    let target = p.interval_flush_due(t0 + 5_000).expect("due").expect("a flush is due");
    assert!(p.interval_flush_due(t0 + 5_500).expect("not due").is_none(), "once per interval");
    assert!(p.interval_flush_due(t0 + 6_000).expect("due").is_some());
    let flusher = crate::log::Flusher::start();
    assert_eq!(flusher.sync(target).await.expect("fsync"), 3);
    // Without flush.ms appends are synced by their own requests, never on an interval.
    let other = tempfile::tempdir().expect("tempdir");
    let q = open(other.path(), LogConfig::default());
    assert!(q.interval_flush_due(i64::MAX).expect("checked").is_none());
}

#[tokio::test]
async fn fetch_between_high_watermark_and_log_end_is_empty_not_out_of_range() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = open(dir.path(), LogConfig::default());
    let first = new_sync(append(&p, &producer_batch(5, 1, 10, Compression::None, (-1, -1, -1))).expect("append"));
    let flusher = Flusher::start();
    p.commit(&flusher, first).await.expect("commit");
    // Appended but not yet durable: the log end is ahead of the high watermark.
    append(&p, &producer_batch(5, 1, 10, Compression::None, (-1, -1, -1))).expect("append");
    assert_eq!(p.offsets().expect("offsets"), (0, 5, 10));
    for offset in [5, 7, 10] {
        let read = p.plan_read(offset, 1 << 20, true).expect("Kafka answers an empty read, not an error");
        assert!(read.is_empty(), "nothing past the high watermark is visible (offset {offset})");
        assert_eq!(read.high_watermark, 5);
    }
    // Past the log end is still out of range.
    let err = p.plan_read(11, 1 << 20, true).err().expect("out of range");
    assert_eq!(err.code(), ResponseError::OffsetOutOfRange);
}

#[test]
fn a_removed_partition_refuses_everything_that_touches_files_by_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Tiny segments: the second append would roll, creating a file by path.
    let p = open(dir.path(), LogConfig { segment_bytes: 100, ..LogConfig::default() });
    append(&p, &producer_batch(1, 1, 10, Compression::None, (-1, -1, -1))).expect("append");
    p.mark_removed();
    assert!(p.is_removed());
    let refused = append(&p, &producer_batch(1, 1, 10, Compression::None, (-1, -1, -1)));
    assert!(matches!(refused, Err(PartitionError::Removed)));
    assert_eq!(PartitionError::Removed.code(), ResponseError::UnknownTopicOrPartition);
    assert!(matches!(p.apply_retention(i64::MAX), Err(PartitionError::Removed)));
    assert!(matches!(p.with_log(|_| Ok(())), Err(PartitionError::Removed)));
    assert!(matches!(p.close(), Err(PartitionError::Removed)));
    // The scrubber and the read path record damage without the partition lock: that
    // file is not written into the (soon reused) directory either.
    let before = std::fs::read_dir(dir.path()).expect("dir").count();
    let damage = crate::log::DamagedRange {
        first_offset: 0,
        last_offset: 0,
        segment_base: Some(0),
        position: 0,
        end_position: 10,
        reason: "test".into(),
    };
    let log_damage = p.inner.lock().expect("lock").log.damage().clone();
    assert!(log_damage.add(damage).expect("add"));
    assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), before, "nothing written after removal");
}

#[test]
fn producer_id_caps_refuse_new_ids_only_and_expiry_frees_room() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = open(dir.path(), LogConfig::default());
    let gate = ProducerIdGate::new(3);
    let limits =
        ProducerLimits { per_partition: 2, gate: &gate, txn: crate::broker::txn_verification::TxnVerification::Off };
    let send = |pid: i64, seq: i32, now: i64| {
        let bytes = producer_batch(1, 1, 10, Compression::None, (pid, 0, seq));
        let headers = validate_produced_batches(&bytes, 1 << 20).expect("valid batch");
        p.append_limited(Bytes::from(bytes), &headers, now, limits)
    };
    send(1, 0, 1_000).expect("first id");
    send(2, 0, 1_000).expect("second id");
    let refused = send(3, 0, 1_000).expect_err("over the per-partition cap");
    assert_eq!(refused.code(), ResponseError::PolicyViolation);
    assert!(refused.to_string().contains("max.producer.ids.per.partition=2"), "{refused}");
    // Producers already tracked keep working, and non-idempotent batches are not counted.
    send(1, 1, 2_000).expect("tracked producer continues");
    send(-1, -1, 2_000).expect("non-idempotent");
    // Producer 2 expires (idle since 1 000); producer 1 wrote at 2 000 and stays.
    assert_eq!(p.expire_producers(11_000, 10_000).expect("expire"), (1, 1));
    send(3, 0, 11_000).expect("room after expiry");
    // The broker-wide gate counted 1, 2, 3: a fourth id is refused by it.
    let other = tempfile::tempdir().expect("tempdir");
    let q = open(other.path(), LogConfig::default());
    let bytes = producer_batch(1, 1, 10, Compression::None, (4, 0, 0));
    let headers = validate_produced_batches(&bytes, 1 << 20).expect("valid batch");
    let refused = q.append_limited(Bytes::from(bytes), &headers, 11_000, limits).expect_err("broker cap");
    assert!(refused.to_string().contains("max.producer.ids=3"), "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn high_watermark_never_covers_a_segment_whose_seal_is_pending() {
    let dir = tempfile::tempdir().expect("tempdir");
    let one = producer_batch(2, 1, 10, Compression::None, (-1, -1, -1));
    let p = open(dir.path(), LogConfig { segment_bytes: 2 * one.len() as u64, ..LogConfig::default() });
    let (gate, sealer) = crate::log::test_util::SealGate::closed();
    p.with_log(|log| {
        log.set_sealer(sealer);
        Ok(())
    })
    .expect("sealer");
    let flusher = Flusher::start();
    let first = new_sync(append(&p, &one).expect("append"));
    p.commit(&flusher, first).await.expect("commit");
    assert_eq!(p.high_watermark(), 2);
    append(&p, &one).expect("append");
    // This append rolls: segment [0, 4) goes to the (held) sealer, the append does not wait.
    let target = new_sync(append(&p, &one).expect("append rolling the segment"));
    gate.wait_arrived(0);
    let committing = Arc::new(p);
    let partition = committing.clone();
    let mut commit = tokio::spawn(async move { partition.commit(&flusher, target).await });
    assert!(tokio::time::timeout(std::time::Duration::from_millis(300), &mut commit).await.is_err());
    assert_eq!(committing.high_watermark(), 2, "the high watermark passed an unsealed segment");
    gate.open();
    commit.await.expect("join").expect("commit");
    assert_eq!(committing.high_watermark(), 6);
}

/// An append through the seam with the default limits.
fn append_through_seam(p: &Partition, bytes: &[u8]) -> crate::broker::replica::Appended {
    let headers = validate_produced_batches(bytes, 1 << 20).expect("valid batch");
    let gate = ProducerIdGate::unlimited();
    let limits = ProducerLimits {
        per_partition: usize::MAX,
        gate: &gate,
        txn: crate::broker::txn_verification::TxnVerification::Off,
    };
    futures::executor::block_on(Replica::append(p, Bytes::copy_from_slice(bytes), &headers, 1_000, limits))
        .expect("append")
}

#[tokio::test]
async fn an_append_through_the_seam_commits_once_the_flusher_made_it_durable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = open(dir.path(), LogConfig::default());
    let appended = append_through_seam(&p, &producer_batch(5, 1, 10, Compression::None, (7, 0, 0)));
    let commit = appended.commit.expect("an append waits for its fsync");
    assert_eq!(p.high_watermark(), 0, "not visible before the fsync");
    commit.wait().await.expect("committed");
    assert_eq!(p.offsets().expect("offsets"), (0, 5, 5));
    // A retry of a committed batch is answered at once.
    let retry = append_through_seam(&p, &producer_batch(5, 1, 10, Compression::None, (7, 0, 0)));
    assert!(retry.duplicate && retry.commit.is_none());
}

#[tokio::test]
async fn a_failed_fsync_fails_the_waiting_commits_and_a_recovery_does_not_revive_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = open(dir.path(), LogConfig::default());
    let durable = append_through_seam(&p, &producer_batch(2, 1, 10, Compression::None, (-1, -1, -1)));
    durable.commit.expect("commit").wait().await.expect("committed");
    // The fsync task of the next two appends has not run yet (single-threaded runtime):
    // the flusher's failure flag makes their fsync fail as an EIO would.
    let a = append_through_seam(&p, &producer_batch(3, 2, 10, Compression::None, (7, 0, 0)));
    let b = append_through_seam(&p, &producer_batch(1, 3, 10, Compression::None, (7, 0, 3)));
    p.with_log(|log| {
        log.sync_target().failed.store(true, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    })
    .expect("fence");
    let lost = a.commit.expect("commit").wait().await.expect_err("the fsync failed");
    assert_eq!(lost.code(), ResponseError::KafkaStorageError);
    // Recovery cuts the lost offsets; the same offsets are written again and committed:
    // a waiter of the lost append must still fail, not take them for its own.
    assert!(p.recover_failed_log().expect("recover"));
    let again = append_through_seam(&p, &producer_batch(4, 4, 10, Compression::None, (-1, -1, -1)));
    again.commit.expect("commit").wait().await.expect("committed after recovery");
    assert_eq!(p.offsets().expect("offsets"), (0, 6, 6));
    assert!(b.commit.expect("commit").wait().await.is_err(), "a lost append never reports success");
}
