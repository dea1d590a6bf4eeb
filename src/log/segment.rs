//! One log segment: a `.log` file of batches plus its in-memory sparse indexes.
//!
//! All file I/O is positional (`pread`/`pwrite` through `FileExt`), so a segment's file can be
//! shared as `Arc<File>` with the flusher thread while the log keeps appending and reading.

use std::fs::{File, OpenOptions};
use std::io::{IoSlice, Seek, SeekFrom, Write};
use std::ops::{ControlFlow, Range};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::batch::{BatchError, BatchHeader, BatchIter, HEADER_SIZE, batch_total_size};
use super::index::{OffsetEntry, SparseIndex, TimeEntry};
use super::open_files::SegmentFile;
use super::{LogError, io_err};

/// Read granularity for sequential scans (recovery, index rebuilds, header walks).
const SCAN_CHUNK: usize = 256 * 1024;

/// Bytes read at a time when walking batch headers to find where a read may end.
const WALK_CHUNK: usize = 16 * 1024;

/// The bytes of a batch before its CRC (baseOffset, batchLength, partitionLeaderEpoch,
/// magic): what an append rewrites.
pub const PREFIX_SIZE: usize = 17;

/// With `preallocate`, the active segment's file grows by this many zero bytes at a
/// time, written ahead of the appends (a sparse extension or `fallocate` would leave the
/// blocks to be allocated, or converted from unwritten, by the fsync of the append that
/// fills them). One fsync per chunk pays for the new size and blocks; the others only
/// write data. The zero tail is cut when the segment is sealed or closed; after a crash,
/// recovery cuts it as any tail past the recovery point.
pub(crate) const PREALLOCATE_CHUNK: u64 = 1024 * 1024;

/// The most buffers one `pwritev` takes (Linux's `IOV_MAX`).
const MAX_IOVECS: usize = 1024;

