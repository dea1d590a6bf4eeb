//! Sparse offset and time indexes, in Kafka's file layout.
//!
//! * `.index`: 8-byte entries, `relative offset: u32 BE` + `file position: u32 BE`. An entry is
//!   added roughly every `index.interval.bytes`; each points at the *start* of the batch
//!   whose base offset is `segment base + relative offset`.
//! * `.timeindex`: 12-byte entries, `timestamp: i64 BE` + `relative offset: u32 BE`, meaning
//!   "the largest max timestamp among batches up to and including the batch at this offset".
//!   Timestamps are strictly increasing, so a binary search finds where to start scanning.
//!
//! Entries are kept in memory and written to the files incrementally (only new entries are
//! written, the file is rewritten after a truncation). Because an index is always derivable
//! from the `.log`, a file failing any sanity check on load is simply rebuilt.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::{LogError, io_err};

/// One fixed-size entry of an index file.
pub(crate) trait IndexEntry: Copy {
    const SIZE: usize;
    fn encode(&self, out: &mut Vec<u8>);
    fn decode(b: &[u8]) -> Self;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OffsetEntry {
    pub relative_offset: u32,
    pub position: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimeEntry {
    pub timestamp: i64,
    pub relative_offset: u32,
}

impl IndexEntry for OffsetEntry {
    const SIZE: usize = 8;
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.relative_offset.to_be_bytes());
        out.extend_from_slice(&self.position.to_be_bytes());
    }
    fn decode(b: &[u8]) -> Self {
        OffsetEntry {
            relative_offset: u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
            position: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
        }
    }
}

impl IndexEntry for TimeEntry {
    const SIZE: usize = 12;
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.relative_offset.to_be_bytes());
    }
    fn decode(b: &[u8]) -> Self {
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&b[0..8]);
        TimeEntry { timestamp: i64::from_be_bytes(ts), relative_offset: u32::from_be_bytes([b[8], b[9], b[10], b[11]]) }
    }
}

/// In-memory sparse index mirrored to a file.
#[derive(Debug, Clone)]
pub(crate) struct SparseIndex<E> {
    entries: Vec<E>,
    /// Entries `[..persisted]` are already in the file.
    persisted: usize,
    /// Set when entries were removed, forcing a full rewrite.
    needs_rewrite: bool,
}

impl<E: IndexEntry> Default for SparseIndex<E> {
    fn default() -> Self {
        SparseIndex { entries: Vec::new(), persisted: 0, needs_rewrite: true }
    }
}

impl<E: IndexEntry> SparseIndex<E> {
    #[cfg(test)]
    pub fn entries(&self) -> &[E] {
        &self.entries
    }
    pub fn last(&self) -> Option<&E> {
        self.entries.last()
    }
    pub fn push(&mut self, e: E) {
        self.entries.push(e);
    }
    pub fn clear(&mut self) {
        self.entries.clear();
        self.needs_rewrite = true;
    }
    /// Keeps only entries for which `keep` is true.
    #[cfg(test)]
    pub fn retain(&mut self, keep: impl FnMut(&E) -> bool) {
        let before = self.entries.len();
        self.entries.retain(keep);
        if self.entries.len() != before {
            self.needs_rewrite = true;
        }
    }

    /// Loads an index file. Returns `None` (caller rebuilds) if it is missing or malformed
    /// according to `valid` (called with previous and current entry).
    pub fn load(path: &Path, mut valid: impl FnMut(Option<&E>, &E) -> bool) -> Result<Option<Self>, LogError> {
        let data = match std::fs::read(path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err("read index", path)(e)),
        };
        if data.len() % E::SIZE != 0 {
            return Ok(None);
        }
        let mut entries: Vec<E> = Vec::with_capacity(data.len() / E::SIZE);
        for chunk in data.chunks_exact(E::SIZE) {
            let e = E::decode(chunk);
            if !valid(entries.last(), &e) {
                return Ok(None);
            }
            entries.push(e);
        }
        let persisted = entries.len();
        Ok(Some(SparseIndex { entries, persisted, needs_rewrite: false }))
    }

    /// Writes new entries (or the whole index after a truncation) and fsyncs the file.
    pub fn persist(&mut self, path: &Path) -> Result<(), LogError> {
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .open(path)
            .map_err(io_err("open index", path))?;
        let from = if self.needs_rewrite { 0 } else { self.persisted.min(self.entries.len()) };
        let mut buf = Vec::with_capacity((self.entries.len() - from) * E::SIZE);
        for e in &self.entries[from..] {
            e.encode(&mut buf);
        }
        write_at(&file, &buf, (from * E::SIZE) as u64, path)?;
        file.set_len((self.entries.len() * E::SIZE) as u64).map_err(io_err("truncate index", path))?;
        file.sync_data().map_err(io_err("fsync index", path))?;
        self.persisted = self.entries.len();
        self.needs_rewrite = false;
        Ok(())
    }
}

