//! Helpers for building real Kafka batches in tests with kafka-protocol's encoder.

use bytes::{Bytes, BytesMut};
use indexmap::IndexMap;
use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};

/// One batch of `n` records with timestamps `ts, ts+1, ...` and `value_len`-byte values.
pub fn batch_sized(n: usize, ts: i64, value_len: usize, compression: Compression) -> Vec<u8> {
    producer_batch(n, ts, value_len, compression, (-1, -1, -1))
}

/// Like [`batch_sized`] for producer `(id, epoch, base sequence)`.
pub fn producer_batch(
    n: usize,
    ts: i64,
    value_len: usize,
    compression: Compression,
    producer: (i64, i16, i32),
) -> Vec<u8> {
    let records: Vec<Record> = (0..n)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: producer.0,
            producer_epoch: producer.1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: producer.2.wrapping_add(i as i32),
            timestamp: ts + i as i64,
            key: Some(Bytes::from(format!("k{i}"))),
            value: Some(Bytes::from(vec![b'v'; value_len])),
            headers: IndexMap::new(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(&mut buf, &records, &RecordEncodeOptions { version: 2, compression })
        .expect("encode batch");
    buf.to_vec()
}

/// One uncompressed batch of `n` small records.
pub fn batch(n: usize, ts: i64) -> Vec<u8> {
    batch_sized(n, ts, 10, Compression::None)
}

/// Recomputes the CRC after a test tampered with CRC-covered bytes.
pub fn fix_crc(b: &mut [u8]) {
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
}
