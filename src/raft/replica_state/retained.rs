//! A compacted partition's data below raft's log (see [`crate::log::retained`]): where
//! raft may purge so that the cleaner can rewrite it, and the chunks that carry it with a
//! snapshot to a far-behind follower.

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
    last: Option<LogId>,
    range: (i64, i64),
    /// The `from` the next chunk must have.
    expected: i64,
    data: StagedData,
    complete: bool,
}

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
    /// below the log start, and for a compacted log below the high watermark too.
    pub(super) fn purge_point(&self, log: &PartitionRaftLog) -> Option<(u64, i64)> {
        let compacted_below = (*self.compacted.borrow()).then(|| self.high_watermark());
        log.log().raft_purge_point(compacted_below)
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
        let log = self.log()?;
        let log = log.log();
        let upto = to.min(self.high_watermark());
        let from = from.max(log.log_start_offset());
        if from >= upto {
            return Ok(None);
        }
        let bytes = log.read(from, max_bytes, upto, true)?;
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
        let mut staging = self.staging.lock().map_err(|_poisoned| refused(PartitionError::Poisoned))?;
        if chunk.from == chunk.range.0 {
            let (dir, segment_bytes) = {
                let log = self.log().map_err(refused)?;
                (log.dir().to_path_buf(), log.log().config().segment_bytes)
            };
            let data = StagedData::create(&dir, segment_bytes).map_err(refused)?;
            *staging =
                Some(Staging { last: chunk.last, range: chunk.range, expected: chunk.from, data, complete: false });
        }
        let Some(s) = staging.as_mut() else { return Err("snapshot data chunk without its start".into()) };
        if s.last != chunk.last || s.range != chunk.range || s.expected != chunk.from || s.complete {
            return Err(format!("snapshot data chunk from {} does not follow the last one", chunk.from));
        }
        s.data.append(&chunk.data, chunk.range.1).map_err(refused)?;
        s.expected = chunk.next;
        if chunk.done {
            s.data.finish().map_err(refused)?;
            s.complete = true;
        }
        Ok(())
    }

    /// Whether the retained data of the snapshot at `last` was staged complete.
    pub fn retained_staged(&self, last: Option<LogId>) -> bool {
        let staging = self.staging.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        staging.as_ref().is_some_and(|s| s.complete && s.last == last)
    }

    /// For installing the snapshot at `last`: whether its retained data is staged
    /// complete (then handed over: the install moves it into the log).
    pub(super) fn take_staged(&self, last: LogId) -> Result<bool, PartitionError> {
        let mut staging = self.staging.lock().map_err(|_poisoned| PartitionError::Poisoned)?;
        let ready = staging.as_ref().is_some_and(|s| s.complete && s.last == Some(last));
        if ready {
            *staging = None;
        }
        Ok(ready)
    }
}
