//! Compaction of a replicated partition: the cleaner rewrites only the segments below
//! raft's log (their entries purged after a snapshot; see [`crate::log::retained`]), so
//! raft never reads a rewritten entry, and every replica cleans its own copy — as every
//! Kafka broker runs its own cleaner. Offsets and the latest record of every key are the
//! same on every replica; which superseded records are still there may differ.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::Ordering;

use super::RaftReplica;
use crate::broker::log_cleaner::Compactable;
use crate::broker::partition::PartitionError;
use crate::broker::replica::Replica;
use crate::broker::topic_config::EffectiveTopicConfig;
use crate::log::cleaner::{self, Cleanable};
use crate::log::{LogError, PartitionLog};

impl RaftReplica {
    /// Marks the replica as being removed: no cleaner pass starts on it any more (the
    /// caller then waits for one in progress, see
    /// [`crate::broker::log_cleaner::LogCleaner::abort_and_wait`]).
    pub fn mark_removed(&self) {
        self.removed.store(true, Ordering::Release);
    }
}

impl Compactable for RaftReplica {
    fn dir(&self) -> &Path {
        &self.dir
    }

    fn cleaning_view(
        &self,
        now_ms: i64,
    ) -> Result<(Cleanable, EffectiveTopicConfig, HashMap<i64, i64>), PartitionError> {
        let config = Replica::config(self)?;
        let producers = self.state.producer_last_offsets()?;
        let checkpoint = cleaner::read_checkpoint(&self.dir)?;
        // Taken before the log's lock (it takes it too); it only grows, so a bound read
        // a moment early is merely conservative.
        let last_stable = self.state.last_stable_offset()?;
        let log = self.state.log()?;
        // Only segments below raft's log: its first translated segment and the rest are
        // entries raft may still read or send. Nothing of an undecided transaction either.
        let raft_start = log.log().raft_index().and_then(|r| r.segments().first().map(|s| s.segment_base));
        let bound = raft_start.unwrap_or(i64::MIN).min(self.state.high_watermark()).min(last_stable);
        let min_lag = config.compaction.min_compaction_lag_ms;
        Ok((log.log().cleanable(checkpoint, bound, now_ms, min_lag)?, config, producers))
    }

    fn with_log_locked(
        &self,
        f: &mut dyn FnMut(&mut PartitionLog) -> Result<(), LogError>,
    ) -> Result<(), PartitionError> {
        let mut log = self.state.log()?;
        Ok(f(log.data_below_raft_mut())?)
    }

    fn is_removed(&self) -> bool {
        self.removed.load(Ordering::Acquire)
    }
}
