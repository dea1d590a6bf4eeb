//! Leader-epoch history of one partition: Kafka's `leader-epoch-checkpoint`.
//!
//! Each entry says "leader epoch E starts at offset S"; epochs and start offsets both
//! strictly increase. The end offset of epoch E is the start of the first later epoch, or
//! the log end for the latest one; that is what OffsetForLeaderEpoch answers, so that
//! consumers and (with raft) followers can find where their copy diverges.
//!
//! On disk it is Kafka's text checkpoint: a version line `0`, a count line, then one
//! `epoch startOffset` line per entry, written tmp + fsync + rename + directory fsync.
//!
//! When it is written (the durability rule): recovery trusts everything below the
//! recovery point and re-reads the batches above it, taking their epochs into the history
//! again. So the file must hold every entry that starts below the recovery point before
//! the recovery point moves past it, and nothing else matters for correctness:
//! - a roll hands the history (if it changed) to the sealer, which writes it before the
//!   recovery point it advances (off the produce path: a new epoch costs no fsync on
//!   append);
//! - truncation, in-place recovery after a failed fsync and open write it before their
//!   recovery point; `close` writes it before the clean-shutdown marker;
//! - moving the log start (retention, DeleteRecords) only changes it in memory until the
//!   next write: an older file merely holds entries below the log start, which open cuts.
//!
//! A file with entries past the data (written, then the data lost in a crash) is cut at
//! the first re-read batch; a missing, unreadable or inconsistent file (or one that
//! disagrees with a batch recovery reads) is rebuilt from every batch header.

use std::ops::ControlFlow;
use std::path::Path;

use super::LogError;
use super::batch::BatchHeader;
use super::partition_log::PartitionLog;
use super::recovery::write_durably;
use super::segment::Segment;

pub(crate) const LEADER_EPOCH_CHECKPOINT_FILE: &str = "leader-epoch-checkpoint";
/// Kafka's `UNDEFINED_EPOCH`.
pub const UNDEFINED_EPOCH: i32 = -1;
/// Kafka's `UNDEFINED_EPOCH_OFFSET`.
pub const UNDEFINED_EPOCH_OFFSET: i64 = -1;
const CHECKPOINT_VERSION: &str = "0";

/// Leader epoch `epoch` starts at `start_offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEntry {
    pub epoch: i32,
    pub start_offset: i64,
}

/// The in-memory history, with whether it differs from the file.
#[derive(Debug, Clone, Default)]
pub struct EpochHistory {
    entries: Vec<EpochEntry>,
    /// The entries differ from what is durable in the checkpoint file.
    dirty: bool,
}

impl EpochHistory {
    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    pub fn latest(&self) -> Option<EpochEntry> {
        self.entries.last().copied()
    }

    /// Records a stored batch of `epoch` at `base_offset` (or a leader's epoch starting
    /// there): a new entry only when the epoch is newer than the latest (older or unset
    /// epochs, -1, add nothing).
    pub fn observe_batch(&mut self, epoch: i32, base_offset: i64) {
        if epoch >= 0 && self.latest().is_none_or(|l| epoch > l.epoch) {
            self.assign(epoch, base_offset);
        }
    }

    /// Kafka's `assign`: epoch `epoch` starts at `start_offset`. Entries that would break
    /// monotonicity (same or newer epoch, same or later start) are dropped first. Nothing
    /// changes if the latest entry already is this epoch starting no later. Negative
    /// values are ignored. Returns whether the history changed.
    pub fn assign(&mut self, epoch: i32, start_offset: i64) -> bool {
        if epoch < 0 || start_offset < 0 {
            return false;
        }
        if self.latest().is_some_and(|l| l.epoch == epoch && l.start_offset <= start_offset) {
            return false;
        }
        let keep = self.entries.iter().take_while(|e| e.epoch < epoch && e.start_offset < start_offset).count();
        if keep < self.entries.len() {
            tracing::warn!(epoch, start_offset, dropped = ?&self.entries[keep..], "new leader epoch drops conflicting entries");
        }
        self.entries.truncate(keep);
        self.entries.push(EpochEntry { epoch, start_offset });
        self.dirty = true;
        true
    }

