//! Opening a partition directory: loading segments, recovering after a crash, and the small
//! metadata files (clean-shutdown marker, log start offset and recovery point checkpoints).
//!
//! Recovery rules (Kafka's `LogLoader` with its `recovery-point-offset-checkpoint`):
//! * The **recovery point** is the offset below which everything was durable: the log end
//!   written with the clean-shutdown marker, else the `recovery-point-offset-checkpoint`
//!   file (written when a rolled segment has been sealed, i.e. fsynced with its indexes,
//!   see [`super::sealer`]; at every open; on truncation), else the base of the last
//!   segment (only logs written before the checkpoint existed lack it: every open writes
//!   it).
//! * Segments entirely below the recovery point are *trusted*: index files are believed and
//!   only the tail after each segment's last index entry is walked (with CRCs). If that
//!   walk finds anything wrong, the segment is salvaged ([`super::damage`]): every damaged
//!   stretch becomes a damaged range that is refused to readers, the intact batches after
//!   it stay, and nothing is truncated or deleted; only junk past the segment's known end
//!   (which holds no offsets) is cut. The log end never moves back.
//! * Segments at or past the recovery point were possibly never synced: they are fully
//!   re-scanned and the first batch that is truncated, badly framed, fails its CRC or has a
//!   non-increasing offset ends the log (the file is cut there; later segments, which can
//!   only hold unsynced data too, are deleted). Everything kept is then fsynced before the
//!   log is handed out, so the high watermark (set to the log end on open) never covers
//!   data a power loss could still take back.
//! * Offsets with no data between two segments (a missing segment file) are a damaged
//!   range too, logged with the offsets lost.

use std::ops::ControlFlow;
use std::path::Path;

use super::batch::{BatchHeader, HEADER_SIZE, verify_crc};
use super::damage::{DamageSet, DamagedRange, SegmentView, salvage};
use super::epoch_history::{EpochRecovery, EpochScan};
use super::index::{OffsetEntry, SparseIndex, TimeEntry};
use super::partition_log::PartitionLog;
use super::segment::{MAX_RELATIVE, Segment, scan_file, sync_dir};
use super::{LogConfig, LogError, io_err};

pub(crate) const CLEAN_SHUTDOWN_FILE: &str = ".clean_shutdown";
pub(crate) const LOG_START_FILE: &str = "log-start-offset";
pub(crate) const RECOVERY_POINT_FILE: &str = "recovery-point-offset-checkpoint";
const MARKER_TAG: &str = "jet-clean-shutdown-v1";

/// Contents of the clean-shutdown marker: enough to check it matches the files it vouches for.
pub(crate) fn marker_contents(log_end: i64, active_base: i64, active_size: u64) -> String {
    format!("{MARKER_TAG} {log_end} {active_base} {active_size}\n")
}

/// Parses a clean-shutdown marker: `(log end, active segment base, active segment size)`.
fn parse_marker(contents: &str) -> Option<(i64, i64, u64)> {
    let mut words = contents.split_whitespace();
    if words.next()? != MARKER_TAG {
        return None;
    }
    let log_end = words.next()?.parse().ok()?;
    let base = words.next()?.parse().ok()?;
    let size = words.next()?.parse().ok()?;
    Some((log_end, base, size))
}

/// Reads a checkpoint file holding one offset; a missing or unreadable one is `None`.
fn read_offset_checkpoint(path: &Path) -> Result<Option<i64>, LogError> {
    Ok(match read_optional(path)? {
        None => None,
        Some(s) => match s.trim().parse::<i64>() {
            Ok(v) => Some(v),
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "ignoring unreadable offset checkpoint");
                None
            }
        },
    })
}

/// Writes `name` in `dir` atomically and durably: tmp file, fsync, rename, fsync dir.
pub(crate) fn write_durably(dir: &Path, name: &str, contents: &str) -> Result<(), LogError> {
    write_bytes_durably(dir, name, contents.as_bytes())
}

