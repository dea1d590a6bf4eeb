//! Broker-side compression, for topics whose `compression.type` names a codec: a batch
//! the producer compressed differently is rewritten with the topic's codec, as Kafka's
//! `LogValidator` does. Only the records section changes; the header keeps every
//! producer field (id, epoch, sequence), so idempotence is unaffected.

use bytes::BufMut;
use kafka_protocol::compression::{Compressor, Gzip, Lz4, Snappy, Zstd};

use super::batch::{BatchError, BatchHeader, Compression, HEADER_SIZE, decompress};

const LENGTH_OFFSET: usize = 8;
const CRC_OFFSET: usize = 17;
const ATTRIBUTES_OFFSET: usize = 21;
const COMPRESSION_MASK: i16 = 0x07;

/// The attribute bits of a codec.
fn codec_bits(codec: Compression) -> i16 {
    match codec {
        Compression::None => 0,
        Compression::Gzip => 1,
        Compression::Snappy => 2,
        Compression::Lz4 => 3,
        Compression::Zstd => 4,
    }
}

/// Parses a topic `compression.type`: `None` for `producer` (keep what was sent).
pub fn topic_codec(compression_type: &str) -> Option<Compression> {
    match compression_type {
        "uncompressed" | "none" => Some(Compression::None),
        "gzip" => Some(Compression::Gzip),
        "snappy" => Some(Compression::Snappy),
        "lz4" => Some(Compression::Lz4),
        "zstd" => Some(Compression::Zstd),
        _ => None,
    }
}

pub(crate) fn compress(codec: Compression, records: &[u8], out: &mut bytes::BytesMut) -> Result<(), BatchError> {
    let write = |buf: &mut bytes::BytesMut| -> anyhow::Result<()> {
        buf.put_slice(records);
        Ok(())
    };
    let result = match codec {
        Compression::None => {
            out.put_slice(records);
            Ok(())
        }
        Compression::Gzip => Gzip::compress(out, write),
        Compression::Snappy => Snappy::compress(out, write),
        Compression::Lz4 => Lz4::compress(out, write),
        Compression::Zstd => Zstd::compress(out, write),
    };
    result.map_err(|e| BatchError::Compress { codec, reason: format!("{e:#}") })
}

/// Appends `batch` rewritten with `codec` to `out` (unchanged if it already uses it).
/// `batch` must be a validated batch; `decompressed_limit` bounds its decompressed size
/// (see [`super::batch::decompressed_size_limit`]).
pub fn recompress_into(
    batch: &[u8],
    codec: Compression,
    decompressed_limit: usize,
    out: &mut bytes::BytesMut,
) -> Result<(), BatchError> {
    let header = BatchHeader::parse(batch)?;
    if header.compression() == codec {
        out.put_slice(batch);
        return Ok(());
    }
    let mut plain = Vec::new();
    decompress(header.compression(), &batch[HEADER_SIZE..], decompressed_limit, &mut plain)?;
    let start = out.len();
    out.put_slice(&batch[..HEADER_SIZE]);
    compress(codec, &plain, out)?;
    let rewritten = &mut out[start..];
    let batch_length = i32::try_from(rewritten.len() - 12).map_err(|_| BatchError::TooLarge)?;
    rewritten[LENGTH_OFFSET..LENGTH_OFFSET + 4].copy_from_slice(&batch_length.to_be_bytes());
    let attributes = (header.attributes & !COMPRESSION_MASK) | codec_bits(codec);
    rewritten[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&attributes.to_be_bytes());
    let crc = crc32c::crc32c(&rewritten[ATTRIBUTES_OFFSET..]);
    rewritten[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::test_util::producer_batch;
    use crate::log::validate_produced_batches;
    use kafka_protocol::records::RecordBatchDecoder;

    #[test]
    fn every_codec_to_every_codec_keeps_records_and_producer_fields() {
        let codecs = [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd];
        for from in codecs {
            let original = producer_batch(20, 1000, 50, from, (7, 1, 40));
            let before = RecordBatchDecoder::decode(&mut bytes::Bytes::from(original.clone())).unwrap();
            for to in codecs {
                let mut out = bytes::BytesMut::new();
                recompress_into(&original, to, 64 << 20, &mut out).unwrap();
                let headers = validate_produced_batches(&out, 1 << 20).unwrap();
                assert_eq!(headers.len(), 1);
                assert_eq!(headers[0].compression(), to, "{from:?} -> {to:?}");
                assert_eq!((headers[0].producer_id, headers[0].producer_epoch, headers[0].base_sequence), (7, 1, 40));
                let after = RecordBatchDecoder::decode(&mut out.freeze()).unwrap();
                assert_eq!(after.records, before.records, "{from:?} -> {to:?}");
            }
        }
    }

    #[test]
    fn topic_codecs() {
        assert_eq!(topic_codec("producer"), None);
        assert_eq!(topic_codec("uncompressed"), Some(Compression::None));
        assert_eq!(topic_codec("zstd"), Some(Compression::Zstd));
    }
}
