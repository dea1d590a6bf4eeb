//! The partition log as a raft log: [`RaftIndex`] kept beside the segments.
//!
//! One raft entry is the batches of one [`PartitionLog::append_entry`]. The translation is
//! recorded on every append and roll, truncated and purged with the log, and rebuilt on
//! open ([`PartitionLog::open_raft_index`]). Each segment has up to two sidecars in the
//! same encoding ([`SegmentEntries::encode`]):
//! - `.raftindex`, **final**: written only for a segment that no longer takes appends — by
//!   its seal (before the recovery point moves past it), or by open after rebuilding a
//!   rolled segment whose seal never ran. It is trusted as it is;
//! - `.raftgroups`, **working**: the active segment's first raft index and groups, written
//!   (tmp + fsync + rename + directory fsync) *before* an append that adds a group (an
//!   entry of several batches) or starts the segment's entries, and after a truncation or
//!   purge. It may be behind the data (entries of one batch are not written to it) and
//!   may name a group whose batches never reached the disk (a rebuild drops an
//!   incomplete group, and open rewrites the file then); the batch headers and its groups
//!   give the entries.
//!
//! A segment holding batches with neither readable sidecar refuses to open: its groups
//! are lost, and numbering its entries without them would be a guess.

use std::io::Write;
use std::ops::ControlFlow;
use std::path::Path;

use bytes::{Bytes, BytesMut};

use super::batch::{BatchHeader, BatchIter};
use super::partition_log::{AppendInfo, PartitionLog};
use super::raft_index::{BatchSpan, RaftIndex, SegmentEntries};
use super::segment::{Segment, sync_dir};
use super::{LogError, io_err};

/// One stored raft entry: its batches as stored (offsets assigned) and the leader epoch
/// of its first batch (the raft term).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEntry {
    pub index: u64,
    pub epoch: i32,
    pub first_offset: i64,
    pub last_offset: i64,
    pub batches: Bytes,
}

/// Writes `bytes` to `path` through a `.tmp` file, fsynced and renamed; the caller
/// fsyncs the directory.
pub(crate) fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), LogError> {
    let ext = path.extension().map(|e| e.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_extension(format!("{ext}.tmp"));
    let mut f = std::fs::File::create(&tmp).map_err(io_err("create", &tmp))?;
    f.write_all(bytes).map_err(io_err("write", &tmp))?;
    f.sync_all().map_err(io_err("fsync", &tmp))?;
    std::fs::rename(&tmp, path).map_err(io_err("rename", path))
}

fn remove_if_present(path: &Path) -> Result<(), LogError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err("remove stale raft index sidecar", path)(e)),
    }
}

/// The roll hook: the active segment's final sidecar bytes, then a new segment at `base`.
pub(super) fn roll(index: &mut RaftIndex, base: i64) -> Vec<u8> {
    let bytes = index.segments().last().map(SegmentEntries::encode).unwrap_or_default();
    index.roll(base);
    bytes
}

fn span(h: &BatchHeader) -> BatchSpan {
    BatchSpan { base_offset: h.base_offset, last_offset: h.last_offset(), size: h.total_size() as u64 }
}

/// Final sidecar of a segment that takes no more appends.
pub(super) const FINAL_SIDECAR: &str = "raftindex";
/// Working sidecar of the active segment.
pub(super) const WORKING_SIDECAR: &str = "raftgroups";

fn read_sidecar(seg: &Segment, ext: &str) -> Option<SegmentEntries> {
    let path = seg.path(ext);
    let bytes = std::fs::read(&path).ok()?;
    match SegmentEntries::decode(&bytes) {
        Ok(s) if s.segment_base == seg.base_offset => Some(s),
        Ok(_) => None,
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "raft index sidecar unusable; rebuilding");
            None
        }
    }
}

