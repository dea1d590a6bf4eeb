//! Damaged offset ranges: a first-class state of a log.
//!
//! Data below the recovery point was durable once; if it is damaged later (bit rot, a
//! lying length field, a missing segment file) it is never truncated away with everything
//! after it. Instead the damaged bytes are recorded as a [`DamagedRange`] (offsets, file,
//! byte range, reason), logged with the partition's directory, and every fetch of those
//! offsets is refused with an error (`CORRUPT_MESSAGE`) while the rest of the log is
//! served as before. The log end never moves back, so no offset is handed out twice.
//!
//! Ranges are found by recovery (a trusted segment whose tail check fails is walked and
//! salvaged), by the read planner's cheap header checks and by the background
//! [scrubber](super::scrubber), and persisted in `damaged-ranges.json` (tmp + fsync +
//! rename) so that what the scrubber found survives a restart. With replication this is
//! the set a follower repairs from a peer.

use std::fs::File;
use std::ops::ControlFlow;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

use super::batch::{BatchHeader, HEADER_SIZE, batch_total_size, verify_crc};
use super::recovery::write_durably;
use super::segment::{MAX_RELATIVE, scan_file};
use super::{LogError, io_err};

/// File in the partition directory holding the damaged ranges.
pub(crate) const DAMAGE_FILE: &str = "damaged-ranges.json";

/// How much of a segment is searched at a time for the next intact batch after damage.
const SEARCH_CHUNK: usize = 1024 * 1024;

/// A run of offsets whose bytes cannot be served.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DamagedRange {
    /// First damaged offset.
    pub first_offset: i64,
    /// Last damaged offset (inclusive).
    pub last_offset: i64,
    /// Base offset of the segment holding the bytes; `None` when the segment file itself
    /// is missing.
    pub segment_base: Option<i64>,
    /// The damaged bytes in that segment file: `[position, end_position)`.
    pub position: u64,
    pub end_position: u64,
    /// What was found ("CRC mismatch", "batch length overruns the segment", ...).
    pub reason: String,
}

impl DamagedRange {
    pub fn contains(&self, offset: i64) -> bool {
        (self.first_offset..=self.last_offset).contains(&offset)
    }
}

/// The damaged ranges of one log, sorted by offset and disjoint. Shared with the
/// scrubber's thread, hence the lock (held only for lookups and inserts, never for I/O
/// except the rare persist of a newly found range).
#[derive(Debug)]
pub(crate) struct DamageSet {
    dir: PathBuf,
    ranges: Mutex<Vec<DamagedRange>>,
    /// Serialises writes of the file, so the last write holds the latest set; `true` once
    /// the log's directory is no longer its own (the topic was deleted, see `detach`).
    writing: Mutex<bool>,
}

