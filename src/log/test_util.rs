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

/// Whether the gate is open, and the bases of the segments whose seal reached it.
type GateState = std::sync::Arc<(std::sync::Mutex<(bool, Vec<i64>)>, std::sync::Condvar)>;

/// A sealer whose seals wait at a gate until the test opens it.
pub struct SealGate {
    state: GateState,
}

impl SealGate {
    /// A closed gate and a sealer held by it before each seal.
    pub fn closed() -> (SealGate, super::Sealer) {
        Self::closed_at(super::SealStep::Begin)
    }

    /// A closed gate and a sealer held by it at `at` of each seal.
    pub fn closed_at(at: super::SealStep) -> (SealGate, super::Sealer) {
        let state: GateState = std::sync::Arc::default();
        let held = state.clone();
        let hook: super::SealHook = std::sync::Arc::new(move |base, step| {
            if step != at {
                return;
            }
            let (lock, cv) = &*held;
            let mut s = lock.lock().expect("gate");
            s.1.push(base);
            cv.notify_all();
            while !s.0 {
                s = cv.wait(s).expect("gate");
            }
        });
        (SealGate { state }, super::Sealer::start(Some(hook)))
    }

    /// Waits until a seal of the segment based at `base` is at the gate (or through it).
    pub fn wait_arrived(&self, base: i64) {
        let (lock, cv) = &*self.state;
        let mut s = lock.lock().expect("gate");
        while !s.1.contains(&base) {
            s = cv.wait(s).expect("gate");
        }
    }

    pub fn open(&self) {
        let (lock, cv) = &*self.state;
        lock.lock().expect("gate").0 = true;
        cv.notify_all();
    }
}
