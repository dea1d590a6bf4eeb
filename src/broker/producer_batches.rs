//! How batches meet a partition's producer state: the checks before an append and what
//! a stored batch changes after it. One path for every partition kind (the local log,
//! a raft replica's applied entries and its leader's proposals, the in-memory store of
//! the handler tests), so an idempotent batch, a transactional batch and a transaction
//! marker mean the same thing everywhere.

use kafka_protocol::ResponseError;

use crate::broker::partition::PartitionError;
use crate::broker::producer_state::{
    BatchMeta, CompletedTxn, ProducerLimits, ProducerStateTable, SeqCheck, add_seq, next_seq,
};
use crate::broker::txn_verification::TxnVerification;
use crate::log::LogError;
use crate::log::batch::{BatchHeader, BatchIter};
use crate::log::txn::{AbortedTxn, read_marker};

/// The sequence range and offsets of a stored batch whose first offset is `base_offset`.
pub fn batch_meta(h: &BatchHeader, base_offset: i64) -> BatchMeta {
    BatchMeta {
        first_seq: h.base_sequence,
        last_seq: add_seq(h.base_sequence, h.last_offset_delta),
        first_offset: base_offset,
        last_offset: base_offset + i64::from(h.last_offset_delta),
    }
}

/// Records one batch (`batch`: its bytes, described by `h`) stored at `base_offset`:
/// a producer's batch updates its sequences (and opens its transaction), a marker
/// closes its transaction. Returns the transaction a marker closed.
pub fn apply_batch(
    table: &mut ProducerStateTable,
    h: &BatchHeader,
    batch: &[u8],
    base_offset: i64,
    now_ms: i64,
) -> Result<Option<CompletedTxn>, LogError> {
    if h.producer_id < 0 {
        return Ok(None);
    }
    if h.is_control() {
        let Some(marker) = read_marker(h, batch)? else { return Ok(None) };
        let completed = table.record_marker(
            h.producer_id,
            h.producer_epoch,
            marker.coordinator_epoch,
            marker.commit,
            base_offset,
            now_ms,
        );
        return Ok(Some(completed));
    }
    table.record_batch(h.producer_id, h.producer_epoch, batch_meta(h, base_offset), h.is_transactional(), now_ms);
    Ok(None)
}

/// The index entry of a transaction a marker closed, if it was aborted with records to
/// drop (an empty aborted transaction hides nothing). Call right after the marker is
/// recorded: the entry carries the table's first open transaction then.
pub fn aborted_entry(table: &ProducerStateTable, completed: CompletedTxn) -> Option<AbortedTxn> {
    (completed.aborted && completed.first_offset < completed.last_offset).then(|| AbortedTxn {
        producer_id: completed.producer_id,
        first_offset: completed.first_offset,
        last_offset: completed.last_offset,
        last_stable_offset: table.first_open_txn().unwrap_or(completed.last_offset + 1),
    })
}

/// Records stored `batches` (offsets assigned); returns the aborted transactions they
/// closed, as `.txnindex` entries, in order.
pub fn apply_batches(table: &mut ProducerStateTable, batches: &[u8], now_ms: i64) -> Result<Vec<AbortedTxn>, LogError> {
    let mut aborted = Vec::new();
    for item in BatchIter::new(batches) {
        let (h, range) = item?;
        if let Some(completed) = apply_batch(table, &h, &batches[range], h.base_offset, now_ms)? {
            aborted.extend(aborted_entry(table, completed));
        }
    }
    Ok(aborted)
}

