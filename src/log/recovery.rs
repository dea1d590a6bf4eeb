//! Opening a partition directory: loading segments, recovering after a crash, and the small
//! metadata files (clean-shutdown marker, log start offset checkpoint).
//!
//! Recovery rules:
//! * With a valid clean-shutdown marker, index files are trusted; only the tail after each
//!   segment's last index entry is walked (to find the end offset), and that walk still
//!   verifies CRCs, falling back to full recovery if anything is off.
//! * Without it, every segment but the last gets the same cheap tail check (rolled segments
//!   and their indexes were fsynced before the next segment was created), and the last
//!   segment is fully re-scanned: the first batch that is truncated, badly framed, fails its
//!   CRC or has a non-increasing offset ends the log; the file is cut there and fsynced.
//! * If an older segment ever needs truncating, all later segments are deleted so the log
//!   never has a hole followed by data.

use std::ops::ControlFlow;
use std::path::Path;

use super::batch::{BatchHeader, HEADER_SIZE, verify_crc};
use super::index::{OffsetEntry, SparseIndex, TimeEntry};
use super::partition_log::PartitionLog;
use super::segment::{MAX_RELATIVE, Segment, scan_file, sync_dir};
use super::{LogConfig, LogError, io_err};

pub(crate) const CLEAN_SHUTDOWN_FILE: &str = ".clean_shutdown";
pub(crate) const LOG_START_FILE: &str = "log-start-offset";
const MARKER_TAG: &str = "jet-clean-shutdown-v1";

/// Contents of the clean-shutdown marker: enough to check it matches the files it vouches for.
pub(crate) fn marker_contents(log_end: i64, active_base: i64, active_size: u64) -> String {
    format!("{MARKER_TAG} {log_end} {active_base} {active_size}\n")
}

/// Writes `name` in `dir` atomically and durably: tmp file, fsync, rename, fsync dir.
pub(crate) fn write_durably(dir: &Path, name: &str, contents: &str) -> Result<(), LogError> {
    let tmp = dir.join(format!("{name}.tmp"));
    let dst = dir.join(name);
    std::fs::write(&tmp, contents).map_err(io_err("write", &tmp))?;
    std::fs::File::open(&tmp).and_then(|f| f.sync_all()).map_err(io_err("fsync", &tmp))?;
    std::fs::rename(&tmp, &dst).map_err(io_err("rename", &dst))?;
    sync_dir(dir)
}

fn read_optional(path: &Path) -> Result<Option<String>, LogError> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        // A marker/checkpoint with garbage bytes is treated like a missing one.
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => Ok(Some(String::new())),
        Err(e) => Err(io_err("read", path)(e)),
    }
}

/// Outcome of checking/recovering one segment.
enum Recovered {
    Intact,
    Truncated,
}

/// Scans `seg` from `from` checking CRCs and offset monotonicity, feeding good batches to
/// the indexes. Returns the position of the first bad byte if the data does not end cleanly.
fn walk_checked(seg: &mut Segment, from: u64, interval: u64) -> Result<Option<(u64, String)>, LogError> {
    let mut expected = seg.next_offset;
    let base = seg.base_offset;
    let mut reason = String::new();
    let (file, path, size) = (seg.file.clone(), seg.path("log"), seg.size);
    let end = scan_file(&file, &path, size, from, |pos, h, bytes| {
        let problem = if !verify_crc(bytes) {
            Some("CRC mismatch")
        } else if h.base_offset < expected {
            Some("non-increasing offset")
        } else if h.last_offset() - base > MAX_RELATIVE {
            Some("offset too far from segment base")
        } else {
            None
        };
        if let Some(p) = problem {
            reason = p.to_string();
            return ControlFlow::Break(());
        }
        expected = h.next_offset();
        seg.note_batch(pos, h, interval);
        ControlFlow::Continue(())
    })?;
    if let Some(e) = end.error {
        reason = e.to_string();
    }
    Ok((end.end < seg.size).then_some((end.end, reason)))
}

