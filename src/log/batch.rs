//! Kafka v2 (magic 2) `RecordBatch` header parsing and validation, as pure functions over bytes.
//!
//! The broker stores batches exactly as producers send them (after assigning offsets), so the
//! only thing standing between a misbehaving client and a poisoned log is
//! [`validate_produced_batches`]. It checks framing, magic, CRC and size, and walks every
//! record (decompressing first if needed, with a hard cap on the decompressed size) to make
//! sure the record count, offset deltas and lengths are self-consistent.

use std::io::{self, Read};
use std::ops::Range;

pub use kafka_protocol::records::{Compression, TimestampType};

/// Size of the fixed v2 batch header; records start at this offset.
pub const HEADER_SIZE: usize = 61;
/// baseOffset + batchLength: the part of a batch not counted by `batchLength`.
pub(crate) const LOG_OVERHEAD: usize = 12;
const LENGTH_OFFSET: usize = 8;
const PARTITION_LEADER_EPOCH_OFFSET: usize = 12;
const MAGIC_OFFSET: usize = 16;
const CRC_OFFSET: usize = 17;
const ATTRIBUTES_OFFSET: usize = 21;
const MAX_TIMESTAMP_OFFSET: usize = 35;
/// Smallest legal `batchLength` (header without the 12 leading bytes, zero records).
const MIN_BATCH_LENGTH: i32 = (HEADER_SIZE - LOG_OVERHEAD) as i32;

const COMPRESSION_MASK: i16 = 0x07;
const TIMESTAMP_TYPE_BIT: i16 = 0x08;
const TRANSACTIONAL_BIT: i16 = 0x10;
const CONTROL_BIT: i16 = 0x20;

/// How much larger than `max_batch_bytes` a decompressed batch may be before we reject it.
/// Without a cap a tiny "zip bomb" batch could make the broker allocate gigabytes.
pub const DECOMPRESSION_RATIO_LIMIT: usize = 64;

/// Why a batch was rejected. Mapping to Kafka error codes happens in the request layer:
/// `Corrupt`/`Truncated`/`Decompress` -> CORRUPT_MESSAGE, `TooLarge`/`NoScratch` -> MESSAGE_TOO_LARGE,
/// `InvalidRecord` -> INVALID_RECORD, `UnsupportedMagic` -> UNSUPPORTED_VERSION / CORRUPT_MESSAGE.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error("record batch is corrupt (bad CRC or length)")]
    Corrupt,
    #[error("record batch exceeds the maximum allowed size")]
    TooLarge,
    #[error("invalid record: {0}")]
    InvalidRecord(String),
    #[error("unsupported record batch magic {0}")]
    UnsupportedMagic(i8),
    #[error("record batch is truncated")]
    Truncated,
    /// The decompression buffer for the batch's size bound could not be allocated.
    #[error("cannot reserve {bytes} bytes to decompress a record batch: {source}")]
    NoScratch {
        bytes: usize,
        #[source]
        source: std::collections::TryReserveError,
    },
    #[error("failed to decompress {codec:?} record batch: {source}")]
    Decompress {
        codec: Compression,
        #[source]
        source: io::Error,
    },
    /// Broker-side recompression (topic `compression.type`) failed.
    #[error("failed to compress record batch with {codec:?}: {reason}")]
    Compress { codec: Compression, reason: String },
    #[error("cannot encode a record batch: {0}")]
    Encode(String),
}

/// All fields of a v2 batch header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records_count: i32,
}

fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}
fn be_i32(b: &[u8], at: usize) -> i32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    i32::from_be_bytes(a)
}
fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}

/// Reads `batchLength` and returns the total size of the batch starting at `b[0]`.
/// Needs 12 bytes; rejects lengths smaller than an empty v2 header.
pub(crate) fn batch_total_size(b: &[u8]) -> Result<usize, BatchError> {
    if b.len() < LOG_OVERHEAD {
        return Err(BatchError::Truncated);
    }
    let len = be_i32(b, LENGTH_OFFSET);
    if len < MIN_BATCH_LENGTH {
        return Err(BatchError::Corrupt);
    }
    Ok(LOG_OVERHEAD + len as usize)
}