impl PartitionLog {
    /// Makes this log a raft log: loads or rebuilds the translation. `first_index` is the
    /// raft index of the first entry when nothing on disk says (a new, empty log).
    /// Sealed segments wholly below `purged_end` (the offset after the last entry raft
    /// purged) hold no entry: they are data only (a compacted log's, kept below raft's
    /// log; see [`purge_entries_through`](Self::purge_entries_through)), not translated,
    /// and their sidecars — stale once the cleaner rewrote them — are removed.
    pub fn open_raft_index(&mut self, first_index: u64, purged_end: i64) -> Result<(), LogError> {
        let interval = self.config.index_interval_bytes;
        let last = self.segments.len() - 1;
        let data_only = self.segments[..last].iter().take_while(|s| s.next_offset <= purged_end).count();
        for seg in &self.segments[..data_only] {
            for ext in [FINAL_SIDECAR, WORKING_SIDECAR] {
                remove_if_present(&seg.path(ext))?;
            }
        }
        let mut loaded: Vec<SegmentEntries> = Vec::with_capacity(self.segments.len());
        // Rolled segments rebuilt here (their seal never ran): their final sidecars.
        let mut finals: Vec<(std::path::PathBuf, Vec<u8>)> = Vec::new();
        let mut rewrite_working = false;
        for (i, seg) in self.segments.iter().enumerate().skip(data_only) {
            let expected_first = loaded.last().map(|s| s.next_index);
            let continues = |s: &SegmentEntries| expected_first.is_none_or(|f| f == s.first_index);
            if i < last
                && let Some(s) = read_sidecar(seg, FINAL_SIDECAR).filter(|s| continues(s))
            {
                loaded.push(s);
                continue;
            }
            let source = read_sidecar(seg, WORKING_SIDECAR).or_else(|| read_sidecar(seg, FINAL_SIDECAR));
            if source.is_none() && seg.size > 0 {
                return Err(LogError::CorruptMetadata {
                    path: seg.path(WORKING_SIDECAR),
                    reason: "raft index sidecars missing or damaged for a segment holding entries".into(),
                });
            }
            let first = expected_first.or(source.as_ref().map(|s| s.first_index)).unwrap_or(first_index);
            let groups = source.map(|s| s.groups).unwrap_or_default();
            let mut spans = Vec::new();
            self.scan_segment(seg, 0, |h| {
                spans.push(span(h));
                ControlFlow::Continue(())
            })?;
            let rebuilt = SegmentEntries::rebuild(seg.base_offset, first, groups.clone(), spans, interval);
            if i < last {
                finals.push((seg.path(FINAL_SIDECAR), rebuilt.encode()));
            } else {
                // Groups past the data (their batches were lost) must not number a later
                // entry at the same index.
                rewrite_working = rebuilt.groups != groups;
            }
            loaded.push(rebuilt);
        }
        let first = loaded.first().map_or(first_index, |s| s.first_index).max(first_index);
        let index = RaftIndex::from_segments(loaded, first, interval)
            .ok_or_else(|| LogError::CorruptMetadata { path: self.dir.clone(), reason: "raft index gap".into() })?;
        for (path, bytes) in &finals {
            write_synced(path, bytes)?;
        }
        if !finals.is_empty() {
            sync_dir(&self.dir)?;
        }
        self.raft = Some(index);
        if rewrite_working {
            self.write_active_sidecar()?;
        }
        Ok(())
    }

    /// The translation, if [`open_raft_index`](Self::open_raft_index) was called.
    pub fn raft_index(&self) -> Option<&RaftIndex> {
        self.raft.as_ref()
    }

    fn raft_mut(&mut self) -> Result<&mut RaftIndex, LogError> {
        self.raft.as_mut().ok_or_else(|| LogError::InvalidArgument("not a raft log".into()))
    }

    /// Restarts an empty translation at `first_index` (a log whose first entry is not 0,
    /// or everything purged past the log end), durably.
    pub fn restart_raft_index(&mut self, first_index: u64) -> Result<(), LogError> {
        let interval = self.config.index_interval_bytes;
        let base = self.log_end_offset();
        if self.segments[self.segments.len() - 1].base_offset != base {
            return Err(LogError::InvalidArgument("raft index restarts only on an empty active segment".into()));
        }
        self.raft = Some(RaftIndex::new(base, first_index, interval));
        self.write_active_sidecar()
    }

