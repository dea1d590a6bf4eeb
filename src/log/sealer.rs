//! Sealing rolled segments off the produce path, as Kafka's `UnifiedLog.roll` schedules
//! the flush of the segment it rolled away from.
//!
//! A roll only creates the next segment's files (no fsync) and hands the old segment to a
//! [`Sealer`] thread, which makes it durable: `fdatasync` of its data, its two index files
//! written and fsynced, the `recovery-point-offset-checkpoint` advanced to its end, and
//! one directory fsync (which also covers the new segment's creation). The partition lock
//! is not held meanwhile, so appends to the new segment go on.
//!
//! Each log keeps an ordered [`SealCursor`]: the number of its rolls whose seal has
//! finished. A [`super::SyncTarget`] names how many rolls preceded its segment, and the
//! flusher does not report a sync as durable (so the high watermark and `acks=all`
//! answers wait) until every older segment is sealed. Seals of one log run in roll order
//! on one thread, so the recovery point only ever moves forward and only past data that
//! is durable. A failed seal marks the log failed (see [`super::LogError::StorageFailed`]).

use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, mpsc};

use tokio::sync::watch;

use super::epoch_history::LEADER_EPOCH_CHECKPOINT_FILE;
use super::index::{OffsetEntry, SparseIndex, TimeEntry};
use super::open_files::SegmentFile;
use super::recovery::{RECOVERY_POINT_FILE, write_durably};
use super::segment::sync_dir;
use super::{LogError, io_err};

/// Threads sealing segments; a log always uses the same one (its seals stay in order).
const SEALER_THREADS: usize = 2;

/// Per log: how many of its rolls have their data durable, and how many are sealed
/// (data durable, indexes and checkpoints written, recovery point advanced).
#[derive(Debug)]
pub struct SealCursor {
    /// Rolls whose segment data and the next segment's directory entry are durable:
    /// what an acknowledgement past the roll needs.
    durable: watch::Sender<u64>,
    sealed: watch::Sender<u64>,
    /// Seals finished or failed so far (a failed seal does not move `sealed`).
    attempted: AtomicU64,
}

impl Default for SealCursor {
    fn default() -> Self {
        SealCursor { durable: watch::channel(0).0, sealed: watch::channel(0).0, attempted: AtomicU64::new(0) }
    }
}

impl SealCursor {
    /// Seals finished so far.
    pub fn sealed(&self) -> u64 {
        *self.sealed.borrow()
    }

    fn data_durable_one(&self) {
        self.durable.send_modify(|n| *n += 1);
    }

    fn finish_one(&self) {
        self.attempted.fetch_add(1, Ordering::SeqCst);
        self.sealed.send_modify(|n| *n += 1);
    }

    /// Wakes waiters without progress (a failed seal: they re-check the failure flag).
    fn wake(&self) {
        self.attempted.fetch_add(1, Ordering::SeqCst);
        self.durable.send_modify(|_| {});
        self.sealed.send_modify(|_| {});
    }

    /// Waits until `rolls` seals have finished or failed: none is running any more.
    pub fn wait_attempted_blocking(&self, rolls: u64) {
        let mut rx = self.sealed.subscribe();
        let waited = futures::executor::block_on(rx.wait_for(|_| self.attempted.load(Ordering::SeqCst) >= rolls));
        // The sender lives in `self`, so the channel cannot close while we borrow it.
        drop(waited);
    }

    /// Counts `rolls` seals as done: the caller made every rolled segment durable itself
    /// (recovery after a failed fsync, see `PartitionLog::recover_from_failed_sync`).
    pub fn set_all_sealed(&self, rolls: u64) {
        self.attempted.store(rolls, Ordering::SeqCst);
        self.durable.send_modify(|n| *n = rolls);
        self.sealed.send_modify(|n| *n = rolls);
    }

    /// Waits until the data of `rolls` rolled segments is durable, or `failed` is set
    /// (then `StorageFailed`): what the flusher needs before it reports a newer segment's
    /// sync as durable. Their indexes and the recovery point may still be in progress.
    pub async fn wait_durable(&self, rolls: u64, failed: &AtomicBool) -> Result<(), LogError> {
        wait_until(&self.durable, rolls, failed).await
    }

