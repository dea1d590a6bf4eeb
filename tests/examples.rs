//! The Rust client examples (`examples/rust_producer.rs`, `examples/rust_consumer.rs`,
//! rskafka) against a real `jet` process: the producer creates its topic and writes, the
//! consumer reads every record back at its offset. `cargo test` builds the examples first.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::process::JetProcess;

/// An example's binary, built by `cargo test` beside the test binaries' directory.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe.parent().and_then(|deps| deps.parent()).expect("target directory");
    let path = dir.join("examples").join(name);
    assert!(path.exists(), "{} is not built (run `cargo test`, which builds the examples)", path.display());
    path
}

fn run(name: &str, args: &[&str]) -> String {
    let out = Command::new(example(name)).args(args).output().expect("run example");
    assert!(out.status.success(), "{name} {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8")
}

#[test]
fn the_rust_producer_and_consumer_examples_round_trip_through_jet() {
    let dir = tempfile::tempdir().unwrap();
    let broker = JetProcess::start(dir.path(), &[]);
    let bootstrap = broker.addr.to_string();

    let produced = run("rust_producer", &[&bootstrap, "examples-demo", "25"]);
    assert!(produced.starts_with("created topic examples-demo\n"), "{produced}");
    let offsets: Vec<&str> = produced.lines().skip(1).collect();
    let expected: Vec<String> = (0..25).map(|i| format!("examples-demo/0@{i}: message {i}")).collect();
    assert_eq!(offsets, expected);

    // Again: the topic exists, the records follow.
    let again = run("rust_producer", &[&bootstrap, "examples-demo", "5"]);
    assert_eq!(again.lines().next(), Some("examples-demo/0@25: message 0"), "{again}");

    let consumed = run("rust_consumer", &[&bootstrap, "examples-demo"]);
    let lines: Vec<&str> = consumed.lines().collect();
    let expected: Vec<String> = (0..25)
        .map(|i| format!("{i}: key-{i} = message {i}"))
        .chain((0..5).map(|i| format!("{}: key-{i} = message {i}", 25 + i)))
        .collect();
    assert_eq!(lines, expected);
}
