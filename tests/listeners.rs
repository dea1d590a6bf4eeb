//! Several Kafka listeners (`listeners`, `advertised.listeners`,
//! `listener.security.protocol.map`): a client is told every broker's address on the
//! listener it connected to, as Kafka does, so clients outside a Kubernetes cluster (one
//! Service per broker) and inside it (the pods' DNS names) each reach the right broker.
//! Three real `jet` processes; the internal listener advertises `127.0.0.1`, the external
//! one `localhost`, so the test can tell which address a response names.

mod common;

use std::net::SocketAddr;

use common::Client;
use common::cluster::{Node, free_port};
use common::process::JetProcess;
use common::replicated::*;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

/// (node id, host, port) of every broker a Metadata answer through `addr` lists.
async fn listed(addr: SocketAddr) -> Vec<(i32, String, i32)> {
    metadata(addr, TOPIC).await.brokers.iter().map(|b| (b.node_id.0, b.host.to_string(), b.port)).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn clients_are_told_brokers_on_the_listener_they_connected_to() {
    let nodes: Vec<Node> = (1..=3).map(Node::new).collect();
    let external: Vec<u16> = nodes.iter().map(|_| free_port()).collect();
    let seed = nodes[0].gossip;
    let brokers: Vec<JetProcess> = nodes
        .iter()
        .zip(&external)
        .map(|(n, ext)| {
            let k = n.kafka;
            // Kafka's keys through --set (the top layer): the external listener is listed
            // first, and inter.broker.listener.name makes the internal one the broker's own.
            let set = format!(
                "listeners=EXTERNAL://127.0.0.1:{ext},INTERNAL://127.0.0.1:{k},\
                 advertised.listeners=INTERNAL://127.0.0.1:{k},EXTERNAL://localhost:{ext},\
                 listener.security.protocol.map=INTERNAL:PLAINTEXT,EXTERNAL:PLAINTEXT,\
                 inter.broker.listener.name=INTERNAL"
            );
            start(n, seed, &["--set", &set])
        })
        .collect();
    let internal_addr = |id: i32| SocketAddr::from(([127, 0, 0, 1], nodes[(id - 1) as usize].kafka));
    let external_addr = |id: i32| SocketAddr::from(([127, 0, 0, 1], external[(id - 1) as usize]));
    for (b, n) in brokers.iter().zip(&nodes) {
        assert_eq!(b.addr.port(), n.kafka, "the ready line names the broker's own listener");
    }
    let a = internal_addr(1);
    until("a controller", || async move { (metadata(a, TOPIC).await.controller_id.0 > 0).then_some(()) }).await;
    create_rf3(a, 1).await;
    let (leader, epoch) = wait_settled(&brokers, &nodes).await;

    let on_internal: Vec<(i32, String, i32)> =
        nodes.iter().map(|n| (n.id, "127.0.0.1".to_string(), i32::from(n.kafka))).collect();
    let on_external: Vec<(i32, String, i32)> =
        nodes.iter().zip(&external).map(|(n, p)| (n.id, "localhost".to_string(), i32::from(*p))).collect();
    // Gossip may still be telling a broker of the last one to start: wait for the views.
    for id in 1..=3 {
        let (internal, external) = (&on_internal, &on_external);
        until("every broker in the view", || async move { (listed(internal_addr(id)).await.len() == 3).then_some(()) })
            .await;
        assert_eq!(&listed(internal_addr(id)).await, internal, "Metadata through broker {id}'s internal listener");
        assert_eq!(&listed(external_addr(id)).await, external, "Metadata through broker {id}'s external listener");
    }

    // /v1/cluster shows each broker's listeners by name.
    let (code, body) = common::http_get(brokers[0].admin, "/v1/cluster").await;
    assert_eq!(code, 200, "{body}");
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    let n = &nodes[1];
    let second = status["brokers"].as_array().unwrap().iter().find(|b| b["node_id"] == 2).expect("broker 2 listed");
    assert_eq!(second["listeners"]["INTERNAL"], format!("127.0.0.1:{}", n.kafka));
    assert_eq!(second["listeners"]["EXTERNAL"], format!("localhost:{}", external[1]));

    // DescribeCluster names the same addresses.
    let mut c = Client::connect(external_addr(2)).await;
    let r: DescribeClusterResponse = c.call(ApiKey::DescribeCluster, 0, &DescribeClusterRequest::default()).await;
    let described: Vec<(i32, String, i32)> =
        r.brokers.iter().map(|b| (b.broker_id.0, b.host.to_string(), b.port)).collect();
    assert_eq!(described, on_external);

    // A follower's refusal names the leader's external address (KIP-951).
    let follower = (1..=3).find(|&id| id != leader).unwrap();
    let r = produce_with(external_addr(follower), values(0, 1), -1, 11).await;
    let p = &r.responses[0].partition_responses[0];
    assert_eq!(p.error_code, ResponseError::NotLeaderOrFollower.code());
    assert_eq!((p.current_leader.leader_id.0, p.current_leader.leader_epoch), (leader, epoch));
    let endpoints: Vec<(i32, String, i32)> =
        r.node_endpoints.iter().map(|e| (e.node_id.0, e.host.to_string(), e.port)).collect();
    assert_eq!(endpoints, vec![on_external[(leader - 1) as usize].clone()]);

    // Writes and reads through the external listener reach the same partition.
    let r = produce(external_addr(leader), values(0, 20)).await;
    assert_eq!(r.error_code, 0, "{:?}", r.error_message);
    let (records, _) = read_all(external_addr(leader)).await;
    let written: Vec<String> = (0..20).map(|i| format!("value-{i}")).collect();
    assert_eq!(records.iter().map(|(_, v)| v.clone()).collect::<Vec<_>>(), written);
    assert_eq!(read_all(internal_addr(leader)).await.0, records);

    // The group coordinator is named on the listener asked, whichever broker it is.
    for (addr, expected) in [(external_addr(3), &on_external), (internal_addr(3), &on_internal)] {
        let coordinator = until("a group coordinator", || async move {
            let mut c = Client::connect(addr).await;
            let request = FindCoordinatorRequest::default().with_key(StrBytes::from_static_str("listeners-group"));
            let r: FindCoordinatorResponse = c.call(ApiKey::FindCoordinator, 3, &request).await;
            (r.error_code == 0).then(|| (r.node_id.0, r.host.to_string(), r.port))
        })
        .await;
        assert!(expected.contains(&coordinator), "{coordinator:?} not in {expected:?}");
    }
}

#[test]
fn a_listener_name_without_a_protocol_stops_the_broker_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let out = JetProcess::command(dir.path())
        .args(["--set", "listeners=PLAINTEXT://127.0.0.1:0,EXTERNAL://127.0.0.1:0"])
        .output()
        .expect("run jet");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("EXTERNAL") && stderr.contains("listener.security.protocol.map=EXTERNAL:PLAINTEXT"),
        "{stderr}"
    );
}
