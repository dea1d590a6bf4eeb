//! Start-up configuration of the real `jet` binary: a copied Kafka `server.properties`
//! given with `--config` starts a broker (settings that do not apply listed, environment
//! variables over the file), bad values stop it with the key and `file:line`, and
//! `--log-format json` writes JSON lines.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::process::JetProcess;

/// Kafka 4.x's KRaft example `server.properties` in substance (listener on a free port,
/// log.dirs in the test's directory).
fn kraft_example(data: &Path) -> String {
    format!(
        "process.roles=broker,controller\nnode.id=1\ncontroller.quorum.bootstrap.servers=localhost:9093\n\
         listeners=PLAINTEXT://127.0.0.1:0,CONTROLLER://:9093\ninter.broker.listener.name=PLAINTEXT\n\
         advertised.listeners=PLAINTEXT://localhost:9092,CONTROLLER://localhost:9093\n\
         controller.listener.names=CONTROLLER\n\
         listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL\n\
         num.network.threads=3\nnum.io.threads=8\nsocket.send.buffer.bytes=102400\n\
         socket.receive.buffer.bytes=102400\nsocket.request.max.bytes=104857600\nlog.dirs={}\n\
         num.partitions=1\nnum.recovery.threads.per.data.dir=1\noffsets.topic.replication.factor=1\n\
         share.coordinator.state.topic.replication.factor=1\nshare.coordinator.state.topic.min.isr=1\n\
         transaction.state.log.replication.factor=1\ntransaction.state.log.min.isr=1\n\
         log.retention.hours=168\nlog.segment.bytes=1073741824\nlog.retention.check.interval.ms=300000\n",
        data.display()
    )
}

fn jet(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_jet"));
    cmd.args(args).env("RUST_LOG", "info").stderr(Stdio::piped());
    cmd
}

/// Runs `cmd`, which must exit without serving; returns its exit code and stderr.
fn exits(mut cmd: Command) -> (Option<i32>, String) {
    let mut child = cmd.spawn().expect("spawn jet");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("jet did not exit: it started serving");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut log = String::new();
    for line in BufReader::new(child.stderr.take().expect("stderr")).lines().map_while(Result::ok) {
        log.push_str(&line);
        log.push('\n');
    }
    (status.code(), log)
}

#[test]
fn a_copied_kafka_server_properties_starts_a_broker() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = dir.path().join("server.properties");
    std::fs::write(&file, kraft_example(&data)).unwrap();
    let mut cmd = jet(&["--config", file.to_str().unwrap()]);
    cmd.env("JET_NUM_PARTITIONS", "5");
    let jet = JetProcess::spawn(cmd);
    let startup = jet.startup.join("\n");
    let effective = jet.startup.iter().find(|l| l.contains("effective configuration")).expect(&startup);
    assert!(effective.contains("num_partitions=5"), "the environment wins over the file: {effective}");
    assert!(effective.contains("server.properties:14"), "log.dirs is listed with its line: {effective}");
    let ignored = jet.startup.iter().find(|l| l.contains("do not apply to Jet")).expect(&startup);
    for key in ["process.roles", "num.network.threads", "socket.send.buffer.bytes", "controller.listener.names"] {
        assert!(ignored.contains(key), "{key}: {ignored}");
    }
    assert!(data.join("__jet_meta").exists(), "log.dirs from the file is the data directory");
    assert!(jet.addr.ip().is_loopback(), "listeners from the file: {}", jet.addr);
}

#[test]
fn bad_values_stop_the_broker_naming_key_and_source() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("server.properties");
    std::fs::write(&file, "num.io.threads=8\nlog.retention.hours=1099511627776\n").unwrap();
    let data = dir.path().join("data");
    let (code, log) = exits(jet(&["--config", file.to_str().unwrap(), "--data-dir", data.to_str().unwrap()]));
    assert_eq!(code, Some(2), "{log}");
    assert!(log.contains("server.properties:2") && log.contains("log.retention.hours"), "{log}");
    assert!(!data.exists(), "nothing is written before the settings are valid");

    for (set, expect) in [
        ("log.dirs=/tmp/a,/tmp/b", "one directory"),
        ("delete.topic.enable=false", "delete.topic.enable=false"),
        ("unclean.leader.election.enable=true", "unclean.leader.election.enable"),
    ] {
        let (code, log) = exits(jet(&["--data-dir", data.to_str().unwrap(), "--set", set]));
        assert_eq!(code, Some(2), "{set}: {log}");
        assert!(log.contains("--set: ") && log.contains(expect), "{set}: {log}");
    }
}

#[test]
fn json_log_format_writes_one_json_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = JetProcess::command(dir.path());
    cmd.args(["--log-format", "json"]);
    let mut child = cmd.spawn().expect("spawn jet");
    let stderr = child.stderr.take().expect("stderr");
    let mut ready = None;
    for line in BufReader::new(stderr).lines().map_while(Result::ok) {
        let line: String = line;
        let value: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        if value["fields"]["message"] == "jet is ready" {
            ready = Some(value);
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let ready = ready.expect("a ready line");
    assert_eq!(ready["level"], "INFO");
    assert!(ready["fields"]["listen"].as_str().is_some_and(|l| l.starts_with("127.0.0.1:")), "{ready}");
}
