//! The admin HTTP server of the real `jet` binary: `/metrics` after a produce and a
//! fetch shows the topic's bytes and records and the request counts; `/readyz` turns
//! 503 while the broker drains after SIGTERM; `jet healthcheck` exits 0 when ready and
//! 1 when draining or gone.

mod common;

use std::net::SocketAddr;
use std::process::{Command, Output};
use std::time::Duration;

use bytes::Bytes;
use common::process::JetProcess;
use common::{Client, records};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Status code and body of `GET path` on the admin server.
/// Status 0 when there is no HTTP answer (nothing listening, connection closed).
async fn get(admin: SocketAddr, path: &str) -> (u16, String) {
    let exchange = async {
        let mut s = tokio::net::TcpStream::connect(admin).await?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {admin}\r\nConnection: close\r\n\r\n");
        s.write_all(request.as_bytes()).await?;
        let mut response = String::new();
        s.read_to_string(&mut response).await?;
        Ok::<_, std::io::Error>(response)
    };
    let response = match exchange.await {
        Ok(r) => r,
        Err(e) => return (0, format!("no HTTP answer: {e}")),
    };
    let Some((head, body)) = response.split_once("\r\n\r\n") else { return (0, format!("not HTTP: {response:?}")) };
    let status = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, body.to_string())
}

/// Polls `GET path` until `want(status, body)` holds (fails after 60 s).
async fn wait_for(admin: SocketAddr, path: &str, want: impl Fn(u16, &str) -> bool) -> (u16, String) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (status, body) = get(admin, path).await;
        if want(status, &body) {
            return (status, body);
        }
        assert!(tokio::time::Instant::now() < deadline, "{path} stayed {status}: {body}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The value of the sample named exactly `series` (name and labels) on a metrics page.
fn sample(page: &str, series: &str) -> Option<f64> {
    page.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

fn healthcheck(admin: SocketAddr) -> Output {
    Command::new(env!("CARGO_BIN_EXE_jet"))
        .args(["healthcheck", "--admin-listen", &admin.to_string()])
        .env_remove("JET_ADMIN_LISTEN")
        .output()
        .expect("run jet healthcheck")
}

fn name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_string()))
}

async fn create(c: &mut Client, topic: &str) {
    let t = metadata_request::MetadataRequestTopic::default().with_name(Some(name(topic)));
    let req = MetadataRequest::default().with_allow_auto_topic_creation(true).with_topics(Some(vec![t]));
    let r: MetadataResponse = c.call(ApiKey::Metadata, 12, &req).await;
    assert_eq!(r.topics[0].error_code, 0);
}

async fn produce(c: &mut Client, topic: &str, data: Bytes) {
    let code = produce_to(c, topic, 0, data).await;
    assert_eq!(code, 0);
}

/// The partition's error code.
async fn produce_to(c: &mut Client, topic: &str, partition: i32, data: Bytes) -> i16 {
    let req = ProduceRequest::default().with_acks(-1).with_timeout_ms(30_000).with_topic_data(vec![
        produce_request::TopicProduceData::default().with_name(name(topic)).with_partition_data(vec![
            produce_request::PartitionProduceData::default().with_index(partition).with_records(Some(data)),
        ]),
    ]);
    let r: ProduceResponse = c.call(ApiKey::Produce, 9, &req).await;
    r.responses[0].partition_responses[0].error_code
}

