//! Shared by the mutation fuzz tests (`tests/fuzz_requests.rs`, `tests/fuzz_batches.rs`):
//! the seed corpus, byte mutations as a proptest strategy, an allocation-counting global
//! allocator, and the case count (`JET_FUZZ_CASES`).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::PathBuf;

use proptest::prelude::*;

/// Cases per fuzz property: `JET_FUZZ_CASES` when set (a long run), else `default` in a
/// release build (CI's `cargo test --release`: a few seconds each) and a tenth of it in a
/// debug build (about ten times slower).
pub fn cases(default: u32) -> u32 {
    let default = if cfg!(debug_assertions) { default / 10 } else { default };
    std::env::var("JET_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

pub fn config(default_cases: u32) -> proptest::test_runner::Config {
    proptest::test_runner::Config {
        cases: cases(default_cases),
        max_shrink_iters: 2_000,
        failure_persistence: None,
        ..proptest::test_runner::Config::default()
    }
}

/// The request frames (without their size prefix) captured from real clients by
/// `fuzz/capture.py`, sorted by file name.
pub fn corpus() -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz").join("corpus");
    let mut seeds: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e} (refresh with fuzz/capture.py)", dir.display()))
        .map(|entry| {
            let path = entry.unwrap().path();
            (path.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&path).unwrap())
        })
        .filter(|(name, _)| name.ends_with(".bin"))
        .collect();
    seeds.sort();
    assert!(seeds.len() >= 50, "the seed corpus has only {} frames", seeds.len());
    seeds
}

/// One edit of a seed. Positions are taken modulo the current length.
#[derive(Debug, Clone)]
pub enum Mutation {
    FlipBit {
        pos: usize,
        bit: u8,
    },
    SetByte {
        pos: usize,
        value: u8,
    },
    /// Keep only the first `pos` bytes.
    Truncate {
        pos: usize,
    },
    /// Overwrite 4 bytes with a length-like lie (an array count, a string length, ...).
    LieI32 {
        pos: usize,
        value: i32,
    },
    LieI16 {
        pos: usize,
        value: i16,
    },
    /// Overwrite with an unsigned varint (compact lengths of flexible versions).
    LieVarint {
        pos: usize,
        value: u32,
    },
    Insert {
        pos: usize,
        bytes: Vec<u8>,
    },
    Delete {
        pos: usize,
        len: usize,
    },
    /// Copy `len` bytes from `from` over `pos` within the same input.
    Duplicate {
        from: usize,
        pos: usize,
        len: usize,
    },
    /// Replace everything from `pos` on with bytes of another seed from `from` on.
    Splice {
        seed: usize,
        pos: usize,
        from: usize,
    },
}

fn lie_i32() -> impl Strategy<Value = i32> {
    prop_oneof![
        Just(i32::MAX),
        Just(i32::MIN),
        Just(-1),
        Just(0),
        Just(0x7fff),
        Just(0x10000),
        Just(1 << 24),
        0..4096i32,
        any::<i32>(),
    ]
}

fn lie_i16() -> impl Strategy<Value = i16> {
    prop_oneof![Just(i16::MAX), Just(i16::MIN), Just(-1), Just(0), any::<i16>()]
}

