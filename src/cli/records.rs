//! Record batches for `produce` (encoded with the `kafka-protocol` crate) and from Fetch
//! responses (parsed here, bounded).
//!
//! Fetched bytes come from a server and are not trusted: each batch's length, magic and
//! CRC are checked with the broker's own `log::batch` functions, compressed batches are
//! decompressed with the broker's bounded `decompress` (a batch may not inflate past
//! [`MAX_DECOMPRESSED_BATCH`]), and records are parsed by a cursor that checks every
//! length against the bytes present, allocating nothing from declared counts.
//! The crate's own decoder is not used for this: it reserves a vector from the record
//! count the batch declares and decompresses without a limit.

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};

use super::error::CliError;
use crate::log::batch::{BatchHeader, batch_total_size, decompress, verify_crc};

/// Largest decompressed batch accepted from a broker.
pub const MAX_DECOMPRESSED_BATCH: usize = 256 << 20;

/// One record read back from a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedRecord {
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Option<Bytes>)>,
}

/// Encodes `(key, value)` pairs as one v2 batch.
pub fn encode_batch(
    records: &[(Option<Bytes>, Bytes)],
    compression: Compression,
    timestamp_ms: i64,
) -> Result<Bytes, CliError> {
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (key, value))| Record {
            transactional: false,
            control: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // The encoder keeps records in one batch while offset - sequence is constant and
            // writes the first record's sequence as the batch's: -1 (no sequence), as a
            // producer without a producer id sends.
            sequence: i as i32 - 1,
            timestamp: timestamp_ms,
            key: key.clone(),
            value: Some(value.clone()),
            headers: Default::default(),
            delete_horizon: false,
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(&mut buf, &records, &RecordEncodeOptions { version: 2, compression })
        .map_err(|cause| CliError::Records(format!("cannot encode a record batch: {cause:#}")))?;
    Ok(buf.freeze())
}

/// What a Fetch response's record set holds for a reader at `from`.
#[derive(Debug, Default)]
pub struct Fetched {
    /// Data records at or after `from` (control batches skipped).
    pub records: Vec<FetchedRecord>,
    /// One past the last complete batch, if any: where the next fetch starts even when
    /// the batches held no data records (control batches, compacted-away records).
    pub next_offset: Option<i64>,
}

/// Decodes the complete batches of `bytes` (a Fetch response's record set); a partial
/// batch at the end (the fetch size cut it) is ignored, as Kafka clients do.
pub fn decode_fetched(bytes: &Bytes, from: i64) -> Result<Fetched, CliError> {
    let bad = |what: String| CliError::Records(format!("malformed record batch from the broker: {what}"));
    let mut fetched = Fetched::default();
    let mut scratch = Vec::new();
    let mut pos = 0;
    while bytes.len() - pos >= 12 {
        let rest = &bytes[pos..];
        let total = batch_total_size(rest).map_err(|e| bad(e.to_string()))?;
        if rest.len() < total {
            break;
        }
        let batch = &rest[..total];
        let header = BatchHeader::parse(batch).map_err(|e| bad(e.to_string()))?;
        if !verify_crc(batch) {
            return Err(bad(format!("batch at offset {} fails its CRC", header.base_offset)));
        }
        pos += total;
        fetched.next_offset = Some(header.next_offset());
        if header.is_control() || header.last_offset() < from {
            continue;
        }
        let payload = batch.get(HEADER_SIZE..).ok_or_else(|| bad("batch shorter than its header".into()))?;
        let data: &[u8] = match header.compression() {
            Compression::None => payload,
            codec => {
                decompress(codec, payload, MAX_DECOMPRESSED_BATCH, &mut scratch).map_err(|e| bad(e.to_string()))?;
                &scratch
            }
        };
        parse_records(&header, data, from, &mut fetched.records).map_err(bad)?;
    }
    Ok(fetched)
}

/// Bytes of a v2 batch header before the first record.
const HEADER_SIZE: usize = 61;

