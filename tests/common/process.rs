//! The real `jet` binary as a child process: started on an OS-chosen port with a data
//! directory, its stderr read line by line, ready once it logs "jet is ready" (which
//! names the bound address). Killed when dropped, so a failing test leaves no broker
//! behind.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Longest wait for the ready line (recovering thousands of partitions takes a while).
const READY_TIMEOUT: Duration = Duration::from_secs(300);

pub struct JetProcess {
    pub child: Child,
    pub addr: std::net::SocketAddr,
    /// The admin HTTP server's bound address (`admin=` in the ready line).
    pub admin: std::net::SocketAddr,
    /// Its stderr lines after the ready line.
    pub log: mpsc::Receiver<String>,
    /// What it logged before it was ready (recovery).
    pub startup: Vec<String>,
}

impl JetProcess {
    /// `jet --listen <listen> --admin-listen 127.0.0.1:0 --data-dir <dir>` with
    /// `RUST_LOG=info` (any free admin port, so brokers run side by side): add arguments,
    /// environment or `pre_exec` limits, then [`spawn`](Self::spawn).
    pub fn command_on(dir: &Path, listen: &str) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_jet"));
        cmd.args([
            "--listen",
            listen,
            "--admin-listen",
            "127.0.0.1:0",
            "--data-dir",
            dir.to_str().expect("utf-8 path"),
        ])
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped());
        cmd
    }

    /// [`command_on`](Self::command_on) a free loopback port.
    pub fn command(dir: &Path) -> Command {
        Self::command_on(dir, "127.0.0.1:0")
    }

    /// Starts `jet` on a free loopback port with `args` added.
    pub fn start(dir: &Path, args: &[&str]) -> JetProcess {
        let mut cmd = Self::command(dir);
        cmd.args(args);
        Self::spawn(cmd)
    }

    /// Spawns `cmd` and waits for the ready line. Warnings and errors are echoed to the
    /// test's output (shown when it fails).
    pub fn spawn(mut cmd: Command) -> JetProcess {
        let mut child = cmd.spawn().expect("spawn jet");
        let stderr = child.stderr.take().expect("stderr is piped");
        let (tx, log) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("WARN") || line.contains("ERROR") {
                    eprintln!("jet: {line}");
                }
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let unset = ([0, 0, 0, 0], 0).into();
        let mut jet = JetProcess { child, addr: unset, admin: unset, log, startup: Vec::new() };
        let field = |line: &str, name: &str| -> std::net::SocketAddr {
            let value = line.split(name).nth(1).expect("field in the ready line");
            value.split_whitespace().next().expect("address").parse().expect("socket address")
        };
        loop {
            let line = match jet.log.recv_timeout(READY_TIMEOUT) {
                Ok(line) => line,
                Err(e) => panic!("jet did not become ready ({e}); it logged:\n{}", jet.startup.join("\n")),
            };
            if line.contains("jet is ready") {
                jet.addr = field(&line, " listen=");
                jet.admin = field(&line, " admin=");
                return jet;
            }
            jet.startup.push(line);
        }
    }

    /// SIGKILL, then wait until the process is gone (so none of its writes is still in
    /// flight when the test looks at the files).
    pub fn kill(&mut self) {
        self.child.kill().expect("kill jet");
        self.child.wait().expect("wait for jet");
    }

    /// Sends `signal` (e.g. `libc::SIGTERM`) to the process.
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid.
        let rc = unsafe { libc::kill(self.child.id() as i32, signal) };
        assert_eq!(rc, 0, "kill({signal})");
    }
}

impl Drop for JetProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