fn write_at(file: &File, buf: &[u8], at: u64, path: &Path) -> Result<(), LogError> {
    file.write_all_at(buf, at).map_err(io_err("write index", path))?;
    Ok(())
}

impl SparseIndex<OffsetEntry> {
    /// The entry with the largest relative offset `<= rel`.
    pub fn lookup(&self, rel: u32) -> Option<OffsetEntry> {
        let i = self.entries.partition_point(|e| e.relative_offset <= rel);
        i.checked_sub(1).map(|i| self.entries[i])
    }

    /// The first entry with a position `> pos`.
    pub fn first_after_position(&self, pos: u64) -> Option<OffsetEntry> {
        let i = self.entries.partition_point(|e| u64::from(e.position) <= pos);
        self.entries.get(i).copied()
    }

    /// The entry with the largest position `<= pos` (positions grow with offsets).
    pub fn lookup_position(&self, pos: u32) -> Option<OffsetEntry> {
        let i = self.entries.partition_point(|e| e.position <= pos);
        i.checked_sub(1).map(|i| self.entries[i])
    }
}

impl SparseIndex<TimeEntry> {
    /// The entry with the largest timestamp strictly below `ts`: every batch before its
    /// offset has a max timestamp `< ts`, so a scan for `ts` may start there.
    pub fn lookup_before(&self, ts: i64) -> Option<TimeEntry> {
        let i = self.entries.partition_point(|e| e.timestamp < ts);
        i.checked_sub(1).map(|i| self.entries[i])
    }
    /// Appends `(ts, rel)` if it raises the maximum, keeping timestamps strictly increasing.
    pub fn maybe_push(&mut self, timestamp: i64, relative_offset: u32) {
        if self.last().is_none_or(|l| timestamp > l.timestamp) {
            self.push(TimeEntry { timestamp, relative_offset });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_lookup_finds_floor_entry() {
        let mut idx = SparseIndex::<OffsetEntry>::default();
        assert_eq!(idx.lookup(5), None);
        for (r, p) in [(10, 100), (20, 200), (30, 300)] {
            idx.push(OffsetEntry { relative_offset: r, position: p });
        }
        assert_eq!(idx.lookup(9), None);
        assert_eq!(idx.lookup(10).map(|e| e.position), Some(100));
        assert_eq!(idx.lookup(29).map(|e| e.position), Some(200));
        assert_eq!(idx.lookup(1000).map(|e| e.position), Some(300));
    }

    #[test]
    fn time_lookup_and_monotonic_push() {
        let mut idx = SparseIndex::<TimeEntry>::default();
        idx.maybe_push(100, 0);
        idx.maybe_push(90, 5); // ignored: not increasing
        idx.maybe_push(200, 10);
        assert_eq!(idx.entries().len(), 2);
        assert_eq!(idx.lookup_before(100), None);
        assert_eq!(idx.lookup_before(101).map(|e| e.relative_offset), Some(0));
        assert_eq!(idx.lookup_before(500).map(|e| e.relative_offset), Some(10));
    }

    #[test]
    fn persist_and_load_round_trip_with_truncation() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.index");
        let mut idx = SparseIndex::<OffsetEntry>::default();
        idx.push(OffsetEntry { relative_offset: 1, position: 10 });
        idx.persist(&path).expect("persist");
        idx.push(OffsetEntry { relative_offset: 2, position: 20 });
        idx.push(OffsetEntry { relative_offset: 3, position: 30 });
        idx.persist(&path).expect("persist incremental");
        assert_eq!(std::fs::metadata(&path).expect("meta").len(), 24);
        idx.retain(|e| e.position < 25);
        idx.persist(&path).expect("persist after truncation");
        let loaded = SparseIndex::<OffsetEntry>::load(&path, |_, _| true).expect("load").expect("valid");
        assert_eq!(loaded.entries(), idx.entries());
        std::fs::write(&path, [1u8, 2, 3]).expect("write garbage");
        assert!(SparseIndex::<OffsetEntry>::load(&path, |_, _| true).expect("load").is_none());
    }
}