pub fn mutation() -> impl Strategy<Value = Mutation> {
    let pos = any::<usize>();
    prop_oneof![
        4 => (pos, 0..8u8).prop_map(|(pos, bit)| Mutation::FlipBit { pos, bit }),
        2 => (pos, any::<u8>()).prop_map(|(pos, value)| Mutation::SetByte { pos, value }),
        1 => pos.prop_map(|pos| Mutation::Truncate { pos }),
        3 => (pos, lie_i32()).prop_map(|(pos, value)| Mutation::LieI32 { pos, value }),
        2 => (pos, lie_i16()).prop_map(|(pos, value)| Mutation::LieI16 { pos, value }),
        2 => (pos, prop_oneof![Just(u32::MAX), Just(1 << 28), any::<u32>()])
            .prop_map(|(pos, value)| Mutation::LieVarint { pos, value }),
        1 => (pos, proptest::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(pos, bytes)| Mutation::Insert { pos, bytes }),
        1 => (pos, 1..64usize).prop_map(|(pos, len)| Mutation::Delete { pos, len }),
        1 => (pos, pos, 1..64usize).prop_map(|(from, pos, len)| Mutation::Duplicate { from, pos, len }),
        1 => (any::<usize>(), pos, pos).prop_map(|(seed, pos, from)| Mutation::Splice { seed, pos, from }),
    ]
}

/// Applies `m` to `data`; `seeds` are what `Splice` takes from. `keep` leading bytes are
/// never touched (e.g. a request header, to go deeper into the body).
pub fn apply(data: &mut Vec<u8>, m: &Mutation, seeds: &[Vec<u8>], keep: usize) {
    let keep = keep.min(data.len());
    let span = data.len() - keep;
    if span == 0 {
        return;
    }
    let at = |p: usize| keep + p % span;
    match m {
        Mutation::FlipBit { pos, bit } => {
            let i = at(*pos);
            data[i] ^= 1 << bit;
        }
        Mutation::SetByte { pos, value } => {
            let i = at(*pos);
            data[i] = *value;
        }
        Mutation::Truncate { pos } => data.truncate(at(*pos)),
        Mutation::LieI32 { pos, value } => overwrite(data, at(*pos), &value.to_be_bytes()),
        Mutation::LieI16 { pos, value } => overwrite(data, at(*pos), &value.to_be_bytes()),
        Mutation::LieVarint { pos, value } => {
            let mut v = *value;
            let mut bytes = Vec::new();
            while v >= 0x80 {
                bytes.push((v as u8) | 0x80);
                v >>= 7;
            }
            bytes.push(v as u8);
            overwrite(data, at(*pos), &bytes);
        }
        Mutation::Insert { pos, bytes } => {
            let i = at(*pos);
            data.splice(i..i, bytes.iter().copied());
        }
        Mutation::Delete { pos, len } => {
            let i = at(*pos);
            let end = (i + len).min(data.len());
            data.drain(i..end);
        }
        Mutation::Duplicate { from, pos, len } => {
            let from = at(*from);
            let end = (from + len).min(data.len());
            let piece = data[from..end].to_vec();
            overwrite(data, at(*pos), &piece);
        }
        Mutation::Splice { seed, pos, from } => {
            let other = &seeds[seed % seeds.len()];
            let i = at(*pos);
            data.truncate(i);
            if !other.is_empty() {
                data.extend_from_slice(&other[from % other.len()..]);
            }
        }
    }
}

fn overwrite(data: &mut [u8], at: usize, bytes: &[u8]) {
    let end = (at + bytes.len()).min(data.len());
    data[at..end].copy_from_slice(&bytes[..end - at]);
}

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

/// Counts the bytes each thread allocates, so a test can measure the peak a call adds.
pub struct CountingAlloc;

fn track(delta: isize) {
    let _ = LIVE.try_with(|live| {
        let now = live.get() + delta;
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

// SAFETY: forwards to the system allocator; the bookkeeping allocates nothing (const
// thread-locals of `Cell<isize>`).
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        track(layout.size() as isize);
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        track(layout.size() as isize);
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        track(-(layout.size() as isize));
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        track(new_size as isize - layout.size() as isize);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Runs `f` and returns its result and the most bytes it had allocated at once on this
/// thread (beyond what was live before; its result included until dropped inside `f`).
pub fn peak_allocation<R>(f: impl FnOnce() -> R) -> (R, usize) {
    let start = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(start));
    let r = f();
    let peak = PEAK.with(Cell::get);
    (r, (peak - start).max(0) as usize)
}
