//! Reads in two steps, so a fetch's file I/O never holds the partition lock:
//! [`PartitionLog::plan_read`] finds, under the lock, the exact file ranges to return (an
//! index lookup and a header read or two at each end); the ranges are then either sent
//! straight from the files to the socket (`sendfile`, the fetch path) or read into memory
//! with [`ReadPlan::execute`].
//!
//! A plan holds whole batches: from the one holding the wanted offset to the first one that
//! is not yet visible (base offset `>= upto`, the high watermark), or the last that fits
//! in `max_bytes` (KIP-74's `min_one` widens that to the first batch). Kafka's
//! `FileRecords.slice` cuts at `max_bytes` even inside a batch; clients cope (they drop the
//! partial batch and fetch again from its offset), but the partial batch's bytes are then
//! sent twice: with a fetch size just under two batches, nearly half of what is sent. Both
//! ends are found from the sparse index and a few batch headers, without reading the data.
//!
//! Executing a plan after the log has moved on is safe: the plan only covers bytes that
//! existed when it was made, and segment files are held open (a deleted segment stays
//! readable until the plan is dropped).

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;

use super::batch::BatchIter;
use super::damage::{DamagedRange, SegmentView, find_resume};
use super::partition_log::PartitionLog;
use super::{LogError, io_err};

/// A byte range of one segment file.
#[derive(Debug, Clone)]
pub struct FileRange {
    pub file: Arc<File>,
    pub path: PathBuf,
    pub pos: u64,
    pub len: usize,
}

/// File ranges to return for a fetch; see the module docs.
#[derive(Debug, Default)]
pub struct ReadPlan {
    ranges: Vec<FileRange>,
}

/// How many new damaged ranges one read may discover before giving up.
const MAX_DISCOVERIES_PER_READ: usize = 4;

impl PartitionLog {
    /// Plans a read from the batch containing `offset`, stopping before any batch with base
    /// offset `>= upto`, at most `max_bytes` except that with `min_one` the first batch is
    /// returned whole even if larger (KIP-74).
    ///
    /// Damaged ranges (see [`super::damage`]) are never served: a read starting inside one
    /// fails with [`LogError::Corrupt`], a read before one stops at it. A header failing
    /// the cheap checks on the way is recorded as a new damaged range and the read is
    /// planned again around it.
    pub fn plan_read(&self, offset: i64, max_bytes: usize, upto: i64, min_one: bool) -> Result<ReadPlan, LogError> {
        for _ in 0..MAX_DISCOVERIES_PER_READ {
            match self.plan_read_once(offset, max_bytes, upto, min_one) {
                Err(LogError::CorruptBatch { segment_base, position, expected_offset, reason, .. }) => {
                    self.mark_damaged(segment_base, position, expected_offset, reason)?;
                }
                other => return other,
            }
        }
        self.plan_read_once(offset, max_bytes, upto, min_one)
    }

    fn plan_read_once(&self, offset: i64, max_bytes: usize, upto: i64, min_one: bool) -> Result<ReadPlan, LogError> {
        self.check_range(offset)?;
        let damage = self.damage();
        if let Some(d) = damage.containing(offset) {
            let path = self.segments().iter().find(|s| Some(s.base_offset) == d.segment_base).map(|s| s.path("log"));
            return Err(LogError::Corrupt {
                offset,
                first_offset: d.first_offset,
                last_offset: d.last_offset,
                path: path.unwrap_or_default(),
                position: d.position,
                end_position: d.end_position,
                reason: d.reason,
            });
        }
        // The read ends before the next damaged range.
        let stop = damage.next_after(offset);
        let upto = stop.as_ref().map_or(upto, |d| upto.min(d.first_offset));
        let mut plan = ReadPlan::default();
        let mut budget = max_bytes;
        for seg in self.segments_from(offset) {
            let skip = damage.in_segment(seg.base_offset);
            let pos = if plan.ranges.is_empty() {
                if offset >= seg.next_offset {
                    continue;
                }
                let Some((pos, first)) = seg.locate_skipping(offset, &skip)? else { continue };
                if first.base_offset >= upto {
                    break;
                }
                if min_one {
                    budget = budget.max(first.total_size());
                }
                pos
            } else {
                0
            };
            // Where the visible part of this segment ends: the damage the read stops at
            // when it is in this segment, else the batch at `upto` when the segment holds
            // it, else the segment's end.
            let (end, last) = match &stop {
                Some(d) if d.segment_base == Some(seg.base_offset) => (d.position, true),
                _ if seg.next_offset > upto => match seg.locate_skipping(upto, &skip)? {
                    Some((at, h)) if h.base_offset < upto => (at + h.total_size() as u64, true),
                    Some((at, _)) => (at, true),
                    None => (seg.size, true),
                },
                _ => (seg.size, false),
            };
            let visible = end.saturating_sub(pos);
            // Over budget: cut at the last whole batch within it.
            let cut = visible > budget as u64;
            let len = if cut { seg.last_batch_end(pos, pos + budget as u64)? - pos } else { visible };
            let len = usize::try_from(len).unwrap_or(usize::MAX);
            if len > 0 {
                plan.ranges.push(FileRange { file: seg.file.get()?, path: seg.path("log"), pos, len });
                budget -= len;
            }
            if last || cut || budget == 0 {
                break;
            }
        }
        Ok(plan)
    }

