//! The records of `__transaction_state` in Kafka's own schemas, so Kafka's tools read
//! them: key `TransactionLogKey` v0 (`version: int16 = 0`, `transactionalId: string`),
//! value `TransactionLogValue` v0 (`version: int16 = 0`, `producerId: int64`,
//! `producerEpoch: int16`, `transactionTimeoutMs: int32`, `transactionStatus: int8`,
//! `transactionPartitions: nullable [topic: string, partitionIds: [int32]]`,
//! `transactionLastUpdateTimestampMs: int64`, `transactionStartTimestampMs: int64`).
//! A null value (a tombstone) removes the transactional id. Jet writes v0; Kafka's
//! flexible v1 (written only with transactions v2) is refused with a clear error.

use std::collections::BTreeSet;

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Kafka's `TransactionState`, by its stored id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnState {
    Empty,
    Ongoing,
    PrepareCommit,
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
    Dead,
    PrepareEpochFence,
}

impl TxnState {
    pub fn id(self) -> i8 {
        match self {
            TxnState::Empty => 0,
            TxnState::Ongoing => 1,
            TxnState::PrepareCommit => 2,
            TxnState::PrepareAbort => 3,
            TxnState::CompleteCommit => 4,
            TxnState::CompleteAbort => 5,
            TxnState::Dead => 6,
            TxnState::PrepareEpochFence => 7,
        }
    }

    pub fn from_id(id: i8) -> Option<TxnState> {
        Some(match id {
            0 => TxnState::Empty,
            1 => TxnState::Ongoing,
            2 => TxnState::PrepareCommit,
            3 => TxnState::PrepareAbort,
            4 => TxnState::CompleteCommit,
            5 => TxnState::CompleteAbort,
            6 => TxnState::Dead,
            7 => TxnState::PrepareEpochFence,
            _ => return None,
        })
    }

    /// The name DescribeTransactions and Kafka's tools show.
    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
            TxnState::Dead => "Dead",
            TxnState::PrepareEpochFence => "PrepareEpochFence",
        }
    }
}

/// One transactional id's state, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnMetadata {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    pub partitions: BTreeSet<(String, i32)>,
    pub last_update_ms: i64,
    pub start_ms: i64,
    /// The epoch before the last InitProducerId bump that named its expected epoch
    /// (KIP-360), so a retry of that bump is answered; -1 when none. Kept in memory only,
    /// as Kafka does with `TransactionLogValue` v0.
    pub last_epoch: i16,
}

/// Why a stored record cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum TxnRecordError {
    #[error("__transaction_state record truncated")]
    Truncated,
    #[error("__transaction_state {what} version {version} is not supported (Jet reads v0)")]
    Version { what: &'static str, version: i16 },
    #[error("__transaction_state value has an unknown transaction status {0}")]
    Status(i8),
    #[error("__transaction_state record holds a string that is not UTF-8")]
    Utf8,
    #[error("__transaction_state record holds a negative length {0}")]
    Length(i32),
}

fn put_string(buf: &mut BytesMut, s: &str) {
    buf.put_i16(i16::try_from(s.len()).unwrap_or(i16::MAX));
    buf.put_slice(&s.as_bytes()[..s.len().min(i16::MAX as usize)]);
}

fn need(buf: &Bytes, n: usize) -> Result<(), TxnRecordError> {
    if buf.remaining() < n { Err(TxnRecordError::Truncated) } else { Ok(()) }
}

fn get_string(buf: &mut Bytes) -> Result<String, TxnRecordError> {
    need(buf, 2)?;
    let len = buf.get_i16();
    let len = usize::try_from(len).map_err(|_| TxnRecordError::Length(i32::from(len)))?;
    need(buf, len)?;
    String::from_utf8(buf.split_to(len).to_vec()).map_err(|_| TxnRecordError::Utf8)
}

pub fn encode_key(transactional_id: &str) -> Bytes {
    let mut buf = BytesMut::with_capacity(4 + transactional_id.len());
    buf.put_i16(0);
    put_string(&mut buf, transactional_id);
    buf.freeze()
}

