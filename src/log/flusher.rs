//! Group commit: one dedicated thread turns many concurrent "make this durable" requests
//! into few `fdatasync` calls.
//!
//! The thread blocks for the first pending request, then drains everything else already
//! queued, deduplicates by file (`Arc::ptr_eq`), syncs each distinct file once (several
//! files concurrently, with helper threads) and completes all requests of the round. Requests arriving while a sync runs form the next round, so
//! under load the number of fsyncs is bounded by the fsync latency, not the request rate.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, mpsc};

use tokio::sync::oneshot;

use super::open_files::SegmentFile;
use super::sealer::SealCursor;
use super::{LogError, io_err};

/// A file to make durable and the log end offset that will then be durable.
#[derive(Debug, Clone)]
pub struct SyncTarget {
    pub file: Arc<SegmentFile>,
    /// The file's write generation this sync covers (see [`SegmentFile::mark_synced`]).
    pub written: u64,
    pub end_offset: i64,
    /// The owning log's "an fsync failed" flag. After a failed fsync the kernel may have
    /// dropped the dirty pages and a later fsync of the same (or the next) file succeeds,
    /// so success may never again be reported for that log: the flusher sets this flag on
    /// failure and refuses every later request carrying it.
    pub failed: Arc<AtomicBool>,
    /// The owning log's seal cursor and how many of its rolls came before `file`'s
    /// segment: `end_offset` is only durable once those older segments are sealed too.
    pub seals: Arc<SealCursor>,
    pub rolls: u64,
}

impl SyncTarget {
    /// A target for a file with no older segments to wait for (tests, one-file logs).
    pub fn standalone(file: Arc<SegmentFile>, end_offset: i64) -> SyncTarget {
        let written = file.written();
        SyncTarget { file, written, end_offset, failed: Arc::default(), seals: Arc::default(), rolls: 0 }
    }
}

type Reply = oneshot::Sender<Result<i64, LogError>>;
/// A request waiting on a file: its end offset, the write generation it covers, its
/// log's failure flag, its reply.
type Waiter = (i64, u64, Arc<AtomicBool>, Reply);

/// Handle to the group-commit thread; cheap to clone. The thread exits when every handle
/// is dropped.
#[derive(Clone, Debug)]
pub struct Flusher {
    tx: mpsc::Sender<(SyncTarget, Reply)>,
    fsyncs: Arc<AtomicU64>,
}

impl Flusher {
    /// Spawns the flusher thread.
    pub fn start() -> Flusher {
        let (tx, rx) = mpsc::channel::<(SyncTarget, Reply)>();
        let fsyncs = Arc::new(AtomicU64::new(0));
        let counter = fsyncs.clone();
        let spawned = std::thread::Builder::new().name("jet-log-flusher".into()).spawn(move || run(rx, counter));
        if let Err(e) = spawned {
            // Without the thread every `sync` reports FlusherStopped instead of hanging.
            tracing::error!(error = %e, "failed to spawn the log flusher thread");
        }
        Flusher { tx, fsyncs }
    }

    /// Resolves once `target.file` has been fdatasync'ed after this call and every older
    /// segment of its log is sealed (see [`super::sealer`]), with the end offset that is
    /// now durable.
    pub async fn sync(&self, target: SyncTarget) -> Result<i64, LogError> {
        let (seals, rolls, failed) = (target.seals.clone(), target.rolls, target.failed.clone());
        let end = self.sync_file(target).await?;
        seals.wait_for(rolls, &failed).await?;
        Ok(end)
    }

    /// The fdatasync of `target.file` alone.
    async fn sync_file(&self, target: SyncTarget) -> Result<i64, LogError> {
        let (reply, rx) = oneshot::channel();
        // Both failures below have a single cause, the flusher thread being gone; their
        // error values carry nothing more (the send error only holds our own request).
        if let Err(mpsc::SendError(_request)) = self.tx.send((target, reply)) {
            return Err(LogError::FlusherStopped);
        }
        match rx.await {
            Ok(result) => result,
            Err(_closed) => Err(LogError::FlusherStopped),
        }
    }

