//! Records inside one stored batch, as the cleaner needs them: each record's offset delta,
//! key, whether it has a value (a tombstone has none) and its timestamp; and the rebuilding
//! of a batch from the records it keeps.
//!
//! A rebuilt batch keeps what Kafka's cleaner keeps (`MemoryRecords.filterTo` /
//! `buildRetainedRecordsInto`): its base offset and lastOffsetDelta (so the producer's last
//! sequence stays where it was), the producer id, epoch and base sequence, the partition
//! leader epoch, the timestamp type and the codec. Every kept record keeps its offset
//! delta and its timestamp. When tombstones are first seen by the cleaner the batch gets
//! the delete horizon of KIP-534: the attributes' bit 6 is set and the base timestamp
//! holds the horizon (record timestamp deltas are re-based so each record's timestamp
//! is unchanged).

use super::super::batch::{BatchError, BatchHeader, Compression, HEADER_SIZE, decompress, decompressed_size_limit};
use super::super::recompress::compress;

/// Attribute bit of a batch whose base timestamp is the delete horizon (Kafka's
/// `DELETE_HORIZON_FLAG_MASK`).
pub(crate) const DELETE_HORIZON_BIT: i16 = 0x40;
const COMPRESSION_MASK: i16 = 0x07;
const LENGTH_OFFSET: usize = 8;
const CRC_OFFSET: usize = 17;
const ATTRIBUTES_OFFSET: usize = 21;
const BASE_TIMESTAMP_OFFSET: usize = 27;
const MAX_TIMESTAMP_OFFSET: usize = 35;
const RECORDS_COUNT_OFFSET: usize = 57;

/// One record of a batch. `rest` is the record body from its offset delta to its end
/// (offset delta, key, value, headers), kept as stored.
#[derive(Debug, Clone)]
pub(crate) struct RecordView<'a> {
    attributes: u8,
    pub timestamp: i64,
    pub offset_delta: i32,
    pub key: Option<&'a [u8]>,
    pub has_value: bool,
    rest: &'a [u8],
}

/// The delete horizon of a batch (KIP-534), if the cleaner set one.
pub(crate) fn delete_horizon(h: &BatchHeader) -> Option<i64> {
    (h.attributes & DELETE_HORIZON_BIT != 0).then_some(h.base_timestamp)
}

struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

fn bad(what: &str) -> BatchError {
    BatchError::InvalidRecord(format!("stored record: {what}"))
}

impl<'a> Cursor<'a> {
    fn byte(&mut self) -> Result<u8, BatchError> {
        let b = *self.data.get(self.pos).ok_or_else(|| bad("ends early"))?;
        self.pos += 1;
        Ok(b)
    }
    fn raw_varint(&mut self, max_bytes: u32) -> Result<u64, BatchError> {
        let mut value = 0u64;
        for i in 0..max_bytes {
            let b = self.byte()?;
            value |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(bad("varint too long"))
    }
    fn varint(&mut self) -> Result<i32, BatchError> {
        let v = u32::try_from(self.raw_varint(5)?).map_err(|_overflow| bad("varint overflow"))?;
        Ok(((v >> 1) as i32) ^ -((v & 1) as i32))
    }
    fn varlong(&mut self) -> Result<i64, BatchError> {
        let v = self.raw_varint(10)?;
        Ok(((v >> 1) as i64) ^ -((v & 1) as i64))
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], BatchError> {
        if n > self.data.len() - self.pos {
            return Err(bad("length exceeds record"));
        }
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    /// A nullable length-prefixed field.
    fn nullable(&mut self) -> Result<Option<&'a [u8]>, BatchError> {
        match self.varint()? {
            -1 => Ok(None),
            n if n < 0 => Err(bad("negative length")),
            n => self.take(n as usize).map(Some),
        }
    }
}

fn put_varlong(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

fn put_varint(out: &mut Vec<u8>, v: i32) {
    put_varlong(out, i64::from(v));
}

/// The plain (decompressed) records section of `batch`, decompressed into `scratch` when
/// needed. `max_batch_bytes` bounds decompression as on the produce path.
pub(crate) fn plain_records<'a>(
    h: &BatchHeader,
    batch: &'a [u8],
    max_batch_bytes: usize,
    scratch: &'a mut Vec<u8>,
) -> Result<&'a [u8], BatchError> {
    let payload = batch.get(HEADER_SIZE..).ok_or(BatchError::Truncated)?;
    match h.compression() {
        Compression::None => Ok(payload),
        codec => {
            let limit = decompressed_size_limit(max_batch_bytes.max(batch.len()));
            decompress(codec, payload, limit, scratch)?;
            Ok(&scratch[..])
        }
    }
}

