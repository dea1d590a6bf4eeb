//! Fail closed on security (Jet serves PLAINTEXT only for now): the `jet` binary refuses
//! TLS/SASL listeners and settings at start-up, names a TLS ClientHello on its plaintext
//! port in the log (once per peer, not once per retry), and answers SASL requests as
//! Kafka's PLAINTEXT listener does.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{Client, TestBroker};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use tokio::io::AsyncReadExt;

/// ILLEGAL_SASL_STATE.
const ILLEGAL_SASL_STATE: i16 = 34;

struct Jet {
    child: Child,
    log: mpsc::Receiver<String>,
}

impl Drop for Jet {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(args: &[&str], env: &[(&str, &str)]) -> Jet {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_jet"));
    cmd.args(["--admin-listen", "127.0.0.1:0", "--data-dir", dir.path().to_str().unwrap()])
        .args(args)
        .env("RUST_LOG", "info");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.stderr(Stdio::piped()).spawn().expect("spawn jet");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _dir = dir; // removed once the broker's log ends
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    Jet { child, log: rx }
}

impl Jet {
    /// Waits for the line containing `what`; returns it and every line before it.
    fn wait_for(&self, what: &str) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            match self.log.recv_timeout(Duration::from_secs(60)) {
                Ok(line) => {
                    let found = line.contains(what);
                    lines.push(line);
                    if found {
                        return lines;
                    }
                }
                Err(e) => panic!("no log line with {what:?} ({e}); log so far:\n{}", lines.join("\n")),
            }
        }
    }

    fn ready(&self) -> std::net::SocketAddr {
        let lines = self.wait_for("jet is ready");
        let line = lines.last().unwrap();
        line.split("listen=").nth(1).unwrap().split_whitespace().next().unwrap().parse().unwrap()
    }
}

/// Runs `jet` with `args` and expects it to exit non-zero within 30 s, without ever
/// serving; returns its log.
fn refused(args: &[&str], env: &[(&str, &str)]) -> String {
    let mut jet = spawn(args, env);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = jet.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "jet {args:?} {env:?} did not exit: it started serving");
        std::thread::sleep(Duration::from_millis(20));
    };
    let log: Vec<String> = jet.log.iter().collect();
    let log = log.join("\n");
    assert!(!status.success(), "jet {args:?} {env:?} exited {status}\n{log}");
    assert!(!log.contains("jet is ready"), "{log}");
    assert!(log.contains("PLAINTEXT only for now"), "jet {args:?} {env:?}: no clear message:\n{log}");
    log
}

#[test]
fn listeners_and_settings_asking_for_tls_or_sasl_refuse_to_start() {
    for protocol in ["SSL", "SASL_SSL", "SASL_PLAINTEXT"] {
        let listener = format!("{protocol}://127.0.0.1:0");
        let log = refused(&["--listen", &listener], &[]);
        assert!(log.contains(&format!("security protocol {protocol}")), "{log}");
        let log = refused(&[], &[("JET_LISTEN", &listener)]);
        assert!(log.contains(protocol), "{log}");
        let log = refused(&["--listen", "127.0.0.1:0", "--advertised-listener", &listener], &[]);
        assert!(log.contains(protocol), "{log}");
    }
    let log = refused(&["--listen", "PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0"], &[]);
    assert!(log.contains("security protocol SSL"), "{log}");
    for setting in [
        "listener.security.protocol.map=PLAINTEXT:SASL_SSL",
        "security.inter.broker.protocol=SSL",
        "ssl.keystore.location=/etc/kafka/broker.jks",
        "sasl.enabled.mechanisms=PLAIN",
    ] {
        let log = refused(&["--listen", "127.0.0.1:0", "--set", setting], &[]);
        let key = setting.split('=').next().unwrap();
        assert!(log.contains(key), "{setting}: {log}");
    }
}

/// The first bytes librdkafka (OpenSSL) sends with `security.protocol=SSL`: a TLS 1.2
/// ClientHello record.
fn client_hello() -> Vec<u8> {
    let mut hello = vec![0x03, 0x03]; // client_version TLS 1.2
    hello.extend_from_slice(&[0x5a; 32]); // random
    hello.push(0); // no session id
    hello.extend_from_slice(&[0x00, 0x04, 0xc0, 0x2f, 0xc0, 0x30]); // two cipher suites
    hello.extend_from_slice(&[0x01, 0x00]); // null compression
    hello.extend_from_slice(&[0x00, 0x00]); // no extensions
    let mut handshake = vec![0x01, 0, (hello.len() >> 8) as u8, hello.len() as u8];
    handshake.extend_from_slice(&hello);
    let mut record = vec![0x16, 0x03, 0x01, (handshake.len() >> 8) as u8, handshake.len() as u8];
    record.extend_from_slice(&handshake);
    record
}