    /// Appends the batches of one raft entry (see [`PartitionLog::append`]); returns the
    /// append's offsets and the entry's raft index.
    pub fn append_entry(&mut self, batches: &[u8], epoch: i32, now_ms: i64) -> Result<(AppendInfo, u64), LogError> {
        let mut spans = Vec::new();
        for item in BatchIter::new(batches) {
            spans.push(span(&item?.0));
        }
        if spans.is_empty() {
            return Err(LogError::InvalidArgument("a raft entry holds at least one batch".into()));
        }
        let offsets: i64 = spans.iter().map(|s| s.last_offset - s.base_offset + 1).sum();
        // Roll now, so the sidecar written below is the segment that takes the batches.
        self.maybe_roll(batches.len() as u64, offsets, now_ms)?;
        let start = self.log_end_offset();
        let mut next = start;
        for s in &mut spans {
            let n = s.last_offset - s.base_offset;
            (s.base_offset, s.last_offset) = (next, next + n);
            next += n + 1;
        }
        let raft = self.raft_mut()?;
        let seg_first = raft.segments().last().is_some_and(|s| s.next_index == s.first_index);
        let index = raft.append(&spans).ok_or_else(|| LogError::InvalidArgument("empty entry".into()))?;
        let sidecar = if spans.len() > 1 || seg_first { self.write_active_sidecar() } else { Ok(()) };
        let info = sidecar.and_then(|()| self.append(batches, epoch, now_ms));
        if info.is_err() {
            // The batches were not written: forget the entry again.
            self.raft_mut()?.truncate(index);
        }
        Ok((info?, index))
    }

