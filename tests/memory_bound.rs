//! The broker's memory is bounded by its settings, whatever clients send: the real `jet`
//! binary is driven with 100,000 made-up idempotent producer ids, 5,000 concurrent
//! connections and large, highly compressible batches (each near `message.max.bytes`,
//! decompressing to ~30 MB) from many connections at once, and its peak resident set
//! (`VmHWM`) must stay under a bound computed from the settings:
//!
//! ```text
//! bound = queued.max.request.bytes            request frames and decompression scratch
//!       + max.producer.ids × 512 B            tracked idempotent producers
//!       + open connections × 16 KiB           an idle connection's tasks and state
//!       + sending connections × 128 KiB       a frame's 64 KiB allowance + write buffer
//!       + 96 MiB                              the process at rest (runtime, threads,
//!                                             metadata store, allocator slack)
//! ```
//!
//! The broker runs 16 runtime workers (`TOKIO_WORKER_THREADS`), as on a 16-core
//! machine: without the scratch pool every worker decompresses a batch at once.

mod common;

use std::time::Instant;

use bytes::Bytes;
use common::process::JetProcess;
use common::{Client, records};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Compression, Record};

const MIB: u64 = 1 << 20;
const QUEUED_MAX_REQUEST_BYTES: u64 = 128 * MIB;
const SOCKET_REQUEST_MAX_BYTES: u64 = 4 * MIB;
const MESSAGE_MAX_BYTES: usize = 1_048_588;
const MAX_PRODUCER_IDS: u64 = 20_000;
const MAX_CONNECTIONS: u64 = 5_100;

const CONNECTIONS: usize = 5_000;
const PRODUCER_IDS: i64 = 100_000;
const PARTITIONS: i32 = 20;
/// Connections producing made-up producer ids at once.
const ID_SENDERS: i64 = 8;
/// Connections sending large compressed batches at once, and batches each.
const BIG_SENDERS: usize = 32;
const BIG_ROUNDS: usize = 2;

const PER_PRODUCER_ID: u64 = 512;
const PER_OPEN_CONNECTION: u64 = 16 << 10;
const PER_SENDING_CONNECTION: u64 = 128 << 10;
const AT_REST: u64 = 96 * MIB;

fn bound() -> u64 {
    QUEUED_MAX_REQUEST_BYTES
        + MAX_PRODUCER_IDS * PER_PRODUCER_ID
        + CONNECTIONS as u64 * PER_OPEN_CONNECTION
        + (BIG_SENDERS as u64 + ID_SENDERS as u64) * PER_SENDING_CONNECTION
        + AT_REST
}

/// Raises this process's open-file limit (the broker inherits it): 5,000 connections
/// need a descriptor at each end.
fn raise_fd_limit(wanted: u64) {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: a valid out-pointer to an rlimit.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) }, 0);
    if limit.rlim_cur >= wanted {
        return;
    }
    let raised = libc::rlimit { rlim_cur: wanted, rlim_max: limit.rlim_max.max(wanted) };
    // SAFETY: a valid pointer to an rlimit.
    let r = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) };
    assert_eq!(
        r,
        0,
        "cannot raise RLIMIT_NOFILE to {wanted} (soft {}, hard {}): {}; this test needs {wanted} open files \
         (raise the hard limit, e.g. `ulimit -Hn {wanted}` as root)",
        limit.rlim_cur,
        limit.rlim_max,
        std::io::Error::last_os_error()
    );
}

fn start_jet(dir: &std::path::Path) -> JetProcess {
    let settings = format!(
        "queued.max.request.bytes={QUEUED_MAX_REQUEST_BYTES},socket.request.max.bytes={SOCKET_REQUEST_MAX_BYTES},\
         message.max.bytes={MESSAGE_MAX_BYTES},max.producer.ids={MAX_PRODUCER_IDS},\
         max.connections={MAX_CONNECTIONS},max.connections.per.ip={MAX_CONNECTIONS}"
    );
    let mut cmd = JetProcess::command(dir);
    cmd.args(["--set", &settings]).env("TOKIO_WORKER_THREADS", "16");
    JetProcess::spawn(cmd)
}

/// A `VmHWM`/`VmRSS` line of `/proc/<pid>/status`, in bytes.
fn status_bytes(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap_or_else(|| panic!("no {field}"));
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

fn topic() -> TopicName {
    TopicName(StrBytes::from_static_str("mem"))
}

fn record(producer_id: i64, sequence: i32, value: Bytes) -> Record {
    Record { producer_id, producer_epoch: 0, sequence, timestamp: jet::broker::now_ms(), ..records::record(value) }
}

/// One zstd batch just under `message.max.bytes` that decompresses to ~30 MB: each
/// value is 900 random bytes repeated 33 times.
fn big_compressed_batch() -> Bytes {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let records: Vec<Record> = (0..1000)
        .map(|i| {
            let chunk: Vec<u8> = (0..900)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed as u8
                })
                .collect();
            let mut r = record(-1, -1, Bytes::from(chunk.repeat(33)));
            r.offset = i;
            // One batch: the encoder starts a new one where offset - sequence changes.
            r.sequence = i as i32 - 1;
            r
        })
        .collect();
    let batch = records::encode_with(records, Compression::Zstd);
    assert!(batch.len() < MESSAGE_MAX_BYTES, "batch of {} bytes", batch.len());
    assert!(batch.len() > MESSAGE_MAX_BYTES * 8 / 10, "batch of {} bytes", batch.len());
    batch
}

