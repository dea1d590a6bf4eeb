//! [`PartitionLog`]: the ordered set of segments of one partition.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;

use super::batch::{BatchHeader, BatchIter, set_base_offset, set_partition_leader_epoch};
use super::damage::{DamageSet, DamagedRange};
use super::epoch_history::EpochHistory;
use super::flusher::SyncTarget;
use super::raft_index::RaftIndex;
use super::recovery::{
    self, CLEAN_SHUTDOWN_FILE, LOG_START_FILE, RECOVERY_POINT_FILE, RecoveryReport, marker_contents, write_durably,
};
use super::sealer::{SealCursor, SealJob, Sealer};
use super::segment::{MAX_RELATIVE, PREFIX_SIZE, Segment, sync_dir};
use super::{LogConfig, LogError};

/// Result of an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    /// Offset assigned to the first record.
    pub base_offset: i64,
    /// Offset of the last record.
    pub last_offset: i64,
    /// Largest batch maxTimestamp among the appended batches (-1 if none).
    pub max_timestamp: i64,
    /// Base offset of the batch carrying `max_timestamp` (-1 if none); the exact record is
    /// found by decoding that batch.
    pub offset_of_max_timestamp: i64,
}

/// An append-only log of Kafka v2 record batches for one partition.
///
/// Not internally synchronized: the owner serializes mutations (e.g. behind a mutex); the
/// durable point is advanced separately through [`PartitionLog::sync_target`] + the flusher.
#[derive(Debug)]
pub struct PartitionLog {
    pub(super) dir: PathBuf,
    pub(super) config: LogConfig,
    /// Sorted by base offset; never empty; the last one is the active segment. After
    /// compaction a segment may hold fewer offsets than its span (even none).
    pub(super) segments: Vec<Segment>,
    pub(super) log_start_offset: i64,
    /// Set once any fsync of this log failed (here or in the flusher): the page cache may
    /// have dropped unwritten data, so the log refuses appends and the flusher refuses to
    /// declare anything durable until the log is reopened (and recovered).
    failed: Arc<AtomicBool>,
    /// Offsets whose bytes are damaged and refused to readers (see [`super::damage`]);
    /// shared with the scrubber.
    pub(super) damage: Arc<DamageSet>,
    /// What the last open found.
    recovery: RecoveryReport,
    /// Where rolled segments are sealed; `None` seals them inline, in the roll.
    sealer: Option<Sealer>,
    /// Rolls so far, and how many of them are sealed (see [`super::sealer`]).
    rolls: u64,
    seals: Arc<SealCursor>,
    /// Leader-epoch history (`leader-epoch-checkpoint`, see [`super::epoch_history`]).
    pub(super) epochs: EpochHistory,
    /// Raft index ↔ offset translation, when the log is a raft log (see
    /// [`super::raft_entries`]).
    pub(super) raft: Option<RaftIndex>,
}

impl PartitionLog {
    /// Opens the log in `dir` (created if missing), recovering from an unclean shutdown.
    pub fn open(dir: &Path, config: LogConfig) -> Result<Self, LogError> {
        recovery::open(dir, config, true)
    }

    /// Opens a raft log: as [`open`](Self::open), but segments below the log start stay
    /// until raft purges their entries ([`purge_entries_through`](Self::purge_entries_through)).
    /// Deleting them at open would remove entries raft still counts as held.
    pub fn open_raft(dir: &Path, config: LogConfig) -> Result<Self, LogError> {
        recovery::open(dir, config, false)
    }

    pub(crate) fn from_parts(dir: PathBuf, config: LogConfig, segments: Vec<Segment>, log_start_offset: i64) -> Self {
        let damage = Arc::new(DamageSet::new(&dir, Vec::new()));
        PartitionLog {
            dir,
            config,
            segments,
            log_start_offset,
            failed: Arc::default(),
            damage,
            recovery: RecoveryReport::default(),
            sealer: None,
            rolls: 0,
            seals: Arc::default(),
            epochs: EpochHistory::default(),
            raft: None,
        }
    }

    /// Seals rolled segments on `sealer`'s threads instead of inside the roll (the
    /// broker's setting: appends never wait for a rolled segment's fsyncs).
    pub fn set_sealer(&mut self, sealer: Sealer) {
        self.sealer = Some(sealer);
    }

