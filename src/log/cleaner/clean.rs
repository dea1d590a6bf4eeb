//! One cleaning pass, as Kafka's `Cleaner.doClean`: build the offset map over the dirty part
//! of the log, then rewrite every cleanable segment (grouped up to `segment.bytes`) keeping
//! only what [`filter_batch`] retains, and hand each rewritten group to the swap.

use std::collections::HashMap;
use std::io::Write;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::super::batch::{BatchError, BatchHeader};
use super::super::open_files::SegmentFile;
use super::super::segment::{MAX_RELATIVE, Segment, scan_file};
use super::super::{LogError, io_err};
use super::CompactionSettings;
use super::offset_map::OffsetMap;
use super::records::{RecordView, delete_horizon, parse_records, plain_records, rebuild_batch};

/// A sealed segment as the cleaner sees it (taken under the partition lock, read without it).
#[derive(Debug, Clone)]
pub struct SegmentRef {
    pub base_offset: i64,
    /// One past the last offset stored in it.
    pub next_offset: i64,
    /// Base offset of the segment after it (the end of its offset span).
    pub span_end: i64,
    pub size: u64,
    pub file: Arc<SegmentFile>,
    pub path: PathBuf,
    /// When its first batch was written (max timestamp of the first batch).
    pub first_timestamp: Option<i64>,
}

/// What of a log may be cleaned now (Kafka's `LogToClean`).
#[derive(Debug, Clone)]
pub struct Cleanable {
    pub dir: PathBuf,
    /// Where the dirty part starts: the cleaner checkpoint (or the log start).
    pub first_dirty: i64,
    /// The first offset that may not be cleaned: the base of the first segment that is
    /// active, reaches the high watermark, or is younger than `min.compaction.lag.ms`.
    pub first_uncleanable: i64,
    /// Every segment below `first_uncleanable`, oldest first.
    pub segments: Vec<SegmentRef>,
    /// `index.interval.bytes`, for the rewritten segments' indexes.
    pub index_interval_bytes: u64,
}

impl Cleanable {
    fn is_dirty(&self, s: &SegmentRef) -> bool {
        s.span_end > self.first_dirty
    }

    pub fn clean_bytes(&self) -> u64 {
        self.segments.iter().filter(|s| !self.is_dirty(s)).map(|s| s.size).sum()
    }

    pub fn dirty_bytes(&self) -> u64 {
        self.segments.iter().filter(|s| self.is_dirty(s)).map(|s| s.size).sum()
    }

    /// dirty / (clean + dirty), as `min.cleanable.dirty.ratio` is compared with.
    pub fn dirty_ratio(&self) -> f64 {
        let (clean, dirty) = (self.clean_bytes(), self.dirty_bytes());
        if clean + dirty == 0 { 0.0 } else { dirty as f64 / (clean + dirty) as f64 }
    }

    /// Whether the oldest dirty record has waited longer than `max.compaction.lag.ms`.
    pub fn past_max_lag(&self, now: i64, max_lag_ms: i64) -> bool {
        self.segments
            .iter()
            .find(|s| self.is_dirty(s) && s.size > 0)
            .and_then(|s| s.first_timestamp)
            .is_some_and(|t| now.saturating_sub(t) > max_lag_ms)
    }
}

/// A rewritten group of segments, fsynced, named `<base>-<end>.log.cleaned`, with its
/// indexes built (before the partition lock is taken for the swap).
#[derive(Debug)]
pub struct CleanedFile {
    pub path: PathBuf,
    pub(crate) segment: Segment,
    pub base_offset: i64,
    /// The end of the offset span the group covered (base of the segment after it).
    pub span_end: i64,
}

/// File name of a group's rewrite in progress.
pub(crate) fn cleaned_name(base: i64, end: i64) -> String {
    format!("{base:020}-{end:020}.log.cleaned")
}

/// What one pass did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct CleanOutcome {
    /// The new cleaner checkpoint: everything below it was deduplicated.
    pub end_offset: i64,
    pub groups_swapped: usize,
    pub bytes_before: u64,
    pub bytes_after: u64,
    /// The earliest delete horizon of a tombstone still in the log: the log should be
    /// cleaned again then even if nothing else makes it dirty.
    pub next_tombstone_horizon: Option<i64>,
    /// Whether a swap was refused because the segments changed meanwhile (retention).
    pub aborted: bool,
}