/// Parses the `count` records of a plain records section.
pub(crate) fn parse_records<'a>(
    h: &BatchHeader,
    plain: &'a [u8],
    out: &mut Vec<RecordView<'a>>,
) -> Result<(), BatchError> {
    out.clear();
    let mut c = Cursor { data: plain, pos: 0 };
    for _ in 0..h.records_count.max(0) {
        let len = c.varint()?;
        let body = c.take(usize::try_from(len).map_err(|_negative| bad("negative length"))?)?;
        let mut r = Cursor { data: body, pos: 0 };
        let attributes = r.byte()?;
        let timestamp = h.base_timestamp.saturating_add(r.varlong()?);
        let rest_start = r.pos;
        let offset_delta = r.varint()?;
        let key = r.nullable()?;
        let has_value = r.nullable()?.is_some();
        out.push(RecordView { attributes, timestamp, offset_delta, key, has_value, rest: &body[rest_start..] });
    }
    Ok(())
}

/// Appends to `out` a copy of `original` (a whole stored batch) holding only `kept`, with
/// `horizon` as its delete horizon when given. See the module docs for what is kept.
pub(crate) fn rebuild_batch(
    h: &BatchHeader,
    original: &[u8],
    kept: &[RecordView<'_>],
    horizon: Option<i64>,
    out: &mut Vec<u8>,
) -> Result<(), BatchError> {
    let base_timestamp = match (kept.is_empty(), horizon.or_else(|| delete_horizon(h))) {
        (true, _) => h.max_timestamp,
        (false, Some(horizon)) => horizon,
        (false, None) => h.base_timestamp,
    };
    let mut plain = Vec::new();
    let mut body = Vec::new();
    for r in kept {
        body.clear();
        body.push(r.attributes);
        put_varlong(&mut body, r.timestamp.wrapping_sub(base_timestamp));
        body.extend_from_slice(r.rest);
        put_varint(&mut plain, i32::try_from(body.len()).map_err(|_too_long| BatchError::TooLarge)?);
        plain.extend_from_slice(&body);
    }
    let start = out.len();
    out.extend_from_slice(original.get(..HEADER_SIZE).ok_or(BatchError::Truncated)?);
    let mut attributes = h.attributes;
    if kept.is_empty() {
        // Kafka's empty batch (kept so a producer's last sequence survives): a bare
        // header, uncompressed, without a delete horizon.
        attributes &= !(COMPRESSION_MASK | DELETE_HORIZON_BIT);
    } else {
        let mut payload = bytes::BytesMut::new();
        compress(h.compression(), &plain, &mut payload)?;
        out.extend_from_slice(&payload);
        if horizon.is_some() {
            attributes |= DELETE_HORIZON_BIT;
        }
    }
    let batch = &mut out[start..];
    let max_timestamp = match h.timestamp_type() {
        super::super::TimestampType::LogAppend => h.max_timestamp,
        _ => kept.iter().map(|r| r.timestamp).max().unwrap_or(h.max_timestamp),
    };
    let length = i32::try_from(batch.len() - 12).map_err(|_too_long| BatchError::TooLarge)?;
    let count = i32::try_from(kept.len()).map_err(|_too_many| BatchError::TooLarge)?;
    batch[LENGTH_OFFSET..LENGTH_OFFSET + 4].copy_from_slice(&length.to_be_bytes());
    batch[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&attributes.to_be_bytes());
    batch[BASE_TIMESTAMP_OFFSET..BASE_TIMESTAMP_OFFSET + 8].copy_from_slice(&base_timestamp.to_be_bytes());
    batch[MAX_TIMESTAMP_OFFSET..MAX_TIMESTAMP_OFFSET + 8].copy_from_slice(&max_timestamp.to_be_bytes());
    batch[RECORDS_COUNT_OFFSET..RECORDS_COUNT_OFFSET + 4].copy_from_slice(&count.to_be_bytes());
    let crc = crc32c::crc32c(&batch[ATTRIBUTES_OFFSET..]);
    batch[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    Ok(())
}

/// Indexes (within their batch) of the records without a key in `batches`: what a topic
/// whose `cleanup.policy` includes `compact` refuses, as Kafka's `LogValidator` does.
/// `decompressed_limit` bounds each batch's decompressed size.
pub fn keyless_records(
    batches: &[u8],
    headers: &[BatchHeader],
    decompressed_limit: usize,
) -> Result<Vec<i32>, BatchError> {
    let mut found = Vec::new();
    let mut pos = 0;
    let mut scratch = Vec::new();
    for h in headers {
        let end = pos + h.total_size();
        let batch = batches.get(pos..end).ok_or(BatchError::Truncated)?;
        pos = end;
        if h.is_control() {
            continue;
        }
        let payload = batch.get(HEADER_SIZE..).ok_or(BatchError::Truncated)?;
        let plain = match h.compression() {
            Compression::None => payload,
            codec => {
                decompress(codec, payload, decompressed_limit, &mut scratch)?;
                &scratch[..]
            }
        };
        let mut records = Vec::new();
        parse_records(h, plain, &mut records)?;
        found.extend(records.iter().enumerate().filter(|(_, r)| r.key.is_none()).map(|(i, _)| i as i32));
    }
    Ok(found)
}
