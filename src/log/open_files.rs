//! Segment files opened on demand and closed when idle: a broker-wide LRU with a cap on
//! how many segment files are held open (`log.max.open.segment.files`), so an idle
//! partition costs no file descriptor however many partitions the broker hosts.
//!
//! A [`SegmentFile`] names a `.log` file and holds it open while it is in the cache.
//! [`SegmentFile::get`] hands out an `Arc<File>`: readers (`sendfile`, `pread`), the
//! flusher and the sealer keep their clone while they use it, so closing a file in the
//! cache never pulls it from under them; the descriptor goes when the last clone does.
//!
//! A file with writes not yet fsynced is never closed: after a failed write-back, Linux
//! reports the error only to descriptors that were open when it happened, so the
//! descriptor that wrote must be the one that fsyncs. The cap can therefore be passed by
//! the files with unsynced writes (each is synced within one flusher round, or within
//! `flush.ms`).

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};

use super::{LogError, io_err};

/// Default of `log.max.open.segment.files`.
pub const DEFAULT_MAX_OPEN_SEGMENT_FILES: usize = 4096;

/// `wanted` open segment files, or half the process's open-file limit (`RLIMIT_NOFILE`)
/// if that is lower: the other half is for connections, index and metadata files.
pub fn cap_for_process(wanted: usize) -> usize {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit only writes the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 || limit.rlim_cur == libc::RLIM_INFINITY {
        return wanted;
    }
    let half = usize::try_from(limit.rlim_cur / 2).unwrap_or(usize::MAX).max(1);
    if half < wanted {
        tracing::warn!(
            wanted,
            capped_at = half,
            "log.max.open.segment.files is above half the open-file limit (ulimit -n); using half of it"
        );
    }
    wanted.min(half)
}

/// One segment's `.log` file, open while in the cache.
#[derive(Debug)]
pub struct SegmentFile {
    path: PathBuf,
    open: Mutex<Option<Arc<File>>>,
    /// Writes handed out, and the last of them made durable (see the module docs).
    written: AtomicU64,
    synced: AtomicU64,
    /// Its key in the cache's recency order while open (0: not in the cache).
    tick: AtomicU64,
    cache: &'static FileCache,
}

impl SegmentFile {
    /// A handle for an existing file; nothing is opened yet.
    pub fn lazy(path: PathBuf) -> Arc<SegmentFile> {
        Arc::new(SegmentFile {
            path,
            open: Mutex::new(None),
            written: AtomicU64::new(0),
            synced: AtomicU64::new(0),
            tick: AtomicU64::new(0),
            cache: FileCache::global(),
        })
    }

    /// A handle for a file just opened (created) by the caller, kept open in the cache.
    pub fn adopt(path: PathBuf, file: File) -> Arc<SegmentFile> {
        let handle = SegmentFile::lazy(path);
        *lock(&handle.open) = Some(Arc::new(file));
        handle.cache.touch(&handle);
        handle
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The open file, opening it if the cache had closed it.
    pub fn get(self: &Arc<Self>) -> Result<Arc<File>, LogError> {
        self.get_with(|_| {})
    }

    /// [`get`](Self::get) for a write: from now until [`mark_synced`](Self::mark_synced)
    /// with the returned generation (or a later one) the file stays open.
    pub fn get_for_write(self: &Arc<Self>) -> Result<(Arc<File>, u64), LogError> {
        let mut generation = 0;
        let file = self.get_with(|s| generation = s.written.fetch_add(1, Ordering::SeqCst) + 1)?;
        Ok((file, generation))
    }

    /// The latest write generation: syncing the file now covers it.
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::SeqCst)
    }

    /// Writes up to `generation` are durable: the file may be closed again, and is at
    /// once if the cache is over its cap (files kept open only because they had
    /// unsynced writes must not outlive the sync that frees them).
    pub fn mark_synced(&self, generation: u64) {
        self.synced.fetch_max(generation, Ordering::SeqCst);
        self.cache.evict();
    }

    fn is_clean(&self) -> bool {
        self.synced.load(Ordering::SeqCst) >= self.written.load(Ordering::SeqCst)
    }

    /// Whether a descriptor for this file is held by the cache (tests).
    pub fn is_open(&self) -> bool {
        lock(&self.open).is_some()
    }

    /// Runs `under_lock` while the slot is locked (so a write is registered before any
    /// eviction can look at it) and returns the file.
    fn get_with(self: &Arc<Self>, under_lock: impl FnOnce(&Self)) -> Result<Arc<File>, LogError> {
        let mut slot = lock(&self.open);
        let file = match &*slot {
            Some(f) => f.clone(),
            None => {
                let f = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(&self.path)
                    .map_err(io_err("open segment", &self.path))?;
                let f = Arc::new(f);
                *slot = Some(f.clone());
                f
            }
        };
        under_lock(self);
        drop(slot);
        self.cache.touch(self);
        Ok(file)
    }

    /// Closes the file if it has no unsynced writes; whether it did.
    fn close_if_clean(&self) -> bool {
        let mut slot = lock(&self.open);
        if !self.is_clean() {
            return false;
        }
        *slot = None;
        true
    }
}

