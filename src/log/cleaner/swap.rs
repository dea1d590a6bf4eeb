//! Swapping a cleaned group of segments in, crash-safely, as Kafka's
//! `UnifiedLog.replaceSegments` with its `.cleaned` and `.swap` files.
//!
//! 1. The group's rewrite is written and fsynced as `<base>-<end>.log.cleaned`
//!    ([`super::clean::clean_group`]), and with it, when the group has aborted
//!    transactions or any of its segments had a `.txnindex`, its new index as
//!    `<base>-<end>.txnindex.cleaned` (fsynced, with the directory). A crash now leaves
//!    the old segments; start-up deletes the `.cleaned` files.
//! 2. The `.log.cleaned` file is renamed to `<base>-<end>.log.swap` and the directory
//!    fsynced: **the commit point**. From here on start-up completes the swap: it
//!    deletes every segment whose base offset lies in `[base, end)` (with their
//!    `.txnindex` files while the new index is still `.txnindex.cleaned`), puts the new
//!    index in place and renames the `.swap` file to `<base>.log`.
//! 3. The old segments after the first are deleted (newest first, each with its
//!    `.txnindex`), then the first one's indexes, and the directory fsynced.
//! 4. `<base>-<end>.txnindex.cleaned`, if any, is renamed to `<base>.txnindex` (removed
//!    instead when it holds no entry) and the directory fsynced. Every old `.txnindex` of
//!    the range is gone by then, so a `.swap` without a `.txnindex.cleaned` means the
//!    range's `.txnindex` (if any) is the new one.
//! 5. `<base>-<end>.log.swap` is renamed over `<base>.log` and the directory fsynced.
//! 6. The new segment's indexes are written (a crash before leaves a `.log` without
//!    indexes, which start-up rebuilds from the data).
//!
//! The range `[base, end)` is in the files' names, so the commit is one rename and a
//! recovered swap never needs anything but the directory listing. A crash at any step
//! leaves either the old set of segments or the new one, each with its aborted
//! transactions indexed.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::super::partition_log::PartitionLog;
use super::super::segment::{segment_path, sync_dir};
use super::super::txn::TXN_INDEX_EXT;
use super::super::{LogError, io_err};
use super::clean::{CleanedFile, SegmentRef, cleaned_txn_index_name};

const SWAP_SUFFIX: &str = ".log.swap";
const CLEANED_SUFFIX: &str = ".log.cleaned";
const CLEANED_TXN_INDEX_SUFFIX: &str = ".txnindex.cleaned";

fn swap_name(base: i64, end: i64) -> String {
    format!("{base:020}-{end:020}{SWAP_SUFFIX}")
}

/// Parses `<base>-<end>` of a swap file's name.
fn parse_range(stem: &str) -> Option<(i64, i64)> {
    let (base, end) = stem.split_once('-')?;
    Some((base.parse().ok()?, end.parse().ok()?))
}

fn remove_if_present(path: &Path) -> Result<(), LogError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err("remove", path)(e)),
    }
}

/// Called before the commit (step 0) and after each file operation of a swap (1 = the
/// commit rename);
/// `Break` stops the swap there, as a crash would (tests).
pub type StepHook<'a> = &'a mut dyn FnMut(usize) -> ControlFlow<()>;

/// Whether the swap happened.
#[derive(Debug, PartialEq, Eq)]
pub enum Swapped {
    Done,
    /// The group's segments changed meanwhile (retention, DeleteRecords): nothing swapped.
    Stale,
    /// Stopped by the step hook (tests).
    Stopped,
}

/// Drops a rewrite whose segments changed meanwhile.
fn discard(cleaned: &CleanedFile) -> Result<Swapped, LogError> {
    remove_if_present(&cleaned.path)?;
    if let Some((path, _)) = &cleaned.txn_index {
        remove_if_present(path)?;
    }
    Ok(Swapped::Stale)
}