impl DamageSet {
    pub fn new(dir: &Path, ranges: Vec<DamagedRange>) -> Self {
        DamageSet { dir: dir.to_path_buf(), ranges: Mutex::new(ranges), writing: Mutex::new(false) }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<DamagedRange>> {
        // A panic while holding this lock cannot leave the vector half-updated (every
        // update is a single insert or retain), so a poisoned lock is still consistent.
        self.ranges.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Reads the persisted ranges; an unreadable file is logged and ignored (recovery and
    /// the scrubber find the damage again).
    pub fn load(dir: &Path) -> Result<Vec<DamagedRange>, LogError> {
        let path = dir.join(DAMAGE_FILE);
        match std::fs::read_to_string(&path) {
            Ok(s) => match serde_json::from_str::<Vec<DamagedRange>>(&s) {
                Ok(mut v) => {
                    v.sort_by_key(|r| r.first_offset);
                    Ok(v)
                }
                Err(e) => {
                    tracing::warn!(file = %path.display(), error = %e, "ignoring unreadable damaged-range file");
                    Ok(Vec::new())
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(io_err("read", &path)(e)),
        }
    }

    pub fn snapshot(&self) -> Vec<DamagedRange> {
        self.lock().clone()
    }

    /// The range holding `offset`, if any.
    pub fn containing(&self, offset: i64) -> Option<DamagedRange> {
        self.lock().iter().find(|r| r.contains(offset)).cloned()
    }

    /// The first range starting after `offset`.
    pub fn next_after(&self, offset: i64) -> Option<DamagedRange> {
        self.lock().iter().find(|r| r.first_offset > offset).cloned()
    }

    /// Damaged byte ranges of one segment as `(position, end_position, next offset)`.
    pub fn in_segment(&self, base: i64) -> Vec<(u64, u64, i64)> {
        self.lock()
            .iter()
            .filter(|r| r.segment_base == Some(base))
            .map(|r| (r.position, r.end_position, r.last_offset + 1))
            .collect()
    }

    /// Records `range` unless it overlaps one already known; logs and persists it.
    /// Returns whether it was new.
    pub fn add(&self, range: DamagedRange) -> Result<bool, LogError> {
        {
            let mut ranges = self.lock();
            if ranges.iter().any(|r| r.first_offset <= range.last_offset && range.first_offset <= r.last_offset) {
                return Ok(false);
            }
            tracing::error!(
                dir = %self.dir.display(),
                first_offset = range.first_offset,
                last_offset = range.last_offset,
                segment = %range.segment_base.map_or("(missing)".to_string(), |b| format!("{b:020}.log")),
                position = range.position,
                end_position = range.end_position,
                reason = %range.reason,
                "damaged log range: these offsets are refused with CORRUPT_MESSAGE, the rest is served"
            );
            let at = ranges.partition_point(|r| r.first_offset < range.first_offset);
            ranges.insert(at, range);
        }
        self.persist()?;
        Ok(true)
    }

    /// Writes the current set durably (nothing once detached).
    pub fn persist(&self) -> Result<(), LogError> {
        let detached = self.writing.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if *detached {
            return Ok(());
        }
        let json = serialize(&self.lock())?;
        write_durably(&self.dir, DAMAGE_FILE, &json)
    }

    /// Stops all writes of the file: the directory is about to be moved away and its
    /// path may soon belong to a new topic of the same name. Waits for a write under way.
    pub fn detach(&self) {
        *self.writing.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = true;
    }

    /// Drops ranges outside `[log_start, log_end)` (deleted by retention, DeleteRecords or
    /// truncation) and persists the result if anything changed.
    pub fn retain_within(&self, log_start: i64, log_end: i64) -> Result<(), LogError> {
        {
            let mut ranges = self.lock();
            let before = ranges.len();
            ranges.retain(|r| r.last_offset >= log_start && r.first_offset < log_end);
            if ranges.len() == before {
                return Ok(());
            }
        }
        self.persist()
    }
}

fn serialize(ranges: &[DamagedRange]) -> Result<String, LogError> {
    serde_json::to_string_pretty(ranges).map_err(|e| LogError::InvalidArgument(format!("damaged ranges: {e}")))
}

/// One segment file as a salvage walk sees it.
pub(crate) struct SegmentView<'a> {
    pub file: &'a File,
    pub path: &'a Path,
    pub base_offset: i64,
    /// Bytes to walk.
    pub size: u64,
    /// The segment's known next offset (the next segment's base, or the clean-shutdown
    /// log end), when known: batches beyond it are junk.
    pub end_offset: Option<i64>,
}

/// The outcome of [`salvage`].
pub(crate) struct Salvaged {
    pub damaged: Vec<DamagedRange>,
    /// Where the intact data ends; bytes after it hold no offsets (junk past the
    /// segment's known end, or damage running to the end of the file).
    pub valid_end: u64,
    /// The offset after the last intact batch.
    pub next_offset: i64,
    /// Where the walk gave up: damage past `truncate_from`, or damage with no intact batch
    /// after it while the segment's end offset is unknown: `(position, first offset,
    /// reason)`. The caller truncates there.
    pub unresolved: Option<(u64, i64, String)>,
}

/// Walks a segment from the start verifying every batch (CRC, offsets), calling `good`
/// for each intact one and turning each damaged stretch into a [`DamagedRange`] that ends
/// at the next intact batch (found from the damaged batch's own length when that still
/// leads to an intact batch, else by searching for one). With `truncate_from` set (the
/// recovery point), a problem at or past that offset is returned as `unresolved` instead
/// (the caller truncates there). `pace` is told how many bytes
/// were read (the scrubber's rate limit). Never modifies the file.
pub(crate) fn salvage(
    seg: &SegmentView<'_>,
    truncate_from: Option<i64>,
    mut good: impl FnMut(u64, &BatchHeader),
    mut pace: impl FnMut(usize),
) -> Result<Salvaged, LogError> {
    let mut damaged = Vec::new();
    let mut pos = 0u64;
    let mut expected = seg.base_offset;
    loop {
        let mut problem: Option<&'static str> = None;
        let end = scan_file(seg.file, seg.path, seg.size, pos, |p, h, bytes| {
            pace(bytes.len());
            problem = batch_problem(seg, expected, h, bytes);
            if problem.is_some() {
                return ControlFlow::Break(());
            }
            expected = h.next_offset();
            good(p, h);
            ControlFlow::Continue(())
        })?;
        let bad = end.end;
        let reason = match (problem, &end.error) {
            (Some(p), _) => p.to_string(),
            (None, Some(e)) => e.to_string(),
            (None, None) => return Ok(Salvaged { damaged, valid_end: bad, next_offset: expected, unresolved: None }),
        };
        if truncate_from.is_some_and(|t| expected >= t) {
            // Past the recovery point: never synced, so the caller cuts the log here.
            return Ok(Salvaged {
                damaged,
                valid_end: bad,
                next_offset: expected,
                unresolved: Some((bad, expected, reason)),
            });
        }
        if seg.end_offset.is_some_and(|e| expected >= e) {
            // Every offset of the segment is intact: what follows is junk without offsets.
            return Ok(Salvaged { damaged, valid_end: bad, next_offset: expected, unresolved: None });
        }
        match find_resume(seg, bad, expected)? {
            Some((resume, resume_base)) => {
                damaged.push(DamagedRange {
                    first_offset: expected,
                    last_offset: resume_base - 1,
                    segment_base: Some(seg.base_offset),
                    position: bad,
                    end_position: resume,
                    reason,
                });
                expected = resume_base;
                pos = resume;
            }
            None => {
                let Some(end_offset) = seg.end_offset else {
                    return Ok(Salvaged {
                        damaged,
                        valid_end: bad,
                        next_offset: expected,
                        unresolved: Some((bad, expected, reason)),
                    });
                };
                damaged.push(DamagedRange {
                    first_offset: expected,
                    last_offset: end_offset - 1,
                    segment_base: Some(seg.base_offset),
                    position: bad,
                    end_position: seg.size,
                    reason,
                });
                return Ok(Salvaged { damaged, valid_end: seg.size, next_offset: end_offset, unresolved: None });
            }
        }
    }
}

/// Why an intact-looking batch cannot be served, if it cannot.
fn batch_problem(seg: &SegmentView<'_>, expected: i64, h: &BatchHeader, bytes: &[u8]) -> Option<&'static str> {
    if !verify_crc(bytes) {
        Some("CRC mismatch")
    } else if h.base_offset < expected {
        Some("non-increasing offset")
    } else if h.last_offset() - seg.base_offset > MAX_RELATIVE {
        Some("offset too far from segment base")
    } else if seg.end_offset.is_some_and(|e| h.next_offset() > e) {
        Some("offset beyond the segment's end")
    } else {
        None
    }
}

/// The first intact batch after the damage at `bad`: `(position, base offset)`. Tries the
/// damaged batch's own length first, then searches byte by byte for a header with magic 2
/// and a plausible base offset whose CRC holds.
pub(crate) fn find_resume(seg: &SegmentView<'_>, bad: u64, expected: i64) -> Result<Option<(u64, i64)>, LogError> {
    let plausible = |h: &BatchHeader| {
        h.base_offset >= expected
            && h.last_offset() - seg.base_offset <= MAX_RELATIVE
            && seg.end_offset.is_none_or(|e| h.next_offset() <= e)
    };
    let intact_at = |p: u64| -> Result<Option<i64>, LogError> {
        if p + HEADER_SIZE as u64 > seg.size {
            return Ok(None);
        }
        let mut head = [0u8; HEADER_SIZE];
        seg.file.read_exact_at(&mut head, p).map_err(io_err("read segment", seg.path))?;
        let Ok(h) = BatchHeader::parse(&head) else { return Ok(None) };
        if !plausible(&h) || p + h.total_size() as u64 > seg.size {
            return Ok(None);
        }
        let mut whole = vec![0u8; h.total_size()];
        seg.file.read_exact_at(&mut whole, p).map_err(io_err("read segment", seg.path))?;
        Ok(verify_crc(&whole).then_some(h.base_offset))
    };
    // The damaged batch's own length, if it leads to an intact batch, bounds the search
    // (a length that still frames a batch is a fast path, but a changed one could skip
    // intact batches, so the earliest intact batch wins).
    let mut head = [0u8; 12];
    let mut own: Option<(u64, i64)> = None;
    if bad + 12 <= seg.size {
        seg.file.read_exact_at(&mut head, bad).map_err(io_err("read segment", seg.path))?;
        if let Ok(total) = batch_total_size(&head) {
            let next = bad + total as u64;
            own = intact_at(next)?.map(|base| (next, base));
        }
    }
    let limit = own.map_or(seg.size, |(p, _)| p + HEADER_SIZE as u64 - 1).min(seg.size);
    // Search: magic byte 2 at +16 and a plausible base offset at +0 pick the candidates,
    // the CRC decides.
    let mut chunk_start = bad + 1;
    while chunk_start + HEADER_SIZE as u64 <= limit {
        let len = (limit - chunk_start).min((SEARCH_CHUNK + HEADER_SIZE) as u64) as usize;
        let mut buf = vec![0u8; len];
        seg.file.read_exact_at(&mut buf, chunk_start).map_err(io_err("read segment", seg.path))?;
        let candidates = len.saturating_sub(HEADER_SIZE - 1).min(SEARCH_CHUNK);
        for i in 0..candidates {
            if buf[i + 16] != 2 {
                continue;
            }
            let mut b = [0u8; 8];
            b.copy_from_slice(&buf[i..i + 8]);
            let base = i64::from_be_bytes(b);
            if base < expected || seg.end_offset.is_some_and(|e| base >= e) || base - seg.base_offset > MAX_RELATIVE {
                continue;
            }
            let p = chunk_start + i as u64;
            if let Some(base) = intact_at(p)? {
                return Ok(Some((p, base)));
            }
        }
        chunk_start += candidates as u64;
    }
    Ok(own)
}
