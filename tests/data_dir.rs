//! The `jet` binary refuses a data directory it cannot use with a message naming the path
//! and the reason: a file, one held by another running `jet`, one written by another
//! node id (`meta.properties`, Kafka's format, written on first start).

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::process::JetProcess;

/// Runs `jet --listen 127.0.0.1:0 --data-dir <dir> <args>`, which must exit without
/// serving; returns its exit status code and stderr.
fn refused(dir: &Path, args: &[&str]) -> (Option<i32>, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_jet"));
    cmd.args(["--listen", "127.0.0.1:0", "--data-dir", dir.to_str().unwrap()])
        .args(args)
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped());
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
    let log: Vec<String> = BufReader::new(child.stderr.take().expect("stderr")).lines().map_while(Result::ok).collect();
    let log = log.join("\n");
    assert!(!log.contains("jet is ready"), "{log}");
    (status.code(), log)
}

fn meta(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("meta.properties")).expect("meta.properties")
}

#[test]
fn a_data_dir_that_is_a_file_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("data");
    std::fs::write(&file, b"not a directory").unwrap();
    let (code, log) = refused(&file, &[]);
    assert_eq!(code, Some(1), "{log}");
    assert!(log.contains(&format!("data directory {} is not a directory", file.display())), "{log}");
}

#[test]
fn a_second_jet_on_the_same_data_dir_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let _first = JetProcess::start(tmp.path(), &[]);
    let (code, log) = refused(tmp.path(), &[]);
    assert_eq!(code, Some(1), "{log}");
    assert!(log.contains("is in use by another running jet"), "{log}");
    assert!(log.contains(&tmp.path().display().to_string()), "{log}");
}

#[test]
fn meta_properties_keeps_node_and_cluster_id_and_a_mismatch_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let mut first = JetProcess::start(tmp.path(), &["--node-id", "3"]);
    let written = meta(tmp.path());
    assert!(written.contains("version=1") && written.contains("node.id=3"), "{written}");
    let cluster = written.lines().find_map(|l| l.strip_prefix("cluster.id=")).expect("cluster.id").to_string();
    assert_eq!(cluster.len(), 22, "a base64url UUID, as Kafka's: {cluster}");
    first.kill();

    let (code, log) = refused(tmp.path(), &["--node-id", "4"]);
    assert_eq!(code, Some(1), "{log}");
    assert!(log.contains("belongs to node.id 3") && log.contains("node.id 4"), "{log}");
    let (code, log) = refused(tmp.path(), &["--node-id", "3", "--cluster-id", "another-cluster"]);
    assert_eq!(code, Some(1), "{log}");
    assert!(log.contains(&format!("belongs to cluster {cluster}")), "{log}");

    let _again = JetProcess::start(tmp.path(), &["--node-id", "3"]);
    assert_eq!(meta(tmp.path()), written, "a restart keeps the same ids");
}
