use super::*;
use crate::log::test_util::{batch, batch_sized, fix_crc};

const MAX: usize = 1 << 20;

#[test]
fn parses_header_fields() {
    let b = batch(3, 1000);
    let h = BatchHeader::parse(&b).expect("parse");
    assert_eq!(h.magic, 2);
    assert_eq!(h.records_count, 3);
    assert_eq!(h.last_offset_delta, 2);
    assert_eq!(h.last_offset(), h.base_offset + 2);
    assert_eq!(h.base_timestamp, 1000);
    assert_eq!(h.max_timestamp, 1002);
    assert_eq!(h.total_size(), b.len());
    assert_eq!(h.compression(), Compression::None);
    assert_eq!(h.timestamp_type(), TimestampType::Creation);
    assert!(!h.is_transactional() && !h.is_control());
    assert!(verify_crc(&b));
}

#[test]
fn validates_every_codec() {
    for codec in [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd] {
        let b = batch_sized(20, 5, 100, codec);
        let hs = validate_produced_batches(&b, MAX).unwrap_or_else(|e| panic!("{codec:?}: {e:?}"));
        assert_eq!(hs.len(), 1);
        assert_eq!(hs[0].compression(), codec);
        assert_eq!(hs[0].records_count, 20);
    }
}

#[test]
fn validates_consecutive_batches() {
    let mut b = batch(2, 1);
    b.extend(batch_sized(3, 2, 10, Compression::Gzip));
    let hs = validate_produced_batches(&b, MAX).expect("valid");
    assert_eq!(hs.iter().map(|h| h.records_count).collect::<Vec<_>>(), vec![2, 3]);
    assert!(validate_produced_batches(&[], MAX).expect("empty").is_empty());
}

#[test]
fn rejects_bad_crc() {
    let mut b = batch(2, 1);
    let n = b.len();
    b[n - 1] ^= 1;
    assert!(matches!(validate_produced_batches(&b, MAX), Err(BatchError::Corrupt)));
}

#[test]
fn rejects_lying_records_count() {
    let mut b = batch(2, 1);
    b[57..61].copy_from_slice(&3i32.to_be_bytes());
    b[23..27].copy_from_slice(&2i32.to_be_bytes());
    fix_crc(&mut b);
    assert!(matches!(validate_produced_batches(&b, MAX), Err(BatchError::InvalidRecord(_))));
    // lastOffsetDelta inconsistent with the count
    let mut b = batch(2, 1);
    b[23..27].copy_from_slice(&5i32.to_be_bytes());
    fix_crc(&mut b);
    assert!(matches!(validate_produced_batches(&b, MAX), Err(BatchError::InvalidRecord(_))));
    // compressed batch claiming fewer records than it holds
    let mut b = batch_sized(4, 1, 10, Compression::Zstd);
    b[57..61].copy_from_slice(&3i32.to_be_bytes());
    b[23..27].copy_from_slice(&2i32.to_be_bytes());
    fix_crc(&mut b);
    assert!(matches!(validate_produced_batches(&b, MAX), Err(BatchError::InvalidRecord(_))));
}

#[test]
fn rejects_lying_record_length() {
    let mut b = batch(2, 1);
    // First record length is a one-byte zigzag varint at the start of the records.
    assert!(b[HEADER_SIZE] < 0x40);
    b[HEADER_SIZE] += 2; // length + 1
    fix_crc(&mut b);
    assert!(matches!(validate_produced_batches(&b, MAX), Err(BatchError::InvalidRecord(_))));
    let mut b = batch(2, 1);
    b[HEADER_SIZE] -= 2; // length - 1
    fix_crc(&mut b);
    assert!(matches!(validate_produced_batches(&b, MAX), Err(BatchError::InvalidRecord(_))));
}

#[test]
fn rejects_truncated() {
    let b = batch(2, 1);
    assert!(matches!(validate_produced_batches(&b[..b.len() - 1], MAX), Err(BatchError::Truncated)));
    assert!(matches!(validate_produced_batches(&b[..5], MAX), Err(BatchError::Truncated)));
    let mut two = b.clone();
    two.extend_from_slice(&b[..30]);
    assert!(matches!(validate_produced_batches(&two, MAX), Err(BatchError::Truncated)));
}

