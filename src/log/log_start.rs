//! The start of a partition log: DeleteRecords, retention, and a raft log's replicated
//! log start (segments below it are deleted by the caller's rules: at once for a local
//! log, through raft's purge for a raft log).

use super::LogError;
use super::partition_log::PartitionLog;
use super::recovery::{LOG_START_FILE, write_durably};
use super::segment::{Segment, sync_dir};

impl PartitionLog {
    /// DeleteRecords: moves the log start to `offset` (persisted durably) and deletes the
    /// segments entirely below it. Returns the resulting log start offset.
    pub fn advance_log_start(&mut self, offset: i64) -> Result<i64, LogError> {
        let log_end = self.log_end_offset();
        if offset > log_end {
            return Err(LogError::OffsetOutOfRange { offset, log_start: self.log_start_offset, log_end });
        }
        if offset <= self.log_start_offset {
            return Ok(self.log_start_offset);
        }
        self.set_log_start(offset)?;
        if offset == log_end && self.active().size > 0 {
            // Everything is deleted: start a fresh segment so the old one can go.
            self.roll()?;
        }
        self.delete_segments_below_start()?;
        Ok(self.log_start_offset)
    }

    /// A raft log's replicated log start (a DeleteRecords or retention entry applied):
    /// moves it to `offset` durably, never back and never past the log end, and deletes
    /// nothing (segments go when raft purges their entries). Returns the log start.
    pub fn move_log_start(&mut self, offset: i64) -> Result<i64, LogError> {
        let offset = offset.min(self.log_end_offset());
        if offset > self.log_start_offset {
            self.set_log_start(offset)?;
        }
        Ok(self.log_start_offset)
    }

    pub(super) fn set_log_start(&mut self, offset: i64) -> Result<(), LogError> {
        // Persist first: a crash before the deletions below is harmless (they are redone
        // on open), while deleting first could briefly expose a stale start offset.
        write_durably(&self.dir, LOG_START_FILE, &format!("{offset}\n"))?;
        self.log_start_offset = offset;
        // Written with the next checkpoint write: older entries below the start are cut
        // by open anyway.
        self.epochs.truncate_from_start(offset);
        Ok(())
    }

    /// Deletes non-active segments whose data lies entirely below the log start. A segment
    /// that compaction emptied still starts the log when its base offset is the log start.
    pub(crate) fn delete_segments_below_start(&mut self) -> Result<(), LogError> {
        self.delete_segments_below(self.log_start_offset)
    }

    /// Deletes non-active segments whose data lies entirely below `limit` (at most the
    /// log start); see [`delete_segments_below_start`](Self::delete_segments_below_start).
    pub(super) fn delete_segments_below(&mut self, limit: i64) -> Result<(), LogError> {
        let start = limit.min(self.log_start_offset);
        let n = self.segments[..self.segments.len() - 1]
            .iter()
            .take_while(|s| s.next_offset <= start && (s.base_offset < start || s.next_offset > s.base_offset))
            .count();
        self.delete_oldest(n)
    }

    fn delete_oldest(&mut self, n: usize) -> Result<(), LogError> {
        if n == 0 {
            return Ok(());
        }
        self.wait_for_seals()?;
        for seg in self.segments.drain(..n) {
            tracing::info!(segment = %seg.path("log").display(), "deleting segment");
            seg.delete()?;
        }
        sync_dir(&self.dir)?;
        self.damage.retain_within(self.log_start_offset, self.log_end_offset())
    }

    /// Retention: deletes the oldest non-active segments whose newest timestamp is older than
    /// `retention.ms`, or while the log exceeds `retention.bytes`. Returns how many. Only
    /// segments entirely below `upto` (the high watermark) are candidates, as in Kafka:
    /// the log start must never pass data consumers cannot see yet.
    pub fn apply_retention(&mut self, now_ms: i64, upto: i64) -> Result<usize, LogError> {
        let n = self.segments_past_retention(now_ms, upto);
        if n == 0 {
            return Ok(0);
        }
        let new_start = self.segments[n].base_offset;
        if new_start > self.log_start_offset {
            self.set_log_start(new_start)?;
        }
        self.delete_oldest(n)?;
        Ok(n)
    }

    /// How many of the oldest non-active segments retention deletes (see
    /// [`apply_retention`](Self::apply_retention)).
    fn segments_past_retention(&self, now_ms: i64, upto: i64) -> usize {
        let (ret_ms, ret_bytes) = (self.config.retention_ms, self.config.retention_bytes);
        let mut remaining = self.size_bytes();
        let mut n = 0;
        for seg in &self.segments[..self.segments.len() - 1] {
            if seg.next_offset > upto {
                break;
            }
            let expired = ret_ms >= 0 && now_ms.saturating_sub(segment_timestamp(seg)) > ret_ms;
            let oversized = ret_bytes >= 0 && remaining - seg.size >= ret_bytes as u64;
            if !expired && !oversized {
                break;
            }
            remaining -= seg.size;
            n += 1;
        }
        n
    }

    /// Where retention would start the log (the base of the first segment it keeps), if
    /// it would move the log start: what a raft leader proposes instead of deleting.
    pub fn retention_point(&self, now_ms: i64, upto: i64) -> Option<i64> {
        let n = self.segments_past_retention(now_ms, upto);
        let start = self.segments.get(n).map(|s| s.base_offset)?;
        (n > 0 && start > self.log_start_offset).then_some(start)
    }
}

/// The timestamp retention.ms is measured against: the newest batch timestamp, or the file's
/// modification time if the segment has no timestamps (as Kafka does).
fn segment_timestamp(seg: &Segment) -> i64 {
    if seg.max_timestamp >= 0 {
        return seg.max_timestamp;
    }
    std::fs::metadata(seg.path("log"))
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(i64::MAX, |d| d.as_millis() as i64)
}
