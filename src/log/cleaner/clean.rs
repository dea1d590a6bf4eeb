//! One cleaning pass, as Kafka's `Cleaner.doClean`: build the offset map over the dirty part
//! of the log (records of aborted transactions and control batches never enter it), then
//! rewrite every cleanable segment (grouped up to `segment.bytes`) keeping only what
//! [`filter_batch`] retains, with the `.txnindex` entries of the ABORT markers it keeps,
//! and hand each rewritten group to the swap.

use std::collections::HashMap;
use std::io::Write;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::super::batch::BatchHeader;
use super::super::open_files::SegmentFile;
use super::super::segment::{MAX_RELATIVE, Segment, scan_file, segment_path, sync_dir};
use super::super::txn::{AbortedTxn, TXN_INDEX_EXT, read_entries};
use super::super::{LogError, io_err};
use super::CompactionSettings;
use super::filter::{FilterContext, Filtered, filter_batch};
use super::offset_map::OffsetMap;
use super::records::{parse_records, plain_records};
use super::transactions::{TxnCleaning, TxnWalk};

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
    /// active, reaches the upper bound (the high watermark or the last stable offset,
    /// whichever is lower), or is younger than `min.compaction.lag.ms`.
    pub first_uncleanable: i64,
    /// Every segment below `first_uncleanable`, oldest first.
    pub segments: Vec<SegmentRef>,
    /// The aborted transactions overlapping `[log start, first_uncleanable)`, from the
    /// `.txnindex` of every segment (a marker may lie past the cleanable part).
    pub aborted: Vec<AbortedTxn>,
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
    /// The group's new aborted-transaction index, `<base>-<end>.txnindex.cleaned`
    /// (fsynced, possibly empty), and its entry count: written whenever the group has
    /// entries or any of its segments had a `.txnindex` file (see [`super::swap`]).
    pub txn_index: Option<(PathBuf, u32)>,
}

/// File name of a group's rewrite in progress.
pub(crate) fn cleaned_name(base: i64, end: i64) -> String {
    format!("{base:020}-{end:020}.log.cleaned")
}

/// File name of a group's new aborted-transaction index.
pub(crate) fn cleaned_txn_index_name(base: i64, end: i64) -> String {
    format!("{base:020}-{end:020}.{TXN_INDEX_EXT}.cleaned")
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
pub(crate) fn for_each_batch(
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
/// (exclusive): `first_uncleanable`, or the first batch that did not fit. Records of
/// aborted transactions are no key's value and control batches hold none: neither enters
/// the map (Kafka's `buildOffsetMap`).
pub fn build_offset_map(c: &Cleanable, map: &mut OffsetMap, max_batch_bytes: usize) -> Result<i64, LogError> {
    map.clear();
    let mut scratch = Vec::new();
    let mut full_at = None;
    let walk_from = c.segments.iter().find(|s| c.is_dirty(s)).map_or(c.first_dirty, |s| s.base_offset);
    let mut walk = TxnWalk::new(&c.aborted, walk_from);
    for seg in c.segments.iter().filter(|s| c.is_dirty(s)) {
        for_each_batch(seg, |h, bytes| {
            let aborted = if h.is_control() {
                // A producer's control batch is a transaction marker (raft's have none).
                if h.producer_id >= 0 {
                    walk.on_marker(h.producer_id, h.base_offset);
                }
                true
            } else {
                walk.on_data(h)
            };
            if h.last_offset() < c.first_dirty || aborted {
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
    txns: &mut TxnCleaning<'_>,
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
    txns.start_group();
    for seg in group {
        txns.enter(seg);
        for_each_batch(seg, |h, bytes| {
            out.clear();
            if filter_batch(ctx, txns, h, bytes, &mut scratch, &mut out, horizon_seen)? != Filtered::Unchanged {
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
    let txn_index = write_txn_index(dir, group, txns)?;
    Ok(Some(CleanedFile { path, segment, base_offset: first.base_offset, span_end: last.span_end, txn_index }))
}

/// Writes (fsynced, with the directory) the group's new aborted-transaction index: the
/// entries of its segments whose ABORT marker the rewrite kept. `None` when the group
/// has no entries and none of its segments has an index file.
fn write_txn_index(
    dir: &Path,
    group: &[SegmentRef],
    txns: &TxnCleaning<'_>,
) -> Result<Option<(PathBuf, u32)>, LogError> {
    let (Some(first), Some(last)) = (group.first(), group.last()) else { return Ok(None) };
    let mut had_files = false;
    let mut kept = Vec::new();
    for seg in group {
        let path = segment_path(dir, seg.base_offset, TXN_INDEX_EXT);
        had_files |= path.exists();
        kept.extend(read_entries(&path)?.into_iter().filter(|e| txns.keeps_abort(e.last_offset)));
    }
    if kept.is_empty() && !had_files {
        return Ok(None);
    }
    let path = dir.join(cleaned_txn_index_name(first.base_offset, last.span_end));
    let bytes: Vec<u8> = kept.iter().flat_map(AbortedTxn::encode).collect();
    let mut file = std::fs::File::create(&path).map_err(io_err("create cleaned transaction index", &path))?;
    file.write_all(&bytes).map_err(io_err("write cleaned transaction index", &path))?;
    file.sync_all().map_err(io_err("fsync cleaned transaction index", &path))?;
    // Durable before the swap's commit, which may come with no other directory fsync.
    sync_dir(dir)?;
    Ok(Some((path, u32::try_from(kept.len()).unwrap_or(u32::MAX))))
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
    let mut txns = TxnCleaning::new(&to_clean, &c.aborted);
    let mut outcome = CleanOutcome { end_offset, ..CleanOutcome::default() };
    for group in group_segments(&to_clean, segment_bytes) {
        if stop() {
            outcome.aborted = true;
            break;
        }
        let before: u64 = group.iter().map(|s| s.size).sum();
        let mut horizon = None;
        let cleaned = clean_group(&c.dir, c.index_interval_bytes, group, &ctx, &mut txns, &mut horizon)?;
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