#[test]
fn rejects_too_large() {
    let b = batch_sized(2, 1, 1000, Compression::None);
    assert!(matches!(validate_produced_batches(&b, b.len() - 1), Err(BatchError::TooLarge)));
    assert!(validate_produced_batches(&b, b.len()).is_ok());
}

#[test]
fn rejects_decompression_bomb() {
    // 1 MiB of identical values compresses to little (snappy only manages ~20x, gzip, lz4
    // and zstd far more); decompression must stop at the limit.
    for codec in [Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd] {
        let b = batch_sized(16, 1, 64 * 1024, codec);
        assert!(b.len() < 64 * 1024, "{codec:?} compressed to {}", b.len());
        let mut out = Vec::new();
        let r = decompress(codec, &b[HEADER_SIZE..], 100_000, &mut out);
        assert!(matches!(r, Err(BatchError::TooLarge)), "{codec:?}: {r:?}");
        assert!(out.len() <= 100_001);
        if codec != Compression::Snappy {
            let r = validate_produced_batches(&b, b.len());
            assert!(matches!(r, Err(BatchError::TooLarge)), "{codec:?}: {r:?}");
        }
    }
}

#[test]
fn rejects_wrong_magic() {
    let mut b = batch(1, 1);
    b[16] = 1;
    assert!(matches!(validate_produced_batches(&b, MAX), Err(BatchError::UnsupportedMagic(1))));
}

#[test]
fn rejects_garbage_compressed_payload() {
    let mut b = batch_sized(3, 1, 10, Compression::Gzip);
    for x in &mut b[HEADER_SIZE..] {
        *x = 0x5a;
    }
    fix_crc(&mut b);
    assert!(matches!(validate_produced_batches(&b, MAX), Err(BatchError::Decompress { .. })));
}

#[test]
fn setters_rewrite_fields() {
    let mut b = batch(3, 100);
    set_base_offset(&mut b, 42).expect("base");
    set_partition_leader_epoch(&mut b, 7).expect("epoch");
    assert!(verify_crc(&b), "neither field is covered by the CRC");
    set_log_append_time(&mut b, 9999).expect("lat");
    assert!(verify_crc(&b));
    let h = BatchHeader::parse(&b).expect("parse");
    assert_eq!((h.base_offset, h.partition_leader_epoch), (42, 7));
    assert_eq!(h.timestamp_type(), TimestampType::LogAppend);
    assert_eq!((h.base_timestamp, h.max_timestamp), (100, 9999));
    let mut bytes = bytes::Bytes::from(b);
    let set = kafka_protocol::records::RecordBatchDecoder::decode(&mut bytes).expect("decode");
    assert_eq!(set.records[2].offset, 44);
    assert!(set_base_offset(&mut [0u8; 4], 1).is_err());
}

#[test]
fn iterates_stored_batches() {
    let mut data = batch(2, 1);
    let first = data.len();
    data.extend(batch(3, 1));
    let all: Vec<_> = BatchIter::new(&data).collect::<Result<_, _>>().expect("iter");
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].1, 0..first);
    assert_eq!(all[1].1, first..data.len());
    let mut it = BatchIter::new(&data[..data.len() - 3]);
    assert!(it.next().expect("first").is_ok());
    assert!(matches!(it.next(), Some(Err(BatchError::Truncated))));
    assert!(it.next().is_none());
    assert_eq!(it.position(), first);
}