    /// Writes the active segment's working sidecar durably. A final sidecar the segment
    /// had (a sealed segment that truncation made active again) goes first: it no longer
    /// describes the segment, and the next seal writes a new one.
    fn write_active_sidecar(&self) -> Result<(), LogError> {
        let (Some(raft), Some(seg)) = (&self.raft, self.segments.last()) else { return Ok(()) };
        let Some(entries) = raft.segments().last() else { return Ok(()) };
        let stale = seg.path(FINAL_SIDECAR);
        match std::fs::remove_file(&stale) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("remove stale raft index sidecar", &stale)(e)),
        }
        write_synced(&seg.path(WORKING_SIDECAR), &entries.encode())?;
        sync_dir(&self.dir)
    }

    fn scan_segment(
        &self,
        seg: &Segment,
        from: u64,
        mut f: impl FnMut(&BatchHeader) -> ControlFlow<()>,
    ) -> Result<(), LogError> {
        let end = seg.scan(from, |_, h, _| f(h))?;
        match end.error {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }

    /// Raft entry `index`, read from the segment files; `None` if it is not in the log.
    pub fn read_entry(&self, index: u64) -> Result<Option<StoredEntry>, LogError> {
        let Some(raft) = &self.raft else { return Ok(None) };
        let Some(point) = raft.point_for_index(index) else { return Ok(None) };
        let Some(seg) = self.segments.iter().find(|s| s.base_offset == point.0) else { return Ok(None) };
        let Some((pos, _)) = seg.locate(point.1.offset)? else { return Ok(None) };
        // Walk headers from the point until entry `index` is complete.
        let (mut at, mut taken) = (point.1.index, 0u32);
        let mut batches: Vec<(u64, BatchHeader)> = Vec::new();
        let mut walk_pos = pos;
        self.scan_segment(seg, pos, |h| {
            batches.push((walk_pos, *h));
            walk_pos += h.total_size() as u64;
            taken += 1;
            if taken == raft.batches_in(at) {
                if at == index {
                    return ControlFlow::Break(());
                }
                (at, taken) = (at + 1, 0);
            }
            ControlFlow::Continue(())
        })?;
        let spans = batches.iter().map(|(_, h)| span(h));
        let Some(entry) = raft.resolve_index(index, point, spans) else { return Ok(None) };
        let mine: Vec<&(u64, BatchHeader)> = batches
            .iter()
            .filter(|(_, h)| h.base_offset >= entry.first_offset && h.last_offset() <= entry.last_offset)
            .collect();
        let (Some(first), Some(last)) = (mine.first(), mine.last()) else { return Ok(None) };
        let len = (last.0 + last.1.total_size() as u64 - first.0) as usize;
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&seg.read_vec(first.0, len)?);
        Ok(Some(StoredEntry {
            index,
            epoch: first.1.partition_leader_epoch,
            first_offset: entry.first_offset,
            last_offset: entry.last_offset,
            batches: buf.freeze(),
        }))
    }

    /// Raft truncation: entries from `index` on leave the log (their batches and their
    /// translation).
    pub fn truncate_entries_from(&mut self, index: u64) -> Result<(), LogError> {
        let raft = self.raft_mut()?;
        if index >= raft.next_index() {
            return Ok(());
        }
        let cut = match self.read_entry(index)? {
            Some(e) => e.first_offset,
            // Below the first entry: everything goes.
            None => self.log_start_offset(),
        };
        self.truncate_to(cut)?;
        self.raft_mut()?.truncate(index);
        self.write_active_sidecar()
    }

    /// Raft purge: entries up to and including `index` leave raft's log. Their data stays
    /// where it is above the log start (a compacted log keeps it, to be cleaned; the
    /// caller records where the entries end, see [`open_raft_index`](Self::open_raft_index)),
    /// and whole segments below the log start are deleted. The log start does not move:
    /// only a log-start entry, or an installed snapshot, moves it. Purging every entry
    /// seals the active segment (if it holds data) and restarts the translation after it.
    pub fn purge_entries_through(&mut self, index: u64) -> Result<(), LogError> {
        let raft = self.raft_mut()?;
        if index < raft.first_index() {
            return Ok(());
        }
        if index + 1 >= raft.next_index() {
            if self.active().size > 0 {
                self.roll()?;
                self.wait_for_seals()?;
            }
            self.delete_segments_below_start()?;
            return self.restart_raft_index(index + 1);
        }
        self.delete_segments_below_start()?;
        self.raft_mut()?.purge_through(index);
        Ok(())
    }

    /// Deletes the segments wholly below both the log start and raft's log: data only (a
    /// compacted log's, see [`purge_entries_through`](Self::purge_entries_through)) that
    /// a log-start entry passed. Segments holding entries go through raft's purge instead.
    pub fn delete_data_below_start(&mut self) -> Result<(), LogError> {
        let Some(first_base) = self.raft.as_ref().and_then(|r| r.segments().first().map(|s| s.segment_base)) else {
            return Ok(());
        };
        self.delete_segments_below(first_base)
    }

    /// The last raft entry of the segments wholly below the log start, with the offset
    /// that follows it: where a snapshot lets raft purge, so that the segments can go.
    /// With `compacted_below` (a compacted log's high watermark), the sealed segments wholly
    /// below it count too: purged from raft's log, their data stays and the cleaner may
    /// rewrite it. `None` when no such segment holds an entry.
    pub fn raft_purge_point(&self, compacted_below: Option<i64>) -> Option<(u64, i64)> {
        let raft = self.raft.as_ref()?;
        let limit = compacted_below.map_or(self.log_start_offset, |hw| hw.max(self.log_start_offset));
        let sealed = &self.segments[..self.segments.len() - 1];
        let below = sealed.iter().take_while(|s| s.next_offset <= limit).count();
        // The last of them that holds entries raft still has.
        sealed[..below].iter().rev().find_map(|seg| {
            let entries = raft.segments().iter().find(|e| e.segment_base == seg.base_offset)?;
            let index = entries.next_index.checked_sub(1).filter(|i| *i >= raft.first_index())?;
            Some((index, seg.next_offset))
        })
    }

    /// A snapshot installed past this log's end (raft entries up to `last_index` are
    /// gone on the leader): the log restarts empty at `base_offset`, the offset after that
    /// entry, and its next entry is `last_index + 1`.
    pub fn restart_after_snapshot(&mut self, last_index: u64, base_offset: i64) -> Result<(), LogError> {
        self.restart_at(base_offset)?;
        self.restart_raft_index(last_index + 1)
    }
}