    /// Records the damage a read found at `position` of segment `segment_base`: from the
    /// offset expected there to the next intact batch (or the segment's end).
    fn mark_damaged(&self, segment_base: i64, position: u64, expected: i64, reason: String) -> Result<(), LogError> {
        let segments = self.segments();
        let Some(i) = segments.iter().position(|s| s.base_offset == segment_base) else { return Ok(()) };
        let seg = &segments[i];
        let path = seg.path("log");
        let file = seg.file.get()?;
        let view = SegmentView {
            file: &file,
            path: &path,
            base_offset: seg.base_offset,
            size: seg.size,
            end_offset: Some(seg.next_offset),
        };
        let (end_position, next) = find_resume(&view, position, expected)?.unwrap_or((seg.size, seg.next_offset));
        let range = DamagedRange {
            first_offset: expected,
            last_offset: next - 1,
            segment_base: Some(segment_base),
            position,
            end_position,
            reason,
        };
        if range.first_offset > range.last_offset || !self.damage().add(range)? {
            // Nothing new to record: refuse the read rather than loop.
            return Err(LogError::CorruptBatch {
                path,
                segment_base,
                position,
                expected_offset: expected,
                reason: "damage already recorded".to_string(),
            });
        }
        Ok(())
    }

    /// [`plan_read`](Self::plan_read) and [`ReadPlan::execute`] in one call.
    pub fn read(&self, offset: i64, max_bytes: usize, upto: i64, min_one: bool) -> Result<Bytes, LogError> {
        self.plan_read(offset, max_bytes, upto, min_one)?.execute()
    }
}

impl ReadPlan {
    /// Bytes the plan covers.
    pub fn len(&self) -> usize {
        self.ranges.iter().map(|r| r.len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// The planned ranges, to be sent as they are.
    pub fn into_ranges(self) -> Vec<FileRange> {
        self.ranges
    }

    /// Reads the planned ranges (one `pread` per segment); a segment shortened since the
    /// plan was made (it cannot be today: segments are only cut at startup) would end the
    /// read early, and any batch cut short by that is dropped.
    pub fn execute(self) -> Result<Bytes, LogError> {
        let mut out: Vec<u8> = Vec::with_capacity(self.len());
        for range in &self.ranges {
            let read =
                read_up_to(&range.file, range.len, range.pos, &mut out).map_err(io_err("read segment", &range.path))?;
            if read < range.len {
                break;
            }
        }
        let mut batches = BatchIter::new(&out);
        for item in batches.by_ref() {
            if item.is_err() {
                break;
            }
        }
        let whole = batches.position();
        out.truncate(whole);
        Ok(Bytes::from(out))
    }
}

/// Appends up to `len` bytes read at `pos` to `buf` (fewer only at end of file) and
/// returns how many. The spare capacity is not zero-filled first: fetches read megabytes
/// at a time, and clearing memory the read overwrites anyway cost a tenth of the broker's
/// CPU when consuming.
fn read_up_to(file: &File, len: usize, pos: u64, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    buf.reserve(len);
    let start = buf.len();
    while buf.len() - start < len {
        let done = buf.len() - start;
        let offset = libc::off_t::try_from(pos + done as u64)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        // SAFETY: `pread` writes at most `len - done` bytes into the vector's spare
        // capacity, which `reserve` made room for, and the length grows only by the count
        // it reports as written, so no uninitialised byte is ever part of the vector.
        let n = unsafe { libc::pread(file.as_raw_fd(), buf.as_mut_ptr().add(buf.len()).cast(), len - done, offset) };
        match n {
            0 => break,
            // SAFETY: the `n` bytes after the old length were just written by `pread`.
            n if n > 0 => unsafe { buf.set_len(buf.len() + n as usize) },
            _ => {
                let e = std::io::Error::last_os_error();
                if e.kind() != std::io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }
    Ok(buf.len() - start)
}
