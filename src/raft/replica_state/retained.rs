//! A compacted partition's data below raft's log (see [`crate::log::retained`]): where
//! raft may purge so that the cleaner can rewrite it, and the chunks that carry it with a
//! snapshot to a far-behind follower.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use tokio::sync::watch;

use super::{ReplicaState, SnapshotData};
use crate::broker::partition::PartitionError;
use crate::log::LogError;
use crate::log::batch::BatchIter;
use crate::log::retained::StagedData;
use crate::raft::LogId;
use crate::raft::log_store::PartitionRaftLog;
use crate::raft::network::RetainedChunk;

/// Retained data being received for the snapshot at `last`.
pub(super) struct Staging {
    last: LogId,
    range: (i64, i64),
    /// The `from` the next chunk must have.
    expected: i64,
    data: StagedData,
}

/// Snapshots' retained data: the transfer under way, and the last ones received complete
/// (each in its own directory), kept until their snapshot is installed.
#[derive(Default)]
pub(super) struct Stagings {
    receiving: Option<Staging>,
    complete: VecDeque<Staging>,
}

/// Complete stagings kept (a newer transfer completing between a snapshot's check and its
/// install must not take its data away).
const COMPLETE_KEPT: usize = 2;

fn refused(why: impl std::fmt::Display) -> String {
    why.to_string()
}

impl ReplicaState {
    /// Whether the topic is compacted (set when the replica starts and when its configs
    /// change).
    pub fn set_compacted(&self, compacted: bool) {
        self.compacted.send_if_modified(|c| std::mem::replace(c, compacted) != compacted);
    }

    /// Each producer's last offset among the applied entries (the cleaner keeps its last
    /// batch).
    pub fn producer_last_offsets(&self) -> Result<std::collections::HashMap<i64, i64>, PartitionError> {
        Ok(self.lock()?.producers.last_offsets())
    }

    /// Changes when [`Self::set_compacted`] changes it.
    pub fn watch_compacted(&self) -> watch::Receiver<bool> {
        self.compacted.subscribe()
    }

    /// Where a snapshot lets raft purge (see [`crate::log::PartitionLog::raft_purge_point`]):
    /// below the log start, and for a compacted log below the high watermark too — and
    /// below the end of the entry [`Self::hold_compaction_purge`] names, if any (not
    /// below the log start: that data is gone on every replica).
    pub(super) fn purge_point(&self, log: &PartitionRaftLog) -> Option<(u64, i64)> {
        let compacted_below = (*self.compacted.borrow()).then(|| {
            let hw = self.high_watermark();
            match self.purge_hold.load(Ordering::Acquire) {
                u64::MAX => hw,
                held => log.end_offset_of(held).map_or(i64::MIN, |end| end.min(hw)),
            }
        });
        log.log().raft_purge_point(compacted_below)
    }

    /// On the leader: a compacted partition's purges stop at raft entry `held` (the
    /// lowest a live follower matched), or nowhere (`None`).
    pub fn hold_compaction_purge(&self, held: Option<u64>) {
        self.purge_hold.store(held.unwrap_or(u64::MAX), Ordering::Release);
    }

    /// The offsets whose data goes with `snapshot` (its log start up to its end), if any.
    pub fn retained_range(snapshot: &[u8]) -> Option<(i64, i64)> {
        let data: SnapshotData = serde_json::from_slice(snapshot).ok()?;
        let start = data.log_start?;
        (start < data.high_watermark).then_some((start, data.high_watermark))
    }

    /// Whole batches of committed data from `from` (or the log start, if later) below
    /// `to`, about `max_bytes`, with the offset after them; `None` when none is left.
    pub fn read_retained(&self, from: i64, to: i64, max_bytes: usize) -> Result<Option<(Bytes, i64)>, PartitionError> {
        let plan = {
            let log = self.log()?;
            let log = log.log();
            let upto = to.min(self.high_watermark());
            let from = from.max(log.log_start_offset());
            if from >= upto {
                return Ok(None);
            }
            log.plan_read(from, max_bytes, upto, true)?
        };
        // Read without the log's lock (the plan holds the files open).
        let bytes = plan.execute()?;
        let mut next = None;
        for item in BatchIter::new(&bytes) {
            let (h, _) = item.map_err(|e| LogError::InvalidArgument(e.to_string()))?;
            next = Some(h.last_offset() + 1);
        }
        Ok(next.map(|n| (bytes, n)))
    }

    /// Stages one chunk of a snapshot's retained data; the first chunk of a snapshot (its
    /// `from` is the range's start) starts over, the others must follow the last one.
    pub fn stage_retained(&self, chunk: RetainedChunk) -> Result<(), String> {
        let Some(last) = chunk.last else { return Err("snapshot data chunk without a snapshot point".into()) };
        // Before the staging lock, never under it (an install takes it under the log's).
        let (dir, segment_bytes) = {
            let log = self.log().map_err(refused)?;
            (log.dir().to_path_buf(), log.log().config().segment_bytes)
        };
        let mut stagings = self.staging.lock().map_err(|_poisoned| refused(PartitionError::Poisoned))?;
        if chunk.from == chunk.range.0 {
            if let Some(old) = stagings.receiving.take() {
                old.data.discard().map_err(refused)?;
            }
            if let Some(i) = stagings.complete.iter().position(|s| s.last == last)
                && let Some(old) = stagings.complete.remove(i)
            {
                old.data.discard().map_err(refused)?;
            }
            let data = StagedData::create(&dir, last.index, segment_bytes).map_err(refused)?;
            stagings.receiving = Some(Staging { last, range: chunk.range, expected: chunk.from, data });
        }
        let Some(s) = stagings.receiving.as_mut() else { return Err("snapshot data chunk without its start".into()) };
        if s.last != last || s.range != chunk.range || s.expected != chunk.from {
            return Err(format!("snapshot data chunk from {} does not follow the last one", chunk.from));
        }
        s.data.append(&chunk.data, chunk.range.1).map_err(refused)?;
        s.expected = chunk.next;
        if chunk.done {
            s.data.finish().map_err(refused)?;
            if let Some(done) = stagings.receiving.take() {
                stagings.complete.push_back(done);
            }
            while stagings.complete.len() > COMPLETE_KEPT {
                if let Some(old) = stagings.complete.pop_front() {
                    old.data.discard().map_err(refused)?;
                }
            }
        }
        Ok(())
    }

    /// Whether the retained data of the snapshot at `last` was staged complete.
    pub fn retained_staged(&self, last: Option<LogId>) -> bool {
        let stagings = self.staging.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        stagings.complete.iter().any(|s| Some(s.last) == last)
    }

    /// Forgets every staging, and removes their directories (a snapshot was installed).
    pub(super) fn discard_stagings(&self, dir: &std::path::Path) -> Result<(), LogError> {
        if let Ok(mut stagings) = self.staging.lock() {
            *stagings = Stagings::default();
        }
        crate::log::retained::discard_staged(dir, None)
    }

    /// For installing the snapshot at `last`: where its retained data staged complete
    /// ends (then handed over: the install moves it into the log), if it was.
    pub(super) fn take_staged(&self, last: LogId) -> Result<Option<i64>, PartitionError> {
        let mut stagings = self.staging.lock().map_err(|_poisoned| PartitionError::Poisoned)?;
        let Some(i) = stagings.complete.iter().position(|s| s.last == last) else { return Ok(None) };
        Ok(stagings.complete.remove(i).map(|s| s.data.next()))
    }
}
