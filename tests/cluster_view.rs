//! Brokers find each other by gossip and clients see them: three real `jet` processes on
//! loopback, seeds pointing at the first. Every broker's Metadata and DescribeCluster list
//! all three with their advertised addresses and racks; `--bootstrap-expect 3` holds
//! `/readyz` until three are in the view; a SIGKILLed broker drops out of the others'
//! Metadata within a bound and is back once restarted; a second broker started with a
//! node id the cluster already has refuses to run. Every wait is on a condition.

mod common;

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::cluster::Node;
use common::{Client, http_get as get};
use kafka_protocol::messages::*;

/// Longest wait for brokers to see each other (gossip converges in well under a second
/// on loopback; the slack is for a loaded 2-core machine).
const CONVERGE: Duration = Duration::from_secs(30);

/// Longest wait for a SIGKILLed broker to drop out of the others' Metadata: failure
/// detection with the default timings takes about 2.25 s (0.5 s probes, 0.25 s probe
/// timeout, 3 × 0.5 s suspicion) plus up to a probe round to pick the dead broker.
const FAILURE_DETECTED: Duration = Duration::from_secs(10);

use common::cluster::Listed;

async fn metadata_brokers(addr: SocketAddr) -> Vec<Listed> {
    let mut c = Client::connect(addr).await;
    let r: MetadataResponse = c.call(ApiKey::Metadata, 12, &MetadataRequest::default().with_topics(Some(vec![]))).await;
    let mut brokers: Vec<Listed> = r
        .brokers
        .iter()
        .map(|b| (b.node_id.0, b.host.to_string(), b.port, b.rack.as_ref().map(ToString::to_string)))
        .collect();
    brokers.sort();
    brokers
}

async fn describe_cluster_brokers(addr: SocketAddr) -> Vec<Listed> {
    let mut c = Client::connect(addr).await;
    let r: DescribeClusterResponse = c.call(ApiKey::DescribeCluster, 1, &DescribeClusterRequest::default()).await;
    assert_eq!(r.error_code, 0);
    let mut brokers: Vec<Listed> = r
        .brokers
        .iter()
        .map(|b| (b.broker_id.0, b.host.to_string(), b.port, b.rack.as_ref().map(ToString::to_string)))
        .collect();
    brokers.sort();
    brokers
}