fn fetch_request(topic: &str) -> FetchRequest {
    FetchRequest::default().with_max_bytes(50 << 20).with_session_epoch(-1).with_topics(vec![
        fetch_request::FetchTopic::default().with_topic(name(topic)).with_partitions(vec![
            fetch_request::FetchPartition::default().with_fetch_offset(0).with_partition_max_bytes(50 << 20),
        ]),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_show_a_topics_traffic_and_the_requests_that_made_it() {
    let dir = tempfile::tempdir().unwrap();
    let jet = JetProcess::start(dir.path(), &[]);
    wait_for(jet.admin, "/readyz", |status, _| status == 200).await;
    assert_eq!(get(jet.admin, "/livez").await.0, 200);

    let mut c = Client::connect(jet.addr).await;
    create(&mut c, "metered").await;
    let data = records::values((0..25).map(|i| format!("value-{i:04}")));
    produce(&mut c, "metered", data.clone()).await;
    let r: FetchResponse = c.call(ApiKey::Fetch, 12, &fetch_request("metered")).await;
    let fetched = r.responses[0].partitions[0].records.clone().unwrap_or_default();
    assert_eq!(fetched.len(), data.len(), "the fetch returns the one batch produced");

    let (status, page) = get(jet.admin, "/metrics").await;
    assert_eq!(status, 200, "{page}");
    let topic = |metric: &str| sample(&page, &format!("{metric}{{topic=\"metered\"}}"));
    assert_eq!(topic("jet_topic_bytes_in_total"), Some(data.len() as f64), "{page}");
    assert_eq!(topic("jet_topic_messages_in_total"), Some(25.0), "{page}");
    assert_eq!(topic("jet_topic_bytes_out_total"), Some(data.len() as f64), "{page}");
    assert_eq!(sample(&page, r#"jet_requests_total{request="Produce"}"#), Some(1.0), "{page}");
    assert_eq!(sample(&page, r#"jet_request_duration_seconds_count{request="Produce"}"#), Some(1.0));
    assert_eq!(sample(&page, r#"jet_requests_total{request="Metadata"}"#), Some(1.0));
    assert_eq!(sample(&page, r#"jet_requests_total{request="Fetch"}"#), Some(1.0));
    assert_eq!(sample(&page, "jet_connections"), Some(1.0), "the client is still connected");
    assert_eq!(sample(&page, "jet_partitions"), Some(1.0));
    // acks=-1: the produce waited for at least one timed fsync.
    assert!(sample(&page, "jet_log_flush_duration_seconds_count").is_some_and(|n| n >= 1.0), "{page}");

    let (status, cluster) = get(jet.admin, "/v1/cluster").await;
    assert_eq!(status, 200);
    let cluster: serde_json::Value = serde_json::from_str(&cluster).unwrap();
    assert_eq!(cluster["state"], "ready");
    assert_eq!(cluster["node_id"], 1);
    assert_eq!((cluster["topics"].as_i64(), cluster["partitions"].as_i64()), (Some(1), Some(1)));
    assert_eq!(cluster["listeners"]["kafka"], jet.addr.to_string());
    assert_eq!(cluster["listeners"]["admin"], jet.admin.to_string());
    assert_eq!(cluster["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(get(jet.admin, "/nope").await.0, 404);
    assert!(!page.contains("jet_request_errors_total{"), "no error yet: {page}");

    // A partition the topic does not have: counted under Kafka's error name.
    assert_eq!(produce_to(&mut c, "metered", 7, data.clone()).await, 3);
    let (_, page) = get(jet.admin, "/metrics").await;
    let errors = r#"jet_request_errors_total{request="Produce",error="UNKNOWN_TOPIC_OR_PARTITION"}"#;
    assert_eq!(sample(&page, errors), Some(1.0), "{page}");
    assert_eq!(sample(&page, r#"jet_requests_total{request="Produce"}"#), Some(2.0));
    let bytes_in = sample(&page, r#"jet_topic_bytes_in_total{topic="metered"}"#);
    assert_eq!(bytes_in, Some(data.len() as f64), "nothing more appended");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_503_while_draining_and_healthcheck_follows_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut jet = JetProcess::start(dir.path(), &[]);
    wait_for(jet.admin, "/readyz", |status, _| status == 200).await;
    let ready = healthcheck(jet.admin);
    assert_eq!(ready.status.code(), Some(0), "{}", String::from_utf8_lossy(&ready.stderr));

    // Keep the drain going: fetches whose responses (16 × ~6 MB) a client with a small
    // receive buffer never reads hold their connection open until the shutdown grace
    // period (10 s) ends.
    let mut c = Client::connect(jet.addr).await;
    create(&mut c, "big").await;
    for _ in 0..8 {
        produce(&mut c, "big", records::values((0..800).map(|_| Bytes::from(vec![7u8; 1000])))).await;
    }
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(64 << 10).unwrap();
    let mut stalled = socket.connect(jet.addr).await.unwrap();
    for _ in 0..16 {
        let (_, bytes) = c.encode_request(ApiKey::Fetch, 12, &fetch_request("big"));
        stalled.write_all(&bytes).await.unwrap();
    }
    // Responses have started: the requests were read before the signal.
    stalled.peek(&mut [0u8; 1]).await.unwrap();

    jet.signal(libc::SIGTERM);
    let (_, reason) = wait_for(jet.admin, "/readyz", |status, _| status == 503).await;
    assert!(reason.contains("draining"), "{reason}");
    let draining = healthcheck(jet.admin);
    assert_eq!(draining.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&draining.stderr).contains("draining"), "{draining:?}");
    assert_eq!(get(jet.admin, "/livez").await.0, 200, "alive while draining");

    drop(stalled);
    let status = jet.child.wait().unwrap();
    assert!(status.success(), "{status}");
    let gone = healthcheck(jet.admin);
    assert_eq!(gone.status.code(), Some(1));
}
