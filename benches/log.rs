//! One partition's log: append (page cache, no fsync) and read back through a read plan.
//! `cargo bench --bench log`

mod common;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use jet::log::{Compression, LogConfig, PartitionLog};
use std::hint::black_box;

const BATCHES: usize = 64; // 64 batches of 16 x 1 KiB: 1 MiB of records

fn append(c: &mut Criterion) {
    let batch = common::batch(16, 1024, Compression::None);
    let mut g = c.benchmark_group("log");
    g.throughput(Throughput::Bytes((BATCHES * batch.len()) as u64));
    g.bench_function("append 64 batches of 16x1KiB", |bench| {
        // a fresh log each iteration (opened and removed untimed), so the disk use stays at 1 MiB
        bench.iter_batched(
            || {
                let dir = tempfile::tempdir().expect("tempdir");
                let log = PartitionLog::open(dir.path(), LogConfig::default()).expect("open");
                (dir, log)
            },
            |(dir, mut log)| {
                for _ in 0..BATCHES {
                    log.append(&batch, 0, 0).expect("append");
                }
                (dir, log)
            },
            BatchSize::PerIteration,
        )
    });

    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = PartitionLog::open(dir.path(), LogConfig::default()).expect("open");
    for _ in 0..BATCHES {
        log.append(&batch, 0, 0).expect("append");
    }
    let end = log.log_end_offset();
    g.bench_function("read 1 MiB from offset 0", |bench| {
        bench.iter(|| log.read(black_box(0), 1 << 20, end, true).expect("read"))
    });
    g.finish();
}

criterion_group!(benches, append);
criterion_main!(benches);
