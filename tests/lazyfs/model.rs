//! The in-memory state of the test file system: for every file and directory, what a
//! process sees now and what would survive a power loss.
//!
//! The rules are the strict POSIX ones that a durable program must be written against:
//! - file data and size become durable only by an `fsync`/`fdatasync` of that file
//!   (`fdatasync` is enough for the size, as it is for retrieval on Linux);
//! - a directory entry (create, mkdir, rename, unlink, rmdir) becomes durable only by an
//!   `fsync` of the directory that holds it; a rename across directories needs both;
//! - a power loss throws away everything else: files go back to their last synced
//!   contents, directories to their last synced entries, and whatever is no longer
//!   reachable from the root through durable entries is gone.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::ops::Range;
use std::time::SystemTime;

pub type Ino = u64;
pub const ROOT: Ino = 1;

/// Errors as the errno that the file system answers with.
pub type FsResult<T> = Result<T, i32>;

pub struct FileNode {
    /// What reads see.
    pub data: Vec<u8>,
    /// What survives a power loss.
    durable: Vec<u8>,
    /// Bytes of `data` written (or zero-filled) since the last sync.
    dirty: Option<Range<usize>>,
}

pub struct DirNode {
    pub entries: BTreeMap<OsString, Ino>,
    durable: BTreeMap<OsString, Ino>,
}

pub enum Body {
    File(FileNode),
    Dir(DirNode),
}

pub struct Node {
    pub body: Body,
    pub perm: u16,
    pub uid: u32,
    pub gid: u32,
    pub mtime: SystemTime,
}

/// Counters a test can assert on (e.g. that fsyncs reached the file system at all).
#[derive(Default, Clone, Copy, Debug)]
pub struct Stats {
    pub file_syncs: u64,
    pub dir_syncs: u64,
    pub power_losses: u64,
}

pub struct Model {
    nodes: HashMap<Ino, Node>,
    /// Inode numbers are never reused, so a kernel that still holds an old inode after a
    /// power loss cannot alias it with a new file.
    next_ino: Ino,
    /// `false` models a disk that acknowledges fsyncs without making anything durable
    /// (for proving that a test can detect loss).
    pub syncs_honoured: bool,
    pub stats: Stats,
}

impl FileNode {
    fn empty() -> FileNode {
        FileNode { data: Vec::new(), durable: Vec::new(), dirty: None }
    }

    fn mark_dirty(&mut self, r: Range<usize>) {
        self.dirty = Some(match self.dirty.take() {
            None => r,
            Some(d) => d.start.min(r.start)..d.end.max(r.end),
        });
    }

    pub fn write(&mut self, offset: usize, buf: &[u8]) {
        let end = offset + buf.len();
        if end > self.data.len() {
            self.set_len(end);
        }
        self.data[offset..end].copy_from_slice(buf);
        self.mark_dirty(offset..end);
    }

    pub fn set_len(&mut self, len: usize) {
        let old = self.data.len();
        self.data.resize(len, 0);
        // Growing zero-fills [old, len): those bytes differ from whatever the durable copy
        // holds there. Shrinking needs no range: the sync copies the size.
        self.mark_dirty(old.min(len)..len);
    }

    /// Zeroes `range` (within the current size), as FALLOC_FL_PUNCH_HOLE does.
    pub fn zero(&mut self, range: Range<usize>) {
        let r = range.start.min(self.data.len())..range.end.min(self.data.len());
        self.data[r.clone()].fill(0);
        self.mark_dirty(r);
    }

    fn sync(&mut self) {
        let len = self.data.len();
        self.durable.resize(len, 0);
        if let Some(d) = self.dirty.take() {
            let end = d.end.min(len);
            if d.start < end {
                self.durable[d.start..end].copy_from_slice(&self.data[d.start..end]);
            }
        }
    }

    /// The disk wrote back the unsynced bytes before `upto` (and the size up to there).
    fn write_back_prefix(&mut self, upto: usize) {
        let len = self.data.len();
        if len > self.durable.len() {
            self.durable.resize(upto.clamp(self.durable.len(), len), 0);
        }
        if let Some(d) = &self.dirty {
            let end = d.end.min(upto).min(self.durable.len());
            if d.start < end {
                self.durable[d.start..end].copy_from_slice(&self.data[d.start..end]);
            }
        }
    }

    /// The disk committed a larger size but none of the unsynced data.
    fn write_back_size_only(&mut self) {
        let len = self.data.len();
        if len > self.durable.len() {
            self.durable.resize(len, 0);
        }
    }

