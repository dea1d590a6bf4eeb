//! Power-loss tests: the `jet` binary runs with its data directory on the FUSE test file
//! system of `tests/lazyfs`, which drops every write and directory change that was not
//! fsynced when the test "cuts the power". Every record and offset commit that Jet
//! acknowledged must survive; with `--log-flush-interval-ms` (acks before fsync) the
//! same check must find losses, which proves it can fail.
//!
//! `JET_POWERLOSS_SEED=n` repeats a run's random choices (the seed is printed); `JET_SKIP_FUSE_TESTS=1`
//! skips these tests where FUSE cannot be mounted (otherwise they fail).

mod common;
mod lazyfs;

use std::collections::VecDeque;

use bytes::Bytes;
use common::process::JetProcess;
use common::{Client, records, whole_batches};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, StrBytes};
use kafka_protocol::records::RecordBatchDecoder;
use lazyfs::LazyMount;

const TOPIC: &str = "powerloss";
const GROUP: &str = "powerloss-group";

/// xorshift64*: random power-loss points without a new dependency; the seed is printed.
struct Rng(u64);

impl Rng {
    fn from_env_or_clock() -> Rng {
        let seed = std::env::var("JET_POWERLOSS_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
        });
        eprintln!("JET_POWERLOSS_SEED={seed}");
        Rng(seed | 1)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn batch(values: &[u64]) -> Bytes {
    records::values(values.iter().map(|v| v.to_string()))
}

fn produce_req(topic: &str, data: Bytes) -> ProduceRequest {
    ProduceRequest::default().with_acks(-1).with_timeout_ms(30_000).with_topic_data(vec![
        produce_request::TopicProduceData::default().with_name(TopicName(s(topic))).with_partition_data(vec![
            produce_request::PartitionProduceData::default().with_index(0).with_records(Some(data)),
        ]),
    ])
}

fn commit_req(offset: i64) -> OffsetCommitRequest {
    // A commit of a group with no members (generation -1), as consumers with manual
    // assignment send; the coordinator appends it to `__consumer_offsets` all the same.
    OffsetCommitRequest::default().with_group_id(GroupId(s(GROUP))).with_generation_id_or_member_epoch(-1).with_topics(
        vec![
            offset_commit_request::OffsetCommitRequestTopic::default().with_name(TopicName(s(TOPIC))).with_partitions(
                vec![offset_commit_request::OffsetCommitRequestPartition::default().with_committed_offset(offset)],
            ),
        ],
    )
}

async fn create_topic(c: &mut Client) {
    let topic = metadata_request::MetadataRequestTopic::default().with_name(Some(TopicName(s(TOPIC))));
    let req = MetadataRequest::default().with_allow_auto_topic_creation(true).with_topics(Some(vec![topic]));
    let r: MetadataResponse = c.call(ApiKey::Metadata, 12, &req).await;
    assert_eq!(r.topics[0].error_code, 0);
}

/// Every value in the partition, in offset order (offsets checked to be contiguous).
async fn read_all(c: &mut Client, topic: &str) -> Result<Vec<u64>, String> {
    let mut out = Vec::new();
    loop {
        let req = FetchRequest::default().with_max_bytes(50 << 20).with_session_epoch(-1).with_topics(vec![
            fetch_request::FetchTopic::default().with_topic(TopicName(s(topic))).with_partitions(vec![
                fetch_request::FetchPartition::default()
                    .with_fetch_offset(out.len() as i64)
                    .with_partition_max_bytes(10 << 20),
            ]),
        ]);
        let r: FetchResponse = c.call(ApiKey::Fetch, 12, &req).await;
        let p = &r.responses[0].partitions[0];
        if p.error_code != 0 {
            let error = kafka_protocol::ResponseError::try_from_code(p.error_code);
            return Err(format!("{topic}: fetch at offset {} failed: {error:?} ({})", out.len(), p.error_code));
        }
        let mut bytes = whole_batches(p.records.clone().unwrap_or_default());
        if bytes.is_empty() {
            return Ok(out);
        }
        let sets = RecordBatchDecoder::decode_all(&mut bytes)
            .map_err(|e| format!("undecodable records served at offset {}: {e}", out.len()))?;
        for set in sets {
            for rec in set.records {
                assert_eq!(rec.offset, out.len() as i64, "offsets must be contiguous");
                out.push(std::str::from_utf8(rec.value.as_deref().unwrap()).unwrap().parse().unwrap());
            }
        }
    }
}

async fn committed_offset(c: &mut Client) -> i64 {
    let fetch = OffsetFetchRequest::default().with_groups(vec![
        offset_fetch_request::OffsetFetchRequestGroup::default().with_group_id(GroupId(s(GROUP))).with_topics(None),
    ]);
    let r: OffsetFetchResponse = c.call(ApiKey::OffsetFetch, 8, &fetch).await;
    assert_eq!(r.groups[0].error_code, 0);
    r.groups[0].topics.first().and_then(|t| t.partitions.first()).map_or(-1, |p| p.committed_offset)
}

/// What the producer and committer saw acknowledged, across all rounds.
#[derive(Default)]
struct Acked {
    /// Values in the order Jet must hold them (acknowledged ones, plus any unacknowledged
    /// ones a recovery kept, which are on disk from then on).
    records: Vec<u64>,
    /// The highest acknowledged commit.
    commit: i64,
    /// Topics whose creation (and one record) was acknowledged, with that record's value.
    topics_alive: Vec<(String, u64)>,
    /// Topics whose deletion was acknowledged.
    topics_deleted: Vec<String>,
    next_value: u64,
}

/// How a round stops the broker, with produce requests (and perhaps a commit) in flight.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Stop {
    /// SIGKILL.
    Kill,
    /// SIGTERM: a graceful shutdown (flush, clean-shutdown markers), as before a planned
    /// power-off; responses that still arrive count as acknowledged.
    Term,
}