/// Writes every slice at `pos`. The file's cursor is only used by appends, which the
/// partition lock serialises; readers use positional reads.
fn write_all_vectored_at(file: &File, mut slices: &mut [IoSlice<'_>], pos: u64) -> std::io::Result<()> {
    let mut f = file;
    f.seek(SeekFrom::Start(pos))?;
    while !slices.is_empty() {
        let chunk = slices.len().min(MAX_IOVECS);
        match f.write_vectored(&slices[..chunk]) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut slices, n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Largest relative offset / file position we allow, so index entries stay Kafka compatible
/// (Kafka treats both as signed 32-bit).
pub(crate) const MAX_RELATIVE: i64 = i32::MAX as i64;

pub(crate) fn segment_path(dir: &Path, base_offset: i64, ext: &str) -> PathBuf {
    dir.join(format!("{base_offset:020}.{ext}"))
}

/// How a [`Segment::scan`] ended.
pub(crate) struct ScanEnd {
    /// Position just after the last batch accepted by the callback, or of the batch at
    /// which the callback stopped.
    pub end: u64,
    /// Framing error found at `end`, if the scan stopped because of one.
    pub error: Option<BatchError>,
}

#[derive(Debug)]
pub(crate) struct Segment {
    pub base_offset: i64,
    pub dir: PathBuf,
    /// The `.log` file, opened on demand (see [`super::open_files`]).
    pub file: Arc<SegmentFile>,
    /// Bytes of valid data; appends go here.
    pub size: u64,
    /// The file's length: `size` plus any preallocated zero tail.
    pub allocated: u64,
    /// One past the last offset stored (== base_offset when empty).
    pub next_offset: i64,
    pub offset_index: SparseIndex<OffsetEntry>,
    pub time_index: SparseIndex<TimeEntry>,
    /// Largest batch maxTimestamp in the segment, -1 if none.
    pub max_timestamp: i64,
    /// Base offset of the batch holding `max_timestamp`.
    pub offset_of_max_timestamp: i64,
    bytes_since_index: u64,
    /// Timestamp the segment.ms roll timer starts from (first append / first batch).
    pub rolling_ts: Option<i64>,
    /// Entries in the segment's `.txnindex` (see [`super::txn`]); 0 when it has none.
    pub aborted_txns: u32,
}

impl Segment {
    fn with_file(dir: &Path, base_offset: i64, file: Arc<SegmentFile>, size: u64) -> Segment {
        Segment {
            base_offset,
            dir: dir.to_path_buf(),
            file,
            size,
            allocated: size,
            next_offset: base_offset,
            offset_index: SparseIndex::default(),
            time_index: SparseIndex::default(),
            max_timestamp: -1,
            offset_of_max_timestamp: -1,
            bytes_since_index: 0,
            rolling_ts: None,
            aborted_txns: 0,
        }
    }

    /// Creates a new empty segment. Fails if the `.log` already exists: a live segment must
    /// never be silently overwritten. The caller fsyncs the directory.
    pub fn create(dir: &Path, base_offset: i64) -> Result<Segment, LogError> {
        let path = segment_path(dir, base_offset, "log");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(io_err("create segment", &path))?;
        for ext in ["index", "timeindex"] {
            let p = segment_path(dir, base_offset, ext);
            File::create(&p).map_err(io_err("create index", &p))?;
        }
        Ok(Segment::with_file(dir, base_offset, SegmentFile::adopt(path, file), 0))
    }

    /// An existing segment with empty indexes (recovery fills in the rest); its file is
    /// opened when first used.
    pub fn open(dir: &Path, base_offset: i64) -> Result<Segment, LogError> {
        let path = segment_path(dir, base_offset, "log");
        let size = std::fs::metadata(&path).map_err(io_err("stat segment", &path))?.len();
        Ok(Segment::with_file(dir, base_offset, SegmentFile::lazy(path), size))
    }

    /// A segment for `base_offset` over an already open file (the log cleaner's rewrite,
    /// indexed before it is renamed into place), with empty indexes.
    pub(crate) fn adopt_file(dir: &Path, base_offset: i64, file: File) -> Result<Segment, LogError> {
        let path = segment_path(dir, base_offset, "log");
        let size = file.metadata().map_err(io_err("stat segment", &path))?.len();
        let handle = SegmentFile::adopt(path, file);
        // Pinned open (as if written) until the swap has renamed it to its path and
        // flushed it: reopened by path before that, it would be the old segment.
        handle.get_for_write()?;
        Ok(Segment::with_file(dir, base_offset, handle, size))
    }

    pub fn path(&self, ext: &str) -> PathBuf {
        segment_path(&self.dir, self.base_offset, ext)
    }

    pub fn relative(&self, offset: i64) -> u32 {
        (offset - self.base_offset).clamp(0, MAX_RELATIVE) as u32
    }

    /// Reads `len` bytes at `pos` into a fresh buffer (one pread).
    pub fn read_vec(&self, pos: u64, len: usize) -> Result<Vec<u8>, LogError> {
        let mut buf = vec![0u8; len];
        self.file.get()?.read_exact_at(&mut buf, pos).map_err(io_err("read segment", self.path("log")))?;
        Ok(buf)
    }

    /// Writes already offset-assigned batches at the end with a single positional write and
    /// updates the in-memory indexes. `batches` are `(header, range in data)`.
    /// Appends whole batches: `data` as received, with each batch's first
    /// [`PREFIX_SIZE`] bytes replaced by `prefixes[i]` (its rewritten base offset and
    /// leader epoch, which the CRC does not cover). One vectored write, no copy of the
    /// batches.
    pub fn append(
        &mut self,
        data: &[u8],
        prefixes: &[[u8; PREFIX_SIZE]],
        batches: &[(BatchHeader, Range<usize>)],
        index_interval: u64,
        preallocate: bool,
    ) -> Result<(), LogError> {
        let mut slices = Vec::with_capacity(batches.len() * 2);
        for (prefix, (_, range)) in prefixes.iter().zip(batches) {
            slices.push(IoSlice::new(prefix));
            slices.push(IoSlice::new(&data[range.start + PREFIX_SIZE..range.end]));
        }
        let len = batches.last().map_or(0, |(_, r)| r.end) as u64;
        let (file, _generation) = self.file.get_for_write()?;
        if preallocate && self.size + len > self.allocated {
            let target = (self.size + len).div_ceil(PREALLOCATE_CHUNK) * PREALLOCATE_CHUNK;
            if let Err(source) = write_zeros(&file, self.allocated, target) {
                let _ = file.set_len(self.allocated);
                return Err(LogError::Io { op: "preallocate segment", path: self.path("log"), source });
            }
            self.allocated = target;
        }
        if let Err(source) = write_all_vectored_at(&file, &mut slices, self.size) {
            // Drop whatever part made it so the next append starts on a clean boundary.
            let _ = file.set_len(self.size);
            self.allocated = self.size;
            return Err(LogError::Io { op: "append to segment", path: self.path("log"), source });
        }
        let start = self.size;
        for (h, range) in batches {
            self.note_batch(start + range.start as u64, h, index_interval);
        }
        self.size += len;
        Ok(())
    }

    /// Accounts for a batch stored at `pos`: sparse index entries, max timestamp, next offset.
    /// Used for appends and for rebuilding indexes from the file.
    pub fn note_batch(&mut self, pos: u64, h: &BatchHeader, index_interval: u64) {
        if self.bytes_since_index >= index_interval && pos > 0 {
            self.offset_index.push(OffsetEntry { relative_offset: self.relative(h.base_offset), position: pos as u32 });
            if self.max_timestamp >= 0 {
                let rel = self.relative(self.offset_of_max_timestamp);
                self.time_index.maybe_push(self.max_timestamp, rel);
            }
            self.bytes_since_index = 0;
        }
        if h.max_timestamp > self.max_timestamp {
            self.max_timestamp = h.max_timestamp;
            self.offset_of_max_timestamp = h.base_offset;
        }
        if self.rolling_ts.is_none() && h.max_timestamp >= 0 {
            self.rolling_ts = Some(h.max_timestamp);
        }
        self.bytes_since_index += h.total_size() as u64;
        self.next_offset = h.next_offset();
    }

    /// Forgets indexes and derived state, ready for [`Segment::note_batch`] from position 0.
    pub fn reset_derived_state(&mut self) {
        self.offset_index.clear();
        self.time_index.clear();
        self.max_timestamp = -1;
        self.offset_of_max_timestamp = -1;
        self.bytes_since_index = 0;
        self.next_offset = self.base_offset;
        self.rolling_ts = None;
    }

    /// Restores derived state from loaded index files before scanning the tail from the last
    /// offset index entry (returned position).
    pub fn adopt_indexes(&mut self, oi: SparseIndex<OffsetEntry>, ti: SparseIndex<TimeEntry>) -> u64 {
        self.reset_derived_state();
        if let Some(t) = ti.last() {
            self.max_timestamp = t.timestamp;
            self.offset_of_max_timestamp = self.base_offset + i64::from(t.relative_offset);
        }
        let start = oi.last().map_or(0, |e| u64::from(e.position));
        if let Some(e) = oi.last() {
            self.next_offset = self.base_offset + i64::from(e.relative_offset);
        }
        self.offset_index = oi;
        self.time_index = ti;
        start
    }

    /// Walks whole batches from `from` to the end of the data; see [`scan_file`].
    pub fn scan<F>(&self, from: u64, f: F) -> Result<ScanEnd, LogError>
    where
        F: FnMut(u64, &BatchHeader, &[u8]) -> ControlFlow<()>,
    {
        let file = self.file.get()?;
        scan_file(&file, &self.path("log"), self.size, from, f)
    }

    /// Finds the batch containing `offset` (or the first batch after it): its position and
    /// header. Starts from the sparse index and hops from header to header.
    pub fn locate(&self, offset: i64) -> Result<Option<(u64, BatchHeader)>, LogError> {
        self.locate_skipping(offset, &[])
    }

    /// [`locate`](Self::locate) stepping over known damaged byte ranges (`(position, end
    /// position, next offset)`, see [`super::damage`]) and checking what is cheap in each
    /// header it reads: the magic, a length that overruns the segment or the next index
    /// entry, an offset that goes backwards. A header failing those is reported as
    /// [`LogError::CorruptBatch`] (the caller records the damage) instead of being trusted.
    pub fn locate_skipping(
        &self,
        offset: i64,
        damaged: &[(u64, u64, i64)],
    ) -> Result<Option<(u64, BatchHeader)>, LogError> {
        let entry = self.offset_index.lookup(self.relative(offset));
        let mut pos = entry.map_or(0, |e| u64::from(e.position));
        let mut expected = entry.map_or(self.base_offset, |e| self.base_offset + i64::from(e.relative_offset));
        while pos < self.size {
            if let Some(&(_, end, next)) = damaged.iter().find(|(start, end, _)| (*start..*end).contains(&pos)) {
                (pos, expected) = (end, next);
                continue;
            }
            let len = HEADER_SIZE.min((self.size - pos) as usize);
            let buf = self.read_vec(pos, len)?;
            let h = self.checked_header(&buf, pos, expected)?;
            if h.last_offset() >= offset {
                return Ok(Some((pos, h)));
            }
            pos += h.total_size() as u64;
            expected = h.next_offset();
        }
        Ok(None)
    }

    /// Parses the header read at `pos` and applies the cheap checks of
    /// [`locate_skipping`](Self::locate_skipping).
    fn checked_header(&self, buf: &[u8], pos: u64, expected: i64) -> Result<BatchHeader, LogError> {
        let corrupt = |reason: String| LogError::CorruptBatch {
            path: self.path("log"),
            segment_base: self.base_offset,
            position: pos,
            expected_offset: expected,
            reason,
        };
        let h = BatchHeader::parse(buf).map_err(|e| corrupt(format!("unreadable batch header: {e}")))?;
        let end = pos + h.total_size() as u64;
        if end > self.size {
            return Err(corrupt(format!("batch length {} overruns the segment ({} bytes)", h.batch_length, self.size)));
        }
        let next_entry = self.offset_index.first_after_position(pos);
        if let Some(e) = next_entry
            && end > u64::from(e.position)
        {
            return Err(corrupt(format!("batch length {} overruns the next index entry", h.batch_length)));
        }
        if h.base_offset < expected || h.next_offset() > self.next_offset {
            return Err(corrupt(format!("batch offsets {}..={} out of place", h.base_offset, h.last_offset())));
        }
        Ok(h)
    }

    /// The end of the last whole batch that starts at or after `from` (a batch boundary) and
    /// ends by `limit`; `from` itself when not even the first one fits. Starts from the
    /// sparse index entry nearest below `limit`, so it reads a few headers at most.
    pub fn last_batch_end(&self, from: u64, limit: u64) -> Result<u64, LogError> {
        let limit = limit.min(self.size);
        let indexed = u32::try_from(limit).ok().and_then(|l| self.offset_index.lookup_position(l));
        let mut pos = indexed.map_or(from, |e| u64::from(e.position).max(from));
        while pos < limit {
            // Small batches: walk a chunk of them in memory.
            let want = (limit - pos) as usize;
            let chunk = self.read_vec(pos, want.min(WALK_CHUNK))?;
            let walked = BatchIter::new(&chunk).map_while(Result::ok).last().map_or(0, |(_, r)| r.end);
            if walked > 0 {
                pos += walked as u64;
                continue;
            }
            if want <= WALK_CHUNK {
                break; // the next batch ends past `limit`
            }
            // One batch larger than the chunk: its header says where it ends.
            let end = pos + BatchHeader::parse(&chunk)?.total_size() as u64;
            if end > limit {
                break;
            }
            pos = end;
        }
        Ok(pos)
    }

    /// Cuts the data at `pos` (a batch boundary), fsyncs, and rebuilds the indexes.
    pub fn truncate_at(&mut self, pos: u64, index_interval: u64) -> Result<(), LogError> {
        self.set_len_durably(pos)?;
        self.size = pos;
        self.rebuild_indexes(index_interval)
    }

    /// Cuts bytes after `pos` that hold no offsets (junk after a durable segment's last
    /// batch), keeping the derived state, and fsyncs.
    pub fn truncate_junk(&mut self, pos: u64) -> Result<(), LogError> {
        self.set_len_durably(pos)?;
        self.size = pos;
        Ok(())
    }

    /// Cuts (or extends) the file to `len` and fsyncs it, data and size.
    fn set_len_durably(&mut self, len: u64) -> Result<(), LogError> {
        let path = self.path("log");
        let (file, generation) = self.file.get_for_write()?;
        file.set_len(len).map_err(io_err("truncate segment", &path))?;
        self.allocated = len;
        file.sync_all().map_err(io_err("fsync segment", &path))?;
        self.file.mark_synced(generation);
        Ok(())
    }

    /// Cuts a preallocated zero tail and makes the new length durable (close).
    pub fn trim_preallocated(&mut self) -> Result<(), LogError> {
        if self.allocated > self.size { self.set_len_durably(self.size) } else { Ok(()) }
    }

    /// fdatasyncs the file, then lets the cache close it again.
    pub fn sync_data(&self) -> Result<(), LogError> {
        let generation = self.file.written();
        self.file.get()?.sync_data().map_err(io_err("fsync segment", self.path("log")))?;
        self.file.mark_synced(generation);
        Ok(())
    }

    /// Rebuilds indexes and derived state by scanning the whole (trusted) data.
    pub fn rebuild_indexes(&mut self, index_interval: u64) -> Result<(), LogError> {
        self.reset_derived_state();
        let file = self.file.get()?;
        let end = scan_file(&file, &self.path("log"), self.size, 0, |pos, h, _| {
            self.note_batch(pos, h, index_interval);
            ControlFlow::Continue(())
        })?;
        match end.error {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }

    /// fsyncs the data, records the final max timestamp in the time index (so it survives a
    /// reopen), and writes + fsyncs both index files.
    pub fn flush(&mut self) -> Result<(), LogError> {
        self.sync_data()?;
        if self.max_timestamp >= 0 {
            let rel = self.relative(self.offset_of_max_timestamp);
            self.time_index.maybe_push(self.max_timestamp, rel);
        }
        self.offset_index.persist(&self.path("index"))?;
        self.time_index.persist(&self.path("timeindex"))
    }

    /// Removes the segment's files (indexes first, so a crash never leaves a `.log` whose
    /// index is missing... which would be harmless anyway, it gets rebuilt). The caller
    /// fsyncs the directory.
    pub fn delete(self) -> Result<(), LogError> {
        // The raft sidecars after the data: a crash in between leaves sidecars without a
        // segment (removed at the next open), never a raft segment without its sidecars
        // (which its log would refuse to open).
        for ext in ["index", "timeindex", "log", "raftindex", "raftgroups", super::txn::TXN_INDEX_EXT] {
            let p = self.path(ext);
            match std::fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err("delete segment file", &p)(e)),
            }
        }
        Ok(())
    }
}

/// Writes zeros over `[from, to)` of `file` (its preallocated tail).
fn write_zeros(file: &File, from: u64, to: u64) -> std::io::Result<()> {
    static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];
    let mut pos = from;
    while pos < to {
        let n = ZEROS.len().min(usize::try_from(to - pos).unwrap_or(usize::MAX));
        file.write_all_at(&ZEROS[..n], pos)?;
        pos += n as u64;
    }
    Ok(())
}

/// fsyncs a directory so that file creations, renames and deletions in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), LogError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_err("fsync directory", dir))
}