/// [`write_durably`] of bytes.
pub(crate) fn write_bytes_durably(dir: &Path, name: &str, contents: &[u8]) -> Result<(), LogError> {
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
fn walk_checked(
    seg: &mut Segment,
    from: u64,
    interval: u64,
    epochs: &mut EpochScan,
) -> Result<Option<(u64, String)>, LogError> {
    let mut expected = seg.next_offset;
    let base = seg.base_offset;
    let mut reason = String::new();
    let (file, path, size) = (seg.file.get()?, seg.path("log"), seg.size);
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
        epochs.note(h);
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

/// Recovers a segment holding offsets at or past the recovery point: a full walk (CRCs,
/// offsets) from the start. Damage below the recovery point is salvaged like in a durable
/// segment; the first problem at or past it ends the log there (the file is cut and
/// fsynced). If damage below the recovery point has no intact batch after it, the log end
/// stays at the recovery point: those offsets were handed out and may have been seen, so
/// they become a damaged range (bytes kept) and are never reused.
fn recover_untrusted(
    seg: &mut Segment,
    recovery_point: i64,
    interval: u64,
    found: &mut Vec<DamagedRange>,
    epochs: &mut EpochScan,
) -> Result<Recovered, LogError> {
    seg.reset_derived_state();
    let (file, path) = (seg.file.get()?, seg.path("log"));
    let view = SegmentView { file: &file, path: &path, base_offset: seg.base_offset, size: seg.size, end_offset: None };
    let note = |pos, h: &BatchHeader| {
        seg.note_batch(pos, h, interval);
        epochs.note(h);
    };
    let salvaged = salvage(&view, Some(recovery_point), note, |_| {})?;
    found.extend(salvaged.damaged);
    let outcome = match salvaged.unresolved {
        None => Recovered::Intact,
        Some((pos, expected, reason)) if expected < recovery_point => {
            // Durable offsets with no intact batch after them: kept as a damaged range up
            // to the recovery point, bytes and all; appends continue after them.
            found.push(DamagedRange {
                first_offset: expected,
                last_offset: recovery_point - 1,
                segment_base: Some(seg.base_offset),
                position: pos,
                end_position: seg.size,
                reason,
            });
            seg.next_offset = recovery_point;
            // Anything in later segments lies past the recovery point (never synced).
            Recovered::Truncated
        }
        Some((pos, expected, reason)) => {
            tracing::warn!(
                segment = %path.display(),
                truncated_bytes = seg.size - pos,
                at_position = pos,
                at_offset = expected,
                recovery_point,
                reason = %reason,
                "truncating corrupt or incomplete log tail past the recovery point"
            );
            seg.truncate_junk(pos)?;
            Recovered::Truncated
        }
    };
    // Index files are rewritten from the rebuilt state right away.
    seg.offset_index.persist(&seg.path("index"))?;
    seg.time_index.persist(&seg.path("timeindex"))?;
    set_rolling_ts(seg)?;
    Ok(outcome)
}

/// Brings a segment below the recovery point up to date without ever giving up offsets:
/// the cheap index tail check, and if that finds anything wrong a salvage walk that turns
/// damage into [`DamagedRange`]s (pushed to `found`). `end_offset` is the segment's known
/// next offset. Only junk after the segment's last offset is cut.
fn recover_trusted(
    seg: &mut Segment,
    end_offset: i64,
    interval: u64,
    found: &mut Vec<DamagedRange>,
    epochs: &mut EpochScan,
) -> Result<(), LogError> {
    if let Some((oi, ti)) = load_indexes(seg)? {
        let from = seg.adopt_indexes(oi, ti);
        if walk_checked(seg, from, interval, epochs)?.is_none() && seg.next_offset <= end_offset {
            // The first batch's header is read anyway: one more sample for the epochs.
            if let Some(first) = set_rolling_ts(seg)? {
                epochs.note(&first);
            }
            return Ok(());
        }
    }
    tracing::warn!(segment = %seg.path("log").display(), "durable segment fails its check; salvaging it");
    seg.reset_derived_state();
    let (file, path) = (seg.file.get()?, seg.path("log"));
    let view = SegmentView {
        file: &file,
        path: &path,
        base_offset: seg.base_offset,
        size: seg.size,
        end_offset: Some(end_offset),
    };
    let salvaged = salvage(&view, None, |pos, h| seg.note_batch(pos, h, interval), |_| {})?;
    found.extend(salvaged.damaged);
    if salvaged.valid_end < seg.size {
        // Past the segment's last offset: bytes that hold no offsets of this log.
        tracing::warn!(
            segment = %path.display(),
            at_position = salvaged.valid_end,
            junk_bytes = seg.size - salvaged.valid_end,
            "cutting bytes after the last offset of a durable segment (no offsets are lost)"
        );
        seg.truncate_junk(salvaged.valid_end)?;
    }
    seg.next_offset = seg.next_offset.max(salvaged.next_offset);
    seg.offset_index.persist(&seg.path("index"))?;
    seg.time_index.persist(&seg.path("timeindex"))?;
    set_rolling_ts(seg)?;
    Ok(())
}

/// segment.ms counts from the first batch's timestamp, as in Kafka. Returns that
/// batch's header.
fn set_rolling_ts(seg: &mut Segment) -> Result<Option<BatchHeader>, LogError> {
    seg.rolling_ts = None;
    if seg.size >= HEADER_SIZE as u64 {
        // A damaged first batch (a damaged range) leaves the timer unset: only the
        // active segment's timer matters, and it restarts with the next append.
        if let Ok(h) = BatchHeader::parse(&seg.read_vec(0, HEADER_SIZE)?) {
            seg.rolling_ts = (h.max_timestamp >= 0).then_some(h.max_timestamp);
            return Ok(Some(h));
        }
    }
    Ok(None)
}

/// Lists segment base offsets, removing leftovers (tmp files, indexes without a `.log`).
/// Also returns the bases of index files whose `.log` is gone: Jet deletes a segment's
/// indexes before its data and creates them after it, so such files mean the segment file
/// was lost.
fn list_segments(dir: &Path) -> Result<(Vec<i64>, Vec<i64>), LogError> {
    let mut bases = Vec::new();
    let mut orphans = Vec::new();
    let mut lost = Vec::new();
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
            "index" | "timeindex" if !dir.join(format!("{stem}.log")).exists() => {
                orphans.push(entry.path());
                lost.push(base);
            }
            // A segment's sidecars outlive it when a deletion stopped between them.
            "raftindex" | "raftgroups" | "txnindex" if !dir.join(format!("{stem}.log")).exists() => {
                orphans.push(entry.path())
            }
            _ => {}
        }
    }
    for p in &orphans {
        tracing::warn!(file = %p.display(), "removing leftover file");
        std::fs::remove_file(p).map_err(io_err("remove leftover", p))?;
    }
    bases.sort_unstable();
    lost.sort_unstable();
    lost.dedup();
    Ok((bases, lost))
}

