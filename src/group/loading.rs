//! Loading groups from `__consumer_offsets`: at broker start, and for one partition
//! whenever its in-memory groups must be rebuilt from the log (after a failed write, see
//! [`super::durability`]).

use kafka_protocol::records::RecordBatchDecoder;
use tracing::{info, warn};

use crate::broker::now_ms;
use crate::broker::partition::PartitionError;
use crate::broker::replica::Replica;
use crate::broker::topics::Topic;
use crate::group::classic::ClassicGroup;
use crate::group::consumer::{ConsumerGroup, record_type};
use crate::group::coordinator::{Group, GroupEntry, State};
use crate::group::records::{self, RecordKey};
use crate::group::txn_offsets::replay_batch;
use crate::group::{GroupCoordinator, partition_for};
use crate::log::BatchIter;

impl GroupCoordinator {
    /// Reloads every group from `__consumer_offsets` (broker start).
    pub fn load(&self, topic: &Topic) -> Result<(), PartitionError> {
        let started = std::time::Instant::now();
        let now = now_ms();
        let mut state = self.lock().map_err(PartitionError::Rejected)?;
        let mut count = 0usize;
        for partition in topic.partitions() {
            count += self.replay_partition(&mut state, &*partition, topic.partition_count(), now)?;
        }
        info!(groups = state.groups.len(), records = count, elapsed = ?started.elapsed(), "loaded consumer groups");
        Ok(())
    }

    /// Replaces the groups of one partition of `__consumer_offsets` (of `partitions`) with
    /// what its log holds up to the high watermark; returns how many records it read.
    pub(crate) fn replay_partition(
        &self,
        state: &mut State,
        partition: &dyn Replica,
        partitions: i32,
        now: i64,
    ) -> Result<usize, PartitionError> {
        let here = |id: &str| partition_for(id, partitions) == partition.index();
        let before: Vec<String> = state.groups.keys().filter(|id| here(id)).cloned().collect();
        for id in &before {
            // Parked requests of a dropped group are answered with an error.
            state.groups.remove(id);
            state.reschedule(id);
        }
        let mut count = 0usize;
        let (mut offset, end) = (partition.offsets()?.log_start, partition.high_watermark());
        while offset < end {
            let read = partition.read(offset, 1 << 20, true)?;
            if read.records.is_empty() {
                break;
            }
            for batch in BatchIter::new(&read.records) {
                let (header, range) = batch.map_err(crate::log::LogError::from)?;
                offset = header.next_offset();
                let mut slice = read.records.slice(range);
                // Transactional offsets and markers (see `super::txn_offsets`).
                if let Some(n) = replay_batch(state, here, &header, &slice, now) {
                    count += n;
                    continue;
                }
                match RecordBatchDecoder::decode(&mut slice) {
                    Ok(set) => {
                        for r in set.records {
                            count += 1;
                            replay(state, r.key.as_deref(), r.value.as_deref(), now);
                        }
                    }
                    Err(e) => warn!(partition = partition.index(), offset, error = %e, "skipping undecodable batch"),
                }
            }
        }
        // Groups deleted (tombstoned) and left without offsets are gone.
        state.groups.retain(|id, e| {
            !here(id)
                || match &e.group {
                    Group::Consumer(g) => g.exists() || e.holds_offsets(),
                    Group::Classic(g) => g.generation() > 0 || e.holds_offsets(),
                }
        });
        let ids: Vec<String> = state.groups.keys().filter(|id| here(id)).cloned().collect();
        for id in ids {
            if let Some(GroupEntry { group: Group::Consumer(g), .. }) = state.groups.get_mut(&id) {
                g.on_loaded(now, &self.settings.consumer);
            }
            state.reschedule(&id);
        }
        Ok(count)
    }
}

/// Applies one record of `__consumer_offsets` to the in-memory state.
fn replay(state: &mut State, key: Option<&[u8]>, value: Option<&[u8]>, now: i64) {
    let Some(key) = key else { return };
    let decoded = records::decode_key(key).and_then(|k| {
        match (&k, value) {
            (RecordKey::OffsetCommit { group, topic, partition }, Some(v)) => {
                let v = records::decode_offset_value(v)?;
                state.entry(group, now).offsets.insert((topic.clone(), *partition), v);
            }
            (RecordKey::OffsetCommit { group, topic, partition }, None) => {
                if let Some(e) = state.groups.get_mut(group) {
                    e.offsets.remove(&(topic.clone(), *partition));
                }
            }
            (RecordKey::GroupMetadata { group }, Some(v)) => {
                let v = records::decode_group_metadata(v)?;
                state.entry(group, now).group = Group::Classic(Box::new(ClassicGroup::restore(group, v, now)));
            }
            (RecordKey::GroupMetadata { group }, None) => {
                // The group is gone; its offsets have tombstones of their own.
                if let Some(e) = state.groups.get_mut(group) {
                    e.group = Group::Classic(Box::new(ClassicGroup::new(group, now)));
                }
            }
            (RecordKey::Other { record_type: rt, group }, _) if record_type::is_consumer_group(*rt) => {
                let entry = state.entry(group, now);
                if !matches!(entry.group, Group::Consumer(_)) {
                    entry.group = Group::Consumer(ConsumerGroup::new(group));
                }
                if let Group::Consumer(g) = &mut entry.group {
                    g.replay(*rt, key, value)?;
                }
            }
            (RecordKey::Other { record_type, group }, _) => {
                warn!(group = %group, record_type, "ignoring a __consumer_offsets record of an unsupported type");
            }
        }
        Ok(())
    });
    if let Err(e) = decoded {
        warn!(error = %e, "skipping an undecodable __consumer_offsets record");
    }
}
