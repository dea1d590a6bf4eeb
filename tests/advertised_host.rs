//! A broker listening on all interfaces with no advertised listener advertises the host's
//! name (as Kafka does), logs what it advertises and why, and a local client sent to that
//! name reaches it.

mod common;

use std::net::ToSocketAddrs;

use common::Client;
use common::process::JetProcess;
use kafka_protocol::messages::{ApiKey, MetadataRequest, MetadataResponse};

#[tokio::test]
async fn a_wildcard_listener_advertises_a_name_local_clients_reach() {
    let dir = tempfile::tempdir().unwrap();
    let jet = JetProcess::spawn(JetProcess::command_on(dir.path(), "0.0.0.0:0"));
    let startup = jet.startup.join("\n");
    let line = jet.startup.iter().find(|l| l.contains("advertising a host")).expect(&startup);
    let host = line.split("host=").nth(1).and_then(|s| s.split_whitespace().next()).expect(line).trim_matches('"');
    assert!(line.contains("reason="), "{line}");
    let port = jet.addr.port();

    // What clients are told in Metadata is what was logged, with the bound port.
    let local: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    let mut client = Client::connect(local).await;
    let r: MetadataResponse = client.call(ApiKey::Metadata, 12, &MetadataRequest::default()).await;
    assert_eq!(r.brokers[0].host.as_str(), host);
    assert_eq!(r.brokers[0].port, i32::from(port));

    // A client following the advertised name reaches this broker.
    let addr = (host, port).to_socket_addrs().expect("the advertised name resolves").next().expect("an address");
    let mut client = Client::connect(addr).await;
    let r: MetadataResponse = client.call(ApiKey::Metadata, 12, &MetadataRequest::default()).await;
    assert_eq!(r.brokers[0].host.as_str(), host);
    if host != "localhost" {
        assert!(!line.contains("local clients only"), "{line}");
    }
}
