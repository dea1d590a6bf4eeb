//! A compacted raft log's *retained data*: the segments below raft's log (their entries
//! purged after a snapshot) that consumers still read and the cleaner rewrites. A follower
//! too far behind installs the leader's snapshot with that data: the leader sends the
//! batches from its log start up to the snapshot's end in chunks before the snapshot
//! itself; the follower stages them ([`StagedData`], in `snapshot-staging/` of the
//! partition directory, segment files of Kafka's format with the batches' own offsets),
//! and installing the snapshot swaps its log for them
//! ([`PartitionLog::restart_with_staged`]). Each snapshot stages in a directory of its own
//! (`snapshot-staging-<last raft index>`), so a transfer of another snapshot starting
//! meanwhile cannot disturb one staged complete and about to be installed.
//!
//! The swap is redone from wherever a crash left it (the caller keeps a durable marker
//! until it returns): the old segments go and the staging directory is renamed
//! `snapshot-ready-<index>` (one rename: from then on the staged files are the data), its
//! files move into the partition directory, an empty active segment starts at the
//! snapshot's end. The reopened log must end its data exactly where the staging did. Its
//! aborted-transaction index (`.txnindex`, not shipped) is rebuilt from the markers in
//! the data, so a read_committed fetch below the snapshot still drops aborted records.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::batch::{BatchIter, verify_crc};
use super::partition_log::PartitionLog;
use super::recovery::{LOG_START_FILE, RECOVERY_POINT_FILE, create_dir_durably, write_durably};
use super::segment::{Segment, segment_path, sync_dir};
use super::{LogConfig, LogError, io_err};

/// Where a follower stages the retained data of the snapshot at raft entry `index`.
pub fn staging_dir(index: u64) -> String {
    format!("{STAGING_PREFIX}{index}")
}

const STAGING_PREFIX: &str = "snapshot-staging-";

/// The staged data once the old log is gone (see the module doc).
pub(super) fn ready_dir(index: u64) -> String {
    format!("snapshot-ready-{index}")
}

/// A snapshot's retained data being received: whole batches in offset order, in segment
/// files of at most `segment_bytes` (one batch may exceed it).
#[derive(Debug)]
pub struct StagedData {
    dir: PathBuf,
    segment_bytes: u64,
    /// The file being written: its base offset, handle and size.
    current: Option<(i64, File, u64)>,
    /// The offset after the last batch staged.
    next: i64,
}

impl StagedData {
    /// Starts staging the data of the snapshot at raft entry `index` in `partition_dir`
    /// (whatever was staged for it before is dropped).
    pub fn create(partition_dir: &Path, index: u64, segment_bytes: u64) -> Result<StagedData, LogError> {
        let dir = partition_dir.join(staging_dir(index));
        remove_dir_if_present(&dir)?;
        create_dir_durably(&dir)?;
        Ok(StagedData { dir, segment_bytes, current: None, next: i64::MIN })
    }

    /// The offset after the last batch staged (`i64::MIN` before any).
    pub fn next(&self) -> i64 {
        self.next
    }

    /// Stages the whole batches of `data` that start below `to`, in order; a batch below
    /// what is staged, or with a bad CRC or framing, is refused.
    pub fn append(&mut self, data: &[u8], to: i64) -> Result<(), LogError> {
        for item in BatchIter::new(data) {
            let (h, range) = item.map_err(|e| LogError::InvalidArgument(format!("snapshot data: {e}")))?;
            if h.base_offset >= to {
                break;
            }
            let batch = &data[range];
            if h.base_offset < self.next || !verify_crc(batch) {
                return Err(LogError::InvalidArgument(format!(
                    "snapshot data batch at offset {} is out of order or damaged",
                    h.base_offset
                )));
            }
            // A segment holds at most `segment.bytes`, and offsets within 2^31 of its base
            // (its indexes store them relative to it).
            let full = self.current.as_ref().is_some_and(|(base, _, size)| {
                *size + batch.len() as u64 > self.segment_bytes || h.last_offset() - *base > i64::from(i32::MAX)
            });
            if full || self.current.is_none() {
                self.seal_current()?;
                let path = segment_path(&self.dir, h.base_offset, "log");
                let file = File::create(&path).map_err(io_err("create staged segment", &path))?;
                self.current = Some((h.base_offset, file, 0));
            }
            if let Some((base, file, size)) = self.current.as_mut() {
                let path = segment_path(&self.dir, *base, "log");
                file.write_all(batch).map_err(io_err("write staged segment", &path))?;
                *size += batch.len() as u64;
            }
            self.next = h.last_offset() + 1;
        }
        Ok(())
    }