pub fn decode_key(key: &[u8]) -> Result<String, TxnRecordError> {
    let mut buf = Bytes::copy_from_slice(key);
    need(&buf, 2)?;
    let version = buf.get_i16();
    if version != 0 {
        return Err(TxnRecordError::Version { what: "key", version });
    }
    get_string(&mut buf)
}

pub fn encode_value(m: &TxnMetadata) -> Bytes {
    let mut buf = BytesMut::with_capacity(64);
    buf.put_i16(0);
    buf.put_i64(m.producer_id);
    buf.put_i16(m.producer_epoch);
    buf.put_i32(m.timeout_ms);
    buf.put_i8(m.state.id());
    // Topics in order, each with its partitions.
    let mut topics: Vec<(&str, Vec<i32>)> = Vec::new();
    for (topic, partition) in &m.partitions {
        match topics.last_mut() {
            Some((t, ps)) if *t == topic.as_str() => ps.push(*partition),
            _ => topics.push((topic, vec![*partition])),
        }
    }
    buf.put_i32(i32::try_from(topics.len()).unwrap_or(i32::MAX));
    for (topic, partitions) in topics {
        put_string(&mut buf, topic);
        buf.put_i32(i32::try_from(partitions.len()).unwrap_or(i32::MAX));
        for p in partitions {
            buf.put_i32(p);
        }
    }
    buf.put_i64(m.last_update_ms);
    buf.put_i64(m.start_ms);
    buf.freeze()
}

pub fn decode_value(value: &[u8]) -> Result<TxnMetadata, TxnRecordError> {
    let mut buf = Bytes::copy_from_slice(value);
    need(&buf, 2)?;
    let version = buf.get_i16();
    if version != 0 {
        return Err(TxnRecordError::Version { what: "value", version });
    }
    need(&buf, 8 + 2 + 4 + 1 + 4)?;
    let producer_id = buf.get_i64();
    let producer_epoch = buf.get_i16();
    let timeout_ms = buf.get_i32();
    let status = buf.get_i8();
    let state = TxnState::from_id(status).ok_or(TxnRecordError::Status(status))?;
    let topics = buf.get_i32();
    let mut partitions = BTreeSet::new();
    for _ in 0..topics.max(0) {
        let topic = get_string(&mut buf)?;
        need(&buf, 4)?;
        let count = buf.get_i32();
        let count = usize::try_from(count).map_err(|_| TxnRecordError::Length(count))?;
        need(&buf, count.saturating_mul(4))?;
        for _ in 0..count {
            partitions.insert((topic.clone(), buf.get_i32()));
        }
    }
    need(&buf, 16)?;
    let last_update_ms = buf.get_i64();
    let start_ms = buf.get_i64();
    Ok(TxnMetadata {
        producer_id,
        producer_epoch,
        timeout_ms,
        state,
        partitions,
        last_update_ms,
        start_ms,
        last_epoch: -1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_in_kafkas_v0_layout() {
        let m = TxnMetadata {
            producer_id: 7,
            producer_epoch: 3,
            timeout_ms: 60_000,
            state: TxnState::Ongoing,
            partitions: BTreeSet::from([("a".into(), 0), ("a".into(), 2), ("b".into(), 1)]),
            last_update_ms: 10,
            start_ms: 5,
            last_epoch: -1,
        };
        let value = encode_value(&m);
        // version, producer id, epoch, timeout, status, then two topics.
        assert_eq!(&value[..2], &[0, 0]);
        assert_eq!(value[16], 1);
        assert_eq!(&value[17..21], &2i32.to_be_bytes());
        assert_eq!(decode_value(&value).expect("decode"), m);
        assert_eq!(decode_key(&encode_key("tx-1")).expect("key"), "tx-1");
        assert_eq!(&encode_key("tx-1")[..], &[0, 0, 0, 4, b't', b'x', b'-', b'1']);
        assert!(matches!(decode_value(&value[..20]), Err(TxnRecordError::Truncated)));
        let mut v1 = value.to_vec();
        v1[1] = 1;
        assert!(matches!(decode_value(&v1), Err(TxnRecordError::Version { version: 1, .. })));
    }
}