/// Reads one response; `None` once the broker has closed the connection.
async fn try_read<R: Decodable>(c: &mut Client, key: ApiKey, version: i16, id: i32) -> Option<R> {
    let mut frame = c.read_frame().await?;
    let header = ResponseHeader::decode(&mut frame, key.response_header_version(version)).unwrap();
    assert_eq!(header.correlation_id, id, "responses out of order");
    Some(R::decode(&mut frame, version).unwrap())
}

/// Produces (acks=all, 8 requests of 10 records in flight; the encoder makes each record
/// its own batch, so an unacknowledged request may survive in part) with an offset commit after every few
/// acknowledged batches, until `stop_after` more records are acknowledged; then stops
/// the broker at once, with produce requests (and perhaps a commit) still in flight.
async fn produce_then_stop(mut jet: JetProcess, stop: Stop, acked: &mut Acked, stop_after: usize, rng: &mut Rng) {
    let mut c = Client::connect(jet.addr).await;
    let mut committer = Client::connect(jet.addr).await;
    let target = acked.records.len() + stop_after;
    let mut in_flight = VecDeque::new();
    let mut commit_in_flight: Option<(i32, i64)> = None;
    while acked.records.len() < target {
        while in_flight.len() < 8 {
            let values: Vec<u64> = (acked.next_value..acked.next_value + 10).collect();
            acked.next_value += 10;
            let (id, bytes) = c.encode_request(ApiKey::Produce, 9, &produce_req(TOPIC, batch(&values)));
            c.send_raw(&bytes).await;
            in_flight.push_back((id, values));
        }
        let (id, values) = in_flight.pop_front().unwrap();
        let r: ProduceResponse = c.read_response(ApiKey::Produce, 9, id).await;
        assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
        acked.records.extend(values);
        if let Some((id, offset)) = commit_in_flight.take() {
            let r: OffsetCommitResponse = committer.read_response(ApiKey::OffsetCommit, 9, id).await;
            assert_eq!(r.topics[0].partitions[0].error_code, 0);
            acked.commit = acked.commit.max(offset);
        }
        if rng.below(4) == 0 {
            let offset = acked.records.len() as i64;
            let (id, bytes) = committer.encode_request(ApiKey::OffsetCommit, 9, &commit_req(offset));
            committer.send_raw(&bytes).await;
            commit_in_flight = Some((id, offset));
        }
    }
    if stop == Stop::Kill {
        return jet.kill();
    }
    jet.signal(libc::SIGTERM);
    for (id, values) in in_flight {
        match try_read::<ProduceResponse>(&mut c, ApiKey::Produce, 9, id).await {
            Some(r) if r.responses[0].partition_responses[0].error_code == 0 => acked.records.extend(values),
            Some(_) => {}
            None => break,
        }
    }
    if let Some((id, offset)) = commit_in_flight
        && let Some(r) = try_read::<OffsetCommitResponse>(&mut committer, ApiKey::OffsetCommit, 9, id).await
        && r.topics[0].partitions[0].error_code == 0
    {
        acked.commit = acked.commit.max(offset);
    }
    assert!(jet.child.wait().unwrap().success(), "SIGTERM must exit 0");
}