    /// Bytes that a power loss now would lose or change (for tests and messages).
    pub fn unsynced(&self) -> bool {
        self.dirty.is_some() || self.durable.len() != self.data.len()
    }
}

impl Model {
    pub fn new(uid: u32, gid: u32) -> Model {
        let root = Node {
            body: Body::Dir(DirNode { entries: BTreeMap::new(), durable: BTreeMap::new() }),
            perm: 0o755,
            uid,
            gid,
            mtime: SystemTime::now(),
        };
        Model {
            nodes: HashMap::from([(ROOT, root)]),
            next_ino: ROOT + 1,
            syncs_honoured: true,
            stats: Stats::default(),
        }
    }

    pub fn node(&self, ino: Ino) -> FsResult<&Node> {
        self.nodes.get(&ino).ok_or(libc::ENOENT)
    }

    pub fn node_mut(&mut self, ino: Ino) -> FsResult<&mut Node> {
        self.nodes.get_mut(&ino).ok_or(libc::ENOENT)
    }

    pub fn file_mut(&mut self, ino: Ino) -> FsResult<&mut FileNode> {
        let node = self.node_mut(ino)?;
        node.mtime = SystemTime::now();
        match &mut node.body {
            Body::File(f) => Ok(f),
            Body::Dir(_) => Err(libc::EISDIR),
        }
    }

    pub fn file(&self, ino: Ino) -> FsResult<&FileNode> {
        match &self.node(ino)?.body {
            Body::File(f) => Ok(f),
            Body::Dir(_) => Err(libc::EISDIR),
        }
    }

    pub fn dir(&self, ino: Ino) -> FsResult<&DirNode> {
        match &self.node(ino)?.body {
            Body::Dir(d) => Ok(d),
            Body::File(_) => Err(libc::ENOTDIR),
        }
    }

    fn dir_mut(&mut self, ino: Ino) -> FsResult<&mut DirNode> {
        let node = self.node_mut(ino)?;
        node.mtime = SystemTime::now();
        match &mut node.body {
            Body::Dir(d) => Ok(d),
            Body::File(_) => Err(libc::ENOTDIR),
        }
    }

    pub fn lookup(&self, parent: Ino, name: &OsStr) -> FsResult<Ino> {
        self.dir(parent)?.entries.get(name).copied().ok_or(libc::ENOENT)
    }

