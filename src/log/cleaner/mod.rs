//! Log compaction (`cleanup.policy=compact`), with Kafka's semantics and names.
//!
//! A compacted log keeps, for every key, at least its latest record, at that record's
//! original offset and with its timestamp. The cleaner (threads of its own, see
//! `broker::log_cleaner`, never a runtime worker) picks the log with the highest dirty
//! ratio — bytes written since the last cleaning over all cleanable bytes — once it
//! reaches `min.cleanable.dirty.ratio`, or any log whose oldest dirty record is older than
//! `max.compaction.lag.ms`. Then, as Kafka's `Cleaner.doClean`:
//!
//! - **Range**: only sealed segments whose data lies below the high watermark *and* the
//!   last stable offset (nothing of an undecided transaction is touched) and that are
//!   older than `min.compaction.lag.ms` are touched; the active segment never is.
//! - **Offset map** ([`offset_map`]): key → latest offset over the dirty part, bounded by
//!   `log.cleaner.dedupe.buffer.size`. Records of aborted transactions (known from the
//!   `.txnindex`, walked as Kafka's `CleanedTransactionMetadata` does: [`transactions`])
//!   and control batches never enter it. When it fills up, the pass covers only what was
//!   mapped; the cleaner checkpoint (`cleaner-offset-checkpoint` in the partition's
//!   directory) moves there and the next pass goes on from it.
//! - **Rewrite** ([`clean`], [`filter`]): every cleanable segment from the log start,
//!   grouped up to `segment.bytes`, keeps a record if it is its key's latest (or past the
//!   map); keyless records are removed; tombstones get a delete horizon
//!   (`delete.retention.ms` after the pass that first sees them, stored in the batch as
//!   KIP-534 does) and are removed by the first pass after it. Batches of aborted
//!   transactions are dropped whole; committed transactional batches are filtered like
//!   plain ones. A transaction marker stays while any batch of its transaction does, then
//!   gets a delete horizon the same way. Rewritten batches keep their base offset and last
//!   offset delta, producer fields, transactional flag and codec ([`records`]); a
//!   producer's last batch is kept even when emptied, so idempotent retries are still
//!   recognised; raft's control batches are kept. Each rewritten group gets the
//!   `.txnindex` entries of the ABORT markers it keeps.
//! - **Swap** ([`swap`]): `.cleaned` → `.swap` → `.log` (and the group's `.txnindex`),
//!   completed or rolled back at start-up.

pub mod clean;
pub mod filter;
pub mod offset_map;
pub mod records;
pub mod swap;
pub mod transactions;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod txn_tests;

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::path::Path;

pub use clean::{CleanOutcome, Cleanable, SegmentRef};
pub use offset_map::OffsetMap;
pub use swap::{Swapped, recover_swaps, swap_in};

use super::partition_log::PartitionLog;
use super::recovery::write_durably;
use super::{LogError, io_err};

/// File (in the partition's directory) holding the offset below which the log is clean.
pub const CLEANER_CHECKPOINT_FILE: &str = "cleaner-offset-checkpoint";

/// Per-log compaction settings, Kafka's topic configs of the same names.
#[derive(Debug, Clone, PartialEq)]
pub struct CompactionSettings {
    /// `delete.retention.ms`: how long a tombstone stays after the pass that first saw it.
    pub delete_retention_ms: i64,
    /// `min.compaction.lag.ms`: records younger than this are not compacted.
    pub min_compaction_lag_ms: i64,
    /// `max.compaction.lag.ms`: a dirty record older than this makes the log due.
    pub max_compaction_lag_ms: i64,
    /// `min.cleanable.dirty.ratio`.
    pub min_cleanable_dirty_ratio: f64,
    /// Bound on one batch's size when decompressing it (`max.message.bytes`).
    pub max_batch_bytes: usize,
}

impl Default for CompactionSettings {
    /// Kafka's defaults.
    fn default() -> Self {
        CompactionSettings {
            delete_retention_ms: 86_400_000,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
            min_cleanable_dirty_ratio: 0.5,
            max_batch_bytes: 1_048_588,
        }
    }
}

/// What the cleaner checkpoint file holds: `<clean up to> [<earliest tombstone horizon>]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Checkpoint {
    /// Everything below this offset has been deduplicated.
    pub clean_up_to: i64,
    /// The earliest delete horizon of a tombstone the last pass left: the log is due for
    /// another pass then, dirty or not.
    pub tombstone_horizon: Option<i64>,
}

