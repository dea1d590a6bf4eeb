//! The admin CLI (`jet topic|produce|consume|group|cluster`) run as the built binary
//! against a real broker (the `jet` binary on a free port with a fresh data dir): the
//! effects of each command checked through the CLI itself, its JSON output and its exit
//! codes.

mod common;

use std::collections::BTreeMap;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::cli::{run_jet, succeeded};
use common::process::JetProcess;
use serde_json::Value;

struct Cluster {
    broker: JetProcess,
    _dir: tempfile::TempDir,
}

fn start() -> Cluster {
    let dir = tempfile::tempdir().unwrap();
    // Groups complete a join at once rather than after Kafka's 3 s initial delay.
    let broker = JetProcess::start(dir.path(), &["--set", "group.initial.rebalance.delay.ms=0"]);
    Cluster { broker, _dir: dir }
}

impl Cluster {
    fn brokers(&self) -> String {
        self.broker.addr.to_string()
    }

    /// Runs `jet <args>` against this broker with `stdin` as input.
    fn jet_with_input(&self, args: &[&str], stdin: &str) -> Output {
        run_jet(args, &self.brokers(), stdin)
    }

    fn jet(&self, args: &[&str]) -> Output {
        self.jet_with_input(args, "")
    }

    /// Runs `jet <args>`, asserts it succeeded and returns its stdout.
    fn ok(&self, args: &[&str]) -> String {
        succeeded(args, self.jet(args))
    }

    /// [`ok`](Self::ok) with `--format json`, parsed.
    fn json(&self, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.extend(["--format", "json"]);
        let out = self.ok(&args);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("jet {args:?} printed no JSON ({e}): {out}"))
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Polls `check` until it returns true (fails after 30 s).
fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn topic_names(c: &Cluster) -> Vec<String> {
    let list = c.json(&["topic", "list"]);
    list.as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap().to_string()).collect()
}

fn config_value(describe: &Value, name: &str) -> Option<String> {
    describe["configs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .map(|c| c["value"].as_str().unwrap().to_string())
}

#[test]
fn topic_create_list_describe_alter_and_delete() {
    let c = start();
    let out = c.ok(&["topic", "create", "orders", "--partitions", "3", "--config", "retention.ms=60000"]);
    assert!(out.contains("orders") && out.contains("created"), "{out}");

    // Creating it again fails with Kafka's error name, a non-zero exit and nothing on stdout.
    let again = c.jet(&["topic", "create", "orders"]);
    assert_eq!(again.status.code(), Some(1), "{}", stderr(&again));
    assert!(stderr(&again).contains("TOPIC_ALREADY_EXISTS"), "{}", stderr(&again));
    assert_eq!(stderr(&again).lines().count(), 1, "one-line error: {}", stderr(&again));
    assert!(again.stdout.is_empty());

    assert_eq!(topic_names(&c), vec!["orders".to_string()]);
    let table = c.ok(&["topic", "list"]);
    assert!(table.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == ["orders", "3", "1"]), "{table}");

    let describe = c.json(&["topic", "describe", "orders"]);
    let partitions = describe["partitions"].as_array().unwrap();
    assert_eq!(partitions.len(), 3);
    for (i, p) in partitions.iter().enumerate() {
        assert_eq!(p["partition"], i as i64);
        assert!(p["leader"].as_i64().unwrap() >= 0);
        assert_eq!(p["high_watermark"], 0);
    }
    assert_eq!(config_value(&describe, "retention.ms").as_deref(), Some("60000"));

    c.ok(&["topic", "alter-config", "orders", "--set", "retention.ms=1234", "--set", "cleanup.policy=compact"]);
    let describe = c.json(&["topic", "describe", "orders"]);
    assert_eq!(config_value(&describe, "retention.ms").as_deref(), Some("1234"));
    assert_eq!(config_value(&describe, "cleanup.policy").as_deref(), Some("compact"));
    c.ok(&["topic", "alter-config", "orders", "--delete", "cleanup.policy"]);
    let describe = c.json(&["topic", "describe", "orders"]);
    assert_eq!(config_value(&describe, "cleanup.policy"), None, "back to the default: {describe}");

    c.ok(&["topic", "delete", "orders"]);
    wait_until("the topic to disappear", || topic_names(&c).is_empty());
    let gone = c.jet(&["topic", "describe", "orders"]);
    assert_eq!(gone.status.code(), Some(1));
    assert!(stderr(&gone).contains("UNKNOWN_TOPIC_OR_PARTITION"), "{}", stderr(&gone));
    let gone = c.jet(&["topic", "delete", "orders"]);
    assert!(stderr(&gone).contains("UNKNOWN_TOPIC_OR_PARTITION"), "{}", stderr(&gone));
}