fn parse_records(header: &BatchHeader, data: &[u8], from: i64, out: &mut Vec<FetchedRecord>) -> Result<(), String> {
    let mut c = Cursor { data, pos: 0 };
    for _ in 0..header.records_count.max(0) {
        let len = c.varint()?;
        if len < 0 {
            return Err(format!("negative record length {len}"));
        }
        let body = c.take(len as usize)?;
        let mut r = Cursor { data: body, pos: 0 };
        r.take(1)?; // attributes
        let timestamp_delta = r.varlong()?;
        let offset_delta = r.varint()?;
        let key = r.nullable_bytes()?;
        let value = r.nullable_bytes()?;
        let header_count = r.varint()?;
        let mut headers = Vec::new();
        for _ in 0..header_count.max(0) {
            let name = r.nullable_bytes()?.ok_or("null header key")?;
            let value = r.nullable_bytes()?;
            headers.push((String::from_utf8_lossy(name).into_owned(), value.map(Bytes::copy_from_slice)));
        }
        let offset = header.base_offset + i64::from(offset_delta);
        if offset < from {
            continue;
        }
        let timestamp = if header.timestamp_type() == TimestampType::LogAppend {
            header.max_timestamp
        } else {
            header.base_timestamp.saturating_add(timestamp_delta)
        };
        out.push(FetchedRecord {
            offset,
            timestamp,
            key: key.map(Bytes::copy_from_slice),
            value: value.map(Bytes::copy_from_slice),
            headers,
        });
    }
    Ok(())
}

struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len()).ok_or("a length exceeds the record")?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn unsigned(&mut self, max_bytes: u32) -> Result<u64, String> {
        let mut value = 0u64;
        for i in 0..max_bytes {
            let b = self.take(1)?[0];
            value |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("varint too long".into())
    }

    fn varint(&mut self) -> Result<i32, String> {
        let v = u32::try_from(self.unsigned(5)?).map_err(|e| format!("varint overflow: {e}"))?;
        Ok(((v >> 1) as i32) ^ -((v & 1) as i32))
    }

    fn varlong(&mut self) -> Result<i64, String> {
        let v = self.unsigned(10)?;
        Ok(((v >> 1) as i64) ^ -((v & 1) as i64))
    }

    fn nullable_bytes(&mut self) -> Result<Option<&'a [u8]>, String> {
        let len = self.varint()?;
        if len == -1 {
            return Ok(None);
        }
        if len < 0 {
            return Err(format!("invalid length {len}"));
        }
        self.take(len as usize).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(n: usize) -> Vec<(Option<Bytes>, Bytes)> {
        (0..n).map(|i| (Some(Bytes::from(format!("k{i}"))), Bytes::from(format!("v{i}")))).collect()
    }

    fn with_base(mut batch: Vec<u8>, base: i64) -> Vec<u8> {
        batch[..8].copy_from_slice(&base.to_be_bytes());
        batch
    }

    #[test]
    fn round_trips_keys_values_and_offsets_for_every_codec() {
        for codec in [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd] {
            let batch = encode_batch(&pairs(5), codec, 1234).unwrap().to_vec();
            let header = BatchHeader::parse(&batch).unwrap();
            assert_eq!((header.records_count, header.base_sequence, header.total_size()), (5, -1, batch.len()));
            let batch = with_base(batch, 100);
            let records = decode_fetched(&Bytes::from(batch), 102).unwrap().records;
            assert_eq!(records.len(), 3, "{codec:?}");
            assert_eq!(records[0].offset, 102);
            assert_eq!(records[0].key.as_deref(), Some(&b"k2"[..]));
            assert_eq!(records[2].value.as_deref(), Some(&b"v4"[..]));
            assert_eq!(records[2].timestamp, 1234);
        }
    }

    #[test]
    fn a_partial_trailing_batch_is_ignored_and_a_bad_crc_is_refused() {
        let one = encode_batch(&pairs(2), Compression::None, 1).unwrap().to_vec();
        let mut two = one.clone();
        two.extend_from_slice(&with_base(one.clone(), 2)[..30]);
        let fetched = decode_fetched(&Bytes::from(two), 0).unwrap();
        assert_eq!(fetched.records.len(), 2);
        assert_eq!(fetched.next_offset, Some(2));
        let mut corrupt = one.clone();
        let last = corrupt.len() - 1;
        corrupt[last] ^= 0xff;
        assert!(decode_fetched(&Bytes::from(corrupt), 0).is_err());
    }

    #[test]
    fn a_lying_record_count_allocates_nothing_and_fails() {
        // Claim 2^31-1 records in a batch holding two: parsing stops at the end of the bytes.
        let mut batch = encode_batch(&pairs(2), Compression::None, 1).unwrap().to_vec();
        batch[57..61].copy_from_slice(&i32::MAX.to_be_bytes());
        let crc = crc32c::crc32c(&batch[21..]);
        batch[17..21].copy_from_slice(&crc.to_be_bytes());
        let err = decode_fetched(&Bytes::from(batch), 0).unwrap_err();
        assert!(err.to_string().contains("exceeds the record"), "{err}");
    }
}