/// Reads each batch of a segment, stopping on a framing error.
fn for_each_batch(
    seg: &SegmentRef,
    mut f: impl FnMut(&BatchHeader, &[u8]) -> Result<ControlFlow<()>, LogError>,
) -> Result<(), LogError> {
    let mut failure = None;
    let file = seg.file.get()?;
    let end = scan_file(&file, &seg.path, seg.size, 0, |_, h, bytes| match f(h, bytes) {
        Ok(flow) => flow,
        Err(e) => {
            failure = Some(e);
            ControlFlow::Break(())
        }
    })?;
    if let Some(e) = failure {
        return Err(e);
    }
    match end.error {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}

/// Fills `map` from the dirty segments; returns the offset the map covers up to
/// (exclusive): `first_uncleanable`, or the first batch that did not fit.
pub fn build_offset_map(c: &Cleanable, map: &mut OffsetMap, max_batch_bytes: usize) -> Result<i64, LogError> {
    map.clear();
    let mut scratch = Vec::new();
    let mut full_at = None;
    for seg in c.segments.iter().filter(|s| c.is_dirty(s)) {
        for_each_batch(seg, |h, bytes| {
            if h.is_transactional() {
                // Fail closed until the cleaner knows transactions (Kafka drops aborted
                // records and, later, markers): compacting as if they were plain records
                // could keep an aborted value over a committed one.
                return Err(LogError::InvalidArgument(format!(
                    "the batch at offset {} is transactional: Jet does not compact partitions holding transactions yet",
                    h.base_offset
                )));
            }
            if h.last_offset() < c.first_dirty || h.is_control() {
                return Ok(ControlFlow::Continue(()));
            }
            let plain = plain_records(h, bytes, max_batch_bytes, &mut scratch)?;
            let mut records = Vec::new();
            parse_records(h, plain, &mut records)?;
            let keyed = records.iter().filter(|r| r.key.is_some()).count();
            if !map.has_room_for(keyed) {
                if map.is_empty() {
                    return Err(LogError::InvalidArgument(format!(
                        "log.cleaner.dedupe.buffer.size holds {} keys, fewer than the {keyed} of the batch at offset {}",
                        map.capacity(),
                        h.base_offset
                    )));
                }
                full_at = Some(h.base_offset);
                return Ok(ControlFlow::Break(()));
            }
            for r in &records {
                if let Some(key) = r.key {
                    map.put(key, h.base_offset + i64::from(r.offset_delta));
                }
            }
            Ok(ControlFlow::Continue(()))
        })?;
        if full_at.is_some() {
            break;
        }
    }
    Ok(full_at.unwrap_or(c.first_uncleanable).max(c.first_dirty))
}

/// Everything [`filter_batch`] needs besides the batch.
pub struct FilterContext<'a> {
    pub map: &'a OffsetMap,
    /// Records at or past this offset were not in the map: kept as they are.
    pub end_offset: i64,
    pub now: i64,
    pub delete_retention_ms: i64,
    pub max_batch_bytes: usize,
    /// Each producer's last batch (its last offset): kept even when emptied, so the
    /// producer's sequence survives (Kafka's `isBatchLastRecordOfProducer`).
    pub producer_last_offsets: &'a HashMap<i64, i64>,
}

/// What became of one batch.
#[derive(Debug, PartialEq)]
pub enum Filtered {
    Unchanged,
    Rewritten,
    Dropped,
}

/// Kafka's `shouldRetainRecord`: the latest record of its key (or past the map), and for
/// a tombstone, not yet past its batch's delete horizon. Keyless records are removed.
fn retain(ctx: &FilterContext<'_>, h: &BatchHeader, r: &RecordView<'_>) -> bool {
    let offset = h.base_offset + i64::from(r.offset_delta);
    if offset >= ctx.end_offset {
        return true;
    }
    let Some(key) = r.key else { return false };
    let latest = ctx.map.get(key).is_none_or(|o| offset >= o);
    latest && (r.has_value || delete_horizon(h).is_none_or(|horizon| ctx.now < horizon))
}

/// Appends what is kept of one batch to `out`; reports the tombstone horizon it carries.
pub fn filter_batch(
    ctx: &FilterContext<'_>,
    h: &BatchHeader,
    bytes: &[u8],
    scratch: &mut Vec<u8>,
    out: &mut Vec<u8>,
    horizon_seen: &mut Option<i64>,
) -> Result<Filtered, BatchError> {
    if h.is_control() {
        // Raft's control batches; transaction markers never get here (a partition holding
        // transactions is not compacted: see `build_offset_map`).
        out.extend_from_slice(bytes);
        return Ok(Filtered::Unchanged);
    }
    let plain = plain_records(h, bytes, ctx.max_batch_bytes, scratch)?;
    let mut records = Vec::new();
    parse_records(h, plain, &mut records)?;
    let total = records.len();
    records.retain(|r| retain(ctx, h, r));
    let has_tombstone = records.iter().any(|r| !r.has_value);
    let new_horizon = (has_tombstone && delete_horizon(h).is_none()).then(|| ctx.now + ctx.delete_retention_ms);
    if has_tombstone && let Some(hz) = new_horizon.or_else(|| delete_horizon(h)) {
        *horizon_seen = Some(horizon_seen.map_or(hz, |s: i64| s.min(hz)));
    }
    if records.len() == total && new_horizon.is_none() {
        out.extend_from_slice(bytes);
        return Ok(Filtered::Unchanged);
    }
    let last_of_producer =
        h.producer_id >= 0 && ctx.producer_last_offsets.get(&h.producer_id) == Some(&h.last_offset());
    if records.is_empty() && !last_of_producer {
        return Ok(Filtered::Dropped);
    }
    rebuild_batch(h, bytes, &records, new_horizon, out)?;
    Ok(Filtered::Rewritten)
}

