//! The FUSE operations of the test file system, each a thin call into [`Model`].
//!
//! Attributes and entries are given a time-to-live of zero, so the kernel asks again on
//! every lookup and `stat` (after a power loss the answers change under it). Opens do
//! not set `FOPEN_KEEP_CACHE`, so the kernel drops a file's cached pages whenever it is
//! opened again; data written goes through to the model on every `write` (FUSE's
//! default write-through mode, no writeback cache), and reads (`pread`, `sendfile`)
//! come from the model via the page cache.

use std::ffi::OsStr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use fuser::{
    AccessFlags, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner,
    OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen,
    ReplyStatfs, ReplyWrite, Request, TimeOrNow, WriteFlags,
};

use super::model::{Body, Ino, Model};

const TTL: Duration = Duration::ZERO;

pub struct LazyFs {
    pub model: Arc<Mutex<Model>>,
    pub stall: Arc<SyncStall>,
}

/// While set, fsyncs (of files and directories) are not answered: a disk whose syncs
/// take as long as the test wants. Each stalled sync waits on its own thread, so the
/// file system's other operations go on.
#[derive(Default)]
pub struct SyncStall {
    stalled: Mutex<bool>,
    changed: std::sync::Condvar,
}

impl SyncStall {
    pub fn set(&self, stalled: bool) {
        *self.stalled.lock().unwrap_or_else(|p| p.into_inner()) = stalled;
        self.changed.notify_all();
    }

    fn is_set(&self) -> bool {
        *self.stalled.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn wait_until_clear(&self) {
        let mut stalled = self.stalled.lock().unwrap_or_else(|p| p.into_inner());
        while *stalled {
            stalled = self.changed.wait(stalled).unwrap_or_else(|p| p.into_inner());
        }
    }
}

impl LazyFs {
    fn model(&self) -> MutexGuard<'_, Model> {
        // A panic inside one operation must not wedge every later one (and the unmount).
        self.model.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Syncs `ino` and replies, later (on a thread of its own) while syncs are stalled.
    fn sync_and_reply(&self, ino: Ino, reply: ReplyEmpty) {
        if !self.stall.is_set() {
            return reply_empty(reply, self.model().sync(ino));
        }
        let (model, stall) = (self.model.clone(), self.stall.clone());
        std::thread::spawn(move || {
            stall.wait_until_clear();
            let synced = model.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).sync(ino);
            reply_empty(reply, synced);
        });
    }
}

fn attr(model: &Model, ino: Ino) -> Result<FileAttr, i32> {
    let node = model.node(ino)?;
    let (kind, size, nlink) = match &node.body {
        Body::File(f) => (FileType::RegularFile, f.data.len() as u64, 1),
        Body::Dir(_) => (FileType::Directory, 0, 2),
    };
    Ok(FileAttr {
        ino: INodeNo(ino),
        size,
        blocks: size.div_ceil(512),
        atime: node.mtime,
        mtime: node.mtime,
        ctime: node.mtime,
        crtime: node.mtime,
        kind,
        perm: node.perm,
        nlink,
        uid: node.uid,
        gid: node.gid,
        rdev: 0,
        blksize: 4096,
        flags: 0,
    })
}

fn errno(e: i32) -> Errno {
    Errno::from_i32(e)
}

fn reply_entry(reply: ReplyEntry, r: Result<FileAttr, i32>) {
    match r {
        Ok(a) => reply.entry(&TTL, &a, Generation(0)),
        Err(e) => reply.error(errno(e)),
    }
}

fn reply_attr(reply: ReplyAttr, r: Result<FileAttr, i32>) {
    match r {
        Ok(a) => reply.attr(&TTL, &a),
        Err(e) => reply.error(errno(e)),
    }
}

fn reply_empty(reply: ReplyEmpty, r: Result<(), i32>) {
    match r {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(errno(e)),
    }
}