/// Checks every batch of one append (`data`, described by `headers`) against the
/// producer table and against the batches before it in the same append. A transaction
/// marker (appended alone) is checked for fencing.
pub(crate) fn check_sequences(
    table: &ProducerStateTable,
    headers: &[BatchHeader],
    data: &[u8],
    txn: TxnVerification,
) -> SeqCheck {
    let first = &headers[0];
    if first.is_control() && first.producer_id >= 0 {
        let marker = match read_marker(first, data) {
            Ok(Some(marker)) if headers.len() == 1 => marker,
            _ => return SeqCheck::Reject(ResponseError::InvalidRecord),
        };
        return match table.check_marker(first.producer_id, first.producer_epoch, marker.coordinator_epoch) {
            Ok(()) => SeqCheck::Append,
            Err(code) => SeqCheck::Reject(code),
        };
    }
    let last_seq = |h: &BatchHeader| add_seq(h.base_sequence, h.last_offset_delta);
    let verdict = table.check_batch(
        first.producer_id,
        first.producer_epoch,
        first.base_sequence,
        last_seq(first),
        first.is_transactional(),
    );
    if verdict != SeqCheck::Append {
        return verdict;
    }
    let coordinators = first.base_sequence == crate::broker::producer_state::NO_SEQUENCE;
    if first.is_transactional() && !coordinators && !table.txn_verified(first.producer_id, first.producer_epoch, txn) {
        // KIP-890: not verified with the coordinator, or its transaction ended meanwhile.
        return SeqCheck::Reject(ResponseError::InvalidTxnState);
    }
    for pair in headers.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        if b.producer_id >= 0
            && (b.producer_id != a.producer_id
                || b.producer_epoch != a.producer_epoch
                || b.is_transactional() != a.is_transactional()
                || b.base_sequence != next_seq(last_seq(a)))
        {
            return SeqCheck::Reject(ResponseError::OutOfOrderSequenceNumber);
        }
    }
    SeqCheck::Append
}

