//! Mutation fuzzing of record-batch validation (`log::batch::validate_produced_batches`,
//! what stands between a producer and the log) and of what runs on a batch once it is
//! accepted (broker-side recompression, the compacted-topic key check).
//!
//! Seeds are the batches inside the real Produce requests of `fuzz/corpus/` (kcat,
//! confluent-kafka, kafka-python, Java; every codec) plus batches encoded here with each
//! codec. A case mutates a seed in one of three ways: the raw bytes (the CRC catches
//! most), the bytes re-sealed afterwards (length and CRC fixed, so the header and record
//! walk are reached), or the uncompressed records before compressing them again (so lies
//! about record lengths, counts and varints reach the walk inside compressed batches).
//! Nothing may panic, and the memory a batch costs is bounded by the decompression limit.
//!
//! `JET_FUZZ_CASES=1000000 cargo test --release --test fuzz_batches` for a long run.

mod common;

use std::io::Write;

use bytes::{Bytes, BytesMut};
use common::fuzz::{self, Mutation, peak_allocation};
use jet::log::batch::{Compression, HEADER_SIZE, decompressed_size_limit, validate_produced_batches};
use jet::protocol::{Decoded, decode_request};
use kafka_protocol::messages::RequestKind;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};
use proptest::prelude::*;
use proptest::test_runner::TestRunner;

#[global_allocator]
static ALLOC: fuzz::CountingAlloc = fuzz::CountingAlloc;

const CRC_OFFSET: usize = 17;
const ATTRIBUTES_OFFSET: usize = 21;
const CODECS: [Compression; 5] =
    [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd];

/// `max.message.bytes` of the fuzzed topic: 256 KiB, so decompression may produce 16 MiB.
const MAX_BATCH: usize = 256 << 10;

/// Most a batch may cost: its decompression scratch (reserved once at the limit plus one
/// byte, never regrown), zstd's window (at least 8 MiB so Java producers' frames decode)
/// and a little for codec state and headers.
fn allocation_bound(input: usize) -> usize {
    decompressed_size_limit(MAX_BATCH) + 1 + (8 << 20) + (2 << 20) + 2 * input
}

fn corpus_batches() -> Vec<Vec<u8>> {
    let mut batches = Vec::new();
    for (name, frame) in fuzz::corpus() {
        let Ok(Decoded::Request(request)) = decode_request(Bytes::from(frame), jet::handler::supported_versions) else {
            continue;
        };
        let RequestKind::Produce(produce) = request.body else { continue };
        for topic in produce.topic_data {
            for partition in topic.partition_data {
                if let Some(records) = partition.records.filter(|r| !r.is_empty()) {
                    let ok = validate_produced_batches(&records, 100 << 20);
                    assert!(ok.is_ok(), "{name}: a real client's batch is refused: {ok:?}");
                    batches.push(records.to_vec());
                }
            }
        }
    }
    batches
}