/// Replaces the segments of `group` with `cleaned` (see the module docs).
pub fn swap_in(
    log: &mut PartitionLog,
    group: &[SegmentRef],
    cleaned: CleanedFile,
    hook: StepHook<'_>,
) -> Result<Swapped, LogError> {
    // No seal may be writing this log's files or recovery point while segments go.
    log.wait_for_seals()?;
    let Some(start) = log.segments.iter().position(|s| s.base_offset == cleaned.base_offset) else {
        return discard(&cleaned);
    };
    let current = &log.segments[start..];
    let same = current.len() > group.len()
        && group.iter().zip(current).all(|(g, s)| g.base_offset == s.base_offset && Arc::ptr_eq(&g.file, &s.file))
        && current[group.len()].base_offset == cleaned.span_end;
    if !same {
        return discard(&cleaned);
    }
    let dir = log.dir.clone();
    let swap = dir.join(swap_name(cleaned.base_offset, cleaned.span_end));
    let mut step = 0usize;
    let mut done = |hook: &mut dyn FnMut(usize) -> ControlFlow<()>| {
        let flow = hook(step);
        step += 1;
        flow.is_break()
    };
    if done(hook) {
        return Ok(Swapped::Stopped);
    }
    std::fs::rename(&cleaned.path, &swap).map_err(io_err("rename cleaned segment", &swap))?;
    sync_dir(&dir)?;
    if done(hook) {
        return Ok(Swapped::Stopped);
    }
    for old in group[1..].iter().rev() {
        for ext in ["index", "timeindex", "log", TXN_INDEX_EXT] {
            remove_if_present(&segment_path(&dir, old.base_offset, ext))?;
            if done(hook) {
                return Ok(Swapped::Stopped);
            }
        }
    }
    for ext in ["index", "timeindex", TXN_INDEX_EXT] {
        remove_if_present(&segment_path(&dir, cleaned.base_offset, ext))?;
        if done(hook) {
            return Ok(Swapped::Stopped);
        }
    }
    sync_dir(&dir)?;
    let mut entries = 0;
    if let Some((path, count)) = &cleaned.txn_index {
        place_txn_index(&dir, path, cleaned.base_offset, *count > 0)?;
        sync_dir(&dir)?;
        entries = *count;
        if done(hook) {
            return Ok(Swapped::Stopped);
        }
    }
    let target = segment_path(&dir, cleaned.base_offset, "log");
    std::fs::rename(&swap, &target).map_err(io_err("rename swapped segment", &target))?;
    sync_dir(&dir)?;
    if done(hook) {
        return Ok(Swapped::Stopped);
    }
    let mut segment = cleaned.segment;
    segment.aborted_txns = entries;
    segment.flush()?;
    log.segments.splice(start..start + group.len(), [segment]);
    Ok(Swapped::Done)
}

/// Puts a group's new aborted-transaction index (`cleaned`) in place as `<base>.txnindex`,
/// or removes it when it holds no entry (`has_entries` false). The caller fsyncs the
/// directory.
fn place_txn_index(dir: &Path, cleaned: &Path, base: i64, has_entries: bool) -> Result<(), LogError> {
    if has_entries {
        let target = segment_path(dir, base, TXN_INDEX_EXT);
        std::fs::rename(cleaned, &target).map_err(io_err("rename cleaned transaction index", &target))
    } else {
        remove_if_present(cleaned)
    }
}

/// Start-up: removes unfinished rewrites and completes committed swaps (module docs).
/// Runs before the directory's segments are listed.
pub fn recover_swaps(dir: &Path) -> Result<(), LogError> {
    let mut swaps: Vec<(i64, i64, PathBuf)> = Vec::new();
    let mut cleaned_indexes: Vec<(String, PathBuf)> = Vec::new();
    let mut changed = false;
    for entry in std::fs::read_dir(dir).map_err(io_err("list", dir))? {
        let entry = entry.map_err(io_err("list", dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(CLEANED_SUFFIX) {
            tracing::warn!(file = %entry.path().display(), "removing an unfinished cleaner rewrite");
            remove_if_present(&entry.path())?;
            changed = true;
        } else if name.ends_with(CLEANED_TXN_INDEX_SUFFIX) {
            cleaned_indexes.push((name, entry.path()));
        } else if let Some(stem) = name.strip_suffix(SWAP_SUFFIX)
            && let Some((base, end)) = parse_range(stem)
        {
            swaps.push((base, end, entry.path()));
        }
    }
    // A new index belongs to a committed swap only: the others go with their rewrite.
    for (name, path) in &cleaned_indexes {
        let committed = swaps.iter().any(|(base, end, _)| *name == cleaned_txn_index_name(*base, *end));
        if !committed {
            tracing::warn!(file = %path.display(), "removing an unfinished cleaner rewrite");
            remove_if_present(path)?;
            changed = true;
        }
    }
    for (base, end, swap) in swaps {
        tracing::warn!(file = %swap.display(), "completing an interrupted cleaner swap");
        let new_index = dir.join(cleaned_txn_index_name(base, end));
        // Until the new index is in place, the range's `.txnindex` files are the old ones.
        let old_indexes = new_index.exists();
        for entry in std::fs::read_dir(dir).map_err(io_err("list", dir))? {
            let entry = entry.map_err(io_err("list", dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some((stem, ext)) = name.split_once('.') else { continue };
            let segment_file = matches!(ext, "log" | "index" | "timeindex") || (old_indexes && ext == TXN_INDEX_EXT);
            if stem.len() == 20
                && segment_file
                && let Ok(b) = stem.parse::<i64>()
                && (base..end).contains(&b)
            {
                remove_if_present(&entry.path())?;
            }
        }
        sync_dir(dir)?;
        if old_indexes {
            let has_entries = std::fs::metadata(&new_index).map_err(io_err("stat", &new_index))?.len() > 0;
            place_txn_index(dir, &new_index, base, has_entries)?;
            sync_dir(dir)?;
        }
        let target = segment_path(dir, base, "log");
        std::fs::rename(&swap, &target).map_err(io_err("rename swapped segment", &target))?;
        changed = true;
    }
    if changed {
        sync_dir(dir)?;
    }
    Ok(())
}
