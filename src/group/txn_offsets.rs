//! Transactional offset commits (KIP-98's `sendOffsetsToTransaction`, which Kafka Streams
//! and every consume-transform-produce loop use for exactly-once).
//!
//! - AddOffsetsToTxn (at the transaction coordinator) adds the group's partition of
//!   `__consumer_offsets` to the producer's transaction.
//! - TxnOffsetCommit (here) is validated like OffsetCommit and written to that partition
//!   as a transactional batch of the producer, without sequence numbers (as Kafka's
//!   coordinator writes it; see [`crate::broker::producer_state`]); the offsets are kept
//!   pending per producer id in [`GroupEntry::pending`](super::coordinator::GroupEntry),
//!   invisible to OffsetFetch (which answers UNSTABLE_OFFSET_COMMIT for them when it
//!   requires stable offsets).
//! - The transaction's COMMIT or ABORT marker for that partition is appended here, under
//!   the coordinator's lock ([`GroupCoordinator::write_txn_marker`], called for markers
//!   written locally and for WriteTxnMarkers alike): a COMMIT makes the producer's
//!   pending offsets the group's, an ABORT drops them. Reads wait for the marker to be
//!   durable like for any other change (see [`super::durability`]).
//! - Loading replays the same: a transactional batch's offsets become pending, a marker
//!   settles them ([`replay_batch`]).
//!
//! A committed transaction's offsets replace the group's (Kafka also keeps a plain
//! commit written after the transaction's batch; clients do not mix the two for one
//! group).

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::records::RecordBatchDecoder;
use tracing::warn;

use crate::broker::now_ms;
use crate::broker::replica::Commit;
use crate::group::coordinator::State;
use crate::group::records::{self, RecordKey};
use crate::group::{GroupCoordinator, OFFSETS_TOPIC, partition_for};
use crate::log::batch::BatchHeader;
use crate::log::txn::{TxnMarker, marker_batch, read_marker};

impl GroupCoordinator {
    /// Appends a transaction marker of `producer_id` to partition `index` of
    /// `__consumer_offsets`, which this broker must lead (NOT_LEADER_OR_FOLLOWER
    /// otherwise, so the transaction coordinator retries at the new leader), and settles
    /// the producer's pending offsets in that partition's groups. Returns the commit the
    /// answer waits for.
    pub(crate) fn write_txn_marker(
        &self,
        broker: &crate::broker::Broker,
        index: i32,
        producer_id: i64,
        producer_epoch: i16,
        marker: TxnMarker,
    ) -> Result<Option<Commit>, ResponseError> {
        let topic = broker.topic(OFFSETS_TOPIC).ok_or(ResponseError::UnknownTopicOrPartition)?;
        if topic.replica(index).is_none() {
            return Err(ResponseError::UnknownTopicOrPartition);
        }
        let mut state = self.lock()?;
        let now = now_ms();
        self.ensure_loaded(&mut state, &topic, index, now).map_err(|e| match e {
            ResponseError::NotCoordinator | ResponseError::CoordinatorNotAvailable => {
                ResponseError::NotLeaderOrFollower
            }
            other => other,
        })?;
        let batch = marker_batch(producer_id, producer_epoch, marker, now).map_err(|e| {
            warn!(error = %e, "a transaction marker could not be built");
            ResponseError::UnknownServerError
        })?;
        let header = BatchHeader::parse(&batch).map_err(|e| {
            warn!(error = %e, "a transaction marker could not be parsed");
            ResponseError::UnknownServerError
        })?;
        let barrier = self.append_batch(&mut state, &topic, index, batch, vec![header], now)?;
        settle(&mut state, |id| partition_for(id, topic.partition_count()) == index, producer_id, marker.commit);
        Ok(barrier.map(|(_, commit)| commit))
    }
}

/// A marker of `producer_id` settles its pending offsets in the groups `here` selects.
fn settle(state: &mut State, here: impl Fn(&str) -> bool, producer_id: i64, commit: bool) {
    for (id, entry) in state.groups.iter_mut().filter(|(id, _)| here(id)) {
        let Some(offsets) = entry.pending.remove(&producer_id) else { continue };
        if commit {
            tracing::debug!(group = %id, producer_id, offsets = offsets.len(), "transactional offsets committed");
            entry.offsets.extend(offsets);
        }
    }
}

/// Replays one transactional or control batch of `__consumer_offsets` (`batch`, described
/// by `h`) while loading a partition's groups; returns how many offset records it held,
/// or `None` when it is neither (a plain batch, replayed record by record).
pub(crate) fn replay_batch(
    state: &mut State,
    here: impl Fn(&str) -> bool,
    h: &BatchHeader,
    batch: &Bytes,
    now: i64,
) -> Option<usize> {
    if h.is_control() {
        // A raft leader's own entries carry no producer; a marker settles a transaction.
        if h.producer_id >= 0 {
            match read_marker(h, batch) {
                Ok(Some(marker)) => settle(state, here, h.producer_id, marker.commit),
                Ok(None) => {}
                Err(e) => warn!(offset = h.base_offset, error = %e, "skipping an unreadable transaction marker"),
            }
        }
        return Some(0);
    }
    if !h.is_transactional() {
        return None;
    }
    let mut slice = batch.clone();
    let set = match RecordBatchDecoder::decode(&mut slice) {
        Ok(set) => set,
        Err(e) => {
            warn!(offset = h.base_offset, error = %e, "skipping an undecodable transactional {OFFSETS_TOPIC} batch");
            return Some(0);
        }
    };
    let mut count = 0;
    for r in set.records {
        let (Some(key), Some(value)) = (r.key.as_deref(), r.value.as_deref()) else { continue };
        let decoded = records::decode_key(key).and_then(|k| match k {
            RecordKey::OffsetCommit { group, topic, partition } => {
                let v = records::decode_offset_value(value)?;
                state.entry(&group, now).pending.entry(h.producer_id).or_default().insert((topic, partition), v);
                Ok(())
            }
            _ => Ok(()),
        });
        match decoded {
            Ok(()) => count += 1,
            Err(e) => warn!(error = %e, "skipping an undecodable transactional offset commit"),
        }
    }
    Some(count)
}