#[test]
fn produced_lines_are_consumed_back_exactly_with_their_keys() {
    let c = start();
    c.ok(&["topic", "create", "events", "--partitions", "3"]);
    let lines: Vec<String> = (0..500).map(|i| format!("key{}:value {i} with spaces", i % 7)).collect();
    let input = lines.join("\n") + "\n";
    let args = ["produce", "events", "--key-separator", ":", "--compression", "gzip", "--batch-records", "64"];
    let produced: Value =
        serde_json::from_str(&succeeded(&args, c.jet_with_input(&[&args[..], &["--format", "json"]].concat(), &input)))
            .unwrap();
    assert_eq!(produced["records"], 500);
    let per_partition: i64 =
        produced["partitions"].as_array().unwrap().iter().map(|p| p["records"].as_i64().unwrap()).sum();
    assert_eq!(per_partition, 500);

    // Everything back, keys included, each key on one partition in the order produced.
    let out = c.ok(&["consume", "events", "--exit-at-end", "--format", "json"]);
    let records: Vec<Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(records.len(), 500);
    let mut got: Vec<String> =
        records.iter().map(|r| format!("{}:{}", r["key"].as_str().unwrap(), r["value"].as_str().unwrap())).collect();
    let mut partition_of_key = BTreeMap::new();
    let mut by_key: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in &records {
        let key = r["key"].as_str().unwrap().to_string();
        let p = r["partition"].as_i64().unwrap();
        assert_eq!(*partition_of_key.entry(key.clone()).or_insert(p), p, "key {key} on two partitions");
        by_key.entry(key).or_default().push(r["value"].as_str().unwrap().to_string());
    }
    for (key, values) in &by_key {
        let expected: Vec<String> =
            lines.iter().filter_map(|l| l.strip_prefix(&format!("{key}:"))).map(str::to_string).collect();
        assert_eq!(values, &expected, "order of key {key}");
    }
    got.sort();
    let mut want = lines.clone();
    want.sort();
    assert_eq!(got, want);

    // A template, a partition and a count.
    let out = c.ok(&["consume", "events", "--partition", "0", "--num", "5", "--format", "%p/%o %k=%v"]);
    let shown: Vec<&str> = out.lines().collect();
    assert_eq!(shown.len(), 5, "{out}");
    for (i, line) in shown.iter().enumerate() {
        assert!(line.starts_with(&format!("0/{i} key")), "{line}");
    }
    // Offsets per record with --print-offsets, continuing where the partition ended.
    let args = ["produce", "events", "--partition", "2", "--print-offsets", "--format", "json"];
    let produced: Value = serde_json::from_str(&succeeded(&args, c.jet_with_input(&args, "x\ny\n"))).unwrap();
    let end = produced["partitions"][0]["last_offset"].as_i64().unwrap();
    let offsets: Vec<(i64, i64)> = produced["offsets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| (o["partition"].as_i64().unwrap(), o["offset"].as_i64().unwrap()))
        .collect();
    assert_eq!(offsets, [(2, end - 1), (2, end)]);
    let out = c.ok(&["consume", "events", "--partition", "2", "--offset", &(end - 1).to_string(), "--num", "2"]);
    assert_eq!(out, "x\ny\n");
    // Starting at an offset.
    let out = c.ok(&["consume", "events", "--partition", "0", "--offset", "3", "--num", "1", "--format", "%o"]);
    assert_eq!(out, "3\n");
    // The end of a topic with nothing new: an empty result, at once.
    let out = c.ok(&["consume", "events", "--offset", "end", "--exit-at-end"]);
    assert_eq!(out, "");
}

/// Committed offset and lag of partition 0 of `topic` in `group describe`'s JSON.
fn committed_and_lag(c: &Cluster, group: &str) -> (i64, i64) {
    let d = c.json(&["group", "describe", group]);
    let o = &d["offsets"][0];
    (o["committed_offset"].as_i64().unwrap(), o["lag"].as_i64().unwrap())
}

#[test]
fn a_group_commits_shows_lag_and_has_its_offsets_reset() {
    let c = start();
    c.ok(&["topic", "create", "jobs", "--partitions", "1"]);
    let input: String = (0..10).map(|i| format!("job {i}\n")).collect();
    let produced = succeeded(&["produce"], c.jet_with_input(&["produce", "jobs"], &input));
    assert!(produced.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == ["0", "10", "0", "9"]), "{produced}");

    let out = c.ok(&["consume", "jobs", "--group", "workers", "--num", "4"]);
    assert_eq!(out.lines().collect::<Vec<_>>(), ["job 0", "job 1", "job 2", "job 3"]);
    assert_eq!(committed_and_lag(&c, "workers"), (4, 6));
    let table = c.ok(&["group", "describe", "workers"]);
    assert!(
        table.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == ["jobs", "0", "4", "10", "6"]),
        "{table}"
    );
    let groups = c.json(&["group", "list"]);
    assert!(groups.as_array().unwrap().iter().any(|g| g["group"] == "workers"), "{groups}");

    // The group resumes where it committed.
    let out = c.ok(&["consume", "jobs", "--group", "workers", "--num", "2"]);
    assert_eq!(out.lines().collect::<Vec<_>>(), ["job 4", "job 5"]);
    assert_eq!(committed_and_lag(&c, "workers"), (6, 4));

    c.ok(&["group", "reset-offsets", "workers", "--topic", "jobs", "--to-earliest"]);
    assert_eq!(committed_and_lag(&c, "workers"), (0, 10));
    let reset = c.json(&["group", "reset-offsets", "workers", "--topic", "jobs", "--to-offset", "7"]);
    assert_eq!(reset["offsets"][0]["previous_offset"], 0);
    assert_eq!(reset["offsets"][0]["new_offset"], 7);
    assert_eq!(committed_and_lag(&c, "workers"), (7, 3));
    let out = c.ok(&["consume", "jobs", "--group", "workers", "--exit-at-end"]);
    assert_eq!(out.lines().collect::<Vec<_>>(), ["job 7", "job 8", "job 9"]);
    assert_eq!(committed_and_lag(&c, "workers"), (10, 0));
    c.ok(&["group", "reset-offsets", "workers", "--topic", "jobs", "--to-offset", "2", "--dry-run"]);
    assert_eq!(committed_and_lag(&c, "workers"), (10, 0), "a dry run changes nothing");
    c.ok(&["group", "reset-offsets", "workers", "--topic", "jobs", "--to-latest"]);
    assert_eq!(committed_and_lag(&c, "workers"), (10, 0));

    c.ok(&["group", "delete", "workers"]);
    let groups = c.json(&["group", "list"]);
    assert!(!groups.as_array().unwrap().iter().any(|g| g["group"] == "workers"), "{groups}");
}

