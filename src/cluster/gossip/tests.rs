//! Gossip between real memberlist instances on loopback, in one process. Every wait is on
//! a condition with a deadline.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use uuid::Uuid;

use super::backend::MemberlistDiscovery;
use super::*;

fn identity(id: i32, rack: Option<&str>) -> BrokerIdentity {
    BrokerIdentity::new(
        id,
        HostPort::new(format!("broker-{id}.example"), 9092 + id as u16),
        rack.map(str::to_string),
        HostPort::new("127.0.0.1", 19000 + id as u16),
    )
}

/// Fast failure detection for tests: probes every 100 ms, failed within about a second.
fn config(id: i32, seeds: &[SocketAddr]) -> GossipConfig {
    let mut c =
        GossipConfig::new(identity(id, Some(["a", "b", "c"][id as usize % 3])), SocketAddr::from(([127, 0, 0, 1], 0)));
    c.seeds = seeds.iter().map(SocketAddr::to_string).collect();
    c.probe_interval = Duration::from_millis(100);
    c.probe_timeout = Duration::from_millis(50);
    c.suspicion_mult = 2;
    c.gossip_interval = Duration::from_millis(50);
    c.join_retry_interval = Duration::from_millis(100);
    c.leave_timeout = Duration::from_secs(2);
    c
}

