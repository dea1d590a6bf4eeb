//! Record batches for the micro-benchmarks, encoded by kafka-protocol as a producer would.

use bytes::{Bytes, BytesMut};
use indexmap::IndexMap;
use jet::log::{Compression, TimestampType};
use kafka_protocol::records::{Record, RecordBatchEncoder, RecordEncodeOptions};

/// One v2 batch of `n` records with `value_len`-byte values of random-looking letters.
pub fn batch(n: usize, value_len: usize, compression: Compression) -> Vec<u8> {
    let mut seed = 42u32;
    let value: Bytes = (0..value_len)
        .map(|_| {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            b'A' + (seed >> 16) as u8 % 26
        })
        .collect();
    let records: Vec<Record> = (0..n)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: -1,
            timestamp: 1_700_000_000_000 + i as i64,
            key: None,
            value: Some(value.clone()),
            headers: IndexMap::new(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(&mut buf, &records, &RecordEncodeOptions { version: 2, compression }).expect("encode");
    buf.to_vec()
}