    /// Removes the entries starting at or after `end_offset` (the log end moved back).
    pub fn truncate_from_end(&mut self, end_offset: i64) {
        let keep = self.entries.partition_point(|e| e.start_offset < end_offset);
        if keep < self.entries.len() {
            self.entries.truncate(keep);
            self.dirty = true;
        }
    }

    /// The log now starts at `start_offset`: entries that start at or before it go, except
    /// the one covering it, which is kept starting at `start_offset` (Kafka's
    /// `truncateFromStart`).
    pub fn truncate_from_start(&mut self, start_offset: i64) {
        let covered = self.entries.partition_point(|e| e.start_offset <= start_offset);
        if covered == 0 || (covered == 1 && self.entries[0].start_offset == start_offset) {
            return;
        }
        let epoch = self.entries[covered - 1].epoch;
        self.entries.drain(..covered - 1);
        self.entries[0] = EpochEntry { epoch, start_offset };
        self.dirty = true;
    }

    /// Forgets every entry (the log was emptied and restarted).
    pub fn clear(&mut self) {
        if !self.entries.is_empty() {
            self.entries.clear();
            self.dirty = true;
        }
    }

    /// The epoch of the batch at `offset`, if the history covers it.
    pub fn epoch_at(&self, offset: i64) -> Option<i32> {
        let i = self.entries.partition_point(|e| e.start_offset <= offset);
        i.checked_sub(1).map(|i| self.entries[i].epoch)
    }

    /// Kafka's `endOffsetFor`: the largest epoch `<= requested` and the end offset of the
    /// requested epoch (the start of the first later epoch, or `log_end` when the latest
    /// epoch is asked). Unknown (undefined or newer than every entry) gives
    /// `(UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET)`; an epoch older than every entry gives
    /// the requested epoch and the first entry's start (the data before is gone).
    pub fn end_offset_for(&self, requested: i32, log_end: i64) -> (i32, i64) {
        const UNKNOWN: (i32, i64) = (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET);
        if requested == UNDEFINED_EPOCH {
            return UNKNOWN;
        }
        if self.latest().is_some_and(|l| l.epoch == requested) {
            return (requested, log_end);
        }
        let higher = self.entries.partition_point(|e| e.epoch <= requested);
        let Some(next) = self.entries.get(higher) else { return UNKNOWN };
        match higher.checked_sub(1) {
            Some(floor) => (self.entries[floor].epoch, next.start_offset),
            None => (requested, next.start_offset),
        }
    }

    /// The checkpoint file's contents.
    pub fn render(&self) -> String {
        let mut out = format!("{CHECKPOINT_VERSION}\n{}\n", self.entries.len());
        for e in &self.entries {
            out.push_str(&format!("{} {}\n", e.epoch, e.start_offset));
        }
        out
    }

    /// Parses checkpoint contents; anything but a well-formed, strictly increasing
    /// history of the announced length is refused with the reason.
    pub fn parse(text: &str) -> Result<EpochHistory, String> {
        let mut lines = text.lines();
        match lines.next() {
            Some(CHECKPOINT_VERSION) => {}
            other => return Err(format!("unsupported version line {other:?}")),
        }
        let count: usize =
            lines.next().ok_or("missing count line")?.trim().parse().map_err(|e| format!("bad count line: {e}"))?;
        let mut entries: Vec<EpochEntry> = Vec::new();
        for line in lines.by_ref().take(count) {
            let mut words = line.split_whitespace();
            let (Some(epoch), Some(start), None) = (words.next(), words.next(), words.next()) else {
                return Err(format!("bad entry line {line:?}"));
            };
            let epoch: i32 = epoch.parse().map_err(|e| format!("bad epoch in {line:?}: {e}"))?;
            let start_offset: i64 = start.parse().map_err(|e| format!("bad start offset in {line:?}: {e}"))?;
            let increasing = entries.last().is_none_or(|l| l.epoch < epoch && l.start_offset < start_offset);
            if epoch < 0 || start_offset < 0 || !increasing {
                return Err(format!("entry {line:?} breaks the order of the history"));
            }
            entries.push(EpochEntry { epoch, start_offset });
        }
        if entries.len() != count {
            return Err(format!("{} entries where the count line says {count}", entries.len()));
        }
        if lines.any(|l| !l.trim().is_empty()) {
            return Err("data after the announced entries".to_string());
        }
        Ok(EpochHistory { entries, dirty: false })
    }