/// Poll `condition` until it holds or `within` passes; returns how long it took.
async fn eventually(what: &str, within: Duration, mut condition: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !condition() {
        assert!(start.elapsed() < within, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    start.elapsed()
}

fn sees(d: &dyn Discovery, broker_id: i32, state: MemberState) -> bool {
    d.view().borrow().get(broker_id).is_some_and(|m| m.state == state)
}

async fn cluster_of_three() -> Vec<MemberlistDiscovery> {
    let first = MemberlistDiscovery::start(config(1, &[])).await.unwrap();
    let seed = first.gossip_addr();
    let mut brokers = vec![first];
    for id in [2, 3] {
        brokers.push(MemberlistDiscovery::start(config(id, &[seed])).await.unwrap());
    }
    for b in &brokers {
        let mut view = b.view();
        let converged = view.wait_for(|v| v.live().count() == 3);
        tokio::time::timeout(Duration::from_secs(10), converged).await.expect("cluster of three within 10 s").unwrap();
    }
    brokers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_brokers_find_each_other_with_their_identities_and_see_a_graceful_leave() {
    let brokers = cluster_of_three().await;
    for b in &brokers {
        let view = b.view().borrow().clone();
        for other in &brokers {
            let member = view.get(other.local().broker_id).expect("every broker listed");
            assert_eq!(member.identity, other.local(), "metadata as the broker advertised it");
            assert_eq!(member.gossip_addr, other.gossip_addr());
            assert_eq!(member.state, MemberState::Alive);
        }
    }
    let mut events: Vec<_> = brokers[..2].iter().map(|b| b.events()).collect();

    brokers[2].leave().await.unwrap();
    for b in &brokers[..2] {
        eventually("broker 3 seen as left", Duration::from_secs(5), || sees(b, 3, MemberState::Left)).await;
        assert_eq!(b.view().borrow().live().map(|m| m.identity.broker_id).collect::<Vec<_>>(), vec![1, 2]);
    }
    for rx in &mut events {
        let mut seen = Vec::new();
        while let Ok(e) = rx.try_recv() {
            seen.push(e);
        }
        assert!(seen.contains(&MembershipEvent::Left(3)), "{seen:?}");
        assert!(!seen.contains(&MembershipEvent::Failed(3)), "a graceful leave is not a failure: {seen:?}");
    }
    for b in &brokers[..2] {
        b.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_dropped_without_leaving_is_marked_failed_within_the_probe_bound() {
    let mut brokers = cluster_of_three().await;
    let mut events = brokers[0].events();
    // Dropped, not shut down or left: as a crashed broker would vanish.
    drop(brokers.pop());
    let stopped = Instant::now();
    // Probe 100 ms + timeout 50 ms + suspicion 2 x 100 ms, plus a probe round to pick the
    // dead broker (up to 2 rounds with 2 peers) and indirect probes: well under 3 s.
    let bound = Duration::from_secs(3);
    for b in &brokers[..2] {
        eventually("broker 3 seen as failed", bound, || sees(b, 3, MemberState::Failed)).await;
    }
    eprintln!("failure detected by both peers {:?} after the drop", stopped.elapsed());
    assert_eq!(brokers[0].view().borrow().live().count(), 2);
    let mut seen = Vec::new();
    while let Ok(e) = events.try_recv() {
        seen.push(e);
    }
    assert_eq!(seen, vec![MembershipEvent::Failed(3)]);
    for b in &brokers[..2] {
        b.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_broker_restarted_on_its_address_is_seen_joining_again() {
    let mut brokers = cluster_of_three().await;
    let old = brokers.pop().unwrap();
    let addr = old.gossip_addr();
    old.shutdown().await.unwrap();
    drop(old);
    for b in &brokers {
        eventually("broker 3 seen as failed", Duration::from_secs(3), || sees(b, 3, MemberState::Failed)).await;
    }
    let mut events = brokers[0].events();
    // Same id and address, as after a crash and restart (its incarnation starts over and
    // memberlist has it refute the stale "dead" it hears about itself).
    let mut c = config(3, &[brokers[0].gossip_addr()]);
    c.bind = addr;
    let restarted = MemberlistDiscovery::start(c).await.unwrap();
    for b in &brokers {
        eventually("broker 3 alive again", Duration::from_secs(5), || sees(b, 3, MemberState::Alive)).await;
    }
    assert_eq!(events.recv().await.unwrap(), MembershipEvent::Joined(identity(3, Some("a"))));
    for b in brokers.iter().chain([&restarted]) {
        b.shutdown().await.unwrap();
    }
}

/// A port free for both TCP and UDP right now (released before use: good enough on loopback).
fn free_port() -> u16 {
    loop {
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brokers_started_at_once_with_the_same_seed_list_form_one_cluster() {
    // As a StatefulSet starts every pod at once, each listing all pods (itself included).
    let addrs: Vec<SocketAddr> = (0..3).map(|_| SocketAddr::from(([127, 0, 0, 1], free_port()))).collect();
    let starts = (1..=3).map(|id| {
        let mut c = config(id, &addrs);
        c.bind = addrs[id as usize - 1];
        MemberlistDiscovery::start(c)
    });
    let brokers: Vec<_> = futures::future::join_all(starts).await.into_iter().map(Result::unwrap).collect();
    for b in &brokers {
        let mut view = b.view();
        tokio::time::timeout(Duration::from_secs(10), view.wait_for(|v| v.live().count() == 3))
            .await
            .expect("one cluster of three")
            .unwrap();
    }
    for b in &brokers {
        b.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_whose_seed_is_not_up_yet_keeps_trying_until_it_is() {
    let seed_addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let early = MemberlistDiscovery::start(config(1, &[seed_addr])).await.unwrap();
    eventually("a join round found no seed", Duration::from_secs(5), || early.failed_join_rounds() >= 1).await;
    // The seed comes up with no seeds of its own: only the early broker's retry can join them.
    let mut c = config(2, &[]);
    c.bind = seed_addr;
    let seed = MemberlistDiscovery::start(c).await.unwrap();
    for b in [&early, &seed] {
        let mut view = b.view();
        tokio::time::timeout(Duration::from_secs(10), view.wait_for(|v| v.live().count() == 2))
            .await
            .expect("joined on a retry")
            .unwrap();
    }
    for b in [early, seed] {
        b.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_broker_with_a_taken_id_learns_it_is_the_newcomer_and_the_first_hears_of_it() {
    let first = MemberlistDiscovery::start(config(1, &[])).await.unwrap();
    let mut twin_config = config(1, &[first.gossip_addr()]);
    twin_config.identity.kafka.port = 29092;
    let twin = MemberlistDiscovery::start(twin_config).await.unwrap();
    let mut seen = twin.id_conflict();
    let conflict = tokio::time::timeout(Duration::from_secs(10), seen.wait_for(Option::is_some))
        .await
        .expect("the twin hears of the conflict")
        .unwrap()
        .clone()
        .unwrap();
    assert_eq!((conflict.broker_id, conflict.ours, conflict.theirs), (1, twin.gossip_addr(), first.gossip_addr()));
    assert!(conflict.while_joining, "the twin was joining: it is the newcomer");
    assert_eq!(conflict.their_identity.map(|i| i.kafka.port), Some(first.local().kafka.port));
    let message = twin.id_conflict().borrow().as_ref().map(ToString::to_string).unwrap_or_default();
    assert!(message.contains("node id 1") && message.contains(&first.gossip_addr().to_string()), "{message}");

    let mut heard = first.id_conflict();
    let conflict = tokio::time::timeout(Duration::from_secs(10), heard.wait_for(Option::is_some))
        .await
        .expect("the first holder hears of it too")
        .unwrap()
        .clone()
        .unwrap();
    assert_eq!((conflict.ours, conflict.theirs), (first.gossip_addr(), twin.gossip_addr()));
    assert!(!conflict.while_joining, "the first holder was already in: it keeps the id");
    // The first holder's view still has itself under the id, not the twin.
    assert_eq!(first.view().borrow().get(1).map(|m| m.identity.kafka.port), Some(first.local().kafka.port));
    for d in [first, twin] {
        d.shutdown().await.unwrap();
    }
}

fn hint(partition: i32, leader: i32, epoch: i32, observer: i32) -> LeadershipHint {
    LeadershipHint {
        partition: PartitionKey { topic_id: Uuid::from_u128(42), partition },
        leader,
        leader_epoch: epoch,
        observer,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leadership_hints_spread_by_broadcast_and_reach_a_late_joiner_by_push_pull() {
    let brokers = cluster_of_three().await;
    brokers[0].observe_leader(hint(0, 1, 5, 1));
    brokers[1].observe_leader(hint(1, 2, 3, 2));
    for b in &brokers {
        eventually("hints everywhere", Duration::from_secs(5), || {
            b.leader_hint(&hint(0, 0, 0, 0).partition) == Some(hint(0, 1, 5, 1))
                && b.leader_hint(&hint(1, 0, 0, 0).partition) == Some(hint(1, 2, 3, 2))
        })
        .await;
    }
    // A stale observation loses everywhere, a newer one wins everywhere.
    brokers[2].observe_leader(hint(0, 3, 4, 3));
    brokers[2].observe_leader(hint(1, 3, 4, 3));
    for b in &brokers {
        eventually("newer epoch wins", Duration::from_secs(5), || {
            b.leader_hint(&hint(1, 0, 0, 0).partition) == Some(hint(1, 3, 4, 3))
        })
        .await;
        assert_eq!(b.leader_hint(&hint(0, 0, 0, 0).partition), Some(hint(0, 1, 5, 1)));
    }
    // Broadcasts retire after a few sends; once every queue is empty, a broker joining
    // later can only learn the table through the join's push/pull.
    for b in &brokers {
        eventually("broadcast queues drained", Duration::from_secs(5), || b.hints_queued() == 0).await;
    }
    let late = MemberlistDiscovery::start(config(4, &[brokers[1].gossip_addr()])).await.unwrap();
    eventually("late joiner has the hints", Duration::from_secs(5), || {
        late.leader_hint(&hint(0, 0, 0, 0).partition) == Some(hint(0, 1, 5, 1))
            && late.leader_hint(&hint(1, 0, 0, 0).partition) == Some(hint(1, 3, 4, 3))
    })
    .await;
    for b in brokers.iter().chain([&late]) {
        b.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn start_refuses_an_identity_over_the_metadata_limit_naming_the_fields() {
    let mut c = config(1, &[]);
    c.identity.kafka.host = "k".repeat(250);
    c.identity.rack = Some("r".repeat(250));
    let err = match start(c).await {
        Err(e) => e,
        Ok(_) => panic!("an oversized identity must be refused"),
    };
    assert!(matches!(err, GossipError::Metadata(MetadataError::TooLarge { .. })), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("the Kafka advertised host (250 bytes)") && message.contains("broker.rack (250 bytes)"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_secret_key_only_brokers_holding_it_can_join() {
    let key = "8Fg+KxkOhcRTXmf4ND/0zmwxYkcXNt4hRShGDe5FqsA="; // 32 bytes, base64
    let with_key = |id: i32, seeds: &[SocketAddr], key: Option<&str>| {
        let mut c = config(id, seeds);
        c.secret_key = key.map(str::to_string);
        c
    };
    let a = MemberlistDiscovery::start(with_key(1, &[], Some(key))).await.unwrap();
    let b = MemberlistDiscovery::start(with_key(2, &[a.gossip_addr()], Some(key))).await.unwrap();
    let mut view = a.view();
    let both = view.wait_for(|v| v.live().count() == 2);
    tokio::time::timeout(Duration::from_secs(10), both).await.expect("encrypted pair forms").unwrap();

    // Without the key (or with another) the join itself is refused.
    let plain = MemberlistDiscovery::start(with_key(3, &[], None)).await.unwrap();
    assert!(plain.join_now(a.gossip_addr()).await.is_err(), "an unencrypted broker must not join");
    let other = MemberlistDiscovery::start(with_key(4, &[], Some("AAAAAAAAAAAAAAAAAAAAAA=="))).await.unwrap();
    assert!(other.join_now(a.gossip_addr()).await.is_err(), "a broker with another key must not join");
    assert_eq!(a.view().borrow().members().count(), 2);

    assert!(matches!(
        MemberlistDiscovery::start(with_key(5, &[], Some("not base64!"))).await,
        Err(GossipError::SecretKey(_))
    ));
    for d in [a, b, plain, other] {
        d.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brokers_of_another_cluster_label_cannot_join() {
    let labelled = |id: i32, seeds: &[SocketAddr], label: &str| {
        let mut c = config(id, seeds);
        c.cluster_label = Some(label.to_string());
        c
    };
    let a = MemberlistDiscovery::start(labelled(1, &[], "prod")).await.unwrap();
    let b = MemberlistDiscovery::start(labelled(2, &[a.gossip_addr()], "prod")).await.unwrap();
    let mut view = a.view();
    tokio::time::timeout(Duration::from_secs(10), view.wait_for(|v| v.live().count() == 2))
        .await
        .expect("same label joins")
        .unwrap();
    let other = MemberlistDiscovery::start(labelled(3, &[], "staging")).await.unwrap();
    assert!(other.join_now(a.gossip_addr()).await.is_err(), "another label must not join");
    let unlabelled = MemberlistDiscovery::start(config(4, &[])).await.unwrap();
    assert!(unlabelled.join_now(a.gossip_addr()).await.is_err(), "no label must not join a labelled cluster");
    assert_eq!(a.view().borrow().members().count(), 2);
    for d in [a, b, other, unlabelled] {
        d.shutdown().await.unwrap();
    }
}

/// Idle cost of three brokers in one process over 30 s (CPU from /proc/self/stat, RSS
/// from /proc/self/statm). A measurement, not a check: run with
/// `cargo test --lib cluster::gossip::tests::idle_cost -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn idle_cost_of_three_brokers() {
    fn cpu_ticks() -> u64 {
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
        let after_comm = &stat[stat.rfind(')').unwrap() + 2..];
        let fields: Vec<&str> = after_comm.split_whitespace().collect();
        // utime and stime are fields 14 and 15 of stat, 12 and 13 after "pid (comm) ".
        fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
    }
    fn rss_kib() -> u64 {
        let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
        statm.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 4
    }
    let rss_before = rss_kib();
    let first = MemberlistDiscovery::start(GossipConfig::new(identity(1, None), SocketAddr::from(([127, 0, 0, 1], 0))))
        .await
        .unwrap();
    let mut brokers = vec![];
    for id in [2, 3] {
        let mut c = GossipConfig::new(identity(id, None), SocketAddr::from(([127, 0, 0, 1], 0)));
        c.seeds = vec![first.gossip_addr().to_string()];
        brokers.push(MemberlistDiscovery::start(c).await.unwrap());
    }
    brokers.push(first);
    for b in &brokers {
        let mut view = b.view();
        tokio::time::timeout(Duration::from_secs(10), view.wait_for(|v| v.live().count() == 3)).await.unwrap().unwrap();
    }
    let (ticks, start) = (cpu_ticks(), Instant::now());
    tokio::time::sleep(Duration::from_secs(30)).await; // the measurement window
    let used = Duration::from_millis((cpu_ticks() - ticks) * 1000 / 100);
    let window = start.elapsed();
    eprintln!(
        "3 idle gossip brokers (default timings): {:?} CPU in {:?} = {:.3}% of one core; RSS {} KiB before start, {} KiB after",
        used,
        window,
        100.0 * used.as_secs_f64() / window.as_secs_f64(),
        rss_before,
        rss_kib()
    );
    // Failure detection with the default timings, for the report.
    brokers[2].shutdown().await.unwrap();
    let stopped = Instant::now();
    for b in &brokers[..2] {
        eventually("failure seen with default timings", Duration::from_secs(10), || sees(b, 1, MemberState::Failed))
            .await;
    }
    eprintln!("default timings: a stopped broker is seen as failed by both peers after {:?}", stopped.elapsed());
    for b in &brokers[..2] {
        b.shutdown().await.unwrap();
    }
}
