//! Per-partition append-only log storage in Kafka's own on-disk format.
//!
//! A partition is a directory of *segments*. Each segment is a `.log` file holding Kafka v2
//! record batches exactly as they go over the wire (so fetches are a `pread` away from the
//! response), plus a sparse `.index` (relative offset -> file position) and a `.timeindex`
//! (max timestamp so far -> relative offset), both in Kafka's big-endian entry layout.
//!
//! Design choices (and why):
//! - **Indexes live in memory** (`Vec`s) and are written to their files on roll, flush and
//!   close. An index is derived data: it can always be rebuilt from the `.log`, so unclean
//!   opens rebuild the active segment's index from its data instead of trusting a file that
//!   may be partially written. A rolled segment's index files are fsynced by the
//!   [`sealer`] before the recovery point moves past it, so the indexes recovery trusts
//!   are durable.
//! - **Rolls stay off the produce path.** A roll only creates the next segment's files;
//!   the old segment's fsyncs run on a sealer thread, and a per-log seal cursor keeps the
//!   high watermark (and `acks=all` answers) from covering a segment not yet sealed.
//! - **No fsync on append.** Appends go to the page cache with one positional write;
//!   durability is provided by the group-commit [`Flusher`], which batches fdatasyncs of
//!   many concurrent produce requests.
//! - **Recovery** trusts what lies below the recovery point (Kafka's
//!   `recovery-point-offset-checkpoint`) and walks the rest batch by batch, truncating at
//!   the first batch that is incomplete or fails its CRC; a clean-shutdown marker written
//!   by [`PartitionLog::close`] lets the next open skip that scan. Damage below the
//!   recovery point is never truncated: it becomes a [`DamagedRange`] that reads refuse
//!   (see [`damage`] and the background [`scrubber`]).
//! - **Log start offset** is persisted in a tiny checkpoint file (tmp + fsync + rename + dir
//!   fsync) because DeleteRecords may move it into the middle of a segment ([`log_start`]:
//!   DeleteRecords and retention; a raft log's start moves without deleting, its segments
//!   go when raft purges their entries).

pub mod batch;
pub mod cleaner;
mod damage;
pub mod epoch_history;
mod flusher;
mod index;
mod log_start;
pub mod open_files;
pub mod page_cache;
mod partition_log;
mod raft_entries;
pub mod raft_index;
mod read_plan;
pub mod recompress;
mod recovery;
pub mod retained;
pub mod scrubber;
mod sealer;
mod segment;
pub mod txn;

#[cfg(test)]
mod corruption_tests;
#[cfg(test)]
mod damage_props;
#[cfg(test)]
mod epoch_history_tests;
#[cfg(test)]
mod preallocate_tests;
#[cfg(test)]
mod raft_entries_tests;
#[cfg(test)]
pub(crate) mod test_util;
#[cfg(test)]
mod tests;

use std::io;
use std::path::PathBuf;

pub use batch::{
    BatchError, BatchHeader, BatchIter, Compression, HEADER_SIZE, TimestampType, decompressed_size_limit,
    set_base_offset, set_log_append_time, set_partition_leader_epoch, validate_produced_batches,
    validate_produced_batches_within,
};
pub use damage::DamagedRange;
pub use epoch_history::{EpochEntry, EpochHistory, UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET};
pub use flusher::{Flusher, SyncTarget};
pub use partition_log::{AppendInfo, PartitionLog};
pub use raft_entries::StoredEntry;
pub use read_plan::{FileRange, ReadPlan};
pub use recovery::RecoveryReport;
pub(crate) use recovery::{create_dir_durably, write_bytes_durably, write_durably};
pub use sealer::{SealCursor, SealHook, SealStep, Sealer};

/// Per-partition log settings, mirroring Kafka's topic-level configs of the same names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// `segment.bytes`: roll to a new segment before the active one would exceed this size.
    pub segment_bytes: u64,
    /// `segment.ms`: roll when this long has passed since the active segment's first append.
    pub segment_ms: i64,
    /// `index.interval.bytes`: add a sparse index entry roughly every this many bytes.
    pub index_interval_bytes: u64,
    /// `retention.ms`: delete segments whose newest record is older than this; -1 = forever.
    pub retention_ms: i64,
    /// `retention.bytes`: delete oldest segments while the log is larger; -1 = unlimited.
    pub retention_bytes: i64,
    /// `preallocate`: grow the active segment's file in zero-filled chunks ahead of the
    /// appends, so the fsync of an append does not also commit a new file size and new
    /// blocks (see [`segment`]'s `PREALLOCATE_CHUNK`). Kafka's default: off.
    pub preallocate: bool,
}

impl Default for LogConfig {
    /// Kafka's defaults.
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1024 * 1024 * 1024,
            segment_ms: 7 * 24 * 60 * 60 * 1000,
            index_interval_bytes: 4096,
            retention_ms: 7 * 24 * 60 * 60 * 1000,
            retention_bytes: -1,
            preallocate: false,
        }
    }
}

/// Errors of the log storage layer. I/O errors keep the failing operation, path and the
/// original `io::Error` as source.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("I/O error while trying to {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("invalid record batch: {0}")]
    Batch(#[from] BatchError),
    #[error("offset {offset} is out of range [{log_start}, {log_end}]")]
    OffsetOutOfRange { offset: i64, log_start: i64, log_end: i64 },
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("corrupt log metadata in {path}: {reason}")]
    CorruptMetadata { path: PathBuf, reason: String },
    #[error("cannot decode stored batch: {0}")]
    Decode(String),
    /// A fetch of offsets inside a known damaged range (see [`DamagedRange`]).
    #[error(
        "offset {offset} is in a damaged range [{first_offset}, {last_offset}] of {path} at bytes {position}..{end_position}: {reason}"
    )]
    Corrupt {
        offset: i64,
        first_offset: i64,
        last_offset: i64,
        path: PathBuf,
        position: u64,
        end_position: u64,
        reason: String,
    },
    /// A batch header failing the read planner's cheap checks (recorded as damage).
    #[error("corrupt batch in {path} at byte {position} (expected offset {expected_offset}): {reason}")]
    CorruptBatch { path: PathBuf, segment_base: i64, position: u64, expected_offset: i64, reason: String },
    #[error("the flusher thread has stopped")]
    FlusherStopped,
    #[error("an earlier fsync of this log failed; it accepts no writes until reopened")]
    StorageFailed,
}

impl LogError {
    /// Whether this is a write that failed for lack of space (ENOSPC, or EDQUOT: a quota).
    pub fn is_out_of_space(&self) -> bool {
        match self {
            LogError::Io { source, .. } => {
                source.kind() == io::ErrorKind::StorageFull
                    || source.kind() == io::ErrorKind::QuotaExceeded
                    || matches!(source.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT))
            }
            _ => false,
        }
    }
}

/// Builds a closure turning an `io::Error` into [`LogError::Io`] with context.
pub(crate) fn io_err(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> LogError {
    let path = path.into();
    move |source| LogError::Io { op, path, source }
}
