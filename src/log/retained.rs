//! A compacted raft log's *retained data*: the segments below raft's log (their entries
//! purged after a snapshot) that consumers still read and the cleaner rewrites. A follower
//! too far behind installs the leader's snapshot with that data: the leader sends the
//! batches from its log start up to the snapshot's end in chunks before the snapshot
//! itself; the follower stages them ([`StagedData`], in `snapshot-staging/` of the
//! partition directory, segment files of Kafka's format with the batches' own offsets),
//! and installing the snapshot swaps its log for them
//! ([`PartitionLog::restart_with_staged`]).
//!
//! The swap is redone from wherever a crash left it (the caller keeps a durable marker
//! until it returns): the old segments go and `snapshot-staging/` is renamed
//! `snapshot-ready/` (one rename: from then on the staged files are the data), its files
//! move into the partition directory, an empty active segment starts at the snapshot's end.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::batch::{BatchIter, verify_crc};
use super::partition_log::PartitionLog;
use super::recovery::{LOG_START_FILE, RECOVERY_POINT_FILE, create_dir_durably, write_durably};
use super::segment::{Segment, segment_path, sync_dir};
use super::{LogConfig, LogError, io_err};

/// Where a follower stages a snapshot's retained data.
pub const STAGING_DIR: &str = "snapshot-staging";
/// The staged data once the old log is gone (see the module doc).
pub(super) const READY_DIR: &str = "snapshot-ready";

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
    /// Starts staging in `partition_dir` (whatever was staged there before is dropped).
    pub fn create(partition_dir: &Path, segment_bytes: u64) -> Result<StagedData, LogError> {
        let dir = partition_dir.join(STAGING_DIR);
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
            let full =
                self.current.as_ref().is_some_and(|(_, _, size)| *size + batch.len() as u64 > self.segment_bytes);
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
}

fn remove_dir_if_present(dir: &Path) -> Result<(), LogError> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err("remove", dir)(e)),
    }
}

/// Removes staged data nothing will install (no restart was under way at open).
pub fn discard_staged(partition_dir: &Path) -> Result<(), LogError> {
    remove_dir_if_present(&partition_dir.join(STAGING_DIR))
}

impl PartitionLog {
    /// Replaces this raft log with the staged data of a snapshot ending at `base` (see the
    /// module doc), the log start at `log_start`, and an empty active segment at `base`
    /// whose first entry will be `first_index`. Redone safely after a crash at any point.
    pub fn restart_with_staged(&mut self, first_index: u64, base: i64, log_start: i64) -> Result<(), LogError> {
        let dir = self.dir.clone();
        let staging = dir.join(STAGING_DIR);
        let ready = dir.join(READY_DIR);
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
        if reopened.log_end_offset() != base {
            return Err(LogError::CorruptMetadata {
                path: dir,
                reason: format!("staged snapshot data ends at {}, not at {base}", reopened.log_end_offset()),
            });
        }
        // Nothing staged below the first staged batch (the leader's log start may have
        // moved on since the snapshot): the log starts at its first segment.
        let first = reopened.segments.first().map_or(base, |s| s.base_offset);
        if reopened.log_start_offset() < first {
            reopened.move_log_start(first)?;
        }
        *self = reopened;
        Ok(())
    }
}