/// Creates a topic for this round and produces one record to it, then deletes the oldest
/// such topic every other round, each acknowledged: a power loss must neither lose the
/// topic (nor its record) nor bring a deleted one back.
async fn topic_churn(addr: std::net::SocketAddr, round: u64, acked: &mut Acked) {
    let mut c = Client::connect(addr).await;
    let name = format!("{TOPIC}-t{round}");
    let create = CreateTopicsRequest::default().with_timeout_ms(30_000).with_topics(vec![
        create_topics_request::CreatableTopic::default()
            .with_name(TopicName(s(&name)))
            .with_num_partitions(1)
            .with_replication_factor(1),
    ]);
    let r: CreateTopicsResponse = c.call(ApiKey::CreateTopics, 7, &create).await;
    assert_eq!(r.topics[0].error_code, 0, "create {name}: {:?}", r.topics[0].error_message);
    let r: ProduceResponse = c.call(ApiKey::Produce, 9, &produce_req(&name, batch(&[round]))).await;
    assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
    acked.topics_alive.push((name, round));
    if round % 2 == 1 {
        let (gone, _) = acked.topics_alive.remove(0);
        let delete = DeleteTopicsRequest::default().with_timeout_ms(30_000).with_topic_names(vec![TopicName(s(&gone))]);
        let r: DeleteTopicsResponse = c.call(ApiKey::DeleteTopics, 5, &delete).await;
        assert_eq!(r.responses[0].error_code, 0, "delete {gone}");
        acked.topics_deleted.push(gone);
    }
}

/// What [`topic_churn`] had acknowledged and is not so.
async fn topic_problems(c: &mut Client, acked: &Acked) -> Vec<String> {
    let r: MetadataResponse = c.call(ApiKey::Metadata, 12, &MetadataRequest::default().with_topics(None)).await;
    let names: std::collections::HashSet<String> =
        r.topics.iter().filter_map(|t| t.name.as_ref().map(|n| n.to_string())).collect();
    let mut problems = Vec::new();
    for (name, value) in &acked.topics_alive {
        if !names.contains(name) {
            problems.push(format!("acknowledged topic {name} lost"));
        } else if !read_all(c, name).await.is_ok_and(|values| values.contains(value)) {
            problems.push(format!("acknowledged record of topic {name} lost"));
        }
    }
    for name in acked.topics_deleted.iter().filter(|n| names.contains(*n)) {
        problems.push(format!("deleted topic {name} came back"));
    }
    problems
}

/// Restarts after a power loss and checks that everything acknowledged is there: the
/// records in order, none twice, and the last acknowledged commit (or a later one).
async fn check_after_restart(jet: &JetProcess, acked: &mut Acked) -> Result<(), String> {
    let mut c = Client::connect(jet.addr).await;
    let stored = read_all(&mut c, TOPIC).await?;
    let committed = committed_offset(&mut c).await;
    let mut problems = topic_problems(&mut c, acked).await;
    if let Some(w) = stored.windows(2).find(|w| w[0] >= w[1]) {
        problems.push(format!("records out of order or duplicated: {} then {}", w[0], w[1]));
    }
    let stored_set: std::collections::HashSet<u64> = stored.iter().copied().collect();
    let lost: Vec<u64> = acked.records.iter().copied().filter(|v| !stored_set.contains(v)).collect();
    if !lost.is_empty() {
        problems.push(format!(
            "{} of {} acknowledged records lost (first {:?}); {} stored",
            lost.len(),
            acked.records.len(),
            &lost[..lost.len().min(5)],
            stored.len()
        ));
    }
    if committed < acked.commit {
        problems.push(format!("acknowledged commit {} lost: OffsetFetch answers {committed}", acked.commit));
    }
    if problems.is_empty() {
        // What survived is durable now; the next round builds on it.
        acked.records = stored;
        acked.commit = committed;
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// Runs `rounds` of produce → SIGKILL + power loss at a random point → restart → check.
/// With `mixed`, some rounds first restart the broker after a plain SIGKILL (the
/// page cache survives) and read everything it then shows: what a consumer saw must
/// survive the power loss that follows (the recovered tail is fsynced before it is
/// visible); others stop it with SIGTERM before the power goes. Returns each round's
/// problems (`Ok` when nothing acknowledged or seen was lost).
async fn power_loss_rounds(scenario: Scenario<'_>) -> Option<Vec<Result<(), String>>> {
    let Scenario { rounds, mixed, lying_disk, extra } = scenario;
    let mount = LazyMount::mount_or_skip()?;
    let data = mount.join("data");
    let mut rng = Rng::from_env_or_clock();
    let mut acked = Acked { commit: -1, ..Default::default() };
    let mut outcomes = Vec::new();
    let jet = JetProcess::start(&data, extra);
    create_topic(&mut Client::connect(jet.addr).await).await;
    mount.honour_syncs(!lying_disk);
    let mut jet = Some(jet);
    for round in 0..rounds {
        let stop_after = 200 + rng.below(3_000) as usize;
        // Of the mixed rounds, 40% lose power right after the SIGKILL, 40% first restart
        // after the SIGKILL and read, 20% stop gracefully.
        let kind = if mixed { [0, 0, 0, 0, 1, 1, 1, 1, 2, 2][rng.below(10) as usize] } else { 0 };
        let stop = if kind == 2 { Stop::Term } else { Stop::Kill };
        let jet_now = jet.take().unwrap();
        topic_churn(jet_now.addr, round as u64, &mut acked).await;
        produce_then_stop(jet_now, stop, &mut acked, stop_after, &mut rng).await;
        let mut outcome = Ok(());
        let seen_before_power_loss = kind == 1;
        if seen_before_power_loss {
            // SIGKILL only: what reached the page cache is still there.
            let mut restarted = JetProcess::start(&data, extra);
            outcome = check_after_restart(&restarted, &mut acked).await;
            restarted.kill();
        }
        let (acked_records, acked_commit) = (acked.records.len(), acked.commit);
        let unsynced = mount.unsynced_paths();
        let unsynced =
            format!("{:?}{}", &unsynced[..unsynced.len().min(8)], if unsynced.len() > 8 { " ..." } else { "" });
        // Half the rounds let the disk have written back part of the unsynced data.
        let partial_writeback = (mixed && rng.below(2) == 0).then(|| rng.below(u64::MAX));
        mount.power_loss_with(partial_writeback);
        let restarted = JetProcess::start(&data, extra);
        if outcome.is_ok() {
            outcome = check_after_restart(&restarted, &mut acked).await;
        }
        eprintln!(
            "round {round}: {stop:?}, power loss (partial write-back {partial_writeback:?}) with {acked_records} records and commit {acked_commit} \
             acknowledged{}; unsynced then: {unsynced}; {outcome:?}",
            if seen_before_power_loss { " or seen after a restart" } else { "" }
        );
        outcomes.push(outcome);
        jet = Some(restarted);
    }
    let stats = mount.stats();
    eprintln!("lazyfs: {stats:?}");
    assert!(stats.file_syncs > 0 && stats.dir_syncs > 0, "fsyncs must reach the file system: {stats:?}");
    drop(jet);
    // A broker left running would keep the mount busy.
    drop(mount);
    Some(outcomes)
}

struct Scenario<'a> {
    rounds: usize,
    /// Vary how rounds stop (SIGKILL; SIGKILL, restart and read; SIGTERM) and let the disk
    /// write back part of the unsynced data in some; else SIGKILL and a strict power loss.
    mixed: bool,
    /// After the topic is created, fsyncs are answered but make nothing durable.
    lying_disk: bool,
    extra: &'a [&'a str],
}

