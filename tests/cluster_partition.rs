//! A network partition: three brokers, each in a network namespace of its own (see
//! [`netns`]); the leader of an RF 3 partition is cut off from the two others while the
//! test still reaches it. The cut-off leader is a minority: it acknowledges nothing. The
//! majority elects a new leader that takes writes (the time from the cut to that
//! acknowledgement is printed). The cut lasts 40 s, past the 30 s memberlist gossips to a
//! member it holds dead, so the brokers must find each other again (gossip's reconnect).
//! After healing, every broker lists all three again, the old leader follows the new one, drops
//! what it was sent while cut off, and every broker serves every acknowledged record,
//! once, at its offset. Every wait is on a condition.

mod common;
mod netns;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::process::JetProcess;
use common::replicated::*;

/// Kafka, gossip and raft ports on every host (each host has its own addresses).
const KAFKA_PORT: u16 = 19092;
const GOSSIP_PORT: u16 = 17946;
const RAFT_PORT: u16 = 19093;
/// How long the leader stays cut off.
const CUT: Duration = Duration::from_secs(40);

fn start(hosts: &netns::Hosts, host: usize, dir: &std::path::Path) -> JetProcess {
    let me = hosts.addr(host);
    let seeds: Vec<String> = (1..=3).map(|h| format!("{}:{GOSSIP_PORT}", hosts.addr(h))).collect();
    let mut cmd = hosts.command(host, env!("CARGO_BIN_EXE_jet"));
    cmd.args([
        "--node-id",
        &host.to_string(),
        "--listen",
        &format!("{me}:{KAFKA_PORT}"),
        "--advertised-listener",
        &format!("{me}:{KAFKA_PORT}"),
        "--admin-listen",
        "127.0.0.1:0",
        "--data-dir",
        dir.to_str().expect("utf-8 path"),
        "--gossip-listen",
        &format!("{me}:{GOSSIP_PORT}"),
        "--seeds",
        &seeds.join(","),
        "--raft-listen",
        &format!("{me}:{RAFT_PORT}"),
        "--bootstrap-expect",
        "3",
        "--gossip-key",
        common::cluster::GOSSIP_KEY,
    ])
    .env("RUST_LOG", "info")
    .stderr(std::process::Stdio::piped());
    JetProcess::spawn(cmd)
}

/// `jet produce` of partition 0 run inside host `host`'s namespace, to that host's broker
/// (`acks=all`, giving up after 15 s).
fn minority_producer(hosts: &netns::Hosts, host: usize) -> std::process::Command {
    let mut cmd = hosts.command(host, env!("CARGO_BIN_EXE_jet"));
    cmd.args(["produce", TOPIC, "--partition", "0", "--acks", "all", "--timeout-ms", "15000", "--brokers"])
        .arg(format!("{}:{KAFKA_PORT}", hosts.addr(host)));
    cmd
}

/// Runs `cmd` (a `jet produce`) with the record `value-<n>` on its standard input: whether
/// it reports the write acknowledged, and what it printed.
fn produce_with_cli(mut cmd: std::process::Command, n: usize) -> (bool, String) {
    use std::io::Write;
    use std::process::Stdio;
    let mut child =
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("jet produce");
    writeln!(child.stdin.take().expect("stdin"), "value-{n}").expect("write the record");
    let out = child.wait_with_output().expect("jet produce to finish");
    let printed = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), format!("{:?}: {printed}", out.status))
}