    /// Waits until `rolls` seals have finished (close, truncation, deletions: paths that
    /// already block on their own fsyncs), or `failed` is set (then `StorageFailed`).
    pub fn wait_blocking(&self, rolls: u64, failed: &AtomicBool) -> Result<(), LogError> {
        futures::executor::block_on(wait_until(&self.sealed, rolls, failed))
    }
}

async fn wait_until(count: &watch::Sender<u64>, rolls: u64, failed: &AtomicBool) -> Result<(), LogError> {
    let mut rx = count.subscribe();
    let waited = rx.wait_for(|&n| n >= rolls || failed.load(Ordering::SeqCst)).await;
    // The sender lives in the cursor, so the channel cannot close while we borrow it.
    drop(waited);
    if failed.load(Ordering::SeqCst) { Err(LogError::StorageFailed) } else { Ok(()) }
}

/// Everything needed to make one rolled segment durable.
#[derive(Debug)]
pub(crate) struct SealJob {
    pub dir: PathBuf,
    pub base_offset: i64,
    /// Cut the file to this length first (its preallocated zero tail).
    pub trim_to: Option<u64>,
    pub file: Arc<SegmentFile>,
    pub log_path: PathBuf,
    pub offset_index: (SparseIndex<OffsetEntry>, PathBuf),
    pub time_index: (SparseIndex<TimeEntry>, PathBuf),
    /// The sealed segment's end: the new recovery point.
    pub end_offset: i64,
    /// The leader-epoch checkpoint's contents if they changed since the last write
    /// (written before the recovery point moves past the entries).
    pub epoch_checkpoint: Option<String>,
    /// The segment's `.raftindex` sidecar (path, bytes) when the log is a raft log.
    pub raft_sidecar: Option<(PathBuf, Vec<u8>)>,
    pub cursor: Arc<SealCursor>,
    pub failed: Arc<AtomicBool>,
}

impl SealJob {
    /// Makes the segment durable and advances the recovery point past it. Acknowledgements
    /// wait only for the first step (its data and the next segment's directory entry);
    /// the indexes and checkpoints only serve the next start-up, which rescans from the
    /// old recovery point if a crash comes first.
    fn seal(&mut self, hook: Option<&SealHook>) -> Result<(), LogError> {
        let written = self.file.written();
        let file = self.file.get()?;
        match self.trim_to {
            Some(len) => {
                file.set_len(len).map_err(io_err("trim preallocated segment", &self.log_path))?;
                // The smaller length must be durable before the recovery point trusts it.
                file.sync_all().map_err(io_err("fsync segment", &self.log_path))?;
            }
            None => file.sync_data().map_err(io_err("fsync segment", &self.log_path))?,
        }
        self.file.mark_synced(written);
        // The next segment's creation.
        sync_dir(&self.dir)?;
        self.cursor.data_durable_one();
        if let Some(h) = hook {
            h(self.base_offset, SealStep::Checkpoints);
        }
        self.offset_index.0.persist(&self.offset_index.1)?;
        self.time_index.0.persist(&self.time_index.1)?;
        if let Some(contents) = &self.epoch_checkpoint {
            write_durably(&self.dir, LEADER_EPOCH_CHECKPOINT_FILE, contents)?;
        }
        if let Some((path, bytes)) = &self.raft_sidecar {
            super::raft_entries::write_synced(path, bytes)?;
        }
        write_recovery_point(&self.dir, self.end_offset)?;
        // Covers the checkpoint's rename.
        sync_dir(&self.dir)
    }

    /// Seals, then moves the cursor (or, on failure, fails the log and wakes its waiters).
    /// A log that has already failed is not sealed: an earlier seal or sync may have left
    /// data below this segment unsynced, and this seal would move the recovery point past
    /// it. The log's in-place recovery makes every rolled segment durable instead.
    pub fn run(mut self, hook: Option<&SealHook>) -> Result<(), LogError> {
        if self.failed.load(Ordering::SeqCst) {
            self.cursor.wake();
            return Err(LogError::StorageFailed);
        }
        let sealed = self.seal(hook);
        match &sealed {
            Ok(()) => self.cursor.finish_one(),
            Err(e) => {
                tracing::error!(segment = %self.log_path.display(), error = %e, "sealing a rolled segment failed; the log accepts no more writes until reopened");
                self.failed.store(true, Ordering::SeqCst);
                self.cursor.wake();
            }
        }
        sealed
    }
}