#[test]
fn cluster_info_lists_the_broker_and_health_passes() {
    let c = start();
    let info = c.json(&["cluster", "info"]);
    let brokers = info["brokers"].as_array().unwrap();
    assert_eq!(brokers.len(), 1, "{info}");
    assert_eq!(brokers[0]["port"], c.broker.addr.port());
    assert_eq!(brokers[0]["controller"], true);
    assert!(!info["cluster_id"].as_str().unwrap().is_empty());
    // --brokers on the command line wins over JET_BROKERS, and a dead first address is skipped.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let brokers = format!("{free},{}", c.brokers());
    let out = run_jet(&["cluster", "info", "--brokers", &brokers], "127.0.0.1:1", "");
    assert!(succeeded(&["cluster", "info"], out).contains(&c.broker.addr.port().to_string()));
    let health = c.json(&["cluster", "health"]);
    assert_eq!(health["healthy"], true, "{health}");
}

#[test]
fn an_unreachable_broker_fails_fast_with_a_clear_message() {
    // Nothing listens on a port just released.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let started = Instant::now();
    let out = run_jet(&["topic", "list"], &free.to_string(), "");
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
    assert_eq!(out.status.code(), Some(3));
    assert!(stderr(&out).contains(&format!("cannot connect to {free}")), "{}", stderr(&out));
    assert!(out.stdout.is_empty());

    // A peer that accepts but never answers: the request times out.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let started = Instant::now();
    let out = run_jet(&["cluster", "info", "--timeout-ms", "300"], &addr, "");
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
    assert_eq!(out.status.code(), Some(3));
    assert!(stderr(&out).contains("no response within 300 ms"), "{}", stderr(&out));
    drop(silent);
}