    /// Number of fdatasync calls made so far (for tests and metrics).
    pub fn fsync_count(&self) -> u64 {
        self.fsyncs.load(Ordering::Relaxed)
    }
}

/// Most files one round syncs at once: the flusher thread plus this many helpers.
const MAX_SYNC_HELPERS: usize = 7;

fn run(rx: mpsc::Receiver<(SyncTarget, Reply)>, fsyncs: Arc<AtomicU64>) {
    let mut helpers = SyncHelpers::default();
    while let Ok(first) = rx.recv() {
        let mut round = vec![first];
        round.extend(rx.try_iter());
        // Distinct files of this round, each with the requests waiting on it.
        let mut groups: Vec<(Arc<SegmentFile>, Vec<Waiter>)> = Vec::new();
        for (target, reply) in round {
            let waiter = (target.end_offset, target.written, target.failed, reply);
            match groups.iter_mut().find(|(f, _)| Arc::ptr_eq(f, &target.file)) {
                Some((_, waiters)) => waiters.push(waiter),
                None => groups.push((target.file, vec![waiter])),
            }
        }
        // The files are synced concurrently: each fdatasync of a grown file writes its data,
        // its metadata (size, new blocks) and flushes the device cache; run together, those
        // writes and flushes overlap instead of queueing one file after another. Each
        // file's waiters are answered as soon as its own sync returns.
        // The other files go to the helpers before this thread syncs the first one, so
        // all of them are in flight together.
        let mut groups = groups.into_iter();
        let Some((first_file, first_waiters)) = groups.next() else { continue };
        let mut groups: Vec<Option<Vec<Waiter>>> = std::iter::once(None)
            .chain(groups.enumerate().map(|(i, (file, waiters))| {
                helpers.dispatch(i + 1, file);
                Some(waiters)
            }))
            .collect();
        let result = sync_file(&first_file);
        fsyncs.fetch_add(1, Ordering::Relaxed);
        answer(&first_file, first_waiters, &result);
        while groups.iter().any(Option::is_some) {
            let Some((i, file, result)) = helpers.next_done() else { break };
            fsyncs.fetch_add(1, Ordering::Relaxed);
            if let Some(waiters) = groups.get_mut(i).and_then(Option::take) {
                answer(&file, waiters, &result);
            }
        }
    }
}

/// fdatasyncs one segment file (opened if the cache had closed it: then it has no
/// unsynced writes).
fn sync_file(file: &Arc<SegmentFile>) -> Result<(), LogError> {
    let started = std::time::Instant::now();
    let synced = file.get()?.sync_data().map_err(io_err("fdatasync segment", file.path()));
    crate::metrics::FSYNC_SECONDS.observe(started.elapsed());
    synced
}

/// Answers the requests waiting on one file's sync.
fn answer(file: &SegmentFile, waiters: Vec<Waiter>, result: &Result<(), LogError>) {
    for (end_offset, written, failed, reply) in waiters {
        if result.is_err() {
            // Set before any reply goes out, so no later round can report success.
            failed.store(true, Ordering::SeqCst);
        } else {
            file.mark_synced(written);
        }
        let r = match result {
            Ok(()) if failed.load(Ordering::SeqCst) => Err(LogError::StorageFailed),
            Ok(()) => Ok(end_offset),
            // LogError is not Clone: give each waiter an equivalent error.
            Err(e) => Err(LogError::Io {
                op: "fdatasync segment",
                path: file.path().to_path_buf(),
                source: io::Error::other(e.to_string()),
            }),
        };
        // The requester may have given up waiting; nothing to do then.
        let _ = reply.send(r);
    }
}

/// A dispatched sync's result: its index in the round, its file, the outcome.
type Done = (usize, Arc<SegmentFile>, Result<(), LogError>);

/// Threads that fdatasync files handed to them, started as rounds first need them.
struct SyncHelpers {
    queues: Vec<mpsc::Sender<(usize, Arc<SegmentFile>)>>,
    done_tx: mpsc::Sender<Done>,
    done_rx: mpsc::Receiver<Done>,
    /// Dispatched syncs whose result has not been collected.
    outstanding: usize,
}

