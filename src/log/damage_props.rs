//! Property test: random damage to random sealed segments (flipped bytes, overwritten
//! bytes, lying length fields, junk appended), with a clean or unclean stop and sparse or
//! dense indexes. After reopening and one scrub pass, over every case:
//! the log end and the segment count never change, every batch served passes its CRC and
//! is the byte-for-byte original, exactly the offsets of the batches whose bytes changed
//! are refused (with `LogError::Corrupt`), everything else is served, and the next append
//! gets the old log end.
//!
//! Not damaged: a batch's `baseOffset` and `partitionLeaderEpoch` fields. Kafka's CRC does
//! not cover them, so a change there that keeps offsets in order cannot be told from
//! data; it is caught only when it breaks the order of offsets.
//!
//! Bounded: 24 cases by default (10-15 s in a debug build on a loaded 2-core VM, mostly fsyncs); set `PROPTEST_CASES` for a
//! longer run.

use std::os::unix::fs::FileExt;
use std::path::Path;

use proptest::prelude::*;

use super::test_util::batch;
use super::*;

const RECORDS: usize = 4;
const PER_SEGMENT: usize = 4;
const SEGMENTS: usize = 12;
const LOG_END: i64 = (RECORDS * PER_SEGMENT * SEGMENTS) as i64;

#[derive(Debug, Clone)]
enum Damage {
    /// Invert `len` bytes from a position (given as a fraction of the segment).
    Flip { at: u16, len: u8 },
    /// Overwrite bytes with these.
    Overwrite { at: u16, bytes: Vec<u8> },
    /// Replace the length field of the n-th batch (mod batches) with this value.
    LieLength { batch: u8, value: u32 },
    /// Append junk after the segment's last batch.
    AppendJunk { bytes: Vec<u8> },
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (any::<u16>(), 1u8..40).prop_map(|(at, len)| Damage::Flip { at, len }),
        (any::<u16>(), prop::collection::vec(any::<u8>(), 1..40))
            .prop_map(|(at, bytes)| Damage::Overwrite { at, bytes }),
        (any::<u8>(), prop_oneof![Just(0x7fff_ffffu32), Just(0), any::<u32>()])
            .prop_map(|(batch, value)| Damage::LieLength { batch, value }),
        prop::collection::vec(any::<u8>(), 1..5000).prop_map(|bytes| Damage::AppendJunk { bytes }),
    ]
}

fn cfg(dense_index: bool) -> LogConfig {
    let one = batch(RECORDS, 0).len() as u64;
    LogConfig {
        segment_bytes: one * PER_SEGMENT as u64,
        index_interval_bytes: if dense_index { 1 } else { 4096 },
        ..LogConfig::default()
    }
}

fn seg_path(dir: &Path, i: usize) -> std::path::PathBuf {
    dir.join(format!("{:020}.log", (i * RECORDS * PER_SEGMENT) as i64))
}

/// Applies `d` to segment file `path`, never touching a batch's first 8 bytes
/// (baseOffset) nor bytes 12..16 (partitionLeaderEpoch).
fn apply(path: &Path, d: &Damage) {
    let mut data = std::fs::read(path).expect("read");
    let len = data.len();
    let unprotected = |pos: usize| {
        let at = pos % (len / PER_SEGMENT);
        at < 8 || (12..16).contains(&at)
    };
    match d {
        Damage::Flip { at, len: n } => {
            let start = usize::from(*at) * len / 65_536;
            for p in (start..start + usize::from(*n)).filter(|&p| p < len && !unprotected(p)) {
                data[p] = !data[p];
            }
        }
        Damage::Overwrite { at, bytes } => {
            let start = usize::from(*at) * len / 65_536;
            for (i, b) in bytes.iter().enumerate() {
                let p = start + i;
                if p < len && !unprotected(p) {
                    data[p] = *b;
                }
            }
        }
        Damage::LieLength { batch, value } => {
            let p = (usize::from(*batch) % PER_SEGMENT) * (len / PER_SEGMENT) + 8;
            data[p..p + 4].copy_from_slice(&value.to_be_bytes());
        }
        Damage::AppendJunk { bytes } => data.extend_from_slice(bytes),
    }
    let f = std::fs::OpenOptions::new().write(true).open(path).expect("open");
    f.write_all_at(&data, 0).expect("write");
}