    /// Reads the checkpoint in `dir`; `None` if it is missing or unusable (then the caller
    /// rebuilds from the batches).
    pub(crate) fn load(dir: &Path) -> Result<Option<EpochHistory>, LogError> {
        let path = dir.join(LEADER_EPOCH_CHECKPOINT_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(super::io_err("read", &path)(e)),
        };
        let parsed = std::str::from_utf8(&bytes).map_err(|e| e.to_string()).and_then(EpochHistory::parse);
        match parsed {
            Ok(h) => Ok(Some(h)),
            Err(reason) => {
                tracing::warn!(file = %path.display(), %reason, "unusable leader-epoch checkpoint; rebuilding it from the log");
                Ok(None)
            }
        }
    }

    /// Rebuilds the history from every batch header of `segments` (a damaged stretch ends
    /// the walk of its segment; later segments still count).
    pub(crate) fn rebuild(segments: &[Segment]) -> Result<EpochHistory, LogError> {
        let mut history = EpochHistory { entries: Vec::new(), dirty: true };
        for seg in segments {
            seg.scan(0, |_, h, _| {
                history.observe_batch(h.partition_leader_epoch, h.base_offset);
                ControlFlow::Continue(())
            })?;
        }
        Ok(history)
    }

    /// Whether the history disagrees with a batch of `epoch` stored at `base_offset`.
    pub(crate) fn contradicts(&self, epoch: i32, base_offset: i64) -> bool {
        epoch >= 0 && self.epoch_at(base_offset) != Some(epoch)
    }

    /// The contents to write if they changed since the last write; marks them written
    /// (the caller writes them before anything relies on them, or fails the log).
    pub(crate) fn take_unwritten(&mut self) -> Option<String> {
        std::mem::take(&mut self.dirty).then(|| self.render())
    }

    /// Writes the checkpoint durably if it changed.
    pub(crate) fn persist(&mut self, dir: &Path) -> Result<(), LogError> {
        if let Some(contents) = self.take_unwritten()
            && let Err(e) = write_durably(dir, LEADER_EPOCH_CHECKPOINT_FILE, &contents)
        {
            self.dirty = true;
            return Err(e);
        }
        Ok(())
    }

    pub(crate) fn mark_dirty(&mut self) {
        self.dirty = true;
    }
}

impl PartitionLog {
    /// The leader-epoch history (see [`super::epoch_history`]).
    pub fn epoch_history(&self) -> &EpochHistory {
        &self.epochs
    }

    /// OffsetForLeaderEpoch's answer for `epoch`: `(epoch found, its end offset)`, or
    /// `None` where Kafka answers with undefined values (-1, -1).
    pub fn end_offset_for_epoch(&self, epoch: i32) -> Option<(i32, i64)> {
        let (found, end) = self.epochs.end_offset_for(epoch, self.log_end_offset());
        (end != UNDEFINED_EPOCH_OFFSET).then_some((found, end))
    }

    /// Records that leader epoch `epoch` starts at the log end (Kafka does this when a
    /// replica becomes leader, before anything is appended in the new epoch), if it is
    /// newer than every epoch in the history: a leader never goes back in epochs, and
    /// entries are only ever dropped by truncating the log. Kept in memory; written with
    /// the next checkpoint write. An entry with no batch behind it is dropped again by a
    /// reopen (as in Kafka), where the leader assigns it anew.
    pub fn assign_leader_epoch(&mut self, epoch: i32) {
        let end = self.log_end_offset();
        self.epochs.observe_batch(epoch, end);
    }
}