/// Writes the recovery point checkpoint (tmp + fsync + rename; the caller fsyncs the
/// directory).
pub(crate) fn write_recovery_point(dir: &std::path::Path, offset: i64) -> Result<(), LogError> {
    let tmp = dir.join(format!("{RECOVERY_POINT_FILE}.tmp"));
    let dst = dir.join(RECOVERY_POINT_FILE);
    std::fs::write(&tmp, format!("{offset}\n")).map_err(io_err("write", &tmp))?;
    File::open(&tmp).and_then(|f| f.sync_all()).map_err(io_err("fsync", &tmp))?;
    std::fs::rename(&tmp, &dst).map_err(io_err("rename", &dst))
}

/// Called on the sealer thread with the segment's base offset before each step of a seal
/// (tests hold seals with it).
pub type SealHook = Arc<dyn Fn(i64, SealStep) + Send + Sync>;

/// Where a seal is when a [`SealHook`] is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealStep {
    /// Before anything: the segment's data may not be durable yet.
    Begin,
    /// The data is durable (acknowledgements may pass the roll); indexes, checkpoints and
    /// the recovery point are next.
    Checkpoints,
}

/// Handle to the sealer threads; cheap to clone.
#[derive(Clone)]
pub struct Sealer {
    queues: Arc<Vec<mpsc::Sender<SealJob>>>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer").field("threads", &self.queues.len()).finish()
    }
}

impl Sealer {
    /// The process's sealer, started on first use.
    pub fn shared() -> Sealer {
        static SHARED: OnceLock<Sealer> = OnceLock::new();
        SHARED.get_or_init(|| Sealer::start(None)).clone()
    }

    /// Starts sealer threads; `hook` runs before each job.
    pub fn start(hook: Option<SealHook>) -> Sealer {
        let queues = (0..SEALER_THREADS)
            .map(|i| {
                let (tx, rx) = mpsc::channel::<SealJob>();
                let hook = hook.clone();
                let spawned = std::thread::Builder::new().name(format!("jet-log-sealer-{i}")).spawn(move || {
                    for job in rx {
                        if let Some(h) = &hook {
                            h(job.base_offset, SealStep::Begin);
                        }
                        // Failures are logged and recorded on the log by `run`.
                        let _ = job.run(hook.as_ref());
                    }
                });
                if let Err(e) = spawned {
                    // The send in `submit` then fails and the job runs inline.
                    tracing::error!(error = %e, "failed to spawn a segment sealer thread");
                }
                tx
            })
            .collect();
        Sealer { queues: Arc::new(queues) }
    }