impl BatchHeader {
    /// Parses the 61-byte header at the start of `b`. Does not check the CRC nor that the whole
    /// batch is present (see [`verify_crc`] and [`BatchHeader::total_size`]).
    pub fn parse(b: &[u8]) -> Result<BatchHeader, BatchError> {
        batch_total_size(b)?;
        if b.len() <= MAGIC_OFFSET {
            return Err(BatchError::Truncated);
        }
        let magic = b[MAGIC_OFFSET] as i8;
        if magic != 2 {
            return Err(BatchError::UnsupportedMagic(magic));
        }
        if b.len() < HEADER_SIZE {
            return Err(BatchError::Truncated);
        }
        let h = BatchHeader {
            base_offset: be_i64(b, 0),
            batch_length: be_i32(b, LENGTH_OFFSET),
            partition_leader_epoch: be_i32(b, PARTITION_LEADER_EPOCH_OFFSET),
            magic,
            crc: be_i32(b, CRC_OFFSET) as u32,
            attributes: be_i16(b, ATTRIBUTES_OFFSET),
            last_offset_delta: be_i32(b, 23),
            base_timestamp: be_i64(b, 27),
            max_timestamp: be_i64(b, MAX_TIMESTAMP_OFFSET),
            producer_id: be_i64(b, 43),
            producer_epoch: be_i16(b, 51),
            base_sequence: be_i32(b, 53),
            records_count: be_i32(b, 57),
        };
        // Rejecting unknown codecs here keeps `compression()` infallible.
        if h.attributes & COMPRESSION_MASK > 4 {
            return Err(BatchError::InvalidRecord(format!(
                "unknown compression codec {}",
                h.attributes & COMPRESSION_MASK
            )));
        }
        if h.last_offset_delta < 0 {
            return Err(BatchError::Corrupt);
        }
        Ok(h)
    }

    /// Offset of the last record: `base_offset + last_offset_delta`.
    pub fn last_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta)
    }
    /// One past the last offset: where the next batch starts.
    pub fn next_offset(&self) -> i64 {
        self.last_offset() + 1
    }
    pub fn compression(&self) -> Compression {
        match self.attributes & COMPRESSION_MASK {
            1 => Compression::Gzip,
            2 => Compression::Snappy,
            3 => Compression::Lz4,
            4 => Compression::Zstd,
            _ => Compression::None,
        }
    }
    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_BIT != 0
    }
    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_BIT != 0
    }
    pub fn timestamp_type(&self) -> TimestampType {
        if self.attributes & TIMESTAMP_TYPE_BIT != 0 { TimestampType::LogAppend } else { TimestampType::Creation }
    }
    /// Size of the whole batch in bytes, `12 + batch_length`.
    pub fn total_size(&self) -> usize {
        LOG_OVERHEAD + self.batch_length.max(0) as usize
    }
}

/// CRC-32C over everything from the attributes to the end of the batch, compared with the
/// stored CRC. `batch` must be exactly one whole batch.
pub fn verify_crc(batch: &[u8]) -> bool {
    if batch.len() < HEADER_SIZE {
        return false;
    }
    crc32c::crc32c(&batch[ATTRIBUTES_OFFSET..]) == be_i32(batch, CRC_OFFSET) as u32
}

/// Maximum decompressed size accepted for a batch when the compressed limit is `max_batch_bytes`.
pub fn decompressed_size_limit(max_batch_bytes: usize) -> usize {
    max_batch_bytes.saturating_mul(DECOMPRESSION_RATIO_LIMIT)
}

/// One uncompressed batch of plain records (no producer, CreateTime `now_ms`) with these
/// keys and values, and its header: what the broker itself appends to its internal topics
/// (`__consumer_offsets`, `__transaction_state`, the cluster metadata log).
pub fn plain_batch(
    records: impl IntoIterator<Item = (bytes::Bytes, Option<bytes::Bytes>)>,
    now_ms: i64,
) -> Result<(bytes::Bytes, Vec<BatchHeader>), BatchError> {
    internal_batch(records, now_ms, None)
}