impl Default for SyncHelpers {
    fn default() -> Self {
        let (done_tx, done_rx) = mpsc::channel();
        SyncHelpers { queues: Vec::new(), done_tx, done_rx, outstanding: 0 }
    }
}

impl SyncHelpers {
    /// Has the `i`th file of the round synced by a helper (spread round-robin; a helper
    /// given two files syncs them one after the other). If no helper can run, syncs it
    /// here and queues the result all the same.
    fn dispatch(&mut self, i: usize, file: Arc<SegmentFile>) {
        let slot = (i - 1) % MAX_SYNC_HELPERS;
        if slot >= self.queues.len() {
            let (tx, rx) = mpsc::channel::<(usize, Arc<SegmentFile>)>();
            let done = self.done_tx.clone();
            let spawned = std::thread::Builder::new().name("jet-log-sync".into()).spawn(move || {
                for (i, file) in rx {
                    let result = sync_file(&file);
                    if done.send((i, file, result)).is_err() {
                        break;
                    }
                }
            });
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "cannot start a sync helper thread; syncing on the flusher");
            }
            self.queues.push(tx);
        }
        self.outstanding += 1;
        if let Err(mpsc::SendError((i, file))) = self.queues[slot].send((i, file)) {
            // The helper never started: do its work here.
            let result = sync_file(&file);
            let _ = self.done_tx.send((i, file, result));
        }
    }

    /// The next dispatched sync to finish, `None` when none is outstanding.
    fn next_done(&mut self) -> Option<Done> {
        if self.outstanding == 0 {
            return None;
        }
        let done = self.done_rx.recv().ok()?;
        self.outstanding -= 1;
        Some(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_syncs_are_grouped() {
        let mut tmp = tempfile::NamedTempFile::new().expect("tempfile");
        tmp.write_all(&[7u8; 4096]).expect("write");
        let file = SegmentFile::lazy(tmp.path().to_path_buf());
        let flusher = Flusher::start();
        const N: usize = 200;
        let mut set = tokio::task::JoinSet::new();
        for i in 0..N {
            let f = flusher.clone();
            let target = SyncTarget::standalone(file.clone(), i as i64);
            set.spawn(async move { f.sync(target).await });
        }
        let mut done = 0;
        while let Some(r) = set.join_next().await {
            let end = r.expect("join").expect("sync");
            assert!((0..N as i64).contains(&end));
            done += 1;
        }
        assert_eq!(done, N);
        let n = flusher.fsync_count();
        assert!(n >= 1 && (n as usize) < N / 4, "{n} fsyncs for {N} requests");
    }

    #[tokio::test]
    async fn distinct_files_each_synced() {
        let flusher = Flusher::start();
        let (ta, tb) = (tempfile::NamedTempFile::new().expect("a"), tempfile::NamedTempFile::new().expect("b"));
        let a = SegmentFile::lazy(ta.path().to_path_buf());
        let b = SegmentFile::lazy(tb.path().to_path_buf());
        let ra = flusher.sync(SyncTarget::standalone(a, 3)).await.expect("a");
        let rb = flusher.sync(SyncTarget::standalone(b, 5)).await.expect("b");
        assert_eq!((ra, rb), (3, 5));
        assert_eq!(flusher.fsync_count(), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_files_at_once_are_each_synced_once_and_answered() {
        let flusher = Flusher::start();
        // More files than helpers, so some helpers sync several in a round.
        let temps: Vec<_> = (0..3 * MAX_SYNC_HELPERS).map(|_| tempfile::NamedTempFile::new().expect("f")).collect();
        let files: Vec<Arc<SegmentFile>> = temps.iter().map(|t| SegmentFile::lazy(t.path().to_path_buf())).collect();
        let mut set = tokio::task::JoinSet::new();
        for (i, file) in files.iter().enumerate() {
            let f = flusher.clone();
            let target = SyncTarget::standalone(file.clone(), i as i64);
            set.spawn(async move { (i as i64, f.sync(target).await) });
        }
        while let Some(r) = set.join_next().await {
            let (i, synced) = r.expect("join");
            assert_eq!(synced.expect("sync"), i);
        }
        assert_eq!(flusher.fsync_count(), files.len() as u64);
    }
}