/// Sends a ClientHello and waits for the broker to refuse it in TLS's terms (a fatal
/// `handshake_failure` alert, so TLS clients report a failed handshake) and close.
async fn hello_is_closed(addr: std::net::SocketAddr) {
    let mut c = Client::connect(addr).await;
    c.send_raw(&client_hello()).await;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), c.stream.read_to_end(&mut answer)).await;
    assert!(matches!(read, Ok(Ok(_)) | Ok(Err(_))), "connection not closed after a ClientHello: {read:?}");
    assert_eq!(answer, [0x15, 0x03, 0x01, 0x00, 0x02, 0x02, 0x28], "a fatal handshake_failure alert, then the close");
}

async fn sasl_handshake(c: &mut Client, mechanism: &'static str) -> SaslHandshakeResponse {
    let req = SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(mechanism));
    c.call(ApiKey::SaslHandshake, 1, &req).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_and_sasl_clients_are_named_in_the_log_without_flooding_it() {
    let jet = spawn(&["--listen", "127.0.0.1:0"], &[]);
    let addr = jet.ready();
    // A client retrying in a loop: 20 ClientHellos, every connection closed at once.
    for _ in 0..20 {
        hello_is_closed(addr).await;
    }
    // Two SASL requests on one connection, then one on another: one line per connection.
    let mut c = Client::connect(addr).await;
    assert_eq!(sasl_handshake(&mut c, "PLAIN").await.error_code, ILLEGAL_SASL_STATE);
    assert_eq!(sasl_handshake(&mut c, "PLAIN").await.error_code, ILLEGAL_SASL_STATE);
    let mut c2 = Client::connect(addr).await;
    assert_eq!(sasl_handshake(&mut c2, "SCRAM-SHA-256").await.error_code, ILLEGAL_SASL_STATE);
    // The last SASL line comes after every TLS line (each was logged before its close).
    let lines = jet.wait_for("mechanism SCRAM-SHA-256");
    let count = |what: &str| lines.iter().filter(|l| l.contains(what)).count();
    let log = lines.join("\n");
    assert_eq!(count("client spoke TLS to a PLAINTEXT listener"), 1, "{log}");
    for line in lines.iter().filter(|l| l.contains("TLS to a") || l.contains("attempted SASL")) {
        assert!(line.contains("127.0.0.1:"), "the line names the peer: {line}");
    }
    assert_eq!(count("frame size"), 0, "{log}");
    assert_eq!(count("attempted SASL authentication"), 2, "{log}");
    assert_eq!(count("mechanism PLAIN"), 1, "{log}");
    // The broker goes on serving.
    let r: MetadataResponse = c.call(ApiKey::Metadata, 12, &MetadataRequest::default()).await;
    assert_eq!(r.brokers.len(), 1);
}

#[tokio::test]
async fn sasl_requests_get_what_kafka_answers_on_a_plaintext_listener() {
    let b = TestBroker::start(&[]).await;
    let mut c = b.client().await;
    // Kafka advertises both SASL APIs on every listener.
    let versions: ApiVersionsResponse = c.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default()).await;
    let range = |key: ApiKey| {
        let v = versions.api_keys.iter().find(|v| v.api_key == key as i16).expect("advertised");
        (v.min_version, v.max_version)
    };
    assert_eq!(range(ApiKey::SaslHandshake), (0, 1));
    assert_eq!(range(ApiKey::SaslAuthenticate), (0, 2));
    for v in 0..=1 {
        let req = SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN"));
        let r: SaslHandshakeResponse = c.call(ApiKey::SaslHandshake, v, &req).await;
        assert_eq!(r.error_code, ILLEGAL_SASL_STATE, "v{v}");
        assert!(r.mechanisms.is_empty());
    }
    for v in 0..=2 {
        let req = SaslAuthenticateRequest::default().with_auth_bytes(bytes::Bytes::from_static(b"\0user\0pw"));
        let r: SaslAuthenticateResponse = c.call(ApiKey::SaslAuthenticate, v, &req).await;
        assert_eq!(r.error_code, ILLEGAL_SASL_STATE, "v{v}");
        assert_eq!(
            r.error_message.as_deref(),
            Some("SaslAuthenticate request received after successful authentication")
        );
    }
    // The connection stays usable, as on Kafka.
    let r: MetadataResponse = c.call(ApiKey::Metadata, 12, &MetadataRequest::default()).await;
    assert_eq!(r.brokers.len(), 1);
    b.stop().await;
}