/// The cleaner checkpoint of the log in `dir`; `None` when the log was never cleaned.
pub fn read_checkpoint_file(dir: &Path) -> Result<Option<Checkpoint>, LogError> {
    let path = dir.join(CLEANER_CHECKPOINT_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err("read", &path)(e)),
    };
    let mut fields = text.split_whitespace().map(str::parse::<i64>);
    match (fields.next(), fields.next()) {
        (Some(Ok(clean_up_to)), horizon) => {
            Ok(Some(Checkpoint { clean_up_to, tombstone_horizon: horizon.and_then(Result::ok) }))
        }
        _ => {
            tracing::warn!(file = %path.display(), "unreadable cleaner checkpoint; cleaning from the start");
            Ok(None)
        }
    }
}

/// Where the dirty part of the log in `dir` starts (0 when it was never cleaned).
pub fn read_checkpoint(dir: &Path) -> Result<i64, LogError> {
    Ok(read_checkpoint_file(dir)?.map_or(0, |c| c.clean_up_to))
}

pub fn write_checkpoint(dir: &Path, c: Checkpoint) -> Result<(), LogError> {
    let contents = match c.tombstone_horizon {
        Some(h) => format!("{} {h}\n", c.clean_up_to),
        None => format!("{}\n", c.clean_up_to),
    };
    write_durably(dir, CLEANER_CHECKPOINT_FILE, &contents)
}

/// The checkpoint a finished pass leaves (the old one when it was refused a swap: the
/// segments it mapped were not all rewritten).
pub fn checkpoint_after(previous: i64, outcome: &CleanOutcome) -> Option<Checkpoint> {
    (!outcome.aborted).then(|| Checkpoint {
        clean_up_to: outcome.end_offset.max(previous),
        tombstone_horizon: outcome.next_tombstone_horizon,
    })
}

impl PartitionLog {
    /// What may be cleaned now (see [`Cleanable`]): sealed segments wholly below
    /// `upper_bound` and older than `min_lag_ms`. The caller's `upper_bound` is the lower
    /// of the high watermark and the last stable offset (Kafka's first uncleanable
    /// offset): nothing a crash could take back, nothing of an undecided transaction.
    pub fn cleanable(
        &self,
        checkpoint: i64,
        upper_bound: i64,
        now: i64,
        min_lag_ms: i64,
    ) -> Result<Cleanable, LogError> {
        let sealed = &self.segments[..self.segments.len() - 1];
        let mut segments = Vec::new();
        for (i, seg) in sealed.iter().enumerate() {
            let too_new = min_lag_ms > 0 && seg.max_timestamp > now.saturating_sub(min_lag_ms);
            if seg.next_offset > upper_bound || too_new {
                break;
            }
            segments.push(SegmentRef {
                base_offset: seg.base_offset,
                next_offset: seg.next_offset,
                span_end: self.segments[i + 1].base_offset,
                size: seg.size,
                file: seg.file.clone(),
                path: seg.path("log"),
                first_timestamp: seg.rolling_ts,
            });
        }
        let first_uncleanable = self.segments[segments.len()].base_offset;
        // Only when there is something to clean: the scheduler asks every round.
        let aborted =
            if segments.is_empty() { Vec::new() } else { self.aborted_txns(self.log_start_offset, first_uncleanable)? };
        Ok(Cleanable {
            dir: self.dir.clone(),
            first_dirty: checkpoint.max(self.log_start_offset).min(first_uncleanable),
            first_uncleanable,
            segments,
            aborted,
            index_interval_bytes: self.config.index_interval_bytes,
        })
    }

    /// One whole cleaning pass with the log held throughout (tests and tools; the broker
    /// cleans without holding the partition lock and takes it only to swap).
    /// `upper_bound`: see [`cleanable`](Self::cleanable).
    pub fn clean(
        &mut self,
        upper_bound: i64,
        now: i64,
        settings: &CompactionSettings,
        map: &mut OffsetMap,
        producer_last_offsets: &HashMap<i64, i64>,
    ) -> Result<CleanOutcome, LogError> {
        let checkpoint = read_checkpoint(&self.dir)?;
        let c = self.cleanable(checkpoint, upper_bound, now, settings.min_compaction_lag_ms)?;
        let segment_bytes = self.config.segment_bytes;
        let outcome =
            clean::clean(&c, settings, segment_bytes, map, now, producer_last_offsets, &|| false, |group, cleaned| {
                Ok(swap_in(self, group, cleaned, &mut |_| ControlFlow::Continue(()))? == Swapped::Done)
            })?;
        if let Some(after) = checkpoint_after(checkpoint, &outcome) {
            write_checkpoint(&self.dir, after)?;
        }
        Ok(outcome)
    }
}
