//! What the rewrite keeps of one batch (Kafka's `shouldDiscardBatch` and
//! `shouldRetainRecord`, the `RecordFilter` of `Cleaner.cleanInto`).
//!
//! - A data batch of an aborted transaction is dropped whole (its records are no key's
//!   value); a producer's last batch is kept, emptied, so its sequence survives.
//! - Other data batches (plain, idempotent, or of a committed transaction, which keep
//!   their producer fields and transactional flag) keep the records that are their key's
//!   latest (or past the map); tombstones go after their delete horizon.
//! - A transaction marker stays while a batch of its transaction is in the log. Once none
//!   is, it gets a delete horizon (`delete.retention.ms`, stamped in the batch as for
//!   tombstones) and the first pass after that removes it — unless it is its producer's
//!   last batch, which carries the producer's epoch.
//! - Raft's own control batches are kept as they are.

use std::collections::HashMap;

use super::super::LogError;
use super::super::batch::BatchHeader;
use super::super::txn::read_marker;
use super::offset_map::OffsetMap;
use super::records::{RecordView, delete_horizon, parse_records, plain_records, rebuild_batch};
use super::transactions::TxnCleaning;

/// Everything [`filter_batch`] needs besides the batch and the transaction state.
pub struct FilterContext<'a> {
    pub map: &'a OffsetMap,
    /// Records at or past this offset were not in the map: kept as they are.
    pub end_offset: i64,
    pub now: i64,
    pub delete_retention_ms: i64,
    pub max_batch_bytes: usize,
    /// Each producer's last batch (its last offset): kept even when emptied, so the
    /// producer's sequence survives (Kafka's `isBatchLastRecordOfProducer`).
    pub producer_last_offsets: &'a HashMap<i64, i64>,
}

impl FilterContext<'_> {
    fn is_producers_last(&self, h: &BatchHeader) -> bool {
        h.producer_id >= 0 && self.producer_last_offsets.get(&h.producer_id) == Some(&h.last_offset())
    }
}

/// What became of one batch.
#[derive(Debug, PartialEq)]
pub enum Filtered {
    Unchanged,
    Rewritten,
    Dropped,
}

/// Kafka's `shouldRetainRecord`: the latest record of its key (or past the map), and for
/// a tombstone, not yet past its batch's delete horizon. Keyless records are removed.
fn retain(ctx: &FilterContext<'_>, h: &BatchHeader, r: &RecordView<'_>) -> bool {
    let offset = h.base_offset + i64::from(r.offset_delta);
    if offset >= ctx.end_offset {
        return true;
    }
    let Some(key) = r.key else { return false };
    let latest = ctx.map.get(key).is_none_or(|o| offset >= o);
    latest && (r.has_value || delete_horizon(h).is_none_or(|horizon| ctx.now < horizon))
}

/// Notes a delete horizon still ahead in the log (the log is due for a pass then).
fn note_horizon(horizon_seen: &mut Option<i64>, hz: i64) {
    *horizon_seen = Some(horizon_seen.map_or(hz, |s: i64| s.min(hz)));
}

/// Appends what is kept of one batch to `out`; reports the earliest delete horizon
/// (tombstones, markers) it leaves to come.
pub fn filter_batch(
    ctx: &FilterContext<'_>,
    txns: &mut TxnCleaning<'_>,
    h: &BatchHeader,
    bytes: &[u8],
    scratch: &mut Vec<u8>,
    out: &mut Vec<u8>,
    horizon_seen: &mut Option<i64>,
) -> Result<Filtered, LogError> {
    if h.is_control() {
        return filter_control(ctx, txns, h, bytes, out, horizon_seen);
    }
    if txns.walk.on_data(h) {
        // An aborted transaction's batch: none of its records is a value of its key.
        if !ctx.is_producers_last(h) {
            return Ok(Filtered::Dropped);
        }
        if h.records_count == 0 {
            out.extend_from_slice(bytes);
            return Ok(Filtered::Unchanged);
        }
        rebuild_batch(h, bytes, &[], None, out)?;
        return Ok(Filtered::Rewritten);
    }
    let plain = plain_records(h, bytes, ctx.max_batch_bytes, scratch)?;
    let mut records = Vec::new();
    parse_records(h, plain, &mut records)?;
    let total = records.len();
    records.retain(|r| retain(ctx, h, r));
    let has_tombstone = records.iter().any(|r| !r.has_value);
    let new_horizon = (has_tombstone && delete_horizon(h).is_none()).then(|| ctx.now + ctx.delete_retention_ms);
    if has_tombstone && let Some(hz) = new_horizon.or_else(|| delete_horizon(h)) {
        note_horizon(horizon_seen, hz);
    }
    if records.len() == total && new_horizon.is_none() {
        out.extend_from_slice(bytes);
        return Ok(Filtered::Unchanged);
    }
    if records.is_empty() && !ctx.is_producers_last(h) {
        return Ok(Filtered::Dropped);
    }
    rebuild_batch(h, bytes, &records, new_horizon, out)?;
    Ok(Filtered::Rewritten)
}

/// A control batch: a transaction marker (see the module docs), or raft's (kept).
fn filter_control(
    ctx: &FilterContext<'_>,
    txns: &mut TxnCleaning<'_>,
    h: &BatchHeader,
    bytes: &[u8],
    out: &mut Vec<u8>,
    horizon_seen: &mut Option<i64>,
) -> Result<Filtered, LogError> {
    let Some(marker) = read_marker(h, bytes)? else {
        out.extend_from_slice(bytes);
        return Ok(Filtered::Unchanged);
    };
    let no_data_left = txns.walk.on_marker(h.producer_id, h.base_offset);
    let kept = if !no_data_left {
        out.extend_from_slice(bytes);
        Filtered::Unchanged
    } else {
        match delete_horizon(h) {
            None => {
                // Its transaction's data is gone: the marker goes after delete.retention.ms.
                let hz = ctx.now.saturating_add(ctx.delete_retention_ms);
                let mut scratch = Vec::new();
                let plain = plain_records(h, bytes, ctx.max_batch_bytes, &mut scratch)?;
                let mut records = Vec::new();
                parse_records(h, plain, &mut records)?;
                rebuild_batch(h, bytes, &records, Some(hz), out)?;
                note_horizon(horizon_seen, hz);
                Filtered::Rewritten
            }
            Some(hz) if ctx.now < hz => {
                out.extend_from_slice(bytes);
                note_horizon(horizon_seen, hz);
                Filtered::Unchanged
            }
            // Past its horizon: it goes, unless it is the producer's last word (a later
            // data batch of the producer, in the log or its state, carries the epoch).
            Some(_) => {
                let later_data = ctx.producer_last_offsets.get(&h.producer_id).is_some_and(|&o| o > h.last_offset());
                if later_data || !txns.is_last_of_producer(h)? {
                    return Ok(Filtered::Dropped);
                }
                out.extend_from_slice(bytes);
                Filtered::Unchanged
            }
        }
    };
    if !marker.commit {
        txns.keep_abort(h.base_offset);
    }
    Ok(kept)
}