/// Walks whole batches of `file` from `from` to `size`, reading in large chunks.
/// A free function so callers can mutate the segment (indexes) from the callback.
/// `f(position, header, batch bytes)` may stop the scan early. Stops at the first framing
/// error (truncated batch, bad length or magic); CRC checks are up to the callback.
pub(crate) fn scan_file<F>(file: &File, path: &Path, size: u64, from: u64, mut f: F) -> Result<ScanEnd, LogError>
where
    F: FnMut(u64, &BatchHeader, &[u8]) -> ControlFlow<()>,
{
    let mut pos = from;
    let mut need = SCAN_CHUNK;
    while pos < size {
        let left = (size - pos) as usize;
        let mut buf = vec![0u8; need.max(SCAN_CHUNK).min(left)];
        file.read_exact_at(&mut buf, pos).map_err(io_err("read segment", path))?;
        let mut iter = BatchIter::new(&buf);
        let mut consumed = 0usize;
        for item in iter.by_ref() {
            match item {
                Ok((h, r)) => {
                    if f(pos + r.start as u64, &h, &buf[r.clone()]).is_break() {
                        return Ok(ScanEnd { end: pos + r.start as u64, error: None });
                    }
                    consumed = r.end;
                }
                Err(BatchError::Truncated) if buf.len() < left => break,
                Err(e) => return Ok(ScanEnd { end: pos + consumed as u64, error: Some(e) }),
            }
        }
        if consumed == 0 {
            // The batch at `pos` is larger than the chunk: read it whole next time.
            need = match batch_total_size(&buf) {
                Ok(total) if total <= left => total,
                Ok(_) | Err(BatchError::Truncated) => {
                    return Ok(ScanEnd { end: pos, error: Some(BatchError::Truncated) });
                }
                Err(e) => return Ok(ScanEnd { end: pos, error: Some(e) }),
            };
        } else {
            need = SCAN_CHUNK;
        }
        pos += consumed as u64;
    }
    Ok(ScanEnd { end: pos, error: None })
}