fn encoded(codec: Compression, n: usize) -> Vec<u8> {
    let records: Vec<Record> = (0..n)
        .map(|i| Record {
            transactional: false,
            control: false,
            partition_leader_epoch: 0,
            delete_horizon: false,
            producer_id: 7,
            producer_epoch: 0,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: i as i32,
            timestamp: 1_700_000_000_000 + i as i64,
            key: (i % 3 != 0).then(|| Bytes::from(format!("key-{i}"))),
            value: (i % 5 != 0).then(|| Bytes::from(vec![b'v'; i * 7])),
            headers: [(StrBytes::from_static_str("h"), Some(Bytes::from_static(b"x")))].into_iter().collect(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(&mut buf, &records, &RecordEncodeOptions { version: 2, compression: codec }).unwrap();
    buf.to_vec()
}

fn compress(codec: Compression, plain: &[u8]) -> Vec<u8> {
    match codec {
        Compression::None => plain.to_vec(),
        Compression::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(plain).unwrap();
            e.finish().unwrap()
        }
        Compression::Snappy => snap::raw::Encoder::new().compress_vec(plain).unwrap(),
        Compression::Lz4 => {
            let mut e = lz4::EncoderBuilder::new().build(Vec::new()).unwrap();
            e.write_all(plain).unwrap();
            let (out, result) = e.finish();
            result.unwrap();
            out
        }
        Compression::Zstd => zstd::encode_all(plain, 1).unwrap(),
    }
}

/// Sets batchLength to the bytes present and recomputes the CRC (when there is a header).
fn reseal(batch: &mut [u8]) {
    if batch.len() < HEADER_SIZE {
        return;
    }
    let length = (batch.len() - 12) as i32;
    batch[8..12].copy_from_slice(&length.to_be_bytes());
    let crc = crc32c::crc32c(&batch[ATTRIBUTES_OFFSET..]);
    batch[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
}

/// A batch of `codec` whose records were mutated before compression.
fn with_mutated_records(codec: Compression, n: usize, mutations: &[Mutation], seeds: &[Vec<u8>]) -> Vec<u8> {
    let plain_batch = encoded(Compression::None, n);
    let mut records = plain_batch[HEADER_SIZE..].to_vec();
    for m in mutations {
        fuzz::apply(&mut records, m, seeds, 0);
    }
    let mut batch = plain_batch[..HEADER_SIZE].to_vec();
    let attributes = i16::from_be_bytes([batch[ATTRIBUTES_OFFSET], batch[ATTRIBUTES_OFFSET + 1]]) & !0x07
        | match codec {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        };
    batch[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&attributes.to_be_bytes());
    batch.extend_from_slice(&compress(codec, &records));
    reseal(&mut batch);
    batch
}

#[derive(Debug, Clone)]
enum Case {
    /// Mutate the bytes as stored; optionally re-seal length and CRC afterwards.
    Bytes { seed: usize, reseal: bool, mutations: Vec<Mutation> },
    /// Mutate the records of an encoded batch, then compress them with `codec`.
    Records { codec: usize, records: usize, mutations: Vec<Mutation> },
}

fn case(seeds: usize) -> impl Strategy<Value = Case> {
    let mutations = || proptest::collection::vec(fuzz::mutation(), 1..6);
    prop_oneof![
        (0..seeds, any::<bool>(), mutations()).prop_map(|(seed, reseal, mutations)| Case::Bytes {
            seed,
            reseal,
            mutations
        }),
        (0..CODECS.len(), 1..40usize, mutations()).prop_map(|(codec, records, mutations)| Case::Records {
            codec,
            records,
            mutations
        }),
    ]
}

fn build(seeds: &[Vec<u8>], case: &Case) -> Vec<u8> {
    match case {
        Case::Bytes { seed, reseal: fix, mutations } => {
            let mut batch = seeds[*seed].clone();
            for m in mutations {
                fuzz::apply(&mut batch, m, seeds, 0);
            }
            if *fix {
                reseal(&mut batch);
            }
            batch
        }
        Case::Records { codec, records, mutations } => with_mutated_records(CODECS[*codec], *records, mutations, seeds),
    }
}

/// Validates `batch` as the produce path does and, if accepted, runs what follows
/// acceptance: recompression to every codec and the compacted topic's key check.
fn produce_path(batch: &[u8]) -> Result<usize, String> {
    let headers = validate_produced_batches(batch, MAX_BATCH).map_err(|e| e.to_string())?;
    let total: usize = headers.iter().map(|h| h.total_size()).sum();
    assert_eq!(total, batch.len(), "accepted batches must cover the input exactly");
    assert!(headers.iter().all(|h| h.records_count > 0 && h.last_offset_delta == h.records_count - 1));
    let mut pos = 0;
    for h in &headers {
        let one = &batch[pos..pos + h.total_size()];
        pos += h.total_size();
        for codec in CODECS {
            let mut out = BytesMut::new();
            jet::log::recompress::recompress_into(one, codec, MAX_BATCH, &mut out).map_err(|e| e.to_string())?;
            // What the broker writes after recompressing is itself a valid batch.
            // (Its own limit: validation reserves the decompression bound up front.)
            let again =
                validate_produced_batches(&out, out.len().max(MAX_BATCH)).map_err(|e| format!("recompressed: {e}"));
            assert!(again.is_ok(), "recompressing an accepted batch to {codec:?} made it invalid: {again:?}");
        }
    }
    jet::log::cleaner::records::keyless_records(batch, &headers, MAX_BATCH).map_err(|e| e.to_string())?;
    Ok(headers.len())
}

#[test]
fn seeds_are_accepted() {
    let seeds = corpus_batches();
    let codecs: std::collections::BTreeSet<i16> =
        seeds.iter().map(|b| i16::from_be_bytes([b[ATTRIBUTES_OFFSET], b[ATTRIBUTES_OFFSET + 1]]) & 7).collect();
    eprintln!("{} batches from the corpus, codecs {codecs:?}", seeds.len());
    assert!(seeds.len() >= 10 && codecs.len() == 5, "the corpus should hold batches of every codec: {codecs:?}");
    for codec in CODECS {
        let batch = encoded(codec, 25);
        assert_eq!(produce_path(&batch), Ok(1), "{codec:?}");
        assert_eq!(produce_path(&with_mutated_records(codec, 25, &[], &[])), Ok(1), "{codec:?} resealed");
    }
}

#[test]
fn mutated_batches_are_refused_cleanly_within_bounded_memory() {
    let mut seeds = corpus_batches();
    seeds.extend(CODECS.iter().map(|&c| encoded(c, 30)));
    let mut runner = TestRunner::new(fuzz::config(60_000));
    let counts = std::sync::Mutex::new(std::collections::BTreeMap::<String, usize>::new());
    let start = std::time::Instant::now();
    let result = runner.run(&case(seeds.len()), |case| {
        let batch = build(&seeds, &case);
        let (outcome, peak) = peak_allocation(|| produce_path(&batch));
        prop_assert!(
            peak <= allocation_bound(batch.len()),
            "{peak} bytes allocated for a {}-byte batch ({outcome:?})",
            batch.len()
        );
        let kind = match &outcome {
            Ok(_) => "accepted".to_string(),
            // The error's kind: its text up to the first detail (a colon or a number).
            Err(e) => e
                .split([':', '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9'])
                .next()
                .unwrap_or_default()
                .trim()
                .to_string(),
        };
        *counts.lock().unwrap().entry(kind).or_default() += 1;
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    eprintln!("{:?} in {:?}", counts.into_inner().unwrap(), start.elapsed());
}

/// A compressed batch that expands far beyond the limit is refused before it is all
/// decompressed, for every codec, and costs the limit (plus codec state), not its
/// expanded size.
#[test]
fn decompression_bombs_are_refused_at_the_limit() {
    let expanded = 2 * decompressed_size_limit(MAX_BATCH); // 32 MiB of zeros
    for codec in [Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd] {
        let plain = vec![0u8; expanded];
        let mut batch = encoded(Compression::None, 1)[..HEADER_SIZE].to_vec();
        batch[ATTRIBUTES_OFFSET + 1] |= match codec {
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            _ => 4,
        };
        batch.extend_from_slice(&compress(codec, &plain));
        drop(plain);
        reseal(&mut batch);
        if batch.len() > MAX_BATCH {
            // Snappy compresses at most ~20x: such a batch is refused as too large outright.
            assert!(produce_path(&batch).unwrap_err().contains("maximum allowed size"));
            eprintln!("{codec:?}: a {}-byte batch is over max.message.bytes", batch.len());
            continue;
        }
        let (outcome, peak) = peak_allocation(|| produce_path(&batch));
        assert!(outcome.is_err(), "{codec:?}: a bomb was accepted");
        assert!(peak <= allocation_bound(batch.len()), "{codec:?}: {peak} bytes for a bomb ({outcome:?})");
        eprintln!("{codec:?}: {}-byte bomb refused ({outcome:?}) after {peak} bytes", batch.len());
    }
}
