//! Record batches for tests: a plain record, changed with struct update syntax where a
//! test needs keys, producers or timestamps, and one encoder.

use bytes::{Bytes, BytesMut};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};

/// A record without key, producer or headers, CreateTime 1.
pub fn record(value: impl Into<Bytes>) -> Record {
    Record {
        transactional: false,
        control: false,
        partition_leader_epoch: -1,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp: 1,
        key: None,
        value: Some(value.into()),
        headers: Default::default(),
        delete_horizon: false,
    }
}

/// `records` encoded uncompressed, offsets numbered from 0 (the encoder starts a new
/// batch where sequences are not consecutive).
pub fn encode(records: impl IntoIterator<Item = Record>) -> Bytes {
    encode_with(records, Compression::None)
}

/// [`encode`] with `compression`.
pub fn encode_with(records: impl IntoIterator<Item = Record>, compression: Compression) -> Bytes {
    let records: Vec<Record> = records.into_iter().enumerate().map(|(i, r)| Record { offset: i as i64, ..r }).collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(&mut buf, &records, &RecordEncodeOptions { version: 2, compression })
        .expect("encode records");
    buf.freeze()
}

/// One batch with a record per value.
pub fn values<V: Into<Bytes>>(values: impl IntoIterator<Item = V>) -> Bytes {
    encode(values.into_iter().map(record))
}

pub fn str_bytes(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}
