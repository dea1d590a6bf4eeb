//! A FUSE file system for tests that keeps what was not fsynced apart from what was, and
//! throws the former away on command: a simulated power loss, as Jepsen's lazyfs does.
//!
//! The SIGKILL tests cannot see a missing fsync (the kernel's page cache outlives the
//! process); on this file system a missing `fsync` of a file, or of the directory after
//! a create/rename/unlink, loses the data or the entry at [`LazyMount::power_loss`].
//! The whole file system lives in the test process's memory ([`model`]); the FUSE
//! requests are served by background threads of the same process ([`fuse_ops`]), so
//! the "command channel" is a plain method call.
//!
//! Mounting needs `/dev/fuse` and either root (a direct `mount(2)`, as on CI here) or
//! `fusermount3` (package `fuse3`). A test that cannot mount fails, unless
//! `JET_SKIP_FUSE_TESTS=1` says to skip it.

#![allow(dead_code)]

pub mod fuse_ops;
pub mod model;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use fuser::{BackgroundSession, Config, INodeNo, MountOption};

use model::{Model, Stats};

pub struct LazyMount {
    session: Option<BackgroundSession>,
    model: Arc<Mutex<Model>>,
    stall: Arc<fuse_ops::SyncStall>,
    dir: tempfile::TempDir,
}

impl LazyMount {
    /// Mounts an empty file system on a fresh temporary directory. `None` (with a
    /// message) only when mounting fails and `JET_SKIP_FUSE_TESTS=1` is set; a mount
    /// failure without it panics, so that CI cannot pass without running the test.
    pub fn mount_or_skip() -> Option<LazyMount> {
        match Self::mount() {
            Ok(m) => Some(m),
            Err(e) if std::env::var("JET_SKIP_FUSE_TESTS").as_deref() == Ok("1") => {
                eprintln!("SKIPPED: cannot mount the FUSE test file system ({e}); JET_SKIP_FUSE_TESTS=1");
                None
            }
            Err(e) => panic!(
                "cannot mount the FUSE test file system: {e}. It needs /dev/fuse and root or \
                 fusermount3 (apt-get install fuse3); set JET_SKIP_FUSE_TESTS=1 to skip power-loss tests"
            ),
        }
    }

    pub fn mount() -> std::io::Result<LazyMount> {
        let dir = tempfile::Builder::new().prefix("lazyfs-").tempdir()?;
        // SAFETY: getuid/getgid cannot fail and touch no memory.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        let model = Arc::new(Mutex::new(Model::new(uid, gid)));
        let mut config = Config::default();
        config.mount_options = vec![MountOption::FSName("jet-lazyfs".into()), MountOption::RW];
        config.n_threads = Some(2);
        let stall = Arc::new(fuse_ops::SyncStall::default());
        let fs = fuse_ops::LazyFs { model: model.clone(), stall: stall.clone() };
        let session = fuser::spawn_mount(fs, dir.path(), &config)?;
        Ok(LazyMount { session: Some(session), model, stall, dir })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn join(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn model(&self) -> MutexGuard<'_, Model> {
        self.model.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Drops every write and directory change not made durable by an fsync. Call it
    /// only while no process uses the mount (kill the broker and wait for it first):
    /// a power loss stops every program too.
    pub fn power_loss(&self) {
        self.power_loss_with(None)
    }

    /// [`LazyMount::power_loss`], where with `Some(seed)` each file may also keep a random
    /// part of its unsynced writes (see [`Model::power_loss`]).
    pub fn power_loss_with(&self, partial_writeback: Option<u64>) {
        let alive = self.model().power_loss(partial_writeback);
        // The kernel may still cache pages, sizes and names from before: drop them.
        // (Outside the model's lock: an invalidation can wait on a page lock held by a
        // read that waits for the file system.)
        if let Some(session) = &self.session {
            let notifier = session.notifier();
            for ino in alive {
                // ENOENT for inodes the kernel does not hold is expected.
                let _ = notifier.inval_inode(INodeNo(ino), 0, 0);
            }
        }
    }

    /// `false`: fsyncs are answered but make nothing durable (a lying disk).
    pub fn honour_syncs(&self, honour: bool) {
        self.model().syncs_honoured = honour;
    }

    /// `true`: fsyncs wait (unanswered) until this is called with `false`.
    pub fn stall_syncs(&self, stall: bool) {
        self.stall.set(stall);
    }

    pub fn stats(&self) -> Stats {
        self.model().stats
    }

    /// What a power loss now would change (paths relative to the mount).
    pub fn unsynced_paths(&self) -> Vec<String> {
        self.model().unsynced_paths()
    }
}

impl Drop for LazyMount {
    fn drop(&mut self) {
        // A stalled sync would keep its caller, and the unmount, waiting.
        self.stall.set(false);
        if let Some(session) = self.session.take() {
            // Unmounts (lazily, MNT_DETACH) and joins the serving threads.
            if let Err(e) = session.umount_and_join() {
                eprintln!("lazyfs: unmount of {} failed: {e}", self.dir.path().display());
            }
        }
    }
}
