//! Mutation fuzzing of request decoding on stable Rust (proptest, no cargo-fuzz).
//!
//! Seeds are real client requests (`fuzz/corpus/`, captured by `fuzz/capture.py` from kcat,
//! confluent-kafka, kafka-python and the Java client); each case applies bit flips,
//! truncation, length-field lies, insertions and splices with other seeds, then:
//!
//! - runs the broker's decode path (`protocol::decode_request`: header checks, the bounds
//!   walk, the crate's decoder) and checks it never panics and never allocates more than
//!   a fixed multiple of the frame's size;
//! - sends the mutated frame to a broker running in process and checks every request is
//!   answered or the connection closed, nothing panics, and the broker keeps serving.
//!
//! `JET_FUZZ_CASES=1000000 cargo test --release --test fuzz_requests` for a long run.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use common::fuzz::{self, Mutation, peak_allocation};
use common::{Client, TestBroker};
use jet::protocol::{Decoded, decode_request};
use kafka_protocol::messages::*;
use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[global_allocator]
static ALLOC: fuzz::CountingAlloc = fuzz::CountingAlloc;

/// Decoding a frame may allocate at most this many times its size (plus `SLACK`): the
/// decoded structs are larger than their wire form (a topic entry of a few bytes is a
/// struct of ~100), but never more than proportionally, because the bounds walk checks
/// every count against the bytes left before the crate preallocates.
const ALLOCATION_FACTOR: usize = 64;
const SLACK: usize = 64 << 10;

/// Request header bytes before the client id (key, version, correlation id).
const HEADER: usize = 8;

fn decode(frame: &[u8]) -> (Result<Decoded, String>, usize) {
    let bytes = Bytes::copy_from_slice(frame);
    let (outcome, peak) = peak_allocation(move || {
        let decoded = decode_request(bytes, jet::handler::supported_versions);
        // Dropped inside the measurement; its size is what decoding held at the end.
        decoded.map(|d| match d {
            Decoded::Request(r) => Decoded::UnsupportedApiVersions { correlation_id: r.header.correlation_id },
            other => other,
        })
    });
    (outcome.map_err(|e| e.to_string()), peak)
}

#[test]
fn every_seed_decodes_and_allocates_in_proportion() {
    let seeds = fuzz::corpus();
    let mut worst = 0.0f64;
    for (name, frame) in &seeds {
        let (outcome, peak) = decode(frame);
        assert!(outcome.is_ok(), "{name}: a real client's request does not decode: {outcome:?}");
        assert!(
            peak <= ALLOCATION_FACTOR * frame.len() + SLACK,
            "{name}: {peak} bytes for a {}-byte frame",
            frame.len()
        );
        worst = worst.max(peak as f64 / frame.len() as f64);
    }
    eprintln!("{} seeds decode; worst allocation/frame ratio {worst:.1}", seeds.len());
}

fn mutated_frame(seeds: &[Vec<u8>]) -> impl Strategy<Value = (usize, bool, Vec<Mutation>)> + use<> {
    (0..seeds.len(), any::<bool>(), proptest::collection::vec(fuzz::mutation(), 1..6))
}

fn build(seeds: &[Vec<u8>], (seed, keep_header, mutations): &(usize, bool, Vec<Mutation>)) -> Vec<u8> {
    let mut frame = seeds[*seed].clone();
    for m in mutations {
        fuzz::apply(&mut frame, m, seeds, if *keep_header { HEADER } else { 0 });
    }
    frame
}