/// A segment's offset and time indexes.
type SegmentIndexes = (SparseIndex<OffsetEntry>, SparseIndex<TimeEntry>);

fn load_indexes(seg: &Segment) -> Result<Option<SegmentIndexes>, LogError> {
    let size = seg.size;
    let oi = SparseIndex::<OffsetEntry>::load(&seg.path("index"), |prev, e| {
        u64::from(e.position) < size
            && prev.is_none_or(|p| p.relative_offset < e.relative_offset && p.position < e.position)
    })?;
    let ti = SparseIndex::<TimeEntry>::load(&seg.path("timeindex"), |prev, e| {
        prev.is_none_or(|p| p.timestamp < e.timestamp && p.relative_offset <= e.relative_offset)
    })?;
    Ok(oi.zip(ti))
}

/// Brings one segment's in-memory state up to date with its file, truncating a bad tail.
/// `full` forces a scan from position 0 instead of trusting the index files.
fn recover_segment(seg: &mut Segment, full: bool, interval: u64) -> Result<Recovered, LogError> {
    if !full && let Some((oi, ti)) = load_indexes(seg)? {
        let from = seg.adopt_indexes(oi, ti);
        if walk_checked(seg, from, interval)?.is_none() {
            set_rolling_ts(seg)?;
            return Ok(Recovered::Intact);
        }
        tracing::warn!(segment = %seg.path("log").display(), "segment tail does not match its index; rescanning");
    }
    seg.reset_derived_state();
    let outcome = match walk_checked(seg, 0, interval)? {
        None => Recovered::Intact,
        Some((pos, reason)) => {
            tracing::warn!(
                segment = %seg.path("log").display(),
                truncated_bytes = seg.size - pos,
                at_position = pos,
                at_offset = seg.next_offset,
                reason = %reason,
                "truncating corrupt or incomplete log tail"
            );
            seg.truncate_at(pos, interval)?;
            Recovered::Truncated
        }
    };
    // Index files are rewritten from the rebuilt state right away.
    seg.offset_index.persist(&seg.path("index"))?;
    seg.time_index.persist(&seg.path("timeindex"))?;
    set_rolling_ts(seg)?;
    Ok(outcome)
}

/// segment.ms counts from the first batch's timestamp, as in Kafka.
fn set_rolling_ts(seg: &mut Segment) -> Result<(), LogError> {
    seg.rolling_ts = None;
    if seg.size >= HEADER_SIZE as u64 {
        let h = BatchHeader::parse(&seg.read_vec(0, HEADER_SIZE)?)?;
        seg.rolling_ts = (h.max_timestamp >= 0).then_some(h.max_timestamp);
    }
    Ok(())
}

/// Lists segment base offsets, removing leftovers (tmp files, indexes without a `.log`).
fn list_segments(dir: &Path) -> Result<Vec<i64>, LogError> {
    let mut bases = Vec::new();
    let mut orphans = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(io_err("list", dir))?;
    for entry in entries {
        let entry = entry.map_err(io_err("list", dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".tmp") {
            orphans.push(entry.path());
            continue;
        }
        let Some((stem, ext)) = name.split_once('.') else { continue };
        let Ok(base) = stem.parse::<i64>() else { continue };
        if stem.len() != 20 {
            continue;
        }
        match ext {
            "log" => bases.push(base),
            "index" | "timeindex" if !dir.join(format!("{stem}.log")).exists() => orphans.push(entry.path()),
            _ => {}
        }
    }
    for p in &orphans {
        tracing::warn!(file = %p.display(), "removing leftover file");
        std::fs::remove_file(p).map_err(io_err("remove leftover", p))?;
    }
    bases.sort_unstable();
    Ok(bases)
}

/// Opens (creating if needed) and recovers the partition directory.
/// Creates `dir` and any missing ancestors, fsyncing each new directory's parent so the
/// new entries survive a power loss (fsyncing files inside `dir` does not make `dir`
/// itself durable).
fn create_dir_durably(dir: &Path) -> Result<(), LogError> {
    let missing: Vec<&Path> = dir.ancestors().take_while(|d| !d.as_os_str().is_empty() && !d.exists()).collect();
    std::fs::create_dir_all(dir).map_err(io_err("create log directory", dir))?;
    for created in missing.iter().rev() {
        if let Some(parent) = created.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(parent)?;
        }
    }
    Ok(())
}