/// Splits the segments to clean into runs that fit one segment (`segment.bytes`, and the
/// 32-bit relative offsets of the index), as Kafka's `groupSegmentsBySize`.
pub fn group_segments(segments: &[SegmentRef], segment_bytes: u64) -> Vec<&[SegmentRef]> {
    let mut groups = Vec::new();
    let mut start = 0;
    while start < segments.len() {
        let mut end = start + 1;
        let mut size = segments[start].size;
        while end < segments.len() {
            let next = &segments[end];
            if size + next.size > segment_bytes || next.next_offset - 1 - segments[start].base_offset > MAX_RELATIVE {
                break;
            }
            size += next.size;
            end += 1;
        }
        groups.push(&segments[start..end]);
        start = end;
    }
    groups
}

/// Rewrites one group into `<base>-<end>.log.cleaned` (fsynced). `None` when nothing in
/// the group changes (the file is removed again).
pub fn clean_group(
    dir: &Path,
    index_interval_bytes: u64,
    group: &[SegmentRef],
    ctx: &FilterContext<'_>,
    horizon_seen: &mut Option<i64>,
) -> Result<Option<CleanedFile>, LogError> {
    let (Some(first), Some(last)) = (group.first(), group.last()) else { return Ok(None) };
    let path = dir.join(cleaned_name(first.base_offset, last.span_end));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .map_err(io_err("create cleaned segment", &path))?;
    let mut writer = std::io::BufWriter::with_capacity(1 << 20, file);
    let mut changed = false;
    let mut scratch = Vec::new();
    let mut out = Vec::new();
    for seg in group {
        for_each_batch(seg, |h, bytes| {
            out.clear();
            if filter_batch(ctx, h, bytes, &mut scratch, &mut out, horizon_seen)? != Filtered::Unchanged {
                changed = true;
            }
            writer.write_all(&out).map_err(io_err("write cleaned segment", &path))?;
            Ok(ControlFlow::Continue(()))
        })?;
    }
    let file = writer.into_inner().map_err(|e| io_err("write cleaned segment", &path)(e.into_error()))?;
    if !changed {
        drop(file);
        std::fs::remove_file(&path).map_err(io_err("remove unneeded cleaned segment", &path))?;
        return Ok(None);
    }
    // As Kafka's cleaner: the rewrite keeps the group's last modification time, which
    // retention (compact,delete) goes by when a segment holds no timestamps.
    let modified =
        std::fs::metadata(&last.path).and_then(|m| m.modified()).map_err(io_err("stat segment", &last.path))?;
    file.set_modified(modified).map_err(io_err("set modification time", &path))?;
    file.sync_all().map_err(io_err("fsync cleaned segment", &path))?;
    // The open file follows the renames of the swap; its indexes are built here, without
    // the partition lock.
    let mut segment = Segment::adopt_file(dir, first.base_offset, file)?;
    segment.rebuild_indexes(index_interval_bytes)?;
    Ok(Some(CleanedFile { path, segment, base_offset: first.base_offset, span_end: last.span_end }))
}

/// One pass over `c`: map, then each group rewritten and handed to `swap` (which returns
/// `false` when the segments changed meanwhile and the rewrite was dropped). `stop` is
/// asked before each group (broker shutdown): a stopped pass counts as aborted.
#[allow(clippy::too_many_arguments)]
pub fn clean(
    c: &Cleanable,
    settings: &CompactionSettings,
    segment_bytes: u64,
    map: &mut OffsetMap,
    now: i64,
    producer_last_offsets: &HashMap<i64, i64>,
    stop: &dyn Fn() -> bool,
    mut swap: impl FnMut(&[SegmentRef], CleanedFile) -> Result<bool, LogError>,
) -> Result<CleanOutcome, LogError> {
    let end_offset = build_offset_map(c, map, settings.max_batch_bytes)?;
    let ctx = FilterContext {
        map,
        end_offset,
        now,
        delete_retention_ms: settings.delete_retention_ms,
        max_batch_bytes: settings.max_batch_bytes,
        producer_last_offsets,
    };
    let to_clean: Vec<SegmentRef> = c.segments.iter().filter(|s| s.base_offset < end_offset).cloned().collect();
    let mut outcome = CleanOutcome { end_offset, ..CleanOutcome::default() };
    for group in group_segments(&to_clean, segment_bytes) {
        if stop() {
            outcome.aborted = true;
            break;
        }
        let before: u64 = group.iter().map(|s| s.size).sum();
        let mut horizon = None;
        let cleaned = clean_group(&c.dir, c.index_interval_bytes, group, &ctx, &mut horizon)?;
        if let Some(h) = horizon {
            outcome.next_tombstone_horizon = Some(outcome.next_tombstone_horizon.map_or(h, |o| o.min(h)));
        }
        let Some(cleaned) = cleaned else { continue };
        let after = cleaned.segment.size;
        if swap(group, cleaned)? {
            outcome.groups_swapped += 1;
            outcome.bytes_before += before;
            outcome.bytes_after += after;
        } else {
            outcome.aborted = true;
        }
    }
    Ok(outcome)
}
