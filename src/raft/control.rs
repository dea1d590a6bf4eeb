//! Raft's own entries (blank, membership) as Kafka **control batches**.
//!
//! A control batch (attributes bit 5) holds one record whose key is
//! `version: int16, type: int16`, as Kafka's transaction markers and KRaft records are.
//! Every Kafka consumer skips control batches (they are never returned as records), so a
//! partition's raft entries cost clients nothing but the offset they occupy.
//!
//! Jet uses its own control types rather than Kafka's `LEADER_CHANGE` (type 2): Kafka
//! defines that record's value (`LeaderChangeMessage`: leader and voter replica ids) and
//! its own tools decode it, so storing a raft blank or an openraft membership under it
//! would be misread. Clients treat any control type the same way (skip it), so types in a
//! range Kafka does not use are invisible to them and unambiguous to Jet:
//! [`RAFT_BLANK`] (`0x4A01`, empty value), [`RAFT_MEMBERSHIP`] (`0x4A02`, the
//! membership as JSON) and [`RAFT_LOG_START`] (`0x4A03`, the new log start offset as a
//! big-endian int64).
//!
//! A log-start batch is the one control batch Jet proposes as a *normal* raft entry: the
//! leader moves the partition's log start (DeleteRecords, retention) by proposing it, and
//! every replica moves its own when it applies it, so all of them agree on the log start
//! at the same point of the log.

use bytes::{Bytes, BytesMut};
use indexmap::IndexMap;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use openraft::Membership;

use super::{JetNode, NodeId};

/// Control type of a raft blank entry (a new leader's first entry).
pub const RAFT_BLANK: i16 = 0x4A01;
/// Control type of a raft membership entry.
pub const RAFT_MEMBERSHIP: i16 = 0x4A02;
/// Control type of a log-start entry (see the module doc).
pub const RAFT_LOG_START: i16 = 0x4A03;
/// Kafka's "no timestamp": what raft's control batches carry, so that every replica,
/// building them itself, writes the same bytes.
pub const NO_TIMESTAMP: i64 = -1;
/// Version of the control record key.
const KEY_VERSION: i16 = 0;

/// A raft membership of a partition's group.
pub type GroupMembership = Membership<NodeId, JetNode>;

/// Errors building or reading a raft control batch.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("cannot encode a raft control batch: {0}")]
    Encode(String),
    #[error("cannot decode a raft control batch: {0}")]
    Decode(String),
    #[error("raft membership entry is not valid JSON: {0}")]
    Membership(#[from] serde_json::Error),
    #[error("control batch of type {0} is not a raft entry")]
    UnknownType(i16),
}

/// What a stored control batch holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RaftControl {
    Blank,
    Membership(GroupMembership),
    /// The partition's log start moves to this offset.
    LogStart(i64),
}

fn encode(control_type: i16, value: Option<Bytes>, now_ms: i64) -> Result<Bytes, ControlError> {
    let mut key = BytesMut::with_capacity(4);
    key.extend_from_slice(&KEY_VERSION.to_be_bytes());
    key.extend_from_slice(&control_type.to_be_bytes());
    let record = Record {
        transactional: false,
        control: true,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp: now_ms,
        key: Some(key.freeze()),
        value,
        headers: IndexMap::new(),
    };
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions { version: 2, compression: Compression::None };
    RecordBatchEncoder::encode(&mut buf, [&record], &options).map_err(|e| ControlError::Encode(e.to_string()))?;
    Ok(buf.freeze())
}

/// Whether a stored batch is one of raft's control batches: a control batch without a
/// producer (a transaction marker, [`crate::log::txn`], has one and is a normal entry).
pub fn is_raft_control(header: &crate::log::BatchHeader) -> bool {
    header.is_control() && header.producer_id < 0
}

/// The control batch of a blank entry.
pub fn blank_batch(now_ms: i64) -> Result<Bytes, ControlError> {
    encode(RAFT_BLANK, None, now_ms)
}

/// The control batch of a membership entry.
pub fn membership_batch(membership: &GroupMembership, now_ms: i64) -> Result<Bytes, ControlError> {
    encode(RAFT_MEMBERSHIP, Some(Bytes::from(serde_json::to_vec(membership)?)), now_ms)
}

/// The control batch of a log-start entry.
pub fn log_start_batch(offset: i64, now_ms: i64) -> Result<Bytes, ControlError> {
    encode(RAFT_LOG_START, Some(Bytes::copy_from_slice(&offset.to_be_bytes())), now_ms)
}

/// The log start a normal entry's batches ask for, if one of them is a log-start batch.
pub fn log_start_in(batches: &Bytes) -> Result<Option<i64>, ControlError> {
    let mut found = None;
    let mut pos = 0;
    while pos < batches.len() {
        let header =
            crate::log::BatchHeader::parse(&batches[pos..]).map_err(|e| ControlError::Decode(e.to_string()))?;
        let end = (pos + header.total_size()).min(batches.len());
        if is_raft_control(&header)
            && let RaftControl::LogStart(offset) = decode(&batches.slice(pos..end))?
        {
            found = Some(found.map_or(offset, |f: i64| f.max(offset)));
        }
        pos = end;
    }
    Ok(found)
}

/// Reads the raft entry a stored control batch holds (`batch` is one whole batch).
pub fn decode(batch: &Bytes) -> Result<RaftControl, ControlError> {
    let set = RecordBatchDecoder::decode(&mut batch.clone()).map_err(|e| ControlError::Decode(e.to_string()))?;
    let record = set.records.first().ok_or_else(|| ControlError::Decode("no record".into()))?;
    let key = record.key.as_deref().unwrap_or_default();
    let control_type = match key {
        [_, _, a, b, ..] => i16::from_be_bytes([*a, *b]),
        _ => return Err(ControlError::Decode(format!("control key of {} bytes", key.len()))),
    };
    match control_type {
        RAFT_BLANK => Ok(RaftControl::Blank),
        RAFT_MEMBERSHIP => {
            let value = record.value.as_deref().unwrap_or_default();
            Ok(RaftControl::Membership(serde_json::from_slice(value)?))
        }
        RAFT_LOG_START => match record.value.as_deref() {
            Some(&[a, b, c, d, e, f, g, h]) => Ok(RaftControl::LogStart(i64::from_be_bytes([a, b, c, d, e, f, g, h]))),
            other => Err(ControlError::Decode(format!("log-start value of {} bytes", other.map_or(0, <[u8]>::len)))),
        },
        other => Err(ControlError::UnknownType(other)),
    }
}
