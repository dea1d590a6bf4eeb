//! Group commit: one dedicated thread turns many concurrent "make this durable" requests
//! into few `fdatasync` calls.
//!
//! The thread blocks for the first pending request, then drains everything else already
//! queued, deduplicates by file (`Arc::ptr_eq`), syncs each distinct file once and completes
//! all requests of the round. Requests arriving while a sync runs form the next round, so
//! under load the number of fsyncs is bounded by the fsync latency, not the request rate.

use std::fs::File;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};

use tokio::sync::oneshot;

use super::LogError;

/// A file to make durable and the log end offset that will then be durable.
#[derive(Debug, Clone)]
pub struct SyncTarget {
    pub file: Arc<File>,
    pub end_offset: i64,
}

type Reply = oneshot::Sender<Result<i64, LogError>>;
/// A file and the (end offset, reply) of every request waiting for it.
type Group = (Arc<File>, Vec<(i64, Reply)>);

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
        let spawned = std::thread::Builder::new()
            .name("jet-log-flusher".into())
            .spawn(move || run(rx, counter));
        if let Err(e) = spawned {
            // Without the thread every `sync` reports FlusherStopped instead of hanging.
            tracing::error!(error = %e, "failed to spawn the log flusher thread");
        }
        Flusher { tx, fsyncs }
    }

    /// Resolves once `target.file` has been fdatasync'ed after this call, with the end
    /// offset that is now durable.
    pub async fn sync(&self, target: SyncTarget) -> Result<i64, LogError> {
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

fn run(rx: mpsc::Receiver<(SyncTarget, Reply)>, fsyncs: Arc<AtomicU64>) {
    while let Ok(first) = rx.recv() {
        let mut round = vec![first];
        round.extend(rx.try_iter());
        // Distinct files of this round, each with the requests waiting on it.
        let mut groups: Vec<Group> = Vec::new();
        for (target, reply) in round {
            match groups.iter_mut().find(|(f, _)| Arc::ptr_eq(f, &target.file)) {
                Some((_, waiters)) => waiters.push((target.end_offset, reply)),
                None => groups.push((target.file, vec![(target.end_offset, reply)])),
            }
        }
        for (file, waiters) in groups {
            let result = file.sync_data();
            fsyncs.fetch_add(1, Ordering::Relaxed);
            for (end_offset, reply) in waiters {
                let r = match &result {
                    Ok(()) => Ok(end_offset),
                    // io::Error is not Clone: give each waiter an equivalent error.
                    Err(e) => Err(LogError::Io {
                        op: "fdatasync segment",
                        path: Default::default(),
                        source: io::Error::new(e.kind(), e.to_string()),
                    }),
                };
                // The requester may have given up waiting; nothing to do then.
                let _ = reply.send(r);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_syncs_are_grouped() {
        let mut tmp = tempfile::tempfile().expect("tempfile");
        tmp.write_all(&[7u8; 4096]).expect("write");
        let file = Arc::new(tmp);
        let flusher = Flusher::start();
        const N: usize = 200;
        let mut set = tokio::task::JoinSet::new();
        for i in 0..N {
            let f = flusher.clone();
            let target = SyncTarget { file: file.clone(), end_offset: i as i64 };
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
        let a = Arc::new(tempfile::tempfile().expect("a"));
        let b = Arc::new(tempfile::tempfile().expect("b"));
        let ra = flusher.sync(SyncTarget { file: a, end_offset: 3 }).await.expect("a");
        let rb = flusher.sync(SyncTarget { file: b, end_offset: 5 }).await.expect("b");
        assert_eq!((ra, rb), (3, 5));
        assert_eq!(flusher.fsync_count(), 2);
    }
}
