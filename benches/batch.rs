//! Produce-path batch validation: header parse, CRC-32C and (for compressed batches) the
//! bounded decompression that checks the records. `cargo bench --bench batch`

mod common;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use jet::log::{Compression, validate_produced_batches};
use std::hint::black_box;

const MAX_BATCH: usize = 1_048_588;

fn validate(c: &mut Criterion) {
    let mut g = c.benchmark_group("validate_produced_batches");
    for (name, compression) in [("none", Compression::None), ("lz4", Compression::Lz4)] {
        // 16 records of 1 KiB: the batch a producer with batch.size 16384 sends
        let b = common::batch(16, 1024, compression);
        g.throughput(Throughput::Bytes(16 * 1024));
        g.bench_function(format!("16x1KiB/{name}"), |bench| {
            bench.iter(|| validate_produced_batches(black_box(&b), MAX_BATCH).expect("valid"))
        });
    }
    g.finish();
}

criterion_group!(benches, validate);
criterion_main!(benches);