fn run_case(clean: bool, dense: bool, damages: &[(usize, Damage)]) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().expect("tempdir");
    let c = cfg(dense);
    let mut log = PartitionLog::open(dir.path(), c.clone()).expect("open");
    let mut originals = Vec::new();
    for i in 0..SEGMENTS * PER_SEGMENT {
        let mut b = batch(RECORDS, i as i64);
        let info = log.append(&b, 0, 1_000).expect("append");
        set_base_offset(&mut b, info.base_offset).expect("offset");
        set_partition_leader_epoch(&mut b, 0).expect("epoch");
        originals.push(b);
    }
    if clean {
        log.close().expect("close");
    }
    drop(log);
    let before: Vec<Vec<u8>> = (0..SEGMENTS).map(|i| std::fs::read(seg_path(dir.path(), i)).expect("read")).collect();
    for (segment, d) in damages {
        apply(&seg_path(dir.path(), *segment), d);
    }
    // The batches whose bytes changed.
    let mut touched = std::collections::BTreeSet::new();
    for (i, old) in before.iter().enumerate() {
        let new = std::fs::read(seg_path(dir.path(), i)).expect("read");
        let one = old.len() / PER_SEGMENT;
        for (b, chunk) in old.chunks(one).enumerate() {
            if new.get(b * one..(b + 1) * one) != Some(chunk) {
                touched.insert(i * PER_SEGMENT + b);
            }
        }
    }
    for round in 0..2 {
        let log = PartitionLog::open(dir.path(), c.clone()).expect("open");
        scrubber::run_pass(&[("p".to_string(), log.scrub_targets())], u64::MAX, || false);
        prop_assert_eq!(log.log_end_offset(), LOG_END, "round {}: log end lowered", round);
        let segments = std::fs::read_dir(dir.path())
            .expect("ls")
            .filter(|e| e.as_ref().is_ok_and(|e| e.path().extension().is_some_and(|x| x == "log")))
            .count();
        prop_assert_eq!(segments, SEGMENTS, "round {}: segments deleted", round);
        let mut offset = 0;
        while offset < LOG_END {
            let index = (offset / RECORDS as i64) as usize;
            match log.read(offset, 1, LOG_END, true) {
                Ok(bytes) => {
                    prop_assert!(!touched.contains(&index), "round {}: damaged batch {} served", round, index);
                    let mut served = 0;
                    for item in BatchIter::new(&bytes) {
                        let (h, range) = item.expect("whole batch");
                        let i = (h.base_offset / RECORDS as i64) as usize;
                        prop_assert_eq!(
                            &bytes[range],
                            &originals[i][..],
                            "round {}: batch {} not the original",
                            round,
                            i
                        );
                        served += 1;
                        offset = h.next_offset();
                    }
                    prop_assert!(served > 0, "round {}: empty read at {}", round, offset);
                }
                Err(LogError::Corrupt { first_offset, last_offset, .. }) => {
                    prop_assert!(touched.contains(&index), "round {}: intact batch {} refused", round, index);
                    prop_assert!(first_offset <= offset && offset <= last_offset);
                    offset += RECORDS as i64;
                }
                Err(e) => return Err(TestCaseError::fail(format!("round {round}: read at {offset}: {e}"))),
            }
        }
    }
    let mut log = PartitionLog::open(dir.path(), c).expect("open");
    prop_assert_eq!(log.append(&batch(1, 0), 0, 2_000).expect("append").base_offset, LOG_END);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(24), max_shrink_iters: 200, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_damage_to_sealed_segments_loses_only_the_damaged_batches(
        clean in any::<bool>(),
        dense in any::<bool>(),
        damages in prop::collection::vec((0..SEGMENTS - 1, damage()), 1..4),
    ) {
        run_case(clean, dense, &damages)?;
    }
}
