//! The partition log as a raft log: [`RaftIndex`] kept beside the segments.
//!
//! One raft entry is the batches of one [`PartitionLog::append_entry`]. The translation is
//! recorded on every append and roll, truncated and purged with the log, and rebuilt on
//! open ([`PartitionLog::open_raft_index`]). What cannot be derived from the batches is
//! made durable no later than the batches themselves:
//! - a rolled segment's `.raftindex` sidecar (final) is written by its seal, before the
//!   recovery point moves past the segment;
//! - the active segment's sidecar is written (tmp + fsync + rename + directory fsync)
//!   *before* an append that adds a group (an entry of several batches) or starts the
//!   segment's entries (its first raft index), and after a truncation or purge. A sidecar
//!   naming a group whose batches never reached the disk is harmless: a rebuild drops an
//!   incomplete group.
//!
//! On open every sealed segment's sidecar is trusted when it decodes and continues the
//! previous segment; the active segment is always rebuilt from its batch headers, with the
//! first index and groups of its sidecar.

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
    let tmp = path.with_extension("raftindex.tmp");
    let mut f = std::fs::File::create(&tmp).map_err(io_err("create", &tmp))?;
    f.write_all(bytes).map_err(io_err("write", &tmp))?;
    f.sync_all().map_err(io_err("fsync", &tmp))?;
    std::fs::rename(&tmp, path).map_err(io_err("rename", path))
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

fn read_sidecar(seg: &Segment) -> Option<SegmentEntries> {
    let path = seg.path("raftindex");
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
    pub fn open_raft_index(&mut self, first_index: u64) -> Result<(), LogError> {
        let interval = self.config.index_interval_bytes;
        let last = self.segments.len() - 1;
        let report = self.recovery_report();
        // A segment the recovery point (or a clean shutdown) vouches for was sealed, and its
        // seal wrote its final sidecar first.
        let sealed = |seg: &Segment| report.clean || seg.next_offset <= report.recovery_point;
        let mut loaded: Vec<SegmentEntries> = Vec::with_capacity(self.segments.len());
        for (i, seg) in self.segments.iter().enumerate() {
            let sidecar = read_sidecar(seg);
            let expected_first = loaded.last().map(|s| s.next_index);
            let continues = |s: &SegmentEntries| expected_first.is_none_or(|f| f == s.first_index);
            match sidecar {
                Some(s) if i < last && sealed(seg) && continues(&s) => loaded.push(s),
                // The groups of a segment with batches are only in its sidecar: without it
                // the entries cannot be numbered, and guessing would misnumber them.
                None if seg.size > 0 => {
                    return Err(LogError::CorruptMetadata {
                        path: seg.path("raftindex"),
                        reason: "raft index sidecar missing or damaged for a segment holding entries".into(),
                    });
                }
                // Not sealed (or the active segment): every group was written to the
                // sidecar before its batches, so the batch headers and those groups give
                // the entries.
                other => {
                    let first = expected_first.or(other.as_ref().map(|s| s.first_index)).unwrap_or(first_index);
                    let groups = other.map(|s| s.groups).unwrap_or_default();
                    let mut spans = Vec::new();
                    self.scan_segment(seg, 0, |h| {
                        spans.push(span(h));
                        ControlFlow::Continue(())
                    })?;
                    loaded.push(SegmentEntries::rebuild(seg.base_offset, first, groups, spans, interval));
                }
            }
        }
        let first = loaded.first().map_or(first_index, |s| s.first_index).max(first_index);
        let index = RaftIndex::from_segments(loaded, first, interval)
            .ok_or_else(|| LogError::CorruptMetadata { path: self.dir.clone(), reason: "raft index gap".into() })?;
        self.raft = Some(index);
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
        if spans.len() > 1 || seg_first {
            self.write_active_sidecar()?;
        }
        let info = self.append(batches, epoch, now_ms);
        if info.is_err() {
            // Nothing was written: forget the entry again.
            self.raft_mut()?.truncate(index);
        }
        Ok((info?, index))
    }

    /// Writes the active segment's sidecar durably.
    fn write_active_sidecar(&self) -> Result<(), LogError> {
        let (Some(raft), Some(seg)) = (&self.raft, self.segments.last()) else { return Ok(()) };
        let Some(entries) = raft.segments().last() else { return Ok(()) };
        write_synced(&seg.path("raftindex"), &entries.encode())?;
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

    /// Raft purge: entries up to and including `index` leave the log; the log start moves
    /// to the next entry's first offset (or the log end, if none is left).
    pub fn purge_entries_through(&mut self, index: u64) -> Result<(), LogError> {
        let raft = self.raft_mut()?;
        if index < raft.first_index() {
            return Ok(());
        }
        let next_index = raft.next_index();
        if index + 1 >= next_index {
            let end = self.log_end_offset();
            self.advance_log_start(end)?;
            return self.restart_raft_index(index + 1);
        }
        let start = match self.read_entry(index + 1)? {
            Some(e) => e.first_offset,
            None => return Err(LogError::InvalidArgument(format!("raft entry {} is not readable", index + 1))),
        };
        self.advance_log_start(start)?;
        self.raft_mut()?.purge_through(index);
        Ok(())
    }
}