/// Opens (creating if needed) and recovers the partition directory.
/// Creates `dir` and any missing ancestors, fsyncing each new directory's parent so the
/// new entries survive a power loss (fsyncing files inside `dir` does not make `dir`
/// itself durable).
pub(crate) fn create_dir_durably(dir: &Path) -> Result<(), LogError> {
    let missing: Vec<&Path> = dir.ancestors().take_while(|d| !d.as_os_str().is_empty() && !d.exists()).collect();
    std::fs::create_dir_all(dir).map_err(io_err("create log directory", dir))?;
    for created in missing.iter().rev() {
        if let Some(parent) = created.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(parent)?;
        }
    }
    Ok(())
}

/// Opens the log in `dir`; `delete_below_start` removes segments left below the log start
/// (a crash between moving it and deleting them), which a raft log leaves to raft's purge.
pub(crate) fn open(dir: &Path, config: LogConfig, delete_below_start: bool) -> Result<PartitionLog, LogError> {
    create_dir_durably(dir)?;
    let interval = config.index_interval_bytes;

    let marker_path = dir.join(CLEAN_SHUTDOWN_FILE);
    let marker = read_optional(&marker_path)?;
    if marker.is_some() {
        // Delete before anything else: from now on a crash must trigger recovery.
        std::fs::remove_file(&marker_path).map_err(io_err("remove marker", &marker_path))?;
        sync_dir(dir)?;
    }
    let checkpoint = read_offset_checkpoint(&dir.join(LOG_START_FILE))?;
    let recovery_checkpoint = read_offset_checkpoint(&dir.join(RECOVERY_POINT_FILE))?;

    super::cleaner::recover_swaps(dir)?;
    let (bases, lost_segments) = list_segments(dir)?;
    let mut segments = Vec::with_capacity(bases.len());
    for &base in &bases {
        segments.push(Segment::open(dir, base)?);
    }
    let count = segments.len();
    // The marker vouches for the last segment only if it still has the size it had then.
    let marker_end = marker.as_deref().and_then(parse_marker).and_then(|(end, base, size)| {
        let last = segments.last()?;
        (last.base_offset == base && last.size == size).then_some(end)
    });
    if marker.is_some() && marker_end.is_none() {
        tracing::warn!(dir = %dir.display(), "clean-shutdown marker does not match the log; running recovery");
    }
    let clean = marker_end.is_some();
    let last_base = segments.last().map_or(0, |s| s.base_offset);
    let recovery_point = marker_end.unwrap_or_else(|| recovery_checkpoint.unwrap_or(last_base));

    let mut damaged = Vec::new();
    let mut epochs = EpochRecovery::default();
    let mut keep = count;
    let mut synced = Vec::new();
    for i in 0..count {
        let next_base = segments.get(i + 1).map(|s| s.base_offset);
        let end_offset = next_base.or(marker_end);
        let seg = &mut segments[i];
        match end_offset {
            // Entirely below the recovery point: durable once, never truncated.
            Some(end) if end <= recovery_point || (next_base.is_none() && clean) => {
                recover_trusted(seg, end, interval, &mut damaged, &mut epochs.trusted)?;
            }
            _ => {
                epochs.first_reread_base.get_or_insert(seg.base_offset);
                let outcome = recover_untrusted(seg, recovery_point, interval, &mut damaged, &mut epochs.reread)?;
                synced.push(seg.base_offset);
                if let Recovered::Truncated = outcome
                    && next_base.is_some()
                {
                    keep = i + 1;
                    break;
                }
            }
        }
    }
    if keep < count {
        for seg in segments.drain(keep..).rev() {
            tracing::warn!(segment = %seg.path("log").display(), "deleting segment after a truncated one (past the recovery point)");
            seg.delete()?;
        }
        sync_dir(dir)?;
    }
    damaged.extend(missing_offsets(&segments, &lost_segments));

    let first_base = segments.first().map_or(0, |s| s.base_offset);
    if let Some(start) = checkpoint
        && start < first_base
    {
        tracing::error!(
            dir = %dir.display(),
            log_start = start,
            first_segment_base = first_base,
            "offsets below the first segment are missing (segment files deleted?); the log now starts at the first segment"
        );
    }
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
    if !clean {
        // After a crash of the process (not the machine) the page cache may still hold
        // appends that were never fsynced, in every segment past the recovery point. The
        // caller exposes the recovered log end as the high watermark, so make all of it
        // durable first: otherwise consumers could see data a power loss takes away.
        for seg in segments.iter().filter(|s| synced.contains(&s.base_offset)) {
            seg.sync_data()?;
        }
    }
    let log_end = segments.last().map_or(0, |s| s.next_offset);
    // Durable before the recovery point below trusts every batch it covers.
    let epochs = epochs.finish(dir, &segments, log_start, log_end)?;
    if recovery_checkpoint != Some(log_end) {
        write_durably(dir, RECOVERY_POINT_FILE, &format!("{log_end}\n"))?;
    }

    // Damage found earlier (by the scrubber, by reads) that is still part of the log.
    let loaded = DamageSet::load(dir)?;
    let mut known = loaded.clone();
    known.retain(|r| {
        r.last_offset >= log_start
            && r.first_offset < log_end
            && r.segment_base.is_none_or(|b| segments.iter().any(|s| s.base_offset == b))
    });
    let damage = DamageSet::new(dir, known.clone());
    if known != loaded {
        damage.persist()?;
    }
    for range in damaged {
        damage.add(range)?;
    }
    let report = RecoveryReport { clean, recovery_point, synced_segments: if clean { Vec::new() } else { synced } };
    let mut log = PartitionLog::from_parts(dir.to_path_buf(), config, segments, log_start);
    log.set_recovered(std::sync::Arc::new(damage), report, epochs);
    log.load_txn_index_counts()?;
    if delete_below_start {
        log.delete_segments_below_start()?;
    }
    Ok(log)
}