    fn seal_current(&mut self) -> Result<(), LogError> {
        if let Some((base, file, _)) = self.current.take() {
            let path = segment_path(&self.dir, base, "log");
            file.sync_all().map_err(io_err("fsync staged segment", &path))?;
        }
        Ok(())
    }

    /// Everything staged is durable.
    pub fn finish(&mut self) -> Result<(), LogError> {
        self.seal_current()?;
        sync_dir(&self.dir)
    }

    /// Drops what was staged (a transfer given up or superseded).
    pub fn discard(self) -> Result<(), LogError> {
        remove_dir_if_present(&self.dir)
    }
}

fn remove_dir_if_present(dir: &Path) -> Result<(), LogError> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err("remove", dir)(e)),
    }
}

/// Removes staged data nothing will install: every staging directory but `keep`'s (the
/// snapshot whose restart was under way at open, if any).
pub fn discard_staged(partition_dir: &Path, keep: Option<u64>) -> Result<(), LogError> {
    let keep = keep.map(staging_dir);
    for entry in std::fs::read_dir(partition_dir).map_err(io_err("list", partition_dir))? {
        let entry = entry.map_err(io_err("list", partition_dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(STAGING_PREFIX) && keep.as_deref() != Some(name.as_str()) {
            remove_dir_if_present(&entry.path())?;
        }
    }
    Ok(())
}

impl PartitionLog {
    /// Replaces this raft log with the staged data of the snapshot at raft entry
    /// `first_index - 1`, ending at `base` (see the module doc): the log start at
    /// `log_start`, the data ending at `staged_end` (the offset after its last batch,
    /// `i64::MIN` for none), an empty active segment at `base` whose first entry will be
    /// `first_index`. Redone safely after a crash at any point.
    pub fn restart_with_staged(
        &mut self,
        first_index: u64,
        base: i64,
        log_start: i64,
        staged_end: i64,
    ) -> Result<(), LogError> {
        let dir = self.dir.clone();
        let index = first_index.saturating_sub(1);
        let staging = dir.join(staging_dir(index));
        let ready = dir.join(ready_dir(index));
        if staging.exists() {
            // The old log goes first; then one rename makes the staged files the data.
            self.restart_at(base)?;
            std::fs::rename(&staging, &ready).map_err(io_err("rename staged snapshot data", &staging))?;
            sync_dir(&dir)?;
        }
        if ready.exists() {
            for entry in std::fs::read_dir(&ready).map_err(io_err("list", &ready))? {
                let entry = entry.map_err(io_err("list", &ready))?;
                let target = dir.join(entry.file_name());
                std::fs::rename(entry.path(), &target).map_err(io_err("move staged segment", &target))?;
            }
            sync_dir(&dir)?;
            std::fs::remove_dir(&ready).map_err(io_err("remove", &ready))?;
            sync_dir(&dir)?;
        }
        if !segment_path(&dir, base, "log").exists() {
            Segment::create(&dir, base)?;
            sync_dir(&dir)?;
        }
        // Recovery checks every staged batch and builds the segments' indexes.
        write_durably(&dir, LOG_START_FILE, &format!("{log_start}\n"))?;
        write_durably(&dir, RECOVERY_POINT_FILE, &format!("{log_start}\n"))?;
        let config: LogConfig = self.config.clone();
        let mut reopened = PartitionLog::open_raft(&dir, config)?;
        reopened.open_raft_index(first_index, base)?;
        // Recovery cuts what fails its checks: the data must end where the staging did.
        let sealed = &reopened.segments[..reopened.segments.len() - 1];
        let data_end = sealed.last().map_or(i64::MIN, |s| s.next_offset);
        if reopened.log_end_offset() != base || data_end != staged_end {
            return Err(LogError::CorruptMetadata {
                path: dir,
                reason: format!(
                    "a snapshot's staged data ended at {staged_end} (the log at {base}); the log reopened with \
                     its data ending at {data_end} and the log at {}",
                    reopened.log_end_offset()
                ),
            });
        }
        // Nothing staged below the first staged batch (the leader's log start may have
        // moved on since the snapshot): the log starts at its first segment.
        let first = reopened.segments.first().map_or(base, |s| s.base_offset);
        if reopened.log_start_offset() < first {
            reopened.move_log_start(first)?;
        }
        // The staged data came without its aborted-transaction index: built again from
        // its markers (compacted topics take transactions), before the data is served.
        reopened.reindex_aborted_txns()?;
        *self = reopened;
        Ok(())
    }
}