/// xorshift64*: deterministic, dependency-free randomness for the fuzz test below.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Mutates `b` in one of several hostile ways.
fn mutate(rng: &mut Rng, b: &mut Vec<u8>) {
    const INTS: [i32; 8] = [0, -1, 1, i32::MIN, i32::MAX, 49, 61, 0x7fff_fff0];
    match rng.below(7) {
        0 => {
            let i = rng.below(b.len());
            if let Some(x) = b.get_mut(i) {
                *x ^= 1 << rng.below(8);
            }
        }
        1 => {
            let i = rng.below(b.len());
            if let Some(x) = b.get_mut(i) {
                *x = [0x00, 0xff, 0x7f, 0x80, 0x01][rng.below(5)];
            }
        }
        2 => {
            let i = rng.below(b.len().saturating_sub(4));
            let v = INTS[rng.below(INTS.len())].to_be_bytes();
            if let Some(dst) = b.get_mut(i..i + 4) {
                dst.copy_from_slice(&v);
            }
        }
        3 => b.truncate(rng.below(b.len())),
        4 => {
            let extra = rng.below(64);
            b.extend((0..extra).map(|_| rng.next() as u8));
        }
        5 => {
            // A run of varint continuation bytes somewhere in the records.
            let i = HEADER_SIZE + rng.below(b.len().saturating_sub(HEADER_SIZE));
            for x in b.iter_mut().skip(i).take(1 + rng.below(12)) {
                *x = 0xff;
            }
        }
        _ => {
            // A header field the CRC does not cover, or the batch length.
            let at = [0usize, 8, 12][rng.below(3)];
            let v = INTS[rng.below(INTS.len())].to_be_bytes();
            if let Some(dst) = b.get_mut(at..at + 4) {
                dst.copy_from_slice(&v);
            }
        }
    }
}

#[test]
fn fuzz_validate_never_panics() {
    let codecs = [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd];
    let seeds: Vec<Vec<u8>> = codecs
        .iter()
        .flat_map(|&c| [batch_sized(3, 7, 5, c), batch_sized(1, 7, 0, c)])
        .chain([[batch(2, 1), batch(1, 2)].concat()])
        .collect();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let (mut accepted, mut rejected) = (0, 0);
    for round in 0..100_000 {
        let mut b = seeds[round % seeds.len()].clone();
        for _ in 0..1 + rng.below(3) {
            mutate(&mut rng, &mut b);
        }
        // Usually re-seal the CRC so the mutation reaches record parsing / decompression.
        if rng.below(4) != 0 && b.len() >= HEADER_SIZE {
            fix_crc(&mut b);
        }
        match validate_produced_batches(&b, MAX) {
            Ok(headers) => {
                accepted += 1;
                // Whatever validation accepts must frame exactly as stored batches.
                let framed: Vec<BatchHeader> =
                    BatchIter::new(&b).map(|r| r.expect("accepted batch frames").0).collect();
                assert_eq!(framed, headers);
                assert_eq!(headers.iter().map(BatchHeader::total_size).sum::<usize>(), b.len());
                assert!(headers.iter().all(|h| h.records_count > 0 && h.last_offset_delta == h.records_count - 1));
            }
            Err(_) => rejected += 1,
        }
        // The storage-side parsers must not panic on it either.
        for (h, r) in BatchIter::new(&b).map_while(Result::ok) {
            let _ = verify_crc(&b[r]);
            let _ = (h.last_offset(), h.compression(), h.timestamp_type());
        }
    }
    assert!(accepted > 0 && rejected > 0, "accepted {accepted}, rejected {rejected}");
}

#[test]
fn an_unallocatable_decompression_limit_is_an_error_not_an_abort() {
    let mut out = Vec::new();
    let e = decompress(Compression::Gzip, b"not gzip", usize::MAX, &mut out).unwrap_err();
    assert!(matches!(e, BatchError::NoScratch { .. }), "{e}");
    let e = decompress(Compression::Gzip, b"not gzip", isize::MAX as usize, &mut out).unwrap_err();
    assert!(matches!(e, BatchError::NoScratch { .. }), "{e}");
}

#[test]
fn the_brokers_own_batches_are_one_batch_without_sequences() {
    use bytes::Bytes;
    let records = (0..3).map(|i| (Bytes::from(format!("k{i}")), Some(Bytes::from_static(b"v"))));
    let (_, headers) = super::internal_batch(records.clone(), 5, Some((42, 3))).expect("encoded");
    assert_eq!(headers.len(), 1, "one batch, whatever the number of records");
    let h = &headers[0];
    assert_eq!((h.producer_id, h.producer_epoch, h.base_sequence), (42, 3, -1));
    assert!(h.is_transactional());
    assert_eq!(h.last_offset_delta, 2);
    let (_, plain) = super::plain_batch(records, 5).expect("encoded");
    assert_eq!(plain.len(), 1);
    assert_eq!((plain[0].producer_id, plain[0].base_sequence), (-1, -1));
    assert!(!plain[0].is_transactional());
}
