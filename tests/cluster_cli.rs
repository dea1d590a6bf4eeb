//! The admin CLI against a 3-broker cluster (real `jet` processes): `jet topic create`
//! of a replicated topic through a broker that is not necessarily the controller, `jet
//! topic describe` showing three replicas in sync, `jet produce` and `jet consume` through
//! different brokers, a consumer group's commits in `jet group describe`, and `jet
//! cluster info` naming every broker and the controller.

mod common;

use std::collections::BTreeMap;

use common::cli::{run_jet, succeeded};
use common::cluster::Node;
use common::replicated::{settled_cluster, until};
use serde_json::Value;

/// `jet <args>` through `brokers`; asserts success, returns stdout.
fn ok(args: &[&str], brokers: &str, stdin: &str) -> String {
    succeeded(args, run_jet(args, brokers, stdin))
}

/// `jet <args> --format json` parsed, `None` if it failed.
fn try_json(args: &[&str], brokers: &str) -> Option<Value> {
    let out = run_jet(&[args, &["--format", "json"]].concat(), brokers, "");
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

/// [`ok`] with `--format json`, parsed.
fn json(args: &[&str], brokers: &str) -> Value {
    let out = ok(&[args, &["--format", "json"]].concat(), brokers, "");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("jet {args:?} printed no JSON ({e}): {out}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_produce_consume_and_group_commands_work_against_a_three_broker_cluster() {
    let nodes: Vec<Node> = (1..=3).map(Node::new).collect();
    let (brokers, _) = settled_cluster(&nodes, &["--set", "group.initial.rebalance.delay.ms=0"]).await;
    let at = |i: usize| brokers[i].addr.to_string();
    let all = brokers.iter().map(|b| b.addr.to_string()).collect::<Vec<_>>().join(",");

    let info = json(&["cluster", "info"], &at(2));
    let listed = info["brokers"].as_array().expect("brokers");
    assert_eq!(listed.len(), 3, "{info}");
    assert_eq!(listed.iter().filter(|b| b["controller"] == true).count(), 1, "one controller: {info}");

    let out = ok(&["topic", "create", "events", "--partitions", "3", "--replication-factor", "3"], &at(2), "");
    assert!(out.contains("events") && out.contains("created"), "{out}");
    let in_sync = || {
        let at1 = at(1);
        async move {
            let d = try_json(&["topic", "describe", "events"], &at1)?;
            let parts = d["partitions"].as_array()?.clone();
            let full = |p: &Value, k: &str| p[k].as_array().map(|a| a.len()) == Some(3);
            (parts.len() == 3
                && parts.iter().all(|p| p["leader"].as_i64() >= Some(1) && full(p, "replicas") && full(p, "isr")))
            .then_some(d)
        }
    };
    until("three replicas in sync for every partition", in_sync).await;

    // Produced through one broker (the CLI sends each partition's batch to its leader).
    let lines: Vec<String> = (0..300).map(|i| format!("key{}:value {i}", i % 5)).collect();
    let produced: Value = serde_json::from_str(&ok(
        &["produce", "events", "--key-separator", ":", "--format", "json"],
        &at(0),
        &(lines.join("\n") + "\n"),
    ))
    .expect("produce JSON");
    assert_eq!(produced["records"], 300);

    // Consumed back through another: every record, each key's in the order produced.
    let out = ok(&["consume", "events", "--exit-at-end", "--format", "json"], &at(1), "");
    let records: Vec<Value> = out.lines().map(|l| serde_json::from_str(l).expect("record JSON")).collect();
    assert_eq!(records.len(), 300);
    let mut by_key: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in &records {
        by_key.entry(r["key"].as_str().expect("key").into()).or_default().push(r["value"].as_str().expect("v").into());
    }
    for (key, values) in &by_key {
        let expected: Vec<String> =
            lines.iter().filter_map(|l| l.strip_prefix(&format!("{key}:"))).map(str::to_string).collect();
        assert_eq!(values, &expected, "order of {key}");
    }

    // A group commits what it consumed; describe shows it through any broker.
    let out = ok(&["consume", "events", "--group", "readers", "--num", "120", "--format", "json"], &all, "");
    let read: Vec<Value> = out.lines().map(|l| serde_json::from_str(l).expect("record JSON")).collect();
    assert_eq!(read.len(), 120);
    let mut next: BTreeMap<i64, i64> = BTreeMap::new();
    for r in &read {
        let (p, o) = (r["partition"].as_i64().expect("partition"), r["offset"].as_i64().expect("offset"));
        next.insert(p, next.get(&p).copied().unwrap_or(0).max(o + 1));
    }
    let described = json(&["group", "describe", "readers"], &at(2));
    for o in described["offsets"].as_array().expect("offsets") {
        let p = o["partition"].as_i64().expect("partition");
        let (committed, end) = (o["committed_offset"].as_i64().expect("c"), o["log_end_offset"].as_i64().expect("e"));
        if let Some(n) = next.get(&p) {
            assert_eq!(committed, *n, "partition {p} committed where the group got: {described}");
        }
        assert_eq!(o["lag"].as_i64(), Some(end - committed), "{described}");
    }
    let groups = json(&["group", "list"], &at(0));
    assert!(groups.as_array().expect("groups").iter().any(|g| g["group"] == "readers"), "{groups}");
}
