//! Brokers of a test cluster: fixed loopback ports (Kafka, gossip, raft) and a data
//! directory per broker, so a broker restarts as itself.

use std::process::Command;

use super::process::JetProcess;

/// Every broker encrypts gossip with this key (base64 of 32 bytes).
pub const GOSSIP_KEY: &str = "8Fg+KxkOhcRTXmf4ND/0zmwxYkcXNt4hRShGDe5FqsA=";

/// A port free for TCP and UDP right now, below Linux's ephemeral range (32768+): a port
/// the kernel hands out for `bind(0)` may be taken by some outgoing connection's source
/// port before the broker binds it (a broker that then fails to start, seen once in many
/// runs of parallel cluster tests). Each call in a test process moves on to the next port.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    // Test processes start at different places of the range.
    let offset = std::process::id().wrapping_mul(7_919) % SPAN;
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = u16::try_from(FIRST + (offset + n) % SPAN).expect("a port below 32000");
        let tcp = std::net::TcpListener::bind(("127.0.0.1", port));
        if tcp.is_ok() && std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// One broker's fixed addresses and data directory, so it restarts as itself.
pub struct Node {
    pub id: i32,
    pub kafka: u16,
    pub gossip: u16,
    pub raft: u16,
    pub rack: String,
    pub dir: tempfile::TempDir,
}

impl Node {
    pub fn new(id: i32) -> Node {
        Node {
            id,
            kafka: free_port(),
            gossip: free_port(),
            raft: free_port(),
            rack: format!("rack-{}", ["a", "b", "c"][id as usize % 3]),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// The cluster settings as flags, except for broker 2, which gets them as `JET_*`
    /// environment variables (both ways must work).
    pub fn command(&self, seed: u16, bootstrap_expect: Option<u32>) -> Command {
        let mut cmd = JetProcess::command_on(self.dir.path(), &format!("127.0.0.1:{}", self.kafka));
        cmd.args([
            "--node-id",
            &self.id.to_string(),
            "--advertised-listener",
            &format!("127.0.0.1:{}", self.kafka),
            "--broker-rack",
            &self.rack,
        ]);
        let mut settings = vec![
            ("--gossip-listen", "JET_GOSSIP_LISTEN", format!("127.0.0.1:{}", self.gossip)),
            ("--seeds", "JET_SEEDS", format!("127.0.0.1:{seed}")),
            ("--raft-listen", "JET_RAFT_LISTEN", format!("127.0.0.1:{}", self.raft)),
            ("--gossip-key", "JET_GOSSIP_KEY", GOSSIP_KEY.to_string()),
        ];
        if let Some(n) = bootstrap_expect {
            settings.push(("--bootstrap-expect", "JET_BOOTSTRAP_EXPECT", n.to_string()));
        }
        for (flag, var, value) in settings {
            if self.id == 2 {
                cmd.env(var, value);
            } else {
                cmd.args([flag, &value]);
            }
        }
        cmd
    }

    pub fn start(&self, seed: u16, bootstrap_expect: Option<u32>) -> JetProcess {
        JetProcess::spawn(self.command(seed, bootstrap_expect))
    }

    /// The broker as Metadata should list it: (node id, host, port, rack).
    pub fn listed(&self) -> Listed {
        (self.id, "127.0.0.1".to_string(), i32::from(self.kafka), Some(self.rack.clone()))
    }
}

pub type Listed = (i32, String, i32, Option<String>);