impl Drop for SegmentFile {
    fn drop(&mut self) {
        let tick = self.tick.load(Ordering::SeqCst);
        if tick != 0 {
            lock(&self.cache.inner).by_tick.remove(&tick);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded values stay consistent whatever panicked while holding them.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The broker-wide set of open segment files, least recently used first.
#[derive(Debug)]
pub struct FileCache {
    inner: Mutex<CacheInner>,
}

#[derive(Debug)]
struct CacheInner {
    limit: usize,
    next_tick: u64,
    by_tick: BTreeMap<u64, Weak<SegmentFile>>,
}

impl FileCache {
    /// The process's cache (one broker per process; tests share it).
    pub fn global() -> &'static FileCache {
        static GLOBAL: OnceLock<FileCache> = OnceLock::new();
        GLOBAL.get_or_init(|| FileCache {
            inner: Mutex::new(CacheInner {
                limit: DEFAULT_MAX_OPEN_SEGMENT_FILES,
                next_tick: 1,
                by_tick: BTreeMap::new(),
            }),
        })
    }

    /// Sets the cap (`log.max.open.segment.files`, at least 1) and closes what is over it.
    pub fn set_limit(&self, limit: usize) {
        lock(&self.inner).limit = limit.max(1);
        self.evict();
    }

    /// Segment files the cache holds open now.
    pub fn open_count(&self) -> usize {
        lock(&self.inner).by_tick.len()
    }

    /// Marks `file` most recently used (adding it), then closes the least recently used
    /// clean files while over the cap.
    fn touch(&self, file: &Arc<SegmentFile>) {
        {
            let mut inner = lock(&self.inner);
            let old = file.tick.load(Ordering::SeqCst);
            if old != 0 {
                inner.by_tick.remove(&old);
            }
            let tick = inner.next_tick;
            inner.next_tick += 1;
            file.tick.store(tick, Ordering::SeqCst);
            inner.by_tick.insert(tick, Arc::downgrade(file));
            if inner.by_tick.len() <= inner.limit {
                return;
            }
        }
        self.evict();
    }

    /// Closes the least recently used clean files while over the cap; files with
    /// unsynced writes are passed over (they are closed once synced).
    fn evict(&self) {
        // Victims are chosen under the cache lock and closed outside it: `get` takes a
        // file's lock before the cache's.
        let victims: Vec<(u64, Arc<SegmentFile>)> = {
            let mut inner = lock(&self.inner);
            let over = inner.by_tick.len().saturating_sub(inner.limit);
            let mut victims = Vec::new();
            let mut dead = Vec::new();
            for (&tick, weak) in &inner.by_tick {
                if victims.len() >= over {
                    break;
                }
                match weak.upgrade() {
                    Some(f) if f.is_clean() => victims.push((tick, f)),
                    Some(_) => {}
                    None => dead.push(tick),
                }
            }
            for tick in dead {
                inner.by_tick.remove(&tick);
            }
            victims
        };
        for (tick, file) in victims {
            if file.tick.load(Ordering::SeqCst) != tick || !file.close_if_clean() {
                continue; // used again meanwhile, or unsynced writes: stays open
            }
            let mut inner = lock(&self.inner);
            // Unless it was reopened (and re-ticked) between the close and here.
            if file.tick.compare_exchange(tick, 0, Ordering::SeqCst, Ordering::SeqCst).is_ok() {
                inner.by_tick.remove(&tick);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_reopen_on_demand_and_unsynced_ones_stay_open() {
        let cache = FileCache::global();
        let dir = tempfile::tempdir().expect("tempdir");
        let files: Vec<Arc<SegmentFile>> = (0..3)
            .map(|i| {
                let p = dir.path().join(format!("{i}.log"));
                std::fs::write(&p, [i as u8; 4]).expect("write");
                SegmentFile::lazy(p)
            })
            .collect();
        assert!(files.iter().all(|f| !f.is_open()), "nothing is opened until used");
        let mut byte = [0u8; 1];
        std::os::unix::fs::FileExt::read_exact_at(&*files[2].get().expect("get"), &mut byte, 0).expect("read");
        assert_eq!(byte[0], 2);
        assert!(files[2].is_open());
        // A held clone survives the cache closing its file.
        let held = files[2].get().expect("get");
        let (_writer0, generation0) = files[0].get_for_write().expect("get for write");
        let (_writer1, generation1) = files[1].get_for_write().expect("get for write");
        // Over the cap, the clean file closes; both files with unsynced writes stay open.
        cache.set_limit(1);
        let clean_closed = !files[2].is_open();
        let unsynced_kept = files[0].is_open() && files[1].is_open();
        // Still over the cap: the sync that frees a file closes it, without another use.
        files[0].mark_synced(generation0);
        let synced_closed = !files[0].is_open() && files[1].is_open();
        files[1].mark_synced(generation1);
        // Other tests share the cache: asserted once the default cap is back.
        cache.set_limit(DEFAULT_MAX_OPEN_SEGMENT_FILES);
        assert!(clean_closed, "over the cap, a clean file stayed open");
        assert!(unsynced_kept, "a file with unsynced writes was closed");
        assert!(synced_closed, "once synced, a file over the cap must close");
        std::os::unix::fs::FileExt::read_exact_at(&*held, &mut byte, 0).expect("held file still readable");
        assert_eq!(byte[0], 2);
    }
}