    /// Queues `job`; it runs on the calling thread if no sealer thread is running.
    pub(crate) fn submit(&self, job: SealJob) -> Result<(), LogError> {
        let slot = (Arc::as_ptr(&job.cursor) as usize / std::mem::size_of::<SealCursor>()) % self.queues.len();
        match self.queues[slot].send(job) {
            Ok(()) => Ok(()),
            Err(mpsc::SendError(job)) => job.run(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::*;
    use crate::log::test_util::{SealGate, batch};
    use crate::log::{Flusher, LogConfig, PartitionLog};

    fn recovery_point(dir: &Path) -> i64 {
        let text = std::fs::read_to_string(dir.join(RECOVERY_POINT_FILE)).expect("recovery point");
        text.trim().parse().expect("offset")
    }

    /// A log rolling every two batches, sealing through `sealer`.
    fn rolling_log(dir: &Path, sealer: Sealer) -> PartitionLog {
        let one = batch(2, 0).len() as u64;
        let config = LogConfig { segment_bytes: 2 * one, ..LogConfig::default() };
        let mut log = PartitionLog::open(dir, config).expect("open");
        log.set_sealer(sealer);
        log
    }

    /// Segments [0, 4), [4, 6) of a [`rolling_log`]: one roll, whose seal is held at the gate.
    fn one_roll_seal_held(dir: &Path) -> (SealGate, PartitionLog) {
        let (gate, sealer) = SealGate::closed();
        let mut log = rolling_log(dir, sealer);
        for i in 0..3 {
            log.append(&batch(2, i), 0, 1).expect("append");
        }
        gate.wait_arrived(0);
        (gate, log)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn appends_go_on_while_a_rolled_segment_is_sealed_and_no_sync_passes_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        // Segments [0, 4), [4, 8), [8, 10): two rolls, the first seal held at the gate.
        let (gate, mut log) = one_roll_seal_held(dir.path());
        for i in 3..5 {
            log.append(&batch(2, i), 0, 1).expect("append while a seal is held");
        }
        assert_eq!(log.log_end_offset(), 10);
        assert_eq!(log.segments().len(), 3);
        assert_eq!(recovery_point(dir.path()), 0, "the recovery point moved before the seal");

        let flusher = Flusher::start();
        let target = log.sync_target();
        let syncing = flusher.clone();
        let mut sync = tokio::spawn(async move { syncing.sync(target).await });
        // The active segment itself gets its fdatasync...
        while flusher.fsync_count() == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // ...but its end is not reported durable while older segments' data is not.
        assert!(tokio::time::timeout(Duration::from_millis(300), &mut sync).await.is_err());
        assert_eq!(recovery_point(dir.path()), 0);

        gate.open();
        assert_eq!(sync.await.expect("join").expect("sync"), 10);
        // Their checkpoints may still be on the way: wait for the seals to finish.
        tokio::task::block_in_place(|| log.wait_for_seals()).expect("seals");
        assert_eq!(recovery_point(dir.path()), 8, "both seals done, in order");
        for base in [0, 4] {
            let index = crate::log::segment::segment_path(dir.path(), base, "timeindex");
            assert_eq!(std::fs::metadata(index).expect("timeindex").len(), 12, "sealed max timestamp entry");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn acknowledgements_wait_for_a_rolled_segments_data_not_its_checkpoints() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (gate, sealer) = SealGate::closed_at(SealStep::Checkpoints);
        let mut log = rolling_log(dir.path(), sealer);
        // Segments [0, 4), [4, 6): segment 0's data is durable, its checkpoints held.
        for i in 0..3 {
            log.append(&batch(2, i), 0, 1).expect("append");
        }
        gate.wait_arrived(0);
        let synced = tokio::time::timeout(Duration::from_secs(20), Flusher::start().sync(log.sync_target())).await;
        let end = synced.expect("the acknowledgement waited for the indexes and the recovery point").expect("sync");
        assert_eq!(end, 6);
        assert_eq!(recovery_point(dir.path()), 0, "the checkpoints are still held");
        // A crash now: start-up rescans from the old recovery point and keeps everything.
        drop(log);
        let reopened = PartitionLog::open(dir.path(), LogConfig::default()).expect("reopen");
        assert_eq!(reopened.recovery_report().recovery_point, 0);
        assert_eq!(reopened.log_end_offset(), 6);
        drop(reopened);
        gate.open();
    }

    #[test]
    fn an_unsealed_segment_is_rescanned_after_a_crash() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (gate, log) = one_roll_seal_held(dir.path());
        drop(log); // a crash while the seal is held: nothing vouches for segment 0 yet
        let reopened = PartitionLog::open(dir.path(), LogConfig::default()).expect("reopen");
        let report = reopened.recovery_report();
        assert_eq!(report.recovery_point, 0);
        assert_eq!(report.synced_segments, vec![0, 4], "both segments recovered and fsynced");
        assert_eq!(reopened.log_end_offset(), 6);
        drop(reopened);
        gate.open();
    }

    #[test]
    fn deleting_segments_waits_for_their_seal() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (gate, mut log) = one_roll_seal_held(dir.path());
        let opener = std::thread::spawn(move || gate.open());
        // DeleteRecords past segment 0: its files may only go once its seal is done, or
        // the seal would recreate its index files (read as a lost segment on start-up).
        log.advance_log_start(4).expect("delete records");
        opener.join().expect("join");
        assert!(!crate::log::segment::segment_path(dir.path(), 0, "index").exists());
        assert_eq!(recovery_point(dir.path()), 4);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_seal_is_recovered_in_place_and_every_kept_segment_made_durable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let at = dir.path().to_path_buf();
        let time_index = move |base| crate::log::segment::segment_path(&at, base, "timeindex");
        let blocked = time_index.clone();
        let (arrived, seals) = std::sync::mpsc::channel();
        let arrived = std::sync::Mutex::new(arrived);
        let (go, gate) = std::sync::mpsc::channel::<()>();
        let gate = std::sync::Mutex::new(gate);
        // The seal of segment 0 waits until every append is done (a failed log takes no
        // more), then fails persisting its time index (a directory stands where the file
        // was); the hook tells the test when each later seal is about to run.
        let hook: SealHook = Arc::new(move |base, step| {
            if step != SealStep::Begin {
                return;
            }
            if base == 0 {
                gate.lock().expect("gate").recv().expect("test alive");
                std::fs::remove_file(blocked(0)).expect("remove time index");
                std::fs::create_dir(blocked(0)).expect("block time index");
            }
            arrived.lock().expect("hook").send(base).expect("test alive");
        });
        let mut log = rolling_log(dir.path(), Sealer::start(Some(hook)));
        // Segments [0, 4), [4, 8), [8, 12), [12, 14): three rolls.
        for i in 0..7 {
            log.append(&batch(2, i), 0, 1).expect("append");
        }
        go.send(()).expect("sealer alive");
        let flusher = Flusher::start();
        let failed = flusher.sync(log.sync_target()).await;
        assert!(matches!(failed, Err(LogError::StorageFailed)), "{failed:?}");
        assert!(log.has_failed());
        // Seal 8 about to run: seal 4 has been attempted. It must not have moved the
        // recovery point past segment 0, whose indexes never became durable.
        while seals.recv().expect("hook") != 8 {}
        assert_eq!(recovery_point(dir.path()), 0, "a seal after a failed one moved the recovery point");
        assert_eq!(std::fs::metadata(time_index(4)).expect("time index").len(), 0, "segment 4 was sealed");

        // The device takes writes again; the log recovers without a reopen.
        std::fs::remove_dir(time_index(0)).expect("unblock");
        assert_eq!(log.recover_from_failed_sync(log.log_end_offset()).expect("recover"), 0, "nothing cut");
        assert!(!log.has_failed());
        assert_eq!(recovery_point(dir.path()), 12, "recovery point = the active segment's base");
        // The failed seal carried the first leader-epoch entry; it is durable now.
        let epochs = std::fs::read_to_string(dir.path().join(LEADER_EPOCH_CHECKPOINT_FILE)).expect("epochs");
        assert_eq!(epochs, "0\n1\n0 0\n", "the recovery point trusts an epoch history that is not on disk");
        for base in [0, 4, 8] {
            assert_eq!(std::fs::metadata(time_index(base)).expect("time index").len(), 12, "segment {base}");
        }

        // Every roll counts as sealed: syncs, appends and later rolls go on.
        assert_eq!(flusher.sync(log.sync_target()).await.expect("sync after recovery"), 14);
        for i in 7..9 {
            log.append(&batch(2, i), 0, 1).expect("append after recovery");
        }
        assert_eq!(flusher.sync(log.sync_target()).await.expect("sync past a new roll"), 18);
        // The new roll's seal finishes (as `close` would wait for it) before the reopen.
        tokio::task::block_in_place(|| log.wait_for_seals()).expect("seals");
        assert_eq!(recovery_point(dir.path()), 16);
        drop(log);
        let reopened = PartitionLog::open(dir.path(), LogConfig::default()).expect("reopen");
        assert_eq!(reopened.log_end_offset(), 18);
        assert_eq!(reopened.recovery_report().recovery_point, 16);
    }
}
