//! Running the admin CLI (`jet topic|produce|consume|group|cluster`) as the built binary.

use std::io::Write;
use std::process::{Command, Output, Stdio};

/// `jet <args>` with `JET_BROKERS=brokers` and `stdin` as its input.
pub fn run_jet(args: &[&str], brokers: &str, stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_jet"))
        .args(args)
        .env("JET_BROKERS", brokers)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run jet");
    let mut input = child.stdin.take().expect("stdin is piped");
    let data = stdin.as_bytes().to_vec();
    let writer = std::thread::spawn(move || input.write_all(&data));
    let out = child.wait_with_output().expect("wait for jet");
    writer.join().expect("stdin writer").expect("write stdin");
    out
}

/// Asserts `out` (of `jet <args>`) succeeded; its stdout.
pub fn succeeded(args: &[&str], out: Output) -> String {
    assert!(
        out.status.success(),
        "jet {args:?} failed with {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}