    /// Creates a file or directory named `name` in `parent` (not durable until `parent`
    /// is fsynced).
    pub fn create(&mut self, parent: Ino, name: &OsStr, dir: bool, perm: u16, uid: u32, gid: u32) -> FsResult<Ino> {
        if self.dir(parent)?.entries.contains_key(name) {
            return Err(libc::EEXIST);
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        let body = if dir {
            Body::Dir(DirNode { entries: BTreeMap::new(), durable: BTreeMap::new() })
        } else {
            Body::File(FileNode::empty())
        };
        self.nodes.insert(ino, Node { body, perm, uid, gid, mtime: SystemTime::now() });
        self.dir_mut(parent)?.entries.insert(name.to_owned(), ino);
        Ok(ino)
    }

    /// unlink (`dir == false`) or rmdir (`dir == true`). The inode stays: open files and
    /// the durable entries of the directory may still refer to it.
    pub fn remove(&mut self, parent: Ino, name: &OsStr, dir: bool) -> FsResult<()> {
        let ino = self.lookup(parent, name)?;
        match (&self.node(ino)?.body, dir) {
            (Body::Dir(_), false) => return Err(libc::EISDIR),
            (Body::File(_), true) => return Err(libc::ENOTDIR),
            (Body::Dir(d), true) if !d.entries.is_empty() => return Err(libc::ENOTEMPTY),
            _ => {}
        }
        self.dir_mut(parent)?.entries.remove(name);
        Ok(())
    }

    pub fn rename(&mut self, parent: Ino, name: &OsStr, new_parent: Ino, new_name: &OsStr, flags: u32) -> FsResult<()> {
        let ino = self.lookup(parent, name)?;
        let replaced = self.dir(new_parent)?.entries.get(new_name).copied();
        if flags & libc::RENAME_EXCHANGE != 0 {
            let other = replaced.ok_or(libc::ENOENT)?;
            self.dir_mut(parent)?.entries.insert(name.to_owned(), other);
            self.dir_mut(new_parent)?.entries.insert(new_name.to_owned(), ino);
            return Ok(());
        }
        if flags & !libc::RENAME_NOREPLACE != 0 {
            return Err(libc::EINVAL);
        }
        if let Some(old) = replaced {
            if flags & libc::RENAME_NOREPLACE != 0 {
                return Err(libc::EEXIST);
            }
            match (&self.node(ino)?.body, &self.node(old)?.body) {
                (Body::File(_), Body::Dir(_)) => return Err(libc::EISDIR),
                (Body::Dir(_), Body::File(_)) => return Err(libc::ENOTDIR),
                (Body::Dir(_), Body::Dir(d)) if !d.entries.is_empty() => return Err(libc::ENOTEMPTY),
                _ => {}
            }
        }
        self.dir_mut(parent)?.entries.remove(name);
        self.dir_mut(new_parent)?.entries.insert(new_name.to_owned(), ino);
        Ok(())
    }

    /// fsync/fdatasync of a file, or fsync of a directory.
    pub fn sync(&mut self, ino: Ino) -> FsResult<()> {
        let honoured = self.syncs_honoured;
        let stats = &mut self.stats;
        match &mut self.nodes.get_mut(&ino).ok_or(libc::ENOENT)?.body {
            Body::File(f) => {
                stats.file_syncs += 1;
                if honoured {
                    f.sync();
                }
            }
            Body::Dir(d) => {
                stats.dir_syncs += 1;
                if honoured {
                    d.durable = d.entries.clone();
                }
            }
        }
        Ok(())
    }

    /// Everything not made durable is lost. Returns the inodes that still exist (whose
    /// cached pages and attributes the kernel must drop).
    ///
    /// With `partial_writeback = Some(seed)`, a disk that had written back some unsynced
    /// pages by itself is modelled too: each file with unsynced changes independently
    /// loses them all, keeps a random prefix of them, or keeps its new (larger) size with
    /// zeros where the unsynced data was (as a file system that committed the size but not
    /// the data). Directory entries stay strict.
    pub fn power_loss(&mut self, partial_writeback: Option<u64>) -> Vec<Ino> {
        self.stats.power_losses += 1;
        let mut rng = partial_writeback.map(|seed| seed | 1);
        let mut next = move |n: usize| {
            let x = rng.as_mut()?;
            *x ^= *x << 13;
            *x ^= *x >> 7;
            *x ^= *x << 17;
            Some((*x % (n as u64 + 1)) as usize)
        };
        for node in self.nodes.values_mut() {
            match &mut node.body {
                Body::File(f) => {
                    if f.unsynced() {
                        match next(2) {
                            Some(1) => f.write_back_prefix(next(f.data.len()).unwrap_or(0)),
                            Some(2) => f.write_back_size_only(),
                            _ => {}
                        }
                    }
                    f.data = f.durable.clone();
                    f.dirty = None;
                }
                Body::Dir(d) => d.entries = d.durable.clone(),
            }
        }
        // Keep what the root reaches through (now durable) entries.
        let mut reachable = HashSet::from([ROOT]);
        let mut queue = vec![ROOT];
        while let Some(ino) = queue.pop() {
            if let Some(Node { body: Body::Dir(d), .. }) = self.nodes.get(&ino) {
                queue.extend(d.entries.values().copied().filter(|child| reachable.insert(*child)));
            }
        }
        self.nodes.retain(|ino, _| reachable.contains(ino));
        reachable.into_iter().collect()
    }

    /// Paths (relative to the root) whose data or entries a power loss now would change.
    pub fn unsynced_paths(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![(ROOT, String::new())];
        while let Some((ino, path)) = stack.pop() {
            match self.nodes.get(&ino).map(|n| &n.body) {
                Some(Body::File(f)) if f.unsynced() => out.push(path),
                Some(Body::Dir(d)) => {
                    if d.entries != d.durable {
                        let changed = |a: &BTreeMap<OsString, Ino>, b: &BTreeMap<OsString, Ino>| {
                            let names =
                                a.iter().filter(|(n, i)| b.get(*n) != Some(i)).map(|(n, _)| n.to_string_lossy());
                            names.collect::<Vec<_>>().join(" ")
                        };
                        let (new, gone) = (changed(&d.entries, &d.durable), changed(&d.durable, &d.entries));
                        out.push(format!("{path}/ (entries not synced: new [{new}] gone [{gone}])"));
                    }
                    for (name, child) in &d.entries {
                        stack.push((*child, format!("{path}/{}", name.to_string_lossy())));
                    }
                }
                _ => {}
            }
        }
        out.sort();
        out
    }
}
