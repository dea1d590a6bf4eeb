//! Helpers for tests of a replicated cluster of real `jet` processes: Kafka requests for
//! one replicated topic ([`TOPIC`], partition 0 unless named), waits on conditions
//! ([`until`]), and what the brokers agree on ([`agreed_leader`], [`settled`]).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::RecordBatchDecoder;

use super::cluster::Node;
use super::process::JetProcess;
use super::{Client, whole_batches};

/// Longest wait for a cluster-wide condition (elections take 1–2 s; slack for a loaded
/// 2-core machine running three brokers).
pub const WITHIN: Duration = Duration::from_secs(60);

pub const TOPIC: &str = "replicated";

pub fn name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.into()))
}

pub async fn metadata(addr: SocketAddr, topic: &str) -> MetadataResponse {
    let mut c = Client::connect(addr).await;
    let request = MetadataRequest::default()
        .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default().with_name(Some(name(topic)))]))
        .with_allow_auto_topic_creation(false);
    c.call(ApiKey::Metadata, 12, &request).await
}

/// Polls `f` every 50 ms until it answers; fails the test after [`WITHIN`].
pub async fn until<T, F: std::future::Future<Output = Option<T>>>(what: &str, mut f: impl FnMut() -> F) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(start.elapsed() < WITHIN, "timed out after {WITHIN:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Creates [`TOPIC`] with `partitions` partitions of three replicas through `addr`.
pub async fn create_rf3(addr: SocketAddr, partitions: i32) {
    create_topic(addr, TOPIC, partitions, 3).await;
}

/// Creates `topic` with `partitions` partitions of `replication_factor` replicas through
/// `addr`; fails the test unless it is created.
pub async fn create_topic(addr: SocketAddr, topic: &str, partitions: i32, replication_factor: i16) {
    let mut c = Client::connect(addr).await;
    let request = CreateTopicsRequest::default().with_timeout_ms(15_000).with_topics(vec![
        create_topics_request::CreatableTopic::default()
            .with_name(name(topic))
            .with_num_partitions(partitions)
            .with_replication_factor(replication_factor),
    ]);
    let created: CreateTopicsResponse = c.call(ApiKey::CreateTopics, 7, &request).await;
    assert_eq!(created.topics[0].error_code, 0, "{topic}: {:?}", created.topics[0].error_message);
}

/// (leader, leader epoch, replicas, isr) of partition 0 as `addr` reports it.
pub async fn partition_zero(addr: SocketAddr) -> Option<(i32, i32, Vec<i32>, Vec<i32>)> {
    let m = metadata(addr, TOPIC).await;
    let t = m.topics.first()?;
    if t.error_code != 0 {
        return None;
    }
    let p = t.partitions.first()?;
    let mut replicas: Vec<i32> = p.replica_nodes.iter().map(|b| b.0).collect();
    replicas.sort_unstable();
    let mut isr: Vec<i32> = p.isr_nodes.iter().map(|b| b.0).collect();
    isr.sort_unstable();
    Some((p.leader_id.0, p.leader_epoch, replicas, isr))
}

pub fn values(from: usize, n: usize) -> Bytes {
    super::records::values((from..from + n).map(|i| format!("value-{i}")))
}

pub async fn produce(addr: SocketAddr, data: Bytes) -> produce_response::PartitionProduceResponse {
    produce_acks(addr, data, -1).await
}

/// Produce v9 of `data` to partition 0 with `acks` (-1 or 1).
pub async fn produce_acks(addr: SocketAddr, data: Bytes, acks: i16) -> produce_response::PartitionProduceResponse {
    let r = produce_with(addr, data, acks, 9).await;
    r.responses[0].partition_responses[0].clone()
}

/// Produce of `data` to partition 0 with `acks` at `version`: the whole response.
pub async fn produce_with(addr: SocketAddr, data: Bytes, acks: i16, version: i16) -> ProduceResponse {
    let mut c = Client::connect(addr).await;
    let request = ProduceRequest::default().with_acks(acks).with_timeout_ms(10_000).with_topic_data(vec![
        produce_request::TopicProduceData::default().with_name(name(TOPIC)).with_partition_data(vec![
            produce_request::PartitionProduceData::default().with_index(0).with_records(Some(data)),
        ]),
    ]);
    c.call(ApiKey::Produce, version, &request).await
}

/// Every record (offset, value) `addr` serves from offset 0 up to its high watermark,
/// control batches skipped, and the high watermark.
pub async fn read_all(addr: SocketAddr) -> (Vec<(i64, String)>, i64) {
    match try_read_all(addr).await {
        Ok(read) => read,
        Err(code) => panic!("fetch from {addr}: error {code}"),
    }
}

/// [`read_all`], or the error code of a fetch that failed (a restarted broker that has
/// not opened the topic yet).
pub async fn try_read_all(addr: SocketAddr) -> Result<(Vec<(i64, String)>, i64), i16> {
    try_read_from(addr, 0).await
}

/// [`try_read_all`] from offset `from` (a log start).
pub async fn try_read_from(addr: SocketAddr, from: i64) -> Result<(Vec<(i64, String)>, i64), i16> {
    let mut c = Client::connect(addr).await;
    let mut out = Vec::new();
    let mut offset = from;
    loop {
        let request =
            FetchRequest::default().with_max_wait_ms(0).with_max_bytes(50 << 20).with_session_epoch(-1).with_topics(
                vec![fetch_request::FetchTopic::default().with_topic(name(TOPIC)).with_partitions(vec![
                fetch_request::FetchPartition::default()
                    .with_partition(0)
                    .with_fetch_offset(offset)
                    .with_partition_max_bytes(10 << 20),
            ])],
            );
        let r: FetchResponse = c.call(ApiKey::Fetch, 12, &request).await;
        let p = &r.responses[0].partitions[0];
        if p.error_code != 0 {
            return Err(p.error_code);
        }
        let mut whole = whole_batches(p.records.clone().unwrap_or_default());
        if whole.is_empty() {
            return Ok((out, p.high_watermark));
        }
        for set in RecordBatchDecoder::decode_all(&mut whole).unwrap() {
            for r in set.records {
                offset = r.offset + 1;
                if !r.control {
                    out.push((r.offset, String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned()));
                }
            }
        }
    }
}

/// (log start, high watermark) of partition 0 as `addr` serves it (a fetch from offset 0,
/// in range or not); `None` if it cannot serve the partition.
pub async fn offsets_served(addr: SocketAddr) -> Option<(i64, i64)> {
    let mut c = Client::connect(addr).await;
    let request =
        FetchRequest::default().with_max_wait_ms(0).with_max_bytes(1).with_session_epoch(-1).with_topics(vec![
            fetch_request::FetchTopic::default().with_topic(name(TOPIC)).with_partitions(vec![
                fetch_request::FetchPartition::default()
                    .with_partition(0)
                    .with_fetch_offset(0)
                    .with_partition_max_bytes(1),
            ]),
        ]);
    let r: FetchResponse = c.call(ApiKey::Fetch, 12, &request).await;
    let p = &r.responses[0].partitions[0];
    let in_range_or_not = [0, kafka_protocol::ResponseError::OffsetOutOfRange.code()];
    in_range_or_not.contains(&p.error_code).then_some((p.log_start_offset, p.high_watermark))
}

/// The leader of partition 0 every live broker agrees on, with its epoch.
pub async fn agreed_leader(live: &[&JetProcess]) -> Option<(i32, i32)> {
    let mut seen = BTreeSet::new();
    for b in live {
        let (leader, epoch, _, _) = partition_zero(b.addr).await?;
        if leader < 0 {
            return None;
        }
        seen.insert((leader, epoch));
    }
    (seen.len() == 1).then(|| seen.into_iter().next().unwrap())
}

/// The Kafka address of broker `id` among the survivors.
pub fn brokers_addr(survivors: &[SocketAddr], ports: &[(i32, u16)], id: i32) -> Option<SocketAddr> {
    let port = ports.iter().find(|n| n.0 == id)?.1;
    survivors.iter().find(|a| a.port() == port).copied()
}

/// (controller, partition 0's (leader, epoch)) that every broker of `live` agrees on, once
/// the leader lists all three replicas in sync.
pub async fn settled(live: &[&JetProcess], ports: &[(i32, u16)]) -> Option<(i32, (i32, i32))> {
    let mut controllers = BTreeSet::new();
    for b in live {
        controllers.insert(metadata(b.addr, TOPIC).await.controller_id.0);
    }
    let controller = *controllers.first().filter(|c| controllers.len() == 1 && **c > 0)?;
    let (leader, epoch) = agreed_leader(live).await?;
    let addrs: Vec<SocketAddr> = live.iter().map(|b| b.addr).collect();
    let (_, _, _, isr) = partition_zero(brokers_addr(&addrs, ports, leader)?).await?;
    (isr == vec![1, 2, 3]).then_some((controller, (leader, epoch)))
}

/// Starts `node` (gossip seed `seed`, `--bootstrap-expect 3`) with `args` added.
pub fn start(node: &Node, seed: u16, args: &[&str]) -> JetProcess {
    let mut cmd = node.command(seed, Some(3));
    cmd.args(args);
    JetProcess::spawn(cmd)
}

/// Three brokers (`nodes`, `args` added to every command line), [`TOPIC`] with one
/// partition of three replicas, settled (one controller, one leader everyone names, all
/// replicas in sync): the brokers (`brokers[i]` is `nodes[i]`) and the partition's
/// (leader, epoch).
pub async fn settled_cluster(nodes: &[Node], args: &[&str]) -> (Vec<JetProcess>, (i32, i32)) {
    let seed = nodes[0].gossip;
    let brokers: Vec<JetProcess> = nodes.iter().map(|n| start(n, seed, args)).collect();
    let a = brokers[0].addr;
    until("a controller", || async move { (metadata(a, TOPIC).await.controller_id.0 > 0).then_some(()) }).await;
    create_rf3(a, 1).await;
    let leader = wait_settled(&brokers, nodes).await;
    (brokers, leader)
}

/// Waits until every broker of `brokers` agrees on the controller and partition 0's
/// leader, and that leader lists all three replicas in sync: (leader, epoch).
pub async fn wait_settled(brokers: &[JetProcess], nodes: &[Node]) -> (i32, i32) {
    let ports: Vec<(i32, u16)> = nodes.iter().map(|n| (n.id, n.kafka)).collect();
    let live: Vec<&JetProcess> = brokers.iter().collect();
    let (_, leader) = until("a settled cluster", || settled(&live, &ports)).await;
    leader
}

/// Waits until partition 0 has a leader other than `old_leader`, with an epoch after
/// `old_epoch` (as the first of `survivors` names it), that acknowledges
/// [`values`]`(from, n)`: that leader and its answer. `survivors` are (id, address) of the
/// brokers still up. The batch is the first of idempotent `producer` (taken before the
/// fault, as a running client has its id), so an attempt answered with an error that was
/// still committed is not written again by the next one.
pub async fn acknowledged_by_new_leader(
    survivors: &[(i32, SocketAddr)],
    old_leader: i32,
    old_epoch: i32,
    producer: i64,
    from: usize,
    n: usize,
) -> (i32, produce_response::PartitionProduceResponse) {
    until("a write acknowledged by a new leader", || async move {
        let (l, e, _, _) = partition_zero(survivors.first()?.1).await?;
        if l == old_leader || e <= old_epoch {
            return None;
        }
        let addr = survivors.iter().find(|(id, _)| *id == l)?.1;
        let r = produce(addr, idempotent_values(producer, 0, from, n)).await;
        (r.error_code == 0).then_some((l, r))
    })
    .await
}

/// A counter or gauge from `admin`'s `/metrics` page.
pub async fn sample(admin: SocketAddr, name: &str) -> Option<f64> {
    let (_, page) = super::http_get(admin, "/metrics").await;
    page.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// What producers were told: every acknowledged record (`value-N`) at its offset.
#[derive(Debug, Default)]
pub struct Ledger {
    acked: BTreeMap<i64, String>,
}

impl Ledger {
    /// Notes the answer to a produce of [`values`]`(from, n)`: whether it was acknowledged.
    pub fn record(&mut self, r: &produce_response::PartitionProduceResponse, from: usize, n: usize) -> bool {
        if r.error_code != 0 {
            return false;
        }
        for i in 0..n {
            let offset = r.base_offset + i as i64;
            let value = format!("value-{}", from + i);
            if let Some(before) = self.acked.insert(offset, value.clone()) {
                panic!("offset {offset} acknowledged twice: {before}, then {value}");
            }
        }
        true
    }

    /// How many records were acknowledged.
    pub fn len(&self) -> usize {
        self.acked.len()
    }

    /// Fails the test unless `served` (what a replica serves from offset 0) holds every
    /// acknowledged record at its offset and no value twice.
    pub fn check(&self, served: &[(i64, String)], replica: &str) {
        self.check_from(served, 0, replica);
    }

    /// [`Self::check`] for a replica whose log starts at `log_start`: the acknowledged
    /// records from there on.
    pub fn check_from(&self, served: &[(i64, String)], log_start: i64, replica: &str) {
        let mut seen = BTreeSet::new();
        for (offset, value) in served {
            assert!(seen.insert(value), "{replica}: {value} served twice (again at offset {offset})");
        }
        let at: BTreeMap<i64, &String> = served.iter().map(|(o, v)| (*o, v)).collect();
        for (offset, value) in self.acked.range(log_start..) {
            assert_eq!(at.get(offset).copied(), Some(value), "{replica}: acknowledged {value} at offset {offset}");
        }
    }
}

/// [`values`]`(from, n)` as one batch of idempotent producer `producer_id` (epoch 0) whose
/// first record has sequence `sequence`: sent again after an error whose outcome is unknown
/// (the leader changed before answering), it is answered with the offsets it got the first
/// time instead of being written twice, as a real client's retry is.
pub fn idempotent_values(producer_id: i64, sequence: i32, from: usize, n: usize) -> Bytes {
    super::records::encode((0..n).map(|i| kafka_protocol::records::Record {
        producer_id,
        producer_epoch: 0,
        sequence: sequence + i as i32,
        ..super::records::record(format!("value-{}", from + i))
    }))
}

/// A fresh idempotent producer id, from InitProducerId through `addr`.
pub async fn init_producer_id(addr: SocketAddr) -> i64 {
    match try_init_producer_id(addr).await {
        Some(id) => id,
        None => panic!("InitProducerId through {addr} failed"),
    }
}

/// [`init_producer_id`], `None` when refused (no controller to allocate ids yet).
pub async fn try_init_producer_id(addr: SocketAddr) -> Option<i64> {
    let mut c = Client::connect(addr).await;
    let request = InitProducerIdRequest::default().with_transactional_id(None).with_transaction_timeout_ms(-1);
    let r: InitProducerIdResponse = c.call(ApiKey::InitProducerId, 4, &request).await;
    assert_eq!(r.producer_epoch, if r.error_code == 0 { 0 } else { -1 });
    (r.error_code == 0).then_some(r.producer_id.0)
}

/// (error, committed offset) of partition 0 for `group` at `addr`.
pub async fn fetch_offset(addr: SocketAddr, group: &str) -> (i16, i64) {
    let mut c = Client::connect(addr).await;
    let request = OffsetFetchRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.into())))
        .with_topics(Some(vec![
            offset_fetch_request::OffsetFetchRequestTopic::default()
                .with_name(name(TOPIC))
                .with_partition_indexes(vec![0]),
        ]));
    let r: OffsetFetchResponse = c.call(ApiKey::OffsetFetch, 7, &request).await;
    if r.error_code != 0 {
        return (r.error_code, -1);
    }
    let p = &r.topics[0].partitions[0];
    (p.error_code, p.committed_offset)
}
