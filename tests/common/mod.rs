//! A minimal Kafka client over the `kafka-protocol` crate, a broker started in process
//! on port 0 with a fresh data directory, the `jet` binary as a child process
//! ([`process`]), record batches ([`records`]) and the fuzzing kit ([`fuzz`]).

#![allow(dead_code)]

use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use clap::Parser;
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use jet::broker::Broker;
use jet::config::{BrokerConfig, Cli};

pub mod cli;
pub mod cluster;
pub mod fuzz;
pub mod process;
pub mod records;
pub mod replicated;
pub mod txn;

pub struct TestBroker {
    pub addr: std::net::SocketAddr,
    pub broker: Arc<Broker>,
    pub dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

pub fn config(dir: &std::path::Path, extra: &[&str]) -> BrokerConfig {
    let mut args = vec!["jet", "--listen", "127.0.0.1:0", "--data-dir"];
    let d = dir.to_str().unwrap().to_string();
    let d: &'static str = Box::leak(d.into_boxed_str());
    args.push(d);
    args.extend_from_slice(extra);
    let mut c = Cli::try_parse_from(args).unwrap().into_broker_config();
    c.apply_overrides().unwrap();
    c
}

impl TestBroker {
    pub async fn start(extra: &[&str]) -> TestBroker {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(dir, extra).await
    }

    pub async fn start_in(dir: tempfile::TempDir, extra: &[&str]) -> TestBroker {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut cfg = config(dir.path(), extra);
        cfg.advertised_listener = Some(addr.to_string());
        let broker: Arc<Broker> = Broker::open(cfg).unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(jet::server::run(listener, broker.clone(), async move {
            let _ = rx.await;
        }));
        TestBroker { addr, broker, dir, stop: Some(tx), task: Some(task) }
    }

    /// Graceful shutdown; returns the data directory for a restart.
    pub async fn stop(mut self) -> tempfile::TempDir {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        std::mem::replace(&mut self.dir, dir)
    }

    pub async fn client(&self) -> Client {
        Client::connect(self.addr).await
    }
}

pub struct Client {
    pub stream: TcpStream,
    next_id: i32,
}

impl Client {
    pub async fn connect(addr: std::net::SocketAddr) -> Client {
        Client { stream: TcpStream::connect(addr).await.unwrap(), next_id: 1 }
    }

    pub fn encode_request<T: Encodable>(&mut self, key: ApiKey, version: i16, body: &T) -> (i32, Bytes) {
        let id = self.next_id;
        self.next_id += 1;
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(id)
            .with_client_id(Some(StrBytes::from_static_str("jet-test")));
        let mut buf = BytesMut::new();
        buf.put_i32(0);
        header.encode(&mut buf, key.request_header_version(version)).unwrap();
        body.encode(&mut buf, version).unwrap();
        let len = (buf.len() - 4) as i32;
        buf[..4].copy_from_slice(&len.to_be_bytes());
        (id, buf.freeze())
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// Reads one response frame; `None` when the broker closed the connection.
    pub async fn read_frame(&mut self) -> Option<Bytes> {
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len).await.ok()?;
        let mut buf = vec![0u8; i32::from_be_bytes(len) as usize];
        self.stream.read_exact(&mut buf).await.ok()?;
        Some(Bytes::from(buf))
    }

    pub async fn read_response<R: Decodable>(&mut self, key: ApiKey, version: i16, expected_id: i32) -> R {
        let mut frame = self.read_frame().await.expect("connection closed");
        let header = ResponseHeader::decode(&mut frame, key.response_header_version(version)).unwrap();
        assert_eq!(header.correlation_id, expected_id, "responses out of order");
        let r = R::decode(&mut frame, version).unwrap();
        assert_eq!(frame.remaining(), 0, "trailing bytes in response");
        r
    }

    pub async fn call<T: Encodable, R: Decodable>(&mut self, key: ApiKey, version: i16, body: &T) -> R {
        let (id, bytes) = self.encode_request(key, version, body);
        self.send_raw(&bytes).await;
        self.read_response(key, version, id).await
    }
}

/// The complete batches at the start of `bytes` (each is 12 bytes of offset and length,
/// then `length` bytes).
pub fn whole_batches(bytes: Bytes) -> Bytes {
    let mut end = 0;
    while bytes.len() >= end + 12 {
        let len = i32::from_be_bytes(bytes[end + 8..end + 12].try_into().unwrap()) as usize;
        if bytes.len() < end + 12 + len {
            break;
        }
        end += 12 + len;
    }
    bytes.slice(..end)
}

/// Status code and body of `GET path` on an admin server.
pub async fn http_get(admin: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(admin).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {admin}\r\nConnection: close\r\n\r\n");
    s.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    let status = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, body.to_string())
}