impl Filesystem for LazyFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let m = self.model();
        reply_entry(reply, m.lookup(parent.0, name).and_then(|ino| attr(&m, ino)));
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        reply_attr(reply, attr(&self.model(), ino.0));
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let mut m = self.model();
        let r = (|| {
            if let Some(size) = size {
                m.file_mut(ino.0)?.set_len(size as usize);
            }
            let node = m.node_mut(ino.0)?;
            if let Some(mode) = mode {
                node.perm = (mode & 0o7777) as u16;
            }
            node.uid = uid.unwrap_or(node.uid);
            node.gid = gid.unwrap_or(node.gid);
            match mtime {
                Some(TimeOrNow::SpecificTime(t)) => node.mtime = t,
                Some(TimeOrNow::Now) => node.mtime = SystemTime::now(),
                None => {}
            }
            attr(&m, ino.0)
        })();
        reply_attr(reply, r);
    }

    fn mkdir(&self, req: &Request, parent: INodeNo, name: &OsStr, mode: u32, umask: u32, reply: ReplyEntry) {
        let mut m = self.model();
        let perm = (mode & !umask & 0o7777) as u16;
        let r = m.create(parent.0, name, true, perm, req.uid(), req.gid()).and_then(|ino| attr(&m, ino));
        reply_entry(reply, r);
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        let mut m = self.model();
        let perm = (mode & !umask & 0o7777) as u16;
        match m.create(parent.0, name, false, perm, req.uid(), req.gid()).and_then(|ino| attr(&m, ino)) {
            Ok(a) => reply.created(&TTL, &a, Generation(0), FileHandle(0), FopenFlags::empty()),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        reply_empty(reply, self.model().remove(parent.0, name, false));
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        reply_empty(reply, self.model().remove(parent.0, name, true));
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        reply_empty(reply, self.model().rename(parent.0, name, newparent.0, newname, flags.bits()));
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.model().file(ino.0) {
            Ok(_) => reply.opened(FileHandle(0), FopenFlags::empty()),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let m = self.model();
        match m.file(ino.0) {
            Ok(f) => {
                let start = (offset as usize).min(f.data.len());
                let end = (start + size as usize).min(f.data.len());
                reply.data(&f.data[start..end]);
            }
            Err(e) => reply.error(errno(e)),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        match self.model().file_mut(ino.0) {
            Ok(f) => {
                f.write(offset as usize, data);
                reply.written(data.len() as u32);
            }
            Err(e) => reply.error(errno(e)),
        }
    }

    fn flush(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _owner: LockOwner, reply: ReplyEmpty) {
        // close() makes nothing durable.
        reply.ok();
    }

    fn fsync(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        self.sync_and_reply(ino.0, reply);
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.model().dir(ino.0) {
            Ok(_) => reply.opened(FileHandle(0), FopenFlags::empty()),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn readdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        let m = self.model();
        let dir = match m.dir(ino.0) {
            Ok(d) => d,
            Err(e) => return reply.error(errno(e)),
        };
        let dots = [(ino.0, FileType::Directory, OsStr::new(".")), (ino.0, FileType::Directory, OsStr::new(".."))];
        let children = dir.entries.iter().map(|(name, child)| {
            let kind = match m.node(*child).map(|n| &n.body) {
                Ok(Body::Dir(_)) => FileType::Directory,
                _ => FileType::RegularFile,
            };
            (*child, kind, name.as_os_str())
        });
        for (i, (child, kind, name)) in dots.into_iter().chain(children).enumerate().skip(offset as usize) {
            if reply.add(INodeNo(child), i as u64 + 1, kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn fsyncdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        self.sync_and_reply(ino.0, reply);
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        // 64 GiB, all free: nothing checks the real numbers of a test file system.
        reply.statfs(1 << 24, 1 << 24, 1 << 24, 1 << 20, 1 << 20, 4096, 255, 4096);
    }

    fn access(&self, _req: &Request, ino: INodeNo, _mask: AccessFlags, reply: ReplyEmpty) {
        reply_empty(reply, self.model().node(ino.0).map(|_| ()));
    }

    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        let mut m = self.model();
        let r = m.file_mut(ino.0).and_then(|f| {
            let (start, end) = (offset as usize, (offset + length) as usize);
            if mode == 0 {
                if end > f.data.len() {
                    f.set_len(end);
                }
            } else if mode == libc::FALLOC_FL_KEEP_SIZE {
                // Reserves blocks only: nothing a read can see changes.
            } else if mode == libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE {
                f.zero(start..end);
            } else {
                return Err(libc::EOPNOTSUPP);
            }
            Ok(())
        });
        reply_empty(reply, r);
    }
}