/// [`plain_batch`], or with `transaction` (producer id and epoch) a transactional batch
/// of that producer without sequence numbers: a group coordinator's write of the
/// producer's transactional offset commits, as Kafka's.
pub fn internal_batch(
    records: impl IntoIterator<Item = (bytes::Bytes, Option<bytes::Bytes>)>,
    now_ms: i64,
    transaction: Option<(i64, i16)>,
) -> Result<(bytes::Bytes, Vec<BatchHeader>), BatchError> {
    use kafka_protocol::records::{Record, RecordBatchEncoder, RecordEncodeOptions};
    let (producer_id, producer_epoch) = transaction.unwrap_or((-1, -1));
    let records: Vec<Record> = records
        .into_iter()
        .enumerate()
        .map(|(i, (key, value))| Record {
            transactional: transaction.is_some(),
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id,
            producer_epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // The encoder keeps records in one batch only while offset - sequence stays
            // the same; the batch's base sequence is then the first record's, -1 (none).
            sequence: i as i32 - 1,
            timestamp: now_ms,
            key: Some(key),
            value,
            headers: Default::default(),
        })
        .collect();
    let mut buf = bytes::BytesMut::new();
    let options = RecordEncodeOptions { version: 2, compression: Compression::None };
    RecordBatchEncoder::encode(&mut buf, &records, &options).map_err(|e| BatchError::Encode(format!("{e:#}")))?;
    let headers = validate_produced_batches(&buf, usize::MAX)?;
    Ok((buf.freeze(), headers))
}

/// Validates what a producer sent for one partition: one or more consecutive, complete v2
/// batches. Returns their headers in order (empty input yields an empty vector).
pub fn validate_produced_batches(bytes: &[u8], max_batch_bytes: usize) -> Result<Vec<BatchHeader>, BatchError> {
    validate_produced_batches_within(bytes, max_batch_bytes, decompressed_size_limit(max_batch_bytes))
}

/// [`validate_produced_batches`] with each batch's decompressed size bounded by
/// `decompressed_limit` (the scratch the caller has reserved; the decompression buffer
/// is allocated once, at most this size plus one byte, and reused across batches).
pub fn validate_produced_batches_within(
    bytes: &[u8],
    max_batch_bytes: usize,
    decompressed_limit: usize,
) -> Result<Vec<BatchHeader>, BatchError> {
    let mut headers = Vec::new();
    let mut scratch = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let rest = &bytes[pos..];
        let total = batch_total_size(rest)?;
        if total > max_batch_bytes {
            return Err(BatchError::TooLarge);
        }
        if rest.len() < total {
            return Err(BatchError::Truncated);
        }
        let batch = &rest[..total];
        let header = BatchHeader::parse(batch)?;
        if !verify_crc(batch) {
            return Err(BatchError::Corrupt);
        }
        if header.records_count <= 0 {
            // Kafka rejects batches whose offset range is empty ("invalid offset range").
            return Err(BatchError::InvalidRecord(format!("batch has {} records", header.records_count)));
        }
        if header.last_offset_delta != header.records_count - 1 {
            return Err(BatchError::InvalidRecord(format!(
                "lastOffsetDelta {} does not match recordsCount {}",
                header.last_offset_delta, header.records_count
            )));
        }
        let payload = &batch[HEADER_SIZE..];
        match header.compression() {
            Compression::None => walk_records(payload, header.records_count)?,
            codec => {
                decompress(codec, payload, decompressed_limit, &mut scratch)?;
                walk_records(&scratch, header.records_count)?;
            }
        }
        headers.push(header);
        pos += total;
    }
    Ok(headers)
}

/// Decompresses `input` into `out` (cleared first), failing with `TooLarge` as soon as more
/// than `limit` bytes would be produced. The codec crates are used directly rather than
/// through kafka-protocol's `Decompressor`, which has no size bound.
///
/// `out` is given room for `limit + 1` bytes at once, so it never reallocates (a
/// growing `Vec` would copy and could hold twice what it needs): what is touched, and
/// so resident, is what was decompressed.
pub(crate) fn decompress(codec: Compression, input: &[u8], limit: usize, out: &mut Vec<u8>) -> Result<(), BatchError> {
    out.clear();
    // A limit the allocator cannot give (a huge configured max.message.bytes) refuses the
    // batch rather than aborting the process.
    let bytes = limit.saturating_add(1);
    out.try_reserve_exact(bytes).map_err(|source| BatchError::NoScratch { bytes, source })?;
    let err = |source: io::Error| BatchError::Decompress { codec, source };
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    match codec {
        Compression::None => out.extend_from_slice(input),
        Compression::Gzip => {
            flate2::read::MultiGzDecoder::new(input).take(cap).read_to_end(out).map_err(err)?;
        }
        Compression::Lz4 => {
            lz4::Decoder::new(input).map_err(err)?.take(cap).read_to_end(out).map_err(err)?;
        }
        Compression::Zstd => {
            let mut d = zstd::stream::read::Decoder::with_buffer(input).map_err(err)?;
            // Bound the window buffer too, not just the output. At least 2^23 so that frames
            // from Java producers (streaming mode, window up to 8 MiB) always decode.
            let window_log = usize::BITS - limit.max(1).leading_zeros();
            d.window_log_max(window_log.clamp(23, 27)).map_err(err)?;
            d.take(cap).read_to_end(out).map_err(err)?;
        }
        Compression::Snappy => decompress_snappy(input, limit, out)?,
    }
    if out.len() > limit {
        return Err(BatchError::TooLarge);
    }
    Ok(())
}

