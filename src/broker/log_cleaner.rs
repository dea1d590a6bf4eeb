//! The log cleaner's threads and scheduling (Kafka's `LogCleaner` + `LogCleanerManager`).
//!
//! `log.cleaner.threads` plain OS threads — never a runtime worker, the work is file I/O
//! and CPU — each with its share of `log.cleaner.dedupe.buffer.size` for its offset map.
//! Each round a thread takes the compacted partition most in need, no other thread
//! holding it: first any whose oldest dirty record is past `max.compaction.lag.ms`, then
//! the highest dirty ratio at or above `min.cleanable.dirty.ratio`, then one whose
//! tombstones' delete horizon has passed. It cleans without the partition lock (sealed
//! segments never change) and takes the lock only to swap each cleaned group in. With
//! nothing to do it sleeps `log.cleaner.backoff.ms`, or until the broker stops.

use std::collections::{HashMap, HashSet};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use super::partition::PartitionError;
use super::replica::Replica;
use super::topic_config::EffectiveTopicConfig;
use super::{Broker, now_ms};
use crate::config::KafkaSettings;
use crate::log::cleaner::{self, CleanOutcome, Cleanable, OffsetMap, Swapped};
use crate::log::{LogError, PartitionLog};

/// A log the cleaner compacts: a single-node partition's, or a raft replica's data below
/// raft's log (see [`crate::log::retained`]). Its topic, index and config are the
/// [`Replica`]'s.
pub trait Compactable: Replica {
    /// The partition's directory (the cleaner's key for it, and its checkpoint's home).
    fn dir(&self) -> &Path;
    /// The cleanable part (sealed, committed segments the cleaner may rewrite: below the
    /// high watermark and the last stable offset, so nothing of an undecided transaction,
    /// with the aborted transactions the `.txnindex` files list), the config, and each
    /// producer's last offset (its last batch is kept).
    fn cleaning_view(
        &self,
        now_ms: i64,
    ) -> Result<(Cleanable, EffectiveTopicConfig, HashMap<i64, i64>), PartitionError>;
    /// Runs `f` with the log locked (a swap, the checkpoint).
    fn with_log_locked(
        &self,
        f: &mut dyn FnMut(&mut PartitionLog) -> Result<(), LogError>,
    ) -> Result<(), PartitionError>;
    /// Marked for deletion: no pass may start on it (see [`LogCleaner::abort_and_wait`]).
    fn is_removed(&self) -> bool;
}

#[derive(Default)]
struct Shared {
    stopped: Mutex<bool>,
    wake: Condvar,
    /// Partitions (by directory) a thread is cleaning.
    busy: Mutex<HashSet<PathBuf>>,
    /// Signalled whenever a partition leaves `busy`.
    released: Condvar,
    /// Earliest delete horizon of a tombstone left in each partition by the last pass
    /// (after a restart, read from the partition's cleaner checkpoint).
    horizons: Mutex<HashMap<PathBuf, Option<i64>>>,
}