fn produce_request(acks: i16, partitions: Vec<(i32, Bytes)>) -> ProduceRequest {
    let data = partitions
        .into_iter()
        .map(|(p, b)| produce_request::PartitionProduceData::default().with_index(p).with_records(Some(b)))
        .collect();
    ProduceRequest::default().with_acks(acks).with_timeout_ms(30_000).with_topic_data(vec![
        produce_request::TopicProduceData::default().with_name(topic()).with_partition_data(data),
    ])
}

async fn open_connections(addr: std::net::SocketAddr, n: usize) -> Vec<Client> {
    let mut open = Vec::with_capacity(n);
    for chunk in (0..n).collect::<Vec<_>>().chunks(500) {
        let mut set = tokio::task::JoinSet::new();
        for _ in chunk {
            set.spawn(async move {
                let mut c = Client::connect(addr).await;
                let r: ApiVersionsResponse = c.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default()).await;
                assert_eq!(r.error_code, 0);
                c
            });
        }
        while let Some(c) = set.join_next().await {
            open.push(c.unwrap());
        }
    }
    open
}

/// Sends one idempotent single-record batch per made-up producer id, one per partition
/// per request; returns (accepted, refused with POLICY_VIOLATION).
async fn made_up_producer_ids(addr: std::net::SocketAddr) -> (u64, u64) {
    let mut set = tokio::task::JoinSet::new();
    for sender in 0..ID_SENDERS {
        set.spawn(async move {
            let mut c = Client::connect(addr).await;
            let (mut accepted, mut refused) = (0u64, 0u64);
            let mut pid = 1 + sender;
            while pid <= PRODUCER_IDS {
                let mut partitions = Vec::new();
                for p in 0..PARTITIONS {
                    if pid > PRODUCER_IDS {
                        break;
                    }
                    partitions.push((p, records::encode([record(pid, 0, Bytes::from_static(b"v"))])));
                    pid += ID_SENDERS;
                }
                let r: ProduceResponse = c.call(ApiKey::Produce, 9, &produce_request(1, partitions)).await;
                for p in &r.responses[0].partition_responses {
                    match p.error_code {
                        0 => accepted += 1,
                        44 => refused += 1,
                        code => panic!("unexpected error {code}: {:?}", p.error_message),
                    }
                }
            }
            (accepted, refused)
        });
    }
    let (mut accepted, mut refused) = (0, 0);
    while let Some(r) = set.join_next().await {
        let (a, r) = r.unwrap();
        accepted += a;
        refused += r;
    }
    (accepted, refused)
}

async fn big_batches_at_once(addr: std::net::SocketAddr, batch: Bytes) {
    let mut set = tokio::task::JoinSet::new();
    for i in 0..BIG_SENDERS {
        let batch = batch.clone();
        set.spawn(async move {
            let mut c = Client::connect(addr).await;
            for _ in 0..BIG_ROUNDS {
                let partition = (i % PARTITIONS as usize) as i32;
                let r: ProduceResponse =
                    c.call(ApiKey::Produce, 9, &produce_request(1, vec![(partition, batch.clone())])).await;
                let p = &r.responses[0].partition_responses[0];
                assert_eq!(p.error_code, 0, "{:?}", p.error_message);
            }
        });
    }
    while let Some(r) = set.join_next().await {
        r.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peak_memory_stays_under_the_bound_derived_from_the_settings() {
    raise_fd_limit(2 * CONNECTIONS as u64 + 2_000);
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let jet = start_jet(dir.path());
    let pid = jet.child.id();
    let at_rest = status_bytes(pid, "VmRSS:");

    let mut admin = Client::connect(jet.addr).await;
    let create = CreateTopicsRequest::default().with_timeout_ms(10_000).with_topics(vec![
        create_topics_request::CreatableTopic::default()
            .with_name(topic())
            .with_num_partitions(PARTITIONS)
            .with_replication_factor(1),
    ]);
    let r: CreateTopicsResponse = admin.call(ApiKey::CreateTopics, 5, &create).await;
    assert_eq!(r.topics[0].error_code, 0);
    let batch = tokio::task::spawn_blocking(big_compressed_batch).await.unwrap();

    let connections = open_connections(jet.addr, CONNECTIONS).await;
    let opened = started.elapsed();
    let ((accepted, refused), ()) = tokio::join!(made_up_producer_ids(jet.addr), big_batches_at_once(jet.addr, batch));
    // Everything was still being served with the connections open.
    let r: ApiVersionsResponse = admin.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default()).await;
    assert_eq!(r.error_code, 0);

    let peak = status_bytes(pid, "VmHWM:");
    let bound = bound();
    eprintln!(
        "jet peak RSS {} MiB (at rest {} MiB), bound {} MiB; producer ids accepted {accepted}, refused {refused}; \
         {CONNECTIONS} connections open after {opened:?}, done after {:?}",
        peak / MIB,
        at_rest / MIB,
        bound / MIB,
        started.elapsed()
    );
    assert_eq!(accepted + refused, PRODUCER_IDS as u64);
    assert!(accepted <= MAX_PRODUCER_IDS, "{accepted} producer ids tracked, max.producer.ids={MAX_PRODUCER_IDS}");
    assert!(peak < bound, "peak RSS {peak} B is over the bound {bound} B");
    drop(connections);
}