#[test]
fn mutated_client_requests_decode_or_fail_cleanly_within_bounded_memory() {
    let seeds: Vec<Vec<u8>> = fuzz::corpus().into_iter().map(|(_, f)| f).collect();
    let mut runner = TestRunner::new(fuzz::config(200_000));
    let (decoded, refused) = (std::cell::Cell::new(0usize), std::cell::Cell::new(0usize));
    let start = std::time::Instant::now();
    let result = runner.run(&mutated_frame(&seeds), |case| {
        let frame = build(&seeds, &case);
        let (outcome, peak) = decode(&frame);
        prop_assert!(
            peak <= ALLOCATION_FACTOR * frame.len() + SLACK,
            "{peak} bytes allocated decoding a {}-byte frame ({outcome:?})",
            frame.len()
        );
        let counter = if outcome.is_ok() { &decoded } else { &refused };
        counter.set(counter.get() + 1);
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let (decoded, refused) = (decoded.get(), refused.get());
    eprintln!("{decoded} mutated frames decoded, {refused} refused, in {:?}", start.elapsed());
    assert!(decoded > 0 && refused > 0, "the mutations should both keep and break frames");
}

static PANICS: AtomicUsize = AtomicUsize::new(0);

async fn api_versions_frame(c: &mut Client) -> (i32, Bytes) {
    c.encode_request(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default())
}

/// What the broker did with one mutated frame.
#[derive(Debug, PartialEq)]
enum Served {
    /// Answered it (and the ApiVersions after it).
    Answered,
    /// Closed the connection.
    Closed,
    /// Still waiting (a long-poll Fetch or a JoinGroup holds its answer): not a failure.
    Waiting,
}

/// Sends `frame` with a size prefix `size_lie` off its length, then an ApiVersions.
async fn send_mutated(addr: std::net::SocketAddr, frame: &[u8], size_lie: i32) -> Result<Served, String> {
    let mut c = Client::connect(addr).await;
    let (id, follow) = api_versions_frame(&mut c).await;
    let mut bytes = (frame.len() as i32).saturating_add(size_lie).to_be_bytes().to_vec();
    bytes.extend_from_slice(frame);
    bytes.extend_from_slice(&follow);
    if c.stream.write_all(&bytes).await.is_err() {
        return Ok(Served::Closed);
    }
    let _ = c.stream.shutdown().await;
    // Read to the end: every response must be a whole frame; the last one, if the broker
    // got that far, answers the ApiVersions.
    let mut all = Vec::new();
    match tokio::time::timeout(Duration::from_secs(3), c.stream.read_to_end(&mut all)).await {
        Err(_) => return Ok(Served::Waiting),
        Ok(Err(_)) => return Ok(Served::Closed),
        Ok(Ok(_)) => {}
    }
    let mut rest = &all[..];
    let mut last_id = None;
    while !rest.is_empty() {
        if rest.len() < 8 {
            return Err(format!("a partial response frame: {rest:?}"));
        }
        let size = i32::from_be_bytes(rest[..4].try_into().unwrap());
        let size = usize::try_from(size).map_err(|e| format!("response size {size}: {e}"))?;
        if rest.len() < 4 + size {
            return Err(format!("a response of {size} bytes cut at {}", rest.len() - 4));
        }
        last_id = Some(i32::from_be_bytes(rest[4..8].try_into().unwrap()));
        rest = &rest[4 + size..];
    }
    Ok(if last_id == Some(id) { Served::Answered } else { Served::Closed })
}

#[test]
fn mutated_client_requests_against_a_running_broker() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, Ordering::SeqCst);
        previous(info);
    }));
    let seeds: Vec<Vec<u8>> = fuzz::corpus().into_iter().map(|(_, f)| f).collect();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    // Few partitions, so that mutated CreateTopics/CreatePartitions stay cheap.
    let broker = rt.block_on(TestBroker::start(&[
        "--set",
        "max.broker.partitions=200,group.initial.rebalance.delay.ms=0,num.partitions=2",
    ]));
    let addr = broker.addr;
    let mut runner = TestRunner::new(fuzz::config(3_000));
    let outcomes = std::sync::Mutex::new(std::collections::BTreeMap::<String, usize>::new());
    let start = std::time::Instant::now();
    // Mostly a true size prefix; sometimes one that is a little or a lot off.
    let size_lie = prop_oneof![6 => Just(0), 2 => -8..8i32, 1 => any::<i32>()];
    let result = runner.run(&(mutated_frame(&seeds), size_lie), |(case, size_lie)| {
        let frame = build(&seeds, &case);
        let served = rt.block_on(send_mutated(addr, &frame, size_lie));
        let served = served.map_err(|e| TestCaseError::fail(format!("{e} (frame {frame:?})")))?;
        *outcomes.lock().unwrap().entry(format!("{served:?}")).or_default() += 1;
        prop_assert_eq!(PANICS.load(Ordering::SeqCst), 0, "the broker panicked on frame {:?}", frame);
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    // Still serving after all of that.
    rt.block_on(async {
        let mut c = Client::connect(addr).await;
        let r: MetadataResponse = c.call(ApiKey::Metadata, 12, &MetadataRequest::default()).await;
        assert_eq!(r.brokers.len(), 1);
        broker.stop().await;
    });
    assert_eq!(PANICS.load(Ordering::SeqCst), 0);
    eprintln!("outcomes {:?} in {:?}", outcomes.into_inner().unwrap(), start.elapsed());
}