    /// Blocks until every rolled segment is sealed; fails if a seal failed. Paths that
    /// delete or rewrite segment files, or write the recovery point themselves, call it
    /// first so no seal runs under them.
    pub fn wait_for_seals(&self) -> Result<(), LogError> {
        if self.seals.sealed() >= self.rolls {
            return if self.has_failed() { Err(LogError::StorageFailed) } else { Ok(()) };
        }
        self.seals.wait_blocking(self.rolls, &self.failed)
    }

    pub(crate) fn set_recovered(&mut self, damage: Arc<DamageSet>, report: RecoveryReport, epochs: EpochHistory) {
        self.damage = damage;
        self.recovery = report;
        self.epochs = epochs;
    }

    /// What recovery did when this log was opened.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.recovery
    }

    /// The damaged offset ranges known so far (found by recovery, reads or the scrubber),
    /// sorted by offset.
    pub fn damaged_ranges(&self) -> Vec<DamagedRange> {
        self.damage.snapshot()
    }

    pub(crate) fn damage(&self) -> &Arc<DamageSet> {
        &self.damage
    }

    pub(crate) fn segments(&self) -> &[Segment] {
        &self.segments
    }

    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    pub fn set_config(&mut self, c: LogConfig) {
        self.config = c;
    }

    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }

    /// The next offset to be assigned.
    pub fn log_end_offset(&self) -> i64 {
        self.active().next_offset
    }

    pub(super) fn active(&self) -> &Segment {
        // `segments` is never empty (open creates one; nothing removes the last one).
        &self.segments[self.segments.len() - 1]
    }

    fn active_mut(&mut self) -> &mut Segment {
        let i = self.segments.len() - 1;
        &mut self.segments[i]
    }

    /// Appends complete, already validated batches, assigning consecutive offsets and
    /// stamping `leader_epoch` (both rewritten in each batch's CRC-free prefix as it is
    /// written; `batches` itself is not modified, so it can be the request's buffer).
    /// Rolls first if the active segment would exceed `segment.bytes`, is older than
    /// `segment.ms`, or the offsets would not fit its 32-bit relative index. One write to
    /// the page cache; no fsync.
    pub fn append(&mut self, batches: &[u8], leader_epoch: i32, now_ms: i64) -> Result<AppendInfo, LogError> {
        if self.has_failed() {
            return Err(LogError::StorageFailed);
        }
        let mut parsed = Vec::new();
        for item in BatchIter::new(batches) {
            parsed.push(item?);
        }
        let start = self.log_end_offset();
        if parsed.is_empty() {
            return Ok(AppendInfo {
                base_offset: start,
                last_offset: start - 1,
                max_timestamp: -1,
                offset_of_max_timestamp: -1,
            });
        }
        let offsets: i64 = parsed.iter().map(|(h, _)| i64::from(h.last_offset_delta) + 1).sum();
        self.maybe_roll(batches.len() as u64, offsets, now_ms)?;

        let mut next = start;
        let mut info =
            AppendInfo { base_offset: start, last_offset: start, max_timestamp: -1, offset_of_max_timestamp: -1 };
        let mut prefixes = Vec::with_capacity(parsed.len());
        for (h, range) in &mut parsed {
            let mut prefix = [0u8; PREFIX_SIZE];
            prefix.copy_from_slice(&batches[range.start..range.start + PREFIX_SIZE]);
            set_base_offset(&mut prefix, next)?;
            set_partition_leader_epoch(&mut prefix, leader_epoch)?;
            prefixes.push(prefix);
            h.base_offset = next;
            if h.max_timestamp > info.max_timestamp {
                info.max_timestamp = h.max_timestamp;
                info.offset_of_max_timestamp = next;
            }
            info.last_offset = h.last_offset();
            next = h.next_offset();
        }
        let (interval, preallocate) = (self.config.index_interval_bytes, self.config.preallocate);
        let active = self.active_mut();
        if active.rolling_ts.is_none() {
            active.rolling_ts = Some(now_ms);
        }
        active.append(batches, &prefixes, &parsed, interval, preallocate)?;
        self.epochs.observe_batch(leader_epoch, start);
        Ok(info)
    }

    pub(super) fn maybe_roll(&mut self, len: u64, offsets: i64, now_ms: i64) -> Result<(), LogError> {
        let max_size = self.config.segment_bytes.min(MAX_RELATIVE as u64);
        let active = self.active();
        if active.size == 0 {
            return Ok(());
        }
        let too_big = active.size + len > max_size;
        let too_old = active.rolling_ts.is_some_and(|t| now_ms.saturating_sub(t) >= self.config.segment_ms);
        let too_many = active.next_offset + offsets - 1 - active.base_offset > MAX_RELATIVE;
        if too_big || too_old || too_many {
            self.roll()?;
        }
        Ok(())
    }

    /// Whether an fsync of this log has failed (see [`LogError::StorageFailed`]).
    pub fn has_failed(&self) -> bool {
        self.failed.load(Ordering::SeqCst)
    }

    /// Fences the log as a failed fsync does: state derived from its tail (the
    /// aborted-transaction index) could not be written, so nothing appended from here
    /// may become durable until the owner recovers the log (cutting the tail back to the
    /// durable end and rebuilding what it derives from it).
    pub fn fence(&self) {
        self.failed.store(true, Ordering::SeqCst);
    }

    /// fsyncs the active segment, remembering a failure for good.
    fn flush_active(&mut self) -> Result<(), LogError> {
        if self.has_failed() {
            return Err(LogError::StorageFailed);
        }
        let r = self.active_mut().flush();
        if r.is_err() {
            self.failed.store(true, Ordering::SeqCst);
        }
        r
    }

    /// Starts a new segment at the log end and has the old one sealed (data and indexes
    /// fsynced, recovery point advanced) by the sealer, off this thread; only the new
    /// files' creation happens here. Without a sealer the seal runs here.
    pub(super) fn roll(&mut self) -> Result<(), LogError> {
        if self.has_failed() {
            return Err(LogError::StorageFailed);
        }
        let base = self.log_end_offset();
        let seg = Segment::create(&self.dir, base)?;
        let (dir, cursor, failed) = (self.dir.clone(), self.seals.clone(), self.failed.clone());
        let old = self.active_mut();
        if old.max_timestamp >= 0 {
            // The final max timestamp goes into the time index so it survives a reopen.
            let rel = old.relative(old.offset_of_max_timestamp);
            old.time_index.maybe_push(old.max_timestamp, rel);
        }
        // The seal cuts the preallocated zero tail before its fsync.
        let trim_to = (old.allocated > old.size).then_some(old.size);
        let sidecar_path = old.path(super::raft_entries::FINAL_SIDECAR);
        old.allocated = old.size;
        let job = SealJob {
            dir,
            trim_to,
            base_offset: old.base_offset,
            file: old.file.clone(),
            log_path: old.path("log"),
            offset_index: (old.offset_index.clone(), old.path("index")),
            time_index: (old.time_index.clone(), old.path("timeindex")),
            end_offset: base,
            // Every entry starts below `base`: durable before the recovery point passes it.
            epoch_checkpoint: self.epochs.take_unwritten(),
            // The sealed segment's raft entries, final: durable before the recovery point too.
            raft_sidecar: self.raft.as_mut().map(|r| (sidecar_path, super::raft_entries::roll(r, base))),
            cursor,
            failed,
        };
        self.segments.push(seg);
        self.rolls += 1;
        tracing::debug!(dir = %self.dir.display(), base, "rolled new segment");
        match &self.sealer {
            Some(sealer) => sealer.submit(job),
            None => job.run(None),
        }
    }

    /// What the flusher must fdatasync to make everything appended so far durable.
    pub fn sync_target(&self) -> SyncTarget {
        let active = self.active();
        SyncTarget {
            file: active.file.clone(),
            written: active.file.written(),
            end_offset: active.next_offset,
            failed: self.failed.clone(),
            seals: self.seals.clone(),
            rolls: self.rolls,
        }
    }

    /// Index of the segment that may contain `offset`.
    fn segment_index(&self, offset: i64) -> usize {
        self.segments.partition_point(|s| s.base_offset <= offset).saturating_sub(1)
    }

    pub(crate) fn check_range(&self, offset: i64) -> Result<(), LogError> {
        let (log_start, log_end) = (self.log_start_offset, self.log_end_offset());
        if offset < log_start || offset > log_end {
            return Err(LogError::OffsetOutOfRange { offset, log_start, log_end });
        }
        Ok(())
    }

    /// Segments that may hold `offset` and everything after it.
    pub(crate) fn segments_from(&self, offset: i64) -> &[Segment] {
        &self.segments[self.segment_index(offset)..]
    }

    /// The bytes of the batch starting at `pos` in `seg`.
    fn batch_at(seg: &Segment, pos: u64, h: &BatchHeader) -> Result<Bytes, LogError> {
        Ok(Bytes::from(seg.read_vec(pos, h.total_size())?))
    }

    /// Walks the batches of `seg` from `from`, stepping over its known damaged ranges
    /// (their batches are never passed to `f`). A framing error outside them fails.
    fn scan_intact(
        &self,
        seg: &Segment,
        from: u64,
        mut f: impl FnMut(u64, &BatchHeader, &[u8]) -> ControlFlow<()>,
    ) -> Result<(), LogError> {
        let damaged = self.damage.in_segment(seg.base_offset);
        let mut pos = from;
        loop {
            let mut stopped = false;
            let mut resume_at = None;
            let scanned = seg.scan(pos, |p, h, bytes| {
                if let Some(&(_, end, _)) = damaged.iter().find(|(start, end, _)| (*start..*end).contains(&p)) {
                    resume_at = Some(end);
                    return ControlFlow::Break(());
                }
                let flow = f(p, h, bytes);
                stopped = flow.is_break();
                flow
            })?;
            if stopped {
                return Ok(());
            }
            let skip = resume_at.or_else(|| {
                damaged.iter().find(|(start, end, _)| (*start..*end).contains(&scanned.end)).map(|&(_, end, _)| end)
            });
            match (skip, scanned.error) {
                (Some(next), _) if next > pos => pos = next,
                (_, Some(e)) => return Err(e.into()),
                _ => return Ok(()),
            }
        }
    }

    /// First batch (at or after the log start) with records whose maxTimestamp is `>= ts`
    /// (the empty batches compaction keeps for producer state hold no record to return).
    pub fn batch_for_timestamp(&self, ts: i64) -> Result<Option<Bytes>, LogError> {
        let log_start = self.log_start_offset;
        for seg in self.segments.iter().filter(|s| s.max_timestamp >= ts) {
            let from_offset = seg
                .time_index
                .lookup_before(ts)
                .map_or(seg.base_offset, |e| seg.base_offset + i64::from(e.relative_offset))
                .max(log_start);
            let skip = self.damage.in_segment(seg.base_offset);
            let Some((from_pos, _)) = seg.locate_skipping(from_offset, &skip)? else { continue };
            let mut found = None;
            self.scan_intact(seg, from_pos, |_, h, bytes| {
                if h.max_timestamp >= ts && h.last_offset() >= log_start && h.records_count > 0 {
                    found = Some(Bytes::copy_from_slice(bytes));
                    return ControlFlow::Break(());
                }
                ControlFlow::Continue(())
            })?;
            if found.is_some() {
                return Ok(found);
            }
        }
        Ok(None)
    }

    /// The largest timestamp in the log and the batch holding it (earliest such batch), or
    /// `None` if the log holds no batches.
    pub fn max_timestamp_batch(&self) -> Result<Option<(i64, Bytes)>, LogError> {
        let mut best: Option<&Segment> = None;
        for seg in self.segments.iter().filter(|s| s.size > 0 && s.offset_of_max_timestamp >= 0) {
            if best.is_none_or(|b| seg.max_timestamp > b.max_timestamp) {
                best = Some(seg);
            }
        }
        let Some(seg) = best else { return Ok(None) };
        let skip = self.damage.in_segment(seg.base_offset);
        match seg.locate_skipping(seg.offset_of_max_timestamp, &skip)? {
            Some((pos, h)) if h.records_count > 0 => Ok(Some((seg.max_timestamp, Self::batch_at(seg, pos, &h)?))),
            // The segment's maximum belongs to a batch compaction emptied: find the
            // largest timestamp among batches that still hold records.
            Some(_) => self.max_timestamp_batch_by_scan(),
            None => Ok(None),
        }
    }

    fn max_timestamp_batch_by_scan(&self) -> Result<Option<(i64, Bytes)>, LogError> {
        let log_start = self.log_start_offset;
        let mut best: Option<(i64, Bytes)> = None;
        for seg in &self.segments {
            self.scan_intact(seg, 0, |_, h, bytes| {
                let newer = best.as_ref().is_none_or(|(ts, _)| h.max_timestamp > *ts);
                if h.records_count > 0 && h.last_offset() >= log_start && newer {
                    best = Some((h.max_timestamp, Bytes::copy_from_slice(bytes)));
                }
                ControlFlow::Continue(())
            })?;
        }
        Ok(best)
    }

    /// Calls `f` for every intact batch header from the log start onward (batches in
    /// damaged ranges are skipped).
    pub fn for_each_batch_header(&self, mut f: impl FnMut(&BatchHeader)) -> Result<(), LogError> {
        self.for_each_batch(|h, _| f(h))
    }

    /// [`for_each_batch_header`](Self::for_each_batch_header) with each batch's bytes.
    pub fn for_each_batch(&self, mut f: impl FnMut(&BatchHeader, &[u8])) -> Result<(), LogError> {
        let log_start = self.log_start_offset;
        for seg in &self.segments {
            self.scan_intact(seg, 0, |_, h, bytes| {
                if h.last_offset() >= log_start {
                    f(h, bytes);
                }
                ControlFlow::Continue(())
            })?;
        }
        Ok(())
    }

    /// Total bytes of all segment files.
    pub fn size_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.size).sum()
    }

    /// Truncates so the log ends at `offset`, or at the start of the batch containing it
    /// when `offset` is inside a batch. No-op if `offset >= log_end_offset`. Below the log
    /// start, the log is emptied and restarted at `offset`.
    pub fn truncate_to(&mut self, offset: i64) -> Result<(), LogError> {
        if offset >= self.log_end_offset() {
            return Ok(());
        }
        self.wait_for_seals()?;
        self.truncate_sealed(offset)
    }

    /// [`truncate_to`](Self::truncate_to) once no seal is pending.
    fn truncate_sealed(&mut self, offset: i64) -> Result<(), LogError> {
        let interval = self.config.index_interval_bytes;
        if offset < self.log_start_offset {
            return self.restart_at(offset);
        }
        // Drop whole segments at or above `offset`, newest first, keeping at least one.
        while self.segments.len() > 1 && self.active().base_offset >= offset {
            if let Some(seg) = self.segments.pop() {
                seg.delete()?;
            }
        }
        sync_dir(&self.dir)?;
        let active = self.active_mut();
        if let Some((pos, _)) = active.locate(offset)? {
            active.truncate_at(pos, interval)?;
        }
        let end = self.log_end_offset();
        if end < self.log_start_offset {
            self.set_log_start(end)?;
        }
        self.epochs.truncate_from_end(end);
        self.epochs.persist(&self.dir)?;
        self.drop_aborted_txns_from(end)?;
        write_durably(&self.dir, RECOVERY_POINT_FILE, &format!("{end}\n"))?;
        self.damage.retain_within(self.log_start_offset, end)
    }

    /// Empties the log and restarts it at `offset` (its log start and end): every segment
    /// goes (newest first), then a fresh one starts at `offset`. A crash before the
    /// checkpoints below reopens as an empty log at the old start offset.
    pub(super) fn restart_at(&mut self, offset: i64) -> Result<(), LogError> {
        self.wait_for_seals()?;
        let old: Vec<Segment> = self.segments.drain(..).collect();
        for seg in old.into_iter().rev() {
            seg.delete()?;
        }
        self.segments.push(Segment::create(&self.dir, offset)?);
        sync_dir(&self.dir)?;
        write_durably(&self.dir, LOG_START_FILE, &format!("{offset}\n"))?;
        self.log_start_offset = offset;
        self.epochs.clear();
        self.epochs.persist(&self.dir)?;
        write_durably(&self.dir, RECOVERY_POINT_FILE, &format!("{offset}\n"))?;
        // Whatever was cleaned here is gone: a checkpoint past the new data would make
        // the cleaner skip it (and drop tombstones whose older values it never mapped).
        let checkpoint = self.dir.join(super::cleaner::CLEANER_CHECKPOINT_FILE);
        match std::fs::remove_file(&checkpoint) {
            Ok(()) => sync_dir(&self.dir)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(super::io_err("remove cleaner checkpoint", &checkpoint)(e)),
        }
        self.damage.retain_within(offset, offset)
    }

    /// Brings a log fenced by a failed fsync back into service without a restart.
    ///
    /// After a failed fsync Linux may have dropped the dirty pages (marking them clean, so
    /// reads can still return bytes that are not on disk) and reports the error only once
    /// per file: a later fsync "succeeds" without writing them. So nothing past the last
    /// durable point (`durable_end`, the high watermark: only a successful fsync moves it)
    /// may be trusted. It is cut off (whole newer segments removed, the active segment
    /// truncated at a batch boundary and fsynced, indexes rebuilt from what is left), and
    /// the log gets a fresh failure flag: requests that still carry the old flag stay
    /// failed, so nothing appended before the failure is ever reported durable.
    /// Returns how many offsets were cut off.
    pub fn recover_from_failed_sync(&mut self, durable_end: i64) -> Result<i64, LogError> {
        if !self.has_failed() {
            return Ok(0);
        }
        // Seals already handed to the sealer finish (or fail) first: none may run while
        // segments are cut. A failed seal left its segment's data or indexes unsynced, so
        // every rolled segment that stays is made durable again here (an fsync of a file
        // with nothing dirty is cheap) before the truncation moves the recovery point.
        self.seals.wait_attempted_blocking(self.rolls);
        let end = self.log_end_offset();
        let durable_end = durable_end.clamp(self.log_start_offset, end);
        let last = self.segments.len() - 1;
        for seg in self.segments[..last].iter_mut().filter(|s| s.base_offset < durable_end) {
            seg.flush()?;
        }
        sync_dir(&self.dir)?;
        if durable_end < end {
            self.truncate_sealed(durable_end)?;
        }
        // fsync what is left through the same descriptor: this consumes the error the
        // kernel still holds for it, and proves the device takes writes again.
        self.active_mut().flush()?;
        // A failed seal may not have written the history it carried.
        self.epochs.mark_dirty();
        self.epochs.persist(&self.dir)?;
        write_durably(&self.dir, RECOVERY_POINT_FILE, &format!("{}\n", self.active().base_offset))?;
        self.seals.set_all_sealed(self.rolls);
        self.failed = Arc::new(AtomicBool::new(false));
        // The raft index follows the cut (and the seals that never wrote their sidecars).
        // Segments below the first translated one hold data only (see `open_raft_index`).
        let translated = self.raft.as_ref().map(|r| (r.first_index(), r.segments().first().map(|s| s.segment_base)));
        if let Some((first, first_base)) = translated {
            self.open_raft_index(first, first_base.unwrap_or(i64::MIN))?;
        }
        Ok(end - self.log_end_offset())
    }

    /// fsyncs the active segment and writes its indexes, once every rolled segment is
    /// sealed.
    pub fn flush(&mut self) -> Result<(), LogError> {
        self.wait_for_seals()?;
        self.flush_active()
    }

    /// Flushes everything and writes the clean-shutdown marker so the next open can skip
    /// the full scan of the active segment. Takes `&mut self` because the log lives behind
    /// a lock; an append after this makes the marker disagree with the files, and the next
    /// open then recovers fully, so a stale marker is harmless.
    pub fn close(&mut self) -> Result<(), LogError> {
        self.flush()?;
        // The marker makes the next open trust every segment, so no batch is re-read.
        self.epochs.persist(&self.dir)?;
        // The marker vouches for the file's length: no preallocated tail may follow.
        self.active_mut().trim_preallocated()?;
        let a = self.active();
        let contents = marker_contents(a.next_offset, a.base_offset, a.size);
        write_durably(&self.dir, CLEAN_SHUTDOWN_FILE, &contents)
    }
}