/// The leader every broker names once it lists all three replicas in sync: (leader,
/// epoch). Broker ids map to addresses by host (`brokers[id - 1]`), not by port: every
/// host uses the same ports.
async fn settled_leader(brokers: &[JetProcess]) -> (i32, i32) {
    let live: Vec<&JetProcess> = brokers.iter().collect();
    let (leader, epoch) = until("one leader every broker names", || agreed_leader(&live)).await;
    let addr = brokers[(leader - 1) as usize].addr;
    until("every replica in sync", || async move {
        partition_zero(addr).await.filter(|p| p.0 == leader && p.3 == vec![1, 2, 3])
    })
    .await;
    (leader, epoch)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_cut_off_from_the_majority_acknowledges_nothing_and_catches_up_after_healing() {
    // Declared first, dropped last: the brokers are gone before their namespaces.
    let Some(hosts) = netns::Hosts::create(3) else { return };
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let brokers: Vec<JetProcess> = (1..=3).map(|h| start(&hosts, h, dirs[h - 1].path())).collect();
    let at = |id: i32| brokers[(id - 1) as usize].addr;
    let a = at(1);
    until("a controller", || async move { (metadata(a, TOPIC).await.controller_id.0 > 0).then_some(()) }).await;
    create_rf3(a, 1).await;
    let (leader, epoch) = settled_leader(&brokers).await;
    let mut ledger = Ledger::default();
    for round in 0..4 {
        let r = produce(at(leader), values(round * 5, 5)).await;
        assert!(ledger.record(&r, round * 5, 5), "{:?}", r.error_message);
    }

    let producer = init_producer_id(at(leader)).await;
    // Cut the leader off. A producer beside it (in its namespace) that still writes to it
    // is not acknowledged: the write cannot reach a majority.
    hosts.isolate(leader as usize);
    let cut_at = Instant::now();
    let minority = tokio::task::spawn_blocking({
        let cmd = minority_producer(&hosts, leader as usize);
        move || produce_with_cli(cmd, 100)
    });
    let majority: Vec<(i32, SocketAddr)> = (1..=3).filter(|id| *id != leader).map(|id| (id, at(id))).collect();
    let (new_leader, acked) = acknowledged_by_new_leader(&majority, leader, epoch, producer, 20, 5).await;
    assert!(ledger.record(&acked, 20, 5));
    eprintln!("leader {leader} cut off: broker {new_leader} acknowledged a write after {:?}", cut_at.elapsed());
    let minority = minority.await.expect("the minority producer");
    assert!(!minority.0, "a leader cut off from the majority acknowledged a write: {}", minority.1);
    // Nor later, while still cut off.
    let cmd = minority_producer(&hosts, leader as usize);
    let again = tokio::task::spawn_blocking(move || produce_with_cli(cmd, 200)).await.unwrap();
    assert!(!again.0, "a leader cut off from the majority acknowledged a write: {}", again.1);

    // The cut lasts past memberlist's gossip to the dead (30 s), after which the two sides
    // no longer gossip by themselves: they must find each other again (a scenario length,
    // not a wait for a condition).
    tokio::time::sleep(CUT.saturating_sub(cut_at.elapsed())).await;
    // Heal: the old leader follows the new one and drops its unacknowledged tail.
    hosts.heal(leader as usize);
    let healed_at = Instant::now();
    let everyone = |addr: SocketAddr| async move { (metadata(addr, TOPIC).await.brokers.len() == 3).then_some(()) };
    for id in 1..=3 {
        until("every broker to list all three again", || everyone(at(id))).await;
    }
    let (now_leading, _) = settled_leader(&brokers).await;
    eprintln!("healed: every broker lists all three, all replicas in sync after {:?}", healed_at.elapsed());
    let r = produce(at(now_leading), values(25, 5)).await;
    assert!(ledger.record(&r, 25, 5), "{:?}", r.error_message);
    let (reference, hw) = read_all(at(now_leading)).await;
    ledger.check(&reference, "the leader");
    // What the cut-off leader was sent was never committed: it is on no replica.
    let unacknowledged: Vec<String> = [100, 200].iter().map(|i| format!("value-{i}")).collect();
    assert!(!reference.iter().any(|(_, v)| unacknowledged.contains(v)), "{reference:?}");
    for id in 1..=3 {
        let addr = at(id);
        let served = until("every replica to serve up to the leader's high watermark", || async move {
            let (read, their_hw) = try_read_all(addr).await.ok()?;
            (their_hw >= hw).then_some(read)
        })
        .await;
        assert_eq!(served, reference, "broker {id} serves other records than the leader");
    }
}