const SNAPPY_XERIAL_MAGIC: &[u8; 8] = b"\x82SNAPPY\x00";
const SNAPPY_XERIAL_HEADER: usize = 16;

/// Kafka's Java clients use snappy-java's "xerial" framing (magic header, then
/// `u32 length + raw block` chunks); fall back to a single raw block like the Java client.
/// Each block's declared length is checked against the limit before allocating.
fn decompress_snappy(input: &[u8], limit: usize, out: &mut Vec<u8>) -> Result<(), BatchError> {
    let err = |source: io::Error| BatchError::Decompress { codec: Compression::Snappy, source };
    let eof = |what: &str| err(io::Error::new(io::ErrorKind::UnexpectedEof, format!("truncated snappy {what}")));
    let mut append_block = |block: &[u8]| -> Result<(), BatchError> {
        let n = snap::raw::decompress_len(block).map_err(|e| err(e.into()))?;
        if out.len().saturating_add(n) > limit {
            return Err(BatchError::TooLarge);
        }
        let start = out.len();
        out.resize(start + n, 0);
        let written = snap::raw::Decoder::new().decompress(block, &mut out[start..]).map_err(|e| err(e.into()))?;
        out.truncate(start + written);
        Ok(())
    };
    if input.len() >= SNAPPY_XERIAL_HEADER && input.starts_with(SNAPPY_XERIAL_MAGIC) {
        let mut rest = &input[SNAPPY_XERIAL_HEADER..];
        while !rest.is_empty() {
            if rest.len() < 4 {
                return Err(eof("block length"));
            }
            let n = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            rest = &rest[4..];
            if rest.len() < n {
                return Err(eof("block"));
            }
            append_block(&rest[..n])?;
            rest = &rest[n..];
        }
        Ok(())
    } else {
        append_block(input)
    }
}

/// Cursor over record bytes; every read is bounds checked and nothing is allocated.
struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }
    fn byte(&mut self) -> Result<u8, BatchError> {
        let b = *self.data.get(self.pos).ok_or_else(|| BatchError::InvalidRecord("record ends early".into()))?;
        self.pos += 1;
        Ok(b)
    }
    /// Unsigned LEB128 of at most `max_bytes` bytes.
    fn raw_varint(&mut self, max_bytes: u32) -> Result<u64, BatchError> {
        let mut value = 0u64;
        for i in 0..max_bytes {
            let b = self.byte()?;
            value |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(BatchError::InvalidRecord("varint too long".into()))
    }
    fn varint(&mut self) -> Result<i32, BatchError> {
        let v = self.raw_varint(5)?;
        let v = u32::try_from(v).map_err(|e| BatchError::InvalidRecord(format!("varint overflow: {e}")))?;
        Ok(((v >> 1) as i32) ^ -((v & 1) as i32))
    }
    fn varlong(&mut self) -> Result<i64, BatchError> {
        let v = self.raw_varint(10)?;
        Ok(((v >> 1) as i64) ^ -((v & 1) as i64))
    }
    fn skip(&mut self, n: usize) -> Result<&'a [u8], BatchError> {
        if n > self.remaining() {
            return Err(BatchError::InvalidRecord("length exceeds record".into()));
        }
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    /// A length-prefixed byte field; `-1` means null when `nullable`.
    fn bytes_field(&mut self, what: &str, nullable: bool) -> Result<(), BatchError> {
        let len = self.varint()?;
        if len < 0 {
            if nullable && len == -1 {
                return Ok(());
            }
            return Err(BatchError::InvalidRecord(format!("invalid {what} length {len}")));
        }
        self.skip(len as usize).map(|_| ())
    }
}

/// Walks exactly `count` records that must consume exactly all of `data`; record `i` must have
/// offsetDelta `i`.
fn walk_records(data: &[u8], count: i32) -> Result<(), BatchError> {
    let mut c = Cursor { data, pos: 0 };
    for i in 0..count {
        let len = c.varint()?;
        if len < 0 {
            return Err(BatchError::InvalidRecord(format!("negative record length {len}")));
        }
        let body = c.skip(len as usize)?;
        walk_record(body, i)?;
    }
    if c.remaining() != 0 {
        return Err(BatchError::InvalidRecord(format!("{} bytes after the last of {count} records", c.remaining())));
    }
    Ok(())
}