/// Admits the producer of an append's batches (one producer per append: see
/// [`check_sequences`]) if the table tracks it already or both caps have room.
pub(crate) fn admit_new_producer(
    table: &ProducerStateTable,
    producer_id: i64,
    limits: ProducerLimits<'_>,
) -> Result<(), PartitionError> {
    if producer_id < 0 || table.contains(producer_id) {
        return Ok(());
    }
    if table.len() >= limits.per_partition {
        return Err(PartitionError::ProducerIdLimit {
            setting: "max.producer.ids.per.partition",
            max: limits.per_partition,
            producer_id,
        });
    }
    if !limits.gate.try_admit(1) {
        return Err(PartitionError::ProducerIdLimit {
            setting: "max.producer.ids",
            max: limits.gate.max(),
            producer_id,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::txn::{TxnMarker, marker_batch};

    fn data_batch(
        producer_id: i64,
        epoch: i16,
        seq: i32,
        count: usize,
        transactional: bool,
        base: i64,
    ) -> bytes::Bytes {
        use kafka_protocol::records::*;
        let records: Vec<Record> = (0..count)
            .map(|i| Record {
                transactional,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id,
                producer_epoch: epoch,
                timestamp_type: TimestampType::Creation,
                offset: base + i as i64,
                sequence: seq + i as i32,
                timestamp: 0,
                key: None,
                value: Some(bytes::Bytes::from_static(b"v")),
                headers: Default::default(),
            })
            .collect();
        let mut buf = bytes::BytesMut::new();
        let options = RecordEncodeOptions { version: 2, compression: Compression::None };
        RecordBatchEncoder::encode(&mut buf, &records, &options).expect("encode");
        buf.freeze()
    }

    fn header(b: &[u8]) -> BatchHeader {
        BatchHeader::parse(b).expect("header")
    }

    fn marker(producer_id: i64, epoch: i16, commit: bool, coordinator_epoch: i32, base: i64) -> bytes::Bytes {
        let b = marker_batch(producer_id, epoch, TxnMarker { commit, coordinator_epoch }, 0).expect("marker");
        let mut owned = bytes::BytesMut::from(&b[..]);
        crate::log::batch::set_base_offset(&mut owned, base).expect("offset");
        owned.freeze()
    }

    #[test]
    fn transactions_hold_the_last_stable_offset_until_their_marker_is_covered() {
        let mut t = ProducerStateTable::default();
        let mut stored = Vec::new();
        stored.extend_from_slice(&data_batch(1, 0, 0, 3, true, 0)); // txn of 1: 0..=2
        stored.extend_from_slice(&data_batch(2, 0, 0, 2, false, 3)); // idempotent: 3..=4
        stored.extend_from_slice(&data_batch(3, 0, 0, 1, true, 5)); // txn of 3: 5
        assert!(apply_batches(&mut t, &stored, 0).expect("apply").is_empty());
        assert_eq!(t.last_stable_offset(6), 0);
        // Producer 1 aborts at 6: its entry says producer 3's transaction is still open.
        let aborted = apply_batches(&mut t, &marker(1, 0, false, 0, 6), 0).expect("apply");
        assert_eq!(
            aborted,
            vec![AbortedTxn { producer_id: 1, first_offset: 0, last_offset: 6, last_stable_offset: 5 }]
        );
        // The marker is not covered by the high watermark yet: still unstable.
        assert_eq!(t.last_stable_offset(6), 0);
        assert_eq!(t.last_stable_offset(7), 5);
        assert!(apply_batches(&mut t, &marker(3, 0, true, 0, 7), 0).expect("apply").is_empty());
        assert_eq!(t.last_stable_offset(7), 5);
        assert_eq!(t.last_stable_offset(8), 8);
    }

    #[test]
    fn markers_are_fenced_by_producer_and_coordinator_epochs() {
        let mut t = ProducerStateTable::default();
        let b = data_batch(1, 3, 0, 1, true, 0);
        apply_batches(&mut t, &b, 0).expect("apply");
        let check =
            |t: &ProducerStateTable, m: &bytes::Bytes| check_sequences(t, &[header(m)], m, TxnVerification::Off);
        assert_eq!(check(&t, &marker(1, 2, true, 0, 1)), SeqCheck::Reject(ResponseError::ProducerFenced));
        assert_eq!(check(&t, &marker(1, 3, true, 5, 1)), SeqCheck::Append);
        apply_batches(&mut t, &marker(1, 3, true, 5, 1), 0).expect("apply");
        assert_eq!(
            check(&t, &marker(1, 3, false, 4, 2)),
            SeqCheck::Reject(ResponseError::TransactionCoordinatorFenced)
        );
        // An unknown producer's marker (its batches were removed) is taken.
        assert_eq!(check(&t, &marker(9, 0, false, 0, 2)), SeqCheck::Append);
    }

    #[test]
    fn a_plain_batch_inside_an_open_transaction_is_refused() {
        let mut t = ProducerStateTable::default();
        apply_batches(&mut t, &data_batch(1, 0, 0, 2, true, 0), 0).expect("apply");
        let plain = data_batch(1, 0, 2, 1, false, 2);
        assert_eq!(
            check_sequences(&t, &[header(&plain)], &plain, TxnVerification::Off),
            SeqCheck::Reject(ResponseError::InvalidTxnState)
        );
        let more = data_batch(1, 0, 2, 1, true, 2);
        assert_eq!(check_sequences(&t, &[header(&more)], &more, TxnVerification::Off), SeqCheck::Append);
    }

    #[test]
    fn open_transactions_survive_snapshots_and_expiry() {
        let mut t = ProducerStateTable::default();
        apply_batches(&mut t, &data_batch(1, 0, 0, 2, true, 10), 0).expect("apply");
        apply_batches(&mut t, &data_batch(2, 0, 0, 1, false, 12), 0).expect("apply");
        assert_eq!(t.expire(1_000_000, 10), 1);
        let json = t.to_snapshot(13).expect("snapshot");
        let mut back = ProducerStateTable::from_snapshot(&json, 13, 0).expect("load");
        assert_eq!(back.last_stable_offset(13), 10);
        // What a raft snapshot at offset 11 keeps: the transaction begun below it.
        assert_eq!(t.before(11).last_stable_offset(11), 10);
        assert_eq!(t.before(10).first_open_txn(), None);
    }
}