/// Polls `addr`'s Metadata until it lists exactly `want`; returns how long that took.
async fn until_metadata_lists(addr: SocketAddr, want: &[Listed], within: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let listed = metadata_brokers(addr).await;
        if listed == want {
            return start.elapsed();
        }
        assert!(start.elapsed() < within, "{addr} Metadata lists {listed:?}, not {want:?}, after {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn until_ready(admin: SocketAddr, within: Duration) {
    let start = Instant::now();
    loop {
        let (status, body) = get(admin, "/readyz").await;
        if status == 200 {
            return;
        }
        assert!(start.elapsed() < within, "/readyz stayed {status}: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_brokers_see_each_other_drop_a_killed_one_and_take_it_back() {
    let nodes: Vec<Node> = (1..=3).map(Node::new).collect();
    let seed = nodes[0].gossip;
    let expect = Some(3);
    let all: Vec<Listed> = nodes.iter().map(Node::listed).collect();

    // Alone, the first broker serves but is not ready: it waits for two more.
    let first = nodes[0].start(seed, expect);
    let (status, body) = get(first.admin, "/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("waiting for 3 brokers") && body.contains("1 so far"), "{body}");
    assert_eq!(metadata_brokers(first.addr).await, vec![nodes[0].listed()]);

    let mut brokers = vec![first];
    for node in &nodes[1..] {
        brokers.push(node.start(seed, expect));
    }
    for b in &brokers {
        let took = until_metadata_lists(b.addr, &all, CONVERGE).await;
        eprintln!("{} lists all three brokers after {took:?} more", b.addr);
        assert_eq!(describe_cluster_brokers(b.addr).await, all, "DescribeCluster of {}", b.addr);
        until_ready(b.admin, CONVERGE).await;
    }

    let (status, cluster) = get(brokers[1].admin, "/v1/cluster").await;
    assert_eq!(status, 200, "{cluster}");
    let cluster: serde_json::Value = serde_json::from_str(&cluster).unwrap();
    let listed: Vec<Listed> = cluster["brokers"]
        .as_array()
        .expect("brokers")
        .iter()
        .map(|b| {
            let n = |k: &str| b[k].as_i64().expect(k);
            (
                n("node_id") as i32,
                b["host"].as_str().unwrap().to_string(),
                n("port") as i32,
                b["rack"].as_str().map(String::from),
            )
        })
        .collect();
    assert_eq!(listed, all, "{cluster}");
    assert_eq!(cluster["brokers"][2]["raft"], format!("127.0.0.1:{}", nodes[2].raft), "{cluster}");
    assert_eq!(cluster["gossip"]["bootstrap_members"], serde_json::json!([1, 2, 3]), "{cluster}");
    let (_, metrics) = get(brokers[0].admin, "/metrics").await;
    assert!(metrics.lines().any(|l| l == "jet_brokers 3"), "{metrics}");

    // SIGKILL the third: the others stop listing it once failure detection runs out.
    brokers[2].kill();
    let killed = Instant::now();
    let survivors: Vec<Listed> = all[..2].to_vec();
    for b in &brokers[..2] {
        until_metadata_lists(b.addr, &survivors, FAILURE_DETECTED).await;
    }
    eprintln!("a SIGKILLed broker left both survivors' Metadata {:?} after the kill", killed.elapsed());
    for b in &brokers[..2] {
        let (status, body) = get(b.admin, "/readyz").await;
        assert_eq!(status, 200, "bootstrap-expect was met once; a failure later does not unready: {body}");
    }

    // Restarted on its data directory and addresses, it is listed again everywhere.
    brokers[2] = nodes[2].start(seed, expect);
    let restarted = Instant::now();
    for b in &brokers {
        until_metadata_lists(b.addr, &all, CONVERGE).await;
    }
    eprintln!("the restarted broker was back in every Metadata {:?} after its ready line", restarted.elapsed());

    // SIGTERM: the broker leaves gracefully, so the others record a leave, not a failure.
    brokers[1].signal(libc::SIGTERM);
    let status = tokio::task::spawn_blocking(move || {
        let mut second = brokers.swap_remove(1);
        let status = second.child.wait();
        (status, brokers)
    });
    let (status, brokers) = status.await.unwrap();
    assert!(status.expect("wait for the second broker").success(), "a SIGTERMed broker exits 0");
    let start = Instant::now();
    loop {
        let (_, cluster) = get(brokers[0].admin, "/v1/cluster").await;
        let cluster: serde_json::Value = serde_json::from_str(&cluster).unwrap();
        let members = cluster["gossip"]["members"].as_array().cloned().unwrap_or_default();
        let state = members.iter().find(|m| m["node_id"] == 2).map(|m| m["state"].clone());
        if state == Some(serde_json::json!("left")) {
            break;
        }
        assert!(start.elapsed() < FAILURE_DETECTED, "broker 2 not seen as left: {cluster}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    until_metadata_lists(brokers[0].addr, &[all[0].clone(), all[2].clone()], FAILURE_DETECTED).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_started_with_a_node_id_the_cluster_has_refuses_to_run() {
    let holder = Node::new(1);
    let first = holder.start(holder.gossip, None);
    until_ready(first.admin, CONVERGE).await;

    // Same node id, its own ports and data directory, joining through the first.
    let twin = Node::new(1);
    let mut child = twin.command(holder.gossip, None).stderr(Stdio::piped()).spawn().expect("spawn the twin");
    let mut pipe = child.stderr.take().expect("stderr is piped");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut pipe, &mut text);
        text
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the twin") {
            break status;
        }
        if started.elapsed() > CONVERGE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the twin still runs after {CONVERGE:?}: {}", reader.join().unwrap_or_default());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let stderr = reader.join().expect("stderr reader");
    assert!(!status.success(), "the twin must refuse to run: {stderr}");
    let holder_gossip = format!("127.0.0.1:{}", holder.gossip);
    assert!(
        stderr.contains("node id 1 is also claimed") && stderr.contains(&holder_gossip) && stderr.contains("--node-id"),
        "the refusal names the id, the other broker and the fix: {stderr}"
    );

    // The first holder keeps its id, its place in Metadata and its readiness, and reports
    // the conflict.
    assert_eq!(metadata_brokers(first.addr).await, vec![holder.listed()]);
    let (status, body) = get(first.admin, "/readyz").await;
    assert_eq!(status, 200, "{body}");
    let (_, cluster) = get(first.admin, "/v1/cluster").await;
    let cluster: serde_json::Value = serde_json::from_str(&cluster).unwrap();
    let conflict = cluster["gossip"]["id_conflict"].as_str().unwrap_or_default();
    assert!(conflict.contains("node id 1") && conflict.contains(&format!("127.0.0.1:{}", twin.gossip)), "{cluster}");
}
