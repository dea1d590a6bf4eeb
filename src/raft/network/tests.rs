//! The transport over real TCP on 127.0.0.1: clusters of three brokers in one process
//! (see [`super::test_cluster`]), and single calls against hand-made peers.

use std::io::Cursor;
use std::time::{Duration, Instant};

use bytes::Bytes;
use openraft::async_runtime::WatchReceiver;
use openraft::error::RPCError;
use openraft::network::{RPCOption, RaftNetworkFactory, RaftNetworkV2};
use openraft::raft::{AppendEntriesRequest, VoteRequest, VoteResponse};
use openraft::{EntryPayload, ServerState};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::test_cluster::{TestCluster, WAIT, raft_config_with_elections, wait_for};
use super::wire::{self, Hello, Request, RequestBody};
use super::{RaftTransport, TransportConfig};
use crate::raft::log_store::log_id;
use crate::raft::{AppendBatches, Entry, GroupId, JetNode, Term, Vote};

fn group(i: i32) -> GroupId {
    GroupId::new("orders", i)
}

/// Normal entries in `entries` (the client writes).
fn normal_count(entries: &[Entry]) -> usize {
    entries.iter().filter(|e| matches!(e.payload, EntryPayload::Normal(_))).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_elect_a_leader_commit_writes_and_hold_the_same_log() {
    let g = group(0);
    let cluster = TestCluster::start(3, vec![g.clone()]).await;
    cluster.initialize_all().await;
    let leader = cluster.wait_leader(&g, &cluster.ids()).await;
    let written = cluster.write(&g, leader, 5).await;
    let last = *written.last().expect("writes");
    let log = cluster.wait_same_log(&g, leader, &cluster.ids(), last).await;
    assert_eq!(normal_count(&log), 5, "the five writes, on every node: {log:?}");
    for id in written {
        assert!(log.iter().any(|e| e.log_id == id), "{id} is in the replicated log");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_groups_share_one_connection_per_peer() {
    let groups: Vec<GroupId> = (0..50).map(group).collect();
    let cluster = TestCluster::start(3, groups.clone()).await;
    // Every node leads some groups, so every node has requests for both peers.
    cluster.initialize_spread().await;
    let cluster = &cluster;
    let leaders = futures::future::join_all(groups.iter().map(|g| async move {
        let leader = cluster.wait_leader(g, &cluster.ids()).await;
        let written = cluster.write(g, leader, 2).await;
        let log = cluster.wait_same_log(g, leader, &cluster.ids(), written[1]).await;
        assert_eq!(normal_count(&log), 2, "{g}: both writes on every node");
        leader
    }))
    .await;
    for id in cluster.ids() {
        assert!(leaders.contains(&id), "node {id} leads a group: {leaders:?}");
    }
    for node in cluster.nodes.values() {
        let stats = node.transport.stats();
        assert_eq!(stats.groups, 50);
        assert_eq!(stats.accepted_connections, 2, "node {}: one connection from each peer: {stats:?}", node.id);
        assert_eq!(stats.dialled_connections, 2, "node {}: one connection to each peer: {stats:?}", node.id);
        assert_eq!(stats.open_outbound, 2, "node {}: {stats:?}", node.id);
        assert_eq!(stats.malformed_frames, 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_leader_is_replaced_and_catches_up_after_restart() {
    // Three groups, each led by another node, so every node has a connection to every
    // peer before the stop: the survivors' connections to the stopped node break and must
    // be re-established when it comes back.
    let groups: Vec<GroupId> = (0..3).map(group).collect();
    let mut cluster = TestCluster::start(3, groups.clone()).await;
    cluster.initialize_spread().await;
    let mut written = Vec::new();
    for g in &groups {
        let leader = cluster.wait_leader(g, &cluster.ids()).await;
        let before = cluster.write(g, leader, 3).await;
        cluster.wait_same_log(g, leader, &cluster.ids(), before[2]).await;
        written.push(before);
    }
    let stopped = cluster.wait_leader(&groups[0], &cluster.ids()).await;
    let survivors = cluster.others(stopped);
    for id in &survivors {
        assert_eq!(cluster.node(*id).transport.stats().open_outbound, 2, "node {id} is connected to both peers");
    }

    cluster.stop_node(stopped).await;
    for (g, before) in groups.iter().zip(&mut written) {
        let leader = cluster.wait_leader(g, &survivors).await;
        assert_ne!(leader, stopped);
        let during = cluster.write(g, leader, 4).await;
        cluster.wait_same_log(g, leader, &survivors, during[3]).await;
        before.extend(during);
    }

    cluster.restart_node(stopped).await;
    for (g, ids) in groups.iter().zip(&written) {
        let leader = cluster.wait_leader(g, &cluster.ids()).await;
        let after = cluster.write(g, leader, 1).await;
        let log = cluster.wait_same_log(g, leader, &cluster.ids(), after[0]).await;
        assert_eq!(normal_count(&log), 8, "{g}: writes from before, during and after the outage: {log:?}");
        let restarted = cluster.entries(stopped, g);
        for id in ids {
            assert!(restarted.iter().any(|e| e.log_id == *id), "{g}: the restarted node holds {id}");
        }
    }
}

/// Reads until the server closes the connection; fails if it stays open.
async fn assert_closed_by_server(mut stream: TcpStream, what: &str) {
    let mut buf = [0u8; 64];
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the server closed the connection after {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_oversized_frames_close_only_that_connection() {
    let g = group(3);
    let cluster = TestCluster::start(3, vec![g.clone()]).await;
    cluster.initialize_all().await;
    let leader = cluster.wait_leader(&g, &cluster.ids()).await;
    let follower = cluster.others(leader)[0];
    let addr = cluster.node(follower).addr;
    let hello = wire::encode(&Hello::new(99, follower), usize::MAX).expect("hello");

    let mut garbage_frame = 8u32.to_be_bytes().to_vec();
    garbage_frame.extend_from_slice(&[0xff; 8]);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("a garbage frame instead of the hello", garbage_frame.clone()),
        ("a garbage request after the hello", [hello.to_vec(), garbage_frame].concat()),
        ("an oversized length prefix instead of the hello", u32::MAX.to_be_bytes().to_vec()),
        ("an oversized length prefix after the hello", [hello.to_vec(), u32::MAX.to_be_bytes().to_vec()].concat()),
    ];
    for (what, bytes) in &cases {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stream.write_all(bytes).await.expect("send");
        assert_closed_by_server(stream, what).await;
    }
    assert_eq!(cluster.node(follower).transport.stats().malformed_frames, cases.len() as u64);

    // Raft traffic to and from that broker goes on.
    let written = cluster.write(&g, leader, 3).await;
    let log = cluster.wait_same_log(&g, leader, &cluster.ids(), written[2]).await;
    assert_eq!(normal_count(&log), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfer_leader_moves_leadership_to_the_named_node() {
    // Elections take at least five seconds, so a leader that appears sooner came from the
    // transfer, not from a timeout after the old leader stood down.
    let g = group(5);
    let cluster = TestCluster::start_with(3, vec![g.clone()], raft_config_with_elections(5_000, 6_000)).await;
    cluster.initialize_all().await;
    let leader = cluster.wait_leader(&g, &cluster.ids()).await;
    for target in cluster.others(leader) {
        let current = cluster.wait_leader(&g, &cluster.ids()).await;
        let started = Instant::now();
        cluster.raft(current, &g).trigger().transfer_leader(target).await.expect("trigger transfer");
        wait_for(&format!("node {target} to lead {g}"), WAIT, || {
            let all_agree = cluster
                .ids()
                .iter()
                .all(|id| cluster.raft(*id, &g).metrics().borrow_watched().current_leader == Some(target));
            let leads = cluster.raft(target, &g).metrics().borrow_watched().state == ServerState::Leader;
            (all_agree && leads).then_some(())
        })
        .await;
        let took = started.elapsed();
        assert!(took < Duration::from_millis(4_000), "transfer to {target} took {took:?}, an election timeout");
        let written = cluster.write(&g, target, 1).await;
        cluster.wait_same_log(&g, target, &cluster.ids(), written[0]).await;
    }
}

#[tokio::test]
async fn a_connection_that_sends_no_hello_is_closed_after_the_handshake_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let config = TransportConfig { handshake_timeout: Duration::from_millis(200), ..TransportConfig::default() };
    let server = RaftTransport::new(2, config);
    let serving = tokio::spawn({
        let server = server.clone();
        async move { server.serve(listener, std::future::pending()).await }
    });
    let stream = TcpStream::connect(addr).await.expect("connect");
    assert_closed_by_server(stream, "sending nothing").await;
    assert_eq!(server.stats().malformed_frames, 0, "silence is not a malformed frame");
    serving.abort();
}

fn member(addr: impl ToString) -> JetNode {
    JetNode { raft_addr: addr.to_string(), ..JetNode::default() }
}

fn vote_request() -> VoteRequest<crate::raft::TypeConfig> {
    VoteRequest::new(Vote::new(Term(1), 1), None)
}

#[tokio::test]
async fn a_call_for_a_group_the_peer_does_not_host_is_unreachable() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = RaftTransport::new(2, TransportConfig::default());
    let serving = tokio::spawn({
        let server = server.clone();
        async move { server.serve(listener, std::future::pending()).await }
    });
    let client = RaftTransport::new(1, TransportConfig::default());
    let mut network = client.network::<Cursor<Vec<u8>>>(group(1)).new_client(2, &member(addr)).await;
    let result = network.vote(vote_request(), RPCOption::new(Duration::from_secs(5))).await;
    match result {
        Err(RPCError::Unreachable(e)) => assert!(e.to_string().contains("not hosted"), "{e}"),
        other => panic!("expected Unreachable, got {other:?}"),
    }
    assert_eq!(server.stats().accepted_connections, 1);
    serving.abort();
}

#[tokio::test]
async fn a_call_times_out_at_the_soft_ttl_when_the_peer_does_not_answer() {
    // A peer that accepts and reads but never answers.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let silent = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.expect("accept");
        let mut sink = Vec::new();
        let _ = stream.read_to_end(&mut sink).await;
    });
    let client = RaftTransport::new(1, TransportConfig::default());
    let mut network = client.network::<Cursor<Vec<u8>>>(group(1)).new_client(2, &member(addr)).await;
    let option = RPCOption::new(Duration::from_millis(400));
    let started = Instant::now();
    let call = network.vote(vote_request(), option.clone());
    let result = tokio::time::timeout(option.hard_ttl() * 2, call).await.expect("the call ended by itself");
    let took = started.elapsed();
    assert!(matches!(result, Err(RPCError::Timeout(_))), "{result:?}");
    assert!(took >= option.soft_ttl() && took < option.hard_ttl(), "timed out after {took:?}");
    silent.abort();
}

#[tokio::test]
async fn a_refused_connection_is_unreachable_and_backs_off_before_dialling_again() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let config = TransportConfig {
        reconnect_backoff: (Duration::from_secs(30), Duration::from_secs(30)),
        ..TransportConfig::default()
    };
    let client = RaftTransport::new(1, config);
    let mut network = client.network::<Cursor<Vec<u8>>>(group(1)).new_client(2, &member(addr)).await;
    let option = RPCOption::new(Duration::from_secs(5));
    let first = network.vote(vote_request(), option.clone()).await;
    assert!(matches!(&first, Err(RPCError::Unreachable(e)) if e.to_string().contains("cannot connect")), "{first:?}");
    // Now something listens, but the backoff window holds: no dial, still unreachable.
    let listener = TcpListener::bind(addr).await.expect("bind again");
    let second = network.vote(vote_request(), option).await;
    assert!(
        matches!(&second, Err(RPCError::Unreachable(e)) if e.to_string().contains("next connection attempt")),
        "{second:?}"
    );
    let accepted = tokio::time::timeout(Duration::from_millis(200), listener.accept()).await;
    assert!(accepted.is_err(), "no dial during the backoff window");
    assert_eq!(client.stats().dialled_connections, 0);
}

#[test]
fn a_batch_payload_costs_its_own_size_on_the_wire() {
    let payload = Bytes::from(vec![7u8; 10_000]);
    let entry = Entry { log_id: log_id(Term(3), 41), payload: EntryPayload::Normal(AppendBatches(payload.clone())) };
    let rpc = AppendEntriesRequest {
        vote: Vote::new_committed(Term(3), 1),
        prev_log_id: Some(log_id(Term(3), 40)),
        entries: vec![entry.clone()],
        leader_commit: Some(log_id(Term(3), 40)),
    };
    let request = Request { id: 9, group: group(2), body: RequestBody::AppendEntries(rpc) };
    let frame = wire::encode(&request, wire::DEFAULT_MAX_FRAME_BYTES).expect("encode");
    assert!(frame.len() < payload.len() + 100, "frame of {} bytes for a {}-byte batch", frame.len(), payload.len());
    let decoded: Request = wire::decode(&frame[4..]).expect("decode");
    assert_eq!((decoded.id, &decoded.group), (9, &group(2)));
    match decoded.body {
        RequestBody::AppendEntries(rpc) => assert_eq!(rpc.entries, vec![entry]),
        other => panic!("decoded {other:?}"),
    }
    // A frame over the cap is refused when encoding, not sent.
    assert!(matches!(wire::encode(&request, 1_000), Err(wire::WireError::TooLarge { .. })));
}

/// Answers votes by echoing the candidate's vote after a delay that makes later requests
/// finish first, so responses come back out of request order.
struct EchoAfterDelay;

impl super::GroupHandler for EchoAfterDelay {
    fn handle(
        &self,
        body: RequestBody,
    ) -> futures::future::BoxFuture<'static, Result<super::wire::ResponseBody, super::wire::RemoteFailure>> {
        Box::pin(async move {
            match body {
                RequestBody::Vote(rpc) => {
                    let term = rpc.vote.leader_id.term.0;
                    tokio::time::sleep(Duration::from_millis(50 - term % 50)).await;
                    Ok(super::wire::ResponseBody::Vote(VoteResponse::new(rpc.vote, None, true)))
                }
                other => panic!("unexpected request {other:?}"),
            }
        })
    }

    fn retained_range(&self, _snapshot: &[u8]) -> Option<(i64, i64)> {
        None
    }

    fn read_retained(
        &self,
        _from: i64,
        _to: i64,
        _max_bytes: usize,
    ) -> futures::future::BoxFuture<'static, Result<Option<(bytes::Bytes, i64)>, String>> {
        Box::pin(async { Ok(None) })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_from_many_groups_are_pipelined_on_one_connection_and_matched_by_id() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = RaftTransport::new(2, TransportConfig::default());
    let groups: Vec<GroupId> = (0..20).map(group).collect();
    for g in &groups {
        server.register(g.clone(), EchoAfterDelay);
    }
    let serving = tokio::spawn({
        let server = server.clone();
        async move { server.serve(listener, std::future::pending()).await }
    });
    let client = RaftTransport::new(1, TransportConfig::default());
    let started = Instant::now();
    let calls = groups.iter().flat_map(|g| {
        let client = &client;
        (0..20u64).map(move |i| async move {
            let mut network = client.network::<Cursor<Vec<u8>>>(g.clone()).new_client(2, &member(addr)).await;
            let vote = Vote::new(Term(i * 7 + 1), 1);
            let answer = network.vote(VoteRequest::new(vote, None), RPCOption::new(Duration::from_secs(10))).await;
            (vote, answer)
        })
    });
    let answers = futures::future::join_all(calls).await;
    let took = started.elapsed();
    assert_eq!(answers.len(), 400);
    for (vote, answer) in answers {
        let answer = answer.expect("answered");
        assert_eq!(answer.vote, vote, "each call got its own answer");
    }
    // One at a time, 400 calls of 1-50 ms would take about ten seconds.
    assert!(took < Duration::from_secs(3), "400 calls took {took:?}: not pipelined");
    assert_eq!((client.stats().dialled_connections, server.stats().accepted_connections), (1, 1));
    serving.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_groups_reach_a_peer_over_one_connection() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = RaftTransport::new(2, TransportConfig::default());
    let groups: Vec<GroupId> = (0..10_000).map(group).collect();
    for g in &groups {
        server.register(g.clone(), EchoAfterDelay);
    }
    let serving = tokio::spawn({
        let server = server.clone();
        async move { server.serve(listener, std::future::pending()).await }
    });
    let client = RaftTransport::new(1, TransportConfig::default());
    let calls = groups.iter().enumerate().map(|(i, g)| {
        let client = &client;
        async move {
            let mut network = client.network::<Cursor<Vec<u8>>>(g.clone()).new_client(2, &member(addr)).await;
            let vote = Vote::new(Term(i as u64 + 1), 1);
            let answer = network.vote(VoteRequest::new(vote, None), RPCOption::new(Duration::from_secs(20))).await;
            (vote, answer)
        }
    });
    for (vote, answer) in futures::future::join_all(calls).await {
        assert_eq!(answer.expect("answered").vote, vote);
    }
    let stats = (client.stats().dialled_connections, server.stats().accepted_connections, server.stats().groups);
    assert_eq!(stats, (1, 1, 10_000));
    serving.abort();
}

#[tokio::test]
async fn a_broker_answering_with_another_node_id_is_unreachable() {
    // A transport that is node 2, dialled as if it were node 3 (an address that moved).
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = RaftTransport::new(2, TransportConfig::default());
    server.register(group(1), EchoAfterDelay);
    let serving = tokio::spawn({
        let server = server.clone();
        async move { server.serve(listener, std::future::pending()).await }
    });
    let client = RaftTransport::new(1, TransportConfig::default());
    let mut network = client.network::<Cursor<Vec<u8>>>(group(1)).new_client(3, &member(addr)).await;
    let result = network.vote(vote_request(), RPCOption::new(Duration::from_secs(5))).await;
    assert!(
        matches!(&result, Err(RPCError::Unreachable(_))),
        "node 2 refused a connection meant for node 3: {result:?}"
    );
    // The refusal is the accepting side's: it closes without answering the hello.
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(&wire::encode(&Hello::new(1, 3), 1 << 20).expect("hello")).await.expect("send hello");
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    assert!(read.is_ok() && answer.is_empty(), "closed without a hello back: {read:?}, {answer:?}");
    serving.abort();

    // Something at the address answers the hello as node 5.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let impostor = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.expect("accept");
        let hello: Hello = wire::decode(&wire::read_frame(&mut stream, 1 << 20).await.expect("read").expect("hello"))
            .expect("decode hello");
        let reply = wire::encode(&Hello::new(5, hello.node), 1 << 20).expect("encode");
        stream.write_all(&reply).await.expect("reply");
        let mut rest = Vec::new();
        let _ = stream.read_to_end(&mut rest).await;
    });
    let mut network = client.network::<Cursor<Vec<u8>>>(group(1)).new_client(2, &member(addr)).await;
    let result = network.vote(vote_request(), RPCOption::new(Duration::from_secs(5))).await;
    match &result {
        Err(RPCError::Unreachable(e)) => assert!(e.to_string().contains("node 5 answered"), "{e}"),
        other => panic!("expected Unreachable, got {other:?}"),
    }
    impostor.abort();
}