/// The epoch changes among batches recovery reads: `(epoch, base offset)` of each batch
/// whose epoch differs from the previous one it noted.
#[derive(Debug, Default)]
pub(crate) struct EpochScan {
    points: Vec<EpochEntry>,
}

impl EpochScan {
    pub fn note(&mut self, h: &BatchHeader) {
        let epoch = h.partition_leader_epoch;
        if epoch >= 0 && self.points.last().is_none_or(|p| p.epoch != epoch) {
            self.points.push(EpochEntry { epoch, start_offset: h.base_offset });
        }
    }
}

/// What open learned about epochs while recovering the segments.
#[derive(Debug, Default)]
pub(crate) struct EpochRecovery {
    /// Batches recovery walked in trusted segments (the checkpoint must agree with them).
    pub trusted: EpochScan,
    /// Every batch of the re-read segments, which start at `first_reread_base`.
    pub reread: EpochScan,
    pub first_reread_base: Option<i64>,
}

impl EpochRecovery {
    /// The history after recovery: the checkpoint cut where re-reading began plus the
    /// re-read batches' epochs, or, if the checkpoint is missing, unusable or disagrees
    /// with a batch recovery read, rebuilt from every batch header. Cut to
    /// `[log_start, log_end)` and written durably if it changed (before the caller
    /// writes a recovery point that trusts it).
    pub fn finish(
        self,
        dir: &Path,
        segments: &[Segment],
        log_start: i64,
        log_end: i64,
    ) -> Result<EpochHistory, LogError> {
        let log_end_before_reread = self.first_reread_base.unwrap_or(log_end);
        let checkpoint_exists = dir.join(LEADER_EPOCH_CHECKPOINT_FILE).exists();
        let from_checkpoint = EpochHistory::load(dir)?.map(|mut h| {
            h.truncate_from_end(log_end_before_reread);
            for p in &self.reread.points {
                h.observe_batch(p.epoch, p.start_offset);
            }
            h
        });
        let consistent = |h: &EpochHistory| {
            let mut points = self.trusted.points.iter().chain(&self.reread.points);
            !points.any(|p| p.start_offset < log_end && h.contradicts(p.epoch, p.start_offset))
        };
        let mut history = match from_checkpoint {
            Some(h) if consistent(&h) => h,
            Some(_) => {
                tracing::warn!(dir = %dir.display(), "leader-epoch checkpoint disagrees with the log; rebuilding it");
                EpochHistory::rebuild(segments)?
            }
            None => EpochHistory::rebuild(segments)?,
        };
        history.truncate_from_end(log_end);
        history.truncate_from_start(log_start);
        if !checkpoint_exists && history.entries.is_empty() {
            // A new partition: no file says the same as an empty one, and creating
            // thousands of partitions should not cost an extra fsync each.
            history.dirty = false;
        }
        if let Err(e) = history.persist(dir) {
            if !e.is_out_of_space() {
                return Err(e);
            }
            // The history is derived from the batch headers, so a full disk must not stop
            // the partition from opening (reads go on; writes resume when space returns).
            // An old checkpoint must not outlive it, though: a later recovery would trust
            // it. Removing needs no space; without the file, recovery rebuilds the history
            // from the headers. It stays dirty, so the next persist writes it.
            let path = dir.join(LEADER_EPOCH_CHECKPOINT_FILE);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(r) if r.kind() == std::io::ErrorKind::NotFound => {}
                Err(r) => return Err(super::io_err("remove stale leader-epoch checkpoint", &path)(r)),
            }
            tracing::warn!(dir = %dir.display(), error = %e, "leader-epoch checkpoint not written (disk full): kept in memory, rebuilt from the log if needed");
        }
        Ok(history)
    }
}