/// Small segments, so that rolls (new files, directory fsyncs, index files) happen in
/// every round, in the topic and in `__consumer_offsets`.
const SMALL_SEGMENTS: &[&str] = &["--set", "log.segment.bytes=16384"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_records_and_commits_survive_power_loss() {
    let Some(outcomes) =
        power_loss_rounds(Scenario { rounds: 12, mixed: true, lying_disk: false, extra: SMALL_SEGMENTS }).await
    else {
        return;
    };
    for (round, outcome) in outcomes.iter().enumerate() {
        assert!(outcome.is_ok(), "round {round}: {outcome:?}");
    }
}

/// With preallocated segment files (zero tails after every crash) and rolls in every round.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_preallocation_acknowledged_records_and_commits_survive_power_loss() {
    let extra = &["--set", "log.segment.bytes=16384", "--set", "log.preallocate=true"];
    let Some(outcomes) = power_loss_rounds(Scenario { rounds: 6, mixed: true, lying_disk: false, extra }).await else {
        return;
    };
    for (round, outcome) in outcomes.iter().enumerate() {
        assert!(outcome.is_ok(), "round {round}: {outcome:?}");
    }
}

/// The same test with interval flushing (acknowledged before fsync) must see losses: the
/// record check above can fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_fsync_before_ack_power_loss_loses_acknowledged_data() {
    // Default (1 GiB) segments: no roll fsyncs the data, so every acknowledged record is
    // unsynced when the power goes.
    let extra = &["--log-flush-interval-ms", "3600000"];
    let Some(outcomes) = power_loss_rounds(Scenario { rounds: 1, mixed: false, lying_disk: false, extra }).await else {
        return;
    };
    let problems = outcomes[0].as_ref().expect_err("acks before fsync must lose data at a power loss");
    assert!(problems.contains("acknowledged records lost"), "{problems}");
}

/// On a disk that ignores fsyncs (from after the topic's creation) both checks above must
/// fail: records and offset commits are lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_lying_disk_power_loss_loses_records_and_commits() {
    let scenario = Scenario { rounds: 1, mixed: false, lying_disk: true, extra: SMALL_SEGMENTS };
    let Some(outcomes) = power_loss_rounds(scenario).await else { return };
    let problems = outcomes[0].as_ref().expect_err("a lying disk must lose data at a power loss");
    assert!(problems.contains("acknowledged records lost"), "{problems}");
    assert!(problems.contains("acknowledged commit"), "{problems}");
}