/// What [`open`] did, for logs and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Whether a valid clean-shutdown marker let recovery trust every segment.
    pub clean: bool,
    /// Segments ending at or below this offset were trusted.
    pub recovery_point: i64,
    /// Base offsets of the segments recovered from scratch and fsynced before open returned.
    pub synced_segments: Vec<i64>,
}

/// Offsets no segment holds although a later one starts after them. Where a segment file
/// is known lost (its index files are still there) they are a damaged range, refused to
/// readers. Otherwise the gap is logged with its offsets and served as a gap: compaction
/// leaves such gaps legitimately, and nothing on disk tells the two apart.
fn missing_offsets(segments: &[Segment], lost: &[i64]) -> Vec<DamagedRange> {
    let mut out = Vec::new();
    for pair in segments.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        if a.next_offset >= b.base_offset {
            continue;
        }
        let (first_offset, last_offset) = (a.next_offset, b.base_offset - 1);
        match lost.iter().find(|&&l| l >= a.base_offset && l < b.base_offset) {
            Some(&l) => {
                let missing = a.path("log").with_file_name(format!("{l:020}.log"));
                tracing::error!(
                    file = %missing.display(),
                    first_offset,
                    last_offset,
                    "segment file lost: these offsets are refused with CORRUPT_MESSAGE"
                );
                out.push(DamagedRange {
                    first_offset,
                    last_offset,
                    segment_base: Some(a.base_offset),
                    position: a.size,
                    end_position: a.size,
                    reason: format!("segment file {l:020}.log is missing"),
                });
            }
            None => tracing::warn!(
                after = %a.path("log").display(),
                before = %b.path("log").display(),
                first_offset,
                last_offset,
                "no data for these offsets (compacted away, or a segment file is missing)"
            ),
        }
    }
    out
}