fn walk_record(body: &[u8], index: i32) -> Result<(), BatchError> {
    let mut c = Cursor { data: body, pos: 0 };
    c.byte()?; // attributes (unused in v2)
    c.varlong()?; // timestampDelta
    let offset_delta = c.varint()?;
    if offset_delta != index {
        return Err(BatchError::InvalidRecord(format!("record {index} has offsetDelta {offset_delta}")));
    }
    c.bytes_field("key", true)?;
    c.bytes_field("value", true)?;
    let headers = c.varint()?;
    if headers < 0 {
        return Err(BatchError::InvalidRecord(format!("negative header count {headers}")));
    }
    for _ in 0..headers {
        c.bytes_field("header key", false)?;
        c.bytes_field("header value", true)?;
    }
    if c.remaining() != 0 {
        return Err(BatchError::InvalidRecord(format!(
            "record {index} has {} unexpected trailing bytes",
            c.remaining()
        )));
    }
    Ok(())
}

/// Rewrites baseOffset (not covered by the CRC, so no CRC update is needed).
pub fn set_base_offset(batch: &mut [u8], offset: i64) -> Result<(), BatchError> {
    let dst = batch.get_mut(0..8).ok_or(BatchError::Truncated)?;
    dst.copy_from_slice(&offset.to_be_bytes());
    Ok(())
}

/// Rewrites partitionLeaderEpoch (not covered by the CRC).
pub fn set_partition_leader_epoch(batch: &mut [u8], epoch: i32) -> Result<(), BatchError> {
    let dst =
        batch.get_mut(PARTITION_LEADER_EPOCH_OFFSET..PARTITION_LEADER_EPOCH_OFFSET + 4).ok_or(BatchError::Truncated)?;
    dst.copy_from_slice(&epoch.to_be_bytes());
    Ok(())
}

/// Stamps a batch with LogAppendTime the way Kafka's `DefaultRecordBatch.setMaxTimestamp`
/// does: set the timestamp-type attribute bit and maxTimestamp = `timestamp`, leave
/// baseTimestamp and the per-record deltas alone (consumers use maxTimestamp for every record
/// of a LogAppendTime batch), then recompute the CRC. `batch` must start with a whole batch.
pub fn set_log_append_time(batch: &mut [u8], timestamp: i64) -> Result<(), BatchError> {
    let total = batch_total_size(batch)?;
    if total > batch.len() || total < HEADER_SIZE {
        return Err(BatchError::Truncated);
    }
    let batch = &mut batch[..total];
    let attrs = be_i16(batch, ATTRIBUTES_OFFSET) | TIMESTAMP_TYPE_BIT;
    batch[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&attrs.to_be_bytes());
    batch[MAX_TIMESTAMP_OFFSET..MAX_TIMESTAMP_OFFSET + 8].copy_from_slice(&timestamp.to_be_bytes());
    let crc = crc32c::crc32c(&batch[ATTRIBUTES_OFFSET..]);
    batch[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    Ok(())
}

/// Iterates over stored batches in a byte slice, yielding each header and its byte range.
/// It checks framing only (not CRCs: see [`verify_crc`]). After the first error it is
/// exhausted; [`BatchIter::position`] then tells where the valid prefix ends.
pub struct BatchIter<'a> {
    data: &'a [u8],
    pos: usize,
    failed: bool,
}

impl<'a> BatchIter<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        BatchIter { data, pos: 0, failed: false }
    }
    /// Byte position just after the last batch yielded successfully.
    pub fn position(&self) -> usize {
        self.pos
    }
}

impl Iterator for BatchIter<'_> {
    type Item = Result<(BatchHeader, Range<usize>), BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.data.len() {
            return None;
        }
        let rest = &self.data[self.pos..];
        let parsed = BatchHeader::parse(rest)
            .and_then(|h| if h.total_size() > rest.len() { Err(BatchError::Truncated) } else { Ok(h) });
        match parsed {
            Ok(h) => {
                let range = self.pos..self.pos + h.total_size();
                self.pos = range.end;
                Some(Ok((h, range)))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

#[cfg(test)]
#[path = "batch_tests.rs"]
mod tests;