/// Handle on the cleaner threads.
#[derive(Default)]
pub struct LogCleaner {
    shared: Arc<Shared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl LogCleaner {
    /// Starts the threads (none when `log.cleaner.enable` is false).
    pub fn start(&self, broker: Weak<Broker>, settings: &KafkaSettings) {
        if !settings.log_cleaner_enable || settings.log_cleaner_threads <= 0 {
            return;
        }
        let threads = settings.log_cleaner_threads as usize;
        let buffer = usize::try_from(settings.log_cleaner_dedupe_buffer_size).unwrap_or(usize::MAX) / threads;
        let backoff = Duration::from_millis(settings.log_cleaner_backoff_ms.max(0) as u64);
        let Ok(mut handles) = self.threads.lock() else { return };
        for i in 0..threads {
            let (shared, broker) = (self.shared.clone(), broker.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("log-cleaner-{i}"))
                .spawn(move || run(&shared, &broker, buffer, backoff));
            match spawned {
                Ok(h) => handles.push(h),
                Err(e) => tracing::error!(error = %e, "cannot start a log cleaner thread"),
            }
        }
    }

    /// Waits until no cleaner thread works on the partition in `dir`, which the caller
    /// has marked removed, so no pass starts on it again. A pass in progress stops after
    /// the group it is cleaning; its swaps are refused by the removed partition.
    pub fn abort_and_wait(&self, dir: &Path) {
        if let Ok(mut h) = self.shared.horizons.lock() {
            h.remove(dir);
        }
        let Ok(mut busy) = self.shared.busy.lock() else { return };
        while busy.contains(dir) {
            match self.shared.released.wait(busy) {
                Ok(b) => busy = b,
                Err(_poisoned) => return,
            }
        }
    }

    /// Stops the threads (a pass in progress finishes its current group first).
    pub fn stop(&self) {
        if let Ok(mut stopped) = self.shared.stopped.lock() {
            *stopped = true;
        }
        self.shared.wake.notify_all();
        let handles = self.threads.lock().map(|mut h| std::mem::take(&mut *h)).unwrap_or_default();
        for h in handles {
            if h.join().is_err() {
                tracing::error!("a log cleaner thread panicked");
            }
        }
    }
}

fn stopped(shared: &Shared) -> bool {
    shared.stopped.lock().map_or(true, |s| *s)
}

fn run(shared: &Shared, broker: &Weak<Broker>, buffer: usize, backoff: Duration) {
    let mut map = OffsetMap::with_buffer(buffer);
    while !stopped(shared) {
        let Some(b) = broker.upgrade() else { return };
        let worked = clean_filthiest(shared, &b, &mut map);
        drop(b);
        if worked {
            continue;
        }
        let Ok(guard) = shared.stopped.lock() else { return };
        if *guard {
            return;
        }
        let _unused = shared.wake.wait_timeout(guard, backoff);
    }
}

/// Why a partition is chosen, most urgent first.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
enum Need {
    TombstonesDue,
    Dirty(f64),
    PastMaxLag,
}

fn need(shared: &Shared, p: &dyn Compactable, now: i64) -> Result<Option<Need>, PartitionError> {
    let config = p.config()?;
    if !config.cleanup_compact {
        return Ok(None);
    }
    let (c, config, _) = p.cleaning_view(now)?;
    let dirty = c.dirty_bytes() > 0;
    if dirty && c.past_max_lag(now, config.compaction.max_compaction_lag_ms) {
        return Ok(Some(Need::PastMaxLag));
    }
    let ratio = c.dirty_ratio();
    if dirty && ratio >= config.compaction.min_cleanable_dirty_ratio {
        return Ok(Some(Need::Dirty(ratio)));
    }
    let known = shared.horizons.lock().ok().and_then(|h| h.get(p.dir()).copied());
    let horizon = match known {
        Some(h) => h,
        None => {
            let h = cleaner::read_checkpoint_file(p.dir())?.and_then(|c| c.tombstone_horizon);
            if let Ok(mut map) = shared.horizons.lock() {
                map.insert(p.dir().to_path_buf(), h);
            }
            h
        }
    };
    Ok(horizon.is_some_and(|h| h <= now).then_some(Need::TombstonesDue))
}

/// Cleans the partition most in need; `false` when none is.
fn clean_filthiest(shared: &Shared, broker: &Broker, map: &mut OffsetMap) -> bool {
    let now = now_ms();
    let mut best: Option<(Need, Arc<dyn Replica>)> = None;
    let busy = shared.busy.lock().map(|b| b.clone()).unwrap_or_default();
    for topic in broker.topics.all() {
        for r in topic.replicas() {
            let Some(p) = r.compactable() else { continue };
            if busy.contains(p.dir()) {
                continue;
            }
            match need(shared, p, now) {
                Ok(Some(n)) if best.as_ref().is_none_or(|(b, _)| n > *b) => best = Some((n, r.clone())),
                Ok(_) | Err(PartitionError::Removed) => {}
                Err(e) => tracing::warn!(
                    topic = p.topic(),
                    partition = p.index(),
                    error = %e,
                    "cannot check for cleaning"
                ),
            }
        }
    }
    let Some((why, replica)) = best else { return false };
    let Some(p) = replica.compactable() else { return false };
    let claimed = shared.busy.lock().map(|mut b| b.insert(p.dir().to_path_buf())).unwrap_or(false);
    if !claimed {
        return true;
    }
    // Checked after claiming: a deletion marks the partition before it waits for `busy`
    // (see `abort_and_wait`), so either it waits for this pass or this pass sees the mark.
    let result = if p.is_removed() {
        Err(PartitionError::Removed)
    } else {
        clean_partition(p, map, now, &|| stopped(shared) || p.is_removed())
    };
    if let Ok(mut b) = shared.busy.lock() {
        b.remove(p.dir());
    }
    shared.released.notify_all();
    if let Err(PartitionError::Removed) = result {
        return true;
    }
    match result {
        Ok(outcome) => {
            if let Ok(mut h) = shared.horizons.lock() {
                h.insert(p.dir().to_path_buf(), outcome.next_tombstone_horizon);
            }
            if outcome.groups_swapped > 0 {
                tracing::info!(
                    topic = p.topic(),
                    partition = p.index(),
                    reason = ?why,
                    groups = outcome.groups_swapped,
                    bytes_before = outcome.bytes_before,
                    bytes_after = outcome.bytes_after,
                    clean_up_to = outcome.end_offset,
                    "cleaned log"
                );
            }
        }
        Err(e) => {
            tracing::warn!(topic = p.topic(), partition = p.index(), error = %e, "log cleaning failed");
            // Not retried in a loop: the horizon map marks it as done until it is dirtier.
            if let Ok(mut h) = shared.horizons.lock() {
                h.insert(p.dir().to_path_buf(), None);
            }
            return false;
        }
    }
    true
}

/// One pass over one partition; swaps take the partition lock, the rest does not.
pub fn clean_partition(
    p: &dyn Compactable,
    map: &mut OffsetMap,
    now: i64,
    stop: &dyn Fn() -> bool,
) -> Result<CleanOutcome, PartitionError> {
    let (c, config, producers) = p.cleaning_view(now)?;
    let outcome = cleaner::clean::clean(
        &c,
        &config.compaction,
        config.log.segment_bytes,
        map,
        now,
        &producers,
        stop,
        |group, cleaned| {
            let mut cleaned = Some(cleaned);
            let mut swapped = Swapped::Stale;
            p.with_log_locked(&mut |log| {
                if let Some(cleaned) = cleaned.take() {
                    swapped = cleaner::swap_in(log, group, cleaned, &mut |_| ControlFlow::Continue(()))?;
                }
                Ok(())
            })
            .map_err(|e| match e {
                PartitionError::Log(e) => e,
                other => LogError::InvalidArgument(other.to_string()),
            })?;
            Ok(swapped == Swapped::Done)
        },
    )?;
    if let Some(after) = cleaner::checkpoint_after(c.first_dirty, &outcome) {
        // Under the partition lock, so never into a deleted topic's reused directory.
        p.with_log_locked(&mut |_| cleaner::write_checkpoint(p.dir(), after))?;
    }
    Ok(outcome)
}