/// Joins `group` as a classic consumer member (the two-step join of JoinGroup v9) and
/// keeps the connection, so the member stays while the test runs the CLI.
async fn join_member(addr: std::net::SocketAddr, group: &str) -> common::Client {
    use kafka_protocol::messages::{ApiKey, GroupId, JoinGroupRequest, JoinGroupResponse, join_group_request};
    use kafka_protocol::protocol::StrBytes;
    let s = |v: &str| StrBytes::from_string(v.to_string());
    let request = |member: &str| {
        JoinGroupRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_session_timeout_ms(60_000)
            .with_rebalance_timeout_ms(10_000)
            .with_member_id(s(member))
            .with_protocol_type(s("consumer"))
            .with_protocols(vec![
                join_group_request::JoinGroupRequestProtocol::default()
                    .with_name(s("range"))
                    .with_metadata(bytes::Bytes::from_static(b"subscription")),
            ])
    };
    let mut client = common::Client::connect(addr).await;
    let first: JoinGroupResponse = client.call(ApiKey::JoinGroup, 9, &request("")).await;
    let joined: JoinGroupResponse = client.call(ApiKey::JoinGroup, 9, &request(first.member_id.as_str())).await;
    assert_eq!(joined.error_code, 0);
    client
}

#[test]
fn offsets_of_a_group_with_members_are_not_reset() {
    let c = start();
    c.ok(&["topic", "create", "busy", "--partitions", "1"]);
    succeeded(&["produce"], c.jet_with_input(&["produce", "busy"], "a\nb\nc\n"));
    c.ok(&["consume", "busy", "--group", "live", "--num", "2"]);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let _member = runtime.block_on(join_member(c.broker.addr, "live"));

    let described = c.json(&["group", "describe", "live"]);
    assert_eq!(described["members"].as_array().unwrap().len(), 1, "{described}");
    let refused = c.jet(&["group", "reset-offsets", "live", "--topic", "busy", "--to-earliest"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(stderr(&refused).contains("1 members"), "{}", stderr(&refused));
    assert_eq!(committed_and_lag(&c, "live"), (2, 1), "the committed offset stays");
    let refused = c.jet(&["group", "delete", "live"]);
    assert!(stderr(&refused).contains("NON_EMPTY_GROUP"), "{}", stderr(&refused));
}

#[test]
fn ctrl_c_stops_a_consumer_and_commits_where_it_got() {
    use std::io::{BufRead, BufReader};
    let c = start();
    c.ok(&["topic", "create", "stream", "--partitions", "1"]);
    succeeded(&["produce"], c.jet_with_input(&["produce", "stream"], "one\ntwo\nthree\n"));
    let mut consumer = Command::new(env!("CARGO_BIN_EXE_jet"))
        .args(["consume", "stream", "--group", "tail", "--max-wait-ms", "100"])
        .env("JET_BROKERS", c.brokers())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run jet consume");
    let mut lines = BufReader::new(consumer.stdout.take().unwrap()).lines();
    let seen: Vec<String> = (0..3).map(|_| lines.next().expect("a record").unwrap()).collect();
    assert_eq!(seen, ["one", "two", "three"]);
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(consumer.id() as i32, libc::SIGINT) }, 0);
    let status = consumer.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert_eq!(committed_and_lag(&c, "tail"), (3, 0));
}

#[test]
fn a_reader_that_stops_early_ends_the_consumer_cleanly() {
    use std::io::{BufRead, BufReader};
    let c = start();
    c.ok(&["topic", "create", "big", "--partitions", "1"]);
    // Far more than a pipe buffer holds, so the consumer is still writing when the reader goes.
    let input: String = (0..5000).map(|i| format!("record {i:05} padded to some length ..........\n")).collect();
    succeeded(&["produce"], c.jet_with_input(&["produce", "big"], &input));
    let consumer = Command::new(env!("CARGO_BIN_EXE_jet"))
        .args(["consume", "big", "--group", "head", "--exit-at-end"])
        .env("JET_BROKERS", c.brokers())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run jet consume");
    let mut consumer = consumer;
    let mut lines = BufReader::new(consumer.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "record 00000 padded to some length ..........");
    drop(lines);
    let out = consumer.wait_with_output().unwrap();
    assert!(out.status.success(), "{:?}: {}", out.status, stderr(&out));
    assert!(out.stderr.is_empty(), "{}", stderr(&out));
    let (committed, lag) = committed_and_lag(&c, "head");
    assert!((1..5000).contains(&committed) && committed + lag == 5000, "{committed} {lag}");
}