pub(crate) fn open(dir: &Path, config: LogConfig) -> Result<PartitionLog, LogError> {
    create_dir_durably(dir)?;
    let interval = config.index_interval_bytes;

    let marker_path = dir.join(CLEAN_SHUTDOWN_FILE);
    let marker = read_optional(&marker_path)?;
    if marker.is_some() {
        // Delete before anything else: from now on a crash must trigger recovery.
        std::fs::remove_file(&marker_path).map_err(io_err("remove marker", &marker_path))?;
        sync_dir(dir)?;
    }
    let checkpoint_path = dir.join(LOG_START_FILE);
    let checkpoint = match read_optional(&checkpoint_path)? {
        None => None,
        Some(s) => match s.trim().parse::<i64>() {
            Ok(v) => Some(v),
            Err(e) => {
                tracing::warn!(file = %checkpoint_path.display(), error = %e, "ignoring unreadable log start checkpoint");
                None
            }
        },
    };

    super::cleaner::recover_swaps(dir)?;
    let bases = list_segments(dir)?;
    let mut segments = Vec::with_capacity(bases.len());
    for &base in &bases {
        segments.push(Segment::open(dir, base)?);
    }
    // Older segments: cheap tail check. The last one: full scan unless the marker vouches.
    let count = segments.len();
    let mut keep = count;
    // Whether the clean-shutdown marker vouched for the last segment.
    let mut clean = marker.is_some();
    for (i, seg) in segments.iter_mut().enumerate() {
        let last = i + 1 == count;
        let mut outcome = recover_segment(seg, last && marker.is_none(), interval)?;
        if last
            && let Some(m) = &marker
            && *m != marker_contents(seg.next_offset, seg.base_offset, seg.size)
        {
            tracing::warn!(dir = %dir.display(), "clean-shutdown marker does not match the log; running recovery");
            clean = false;
            outcome = recover_segment(seg, true, interval)?;
        }
        if let Recovered::Truncated = outcome
            && !last
        {
            keep = i + 1;
            break;
        }
    }
    if keep < count {
        for seg in segments.drain(keep..).rev() {
            tracing::warn!(segment = %seg.path("log").display(), "deleting segment after a truncated one");
            seg.delete()?;
        }
        sync_dir(dir)?;
    }

    let first_base = segments.first().map_or(0, |s| s.base_offset);
    let mut log_start = checkpoint.unwrap_or(first_base).max(first_base);
    let log_end = segments.last().map_or(0, |s| s.next_offset);
    if segments.is_empty() || log_start > log_end {
        if !segments.is_empty() {
            tracing::warn!(log_start, log_end, "log start offset beyond recovered data; starting empty");
        }
        for seg in segments.drain(..).rev() {
            seg.delete()?;
        }
        log_start = log_start.max(log_end);
        segments.push(Segment::create(dir, log_start)?);
        sync_dir(dir)?;
    }
    if !clean && let Some(last) = segments.last() {
        // After a crash of the process (not the machine) the page cache may still hold
        // appends that were never fsynced. The caller exposes the recovered log end as the
        // high watermark, so make it durable first: otherwise consumers could see data that
        // a later power loss takes away.
        last.file.sync_data().map_err(io_err("fsync segment", last.path("log")))?;
    }
    let mut log = PartitionLog::from_parts(dir.to_path_buf(), config, segments, log_start);
    log.delete_segments_below_start()?;
    Ok(log)
}
