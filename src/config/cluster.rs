//! The cluster flags: gossip discovery (`--gossip-listen`, `--gossip-advertise`, `--seeds`,
//! `--gossip-key`), `--bootstrap-expect` and the raft transport's address (`--raft-listen`).
//!
//! Gossip runs only when `--seeds` or `--gossip-listen` is given: `jet` with no arguments
//! stays a single broker that opens no gossip port. Kafka has no names for these settings
//! (its KRaft `controller.quorum.*` keys describe a fixed voter set, not discovery, and a
//! copied `server.properties` carries them for a single node), so they are flags and
//! `JET_*` environment variables only.
//!
//! Every value is checked while the command line is parsed, so a bad one is refused with
//! a message naming the flag (clap names the flag also when the value came from its
//! environment variable).

use clap::Args;

use super::listener::{ListenAddr, parse_listen};
use crate::cluster::gossip::{HostPort, check_secret_key};

/// Where gossip listens when only `--seeds` is given (memberlist's and Serf's default port).
pub const DEFAULT_GOSSIP_PORT: u16 = 7946;

/// Where the raft transport listens when `--raft-listen` is not given (Kafka's
/// conventional controller port).
pub const DEFAULT_RAFT_PORT: u16 = 9093;

/// Cluster membership settings.
#[derive(Debug, Clone, Default, Args)]
pub struct ClusterArgs {
    /// Where gossip listens, UDP and TCP on the same port: `host:port` (port 0 picks one).
    /// Giving it (or `--seeds`) turns gossip on; default with `--seeds` is
    /// `0.0.0.0:7946`.
    #[arg(long, env = "JET_GOSSIP_LISTEN", value_parser = parse_host_port)]
    pub gossip_listen: Option<ListenAddr>,

    /// `host:port` other brokers reach this broker's gossip at, when it differs from
    /// `--gossip-listen` (NAT, a listener on all interfaces). The host is resolved at start.
    #[arg(long, env = "JET_GOSSIP_ADVERTISE", value_parser = parse_host_port)]
    pub gossip_advertise: Option<ListenAddr>,

    /// Gossip addresses (`host:port,...`) of brokers to join through; any one answering
    /// is enough, and they are retried until one does, so every broker of a new cluster
    /// may start at once with the same list (its own address in it is skipped).
    #[arg(long, env = "JET_SEEDS", value_delimiter = ',', value_parser = parse_seed)]
    pub seeds: Vec<String>,

    /// Brokers (this one included) that must be in the membership view before this broker
    /// reports ready (`/readyz`); the controller bootstraps its raft membership from
    /// them (as Consul's and Nomad's `-bootstrap-expect`).
    #[arg(long, env = "JET_BOOTSTRAP_EXPECT", value_parser = clap::value_parser!(u32).range(1..))]
    pub bootstrap_expect: Option<u32>,

    /// Base64 of a 16, 24 or 32-byte AES key: every gossip packet and stream is encrypted
    /// with it and unencrypted ones are refused. All brokers need the same key.
    #[arg(long, env = "JET_GOSSIP_KEY", value_parser = parse_gossip_key, hide_env_values = true)]
    pub gossip_key: Option<GossipKey>,

    /// Where the raft transport listens: `host:port`. Gossiped to the other brokers (a
    /// wildcard host is replaced by the advertised Kafka host). Default `0.0.0.0:9093`.
    #[arg(long, env = "JET_RAFT_LISTEN", value_parser = parse_host_port)]
    pub raft_listen: Option<ListenAddr>,
}

/// A checked gossip key; its `Debug` does not show it (the effective configuration is
/// logged at start).
#[derive(Clone, PartialEq, Eq)]
pub struct GossipKey(String);

impl GossipKey {
    pub fn base64(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for GossipKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GossipKey(<redacted>)")
    }
}

impl ClusterArgs {
    /// Whether this broker gossips (`--seeds` or `--gossip-listen` given).
    pub fn gossip_enabled(&self) -> bool {
        !self.seeds.is_empty() || self.gossip_listen.is_some()
    }

    /// Where gossip listens.
    pub fn gossip_bind(&self) -> ListenAddr {
        self.gossip_listen.clone().unwrap_or(ListenAddr { host: "0.0.0.0".into(), port: DEFAULT_GOSSIP_PORT })
    }

    /// Where the raft transport listens.
    pub fn raft_bind(&self) -> ListenAddr {
        self.raft_listen.clone().unwrap_or(ListenAddr { host: "0.0.0.0".into(), port: DEFAULT_RAFT_PORT })
    }

    /// The raft address other brokers are told: the listen address, with a wildcard host
    /// replaced by `advertised_host` (the host Kafka clients are told).
    pub fn raft_advertised(&self, advertised_host: &str) -> HostPort {
        let bind = self.raft_bind();
        if super::advertise::is_wildcard(&bind.host) {
            HostPort::new(advertised_host, bind.port)
        } else {
            HostPort::new(bind.host, bind.port)
        }
    }
}

/// Cluster flags that contradict each other.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClusterConfigError {
    #[error("--bootstrap-expect {0} needs gossip to find the other brokers: give --seeds or --gossip-listen")]
    BootstrapWithoutGossip(u32),
    #[error("--{0} has no effect without gossip: give --seeds or --gossip-listen too")]
    GossipFlagWithoutGossip(&'static str),
}

impl ClusterArgs {
    /// Refuses combinations that cannot do what they say.
    pub fn check(&self) -> Result<(), ClusterConfigError> {
        if self.gossip_enabled() {
            return Ok(());
        }
        if let Some(n) = self.bootstrap_expect.filter(|&n| n > 1) {
            return Err(ClusterConfigError::BootstrapWithoutGossip(n));
        }
        if self.gossip_advertise.is_some() {
            return Err(ClusterConfigError::GossipFlagWithoutGossip("gossip-advertise"));
        }
        if self.gossip_key.is_some() {
            return Err(ClusterConfigError::GossipFlagWithoutGossip("gossip-key"));
        }
        Ok(())
    }
}

/// Plain `host:port` (no listener name: these are not Kafka listeners).
fn parse_host_port(s: &str) -> Result<ListenAddr, String> {
    if s.contains("://") {
        return Err(format!("`{s}`: expected host:port"));
    }
    parse_listen(s)
}

/// One seed: `host:port` with a host (an empty host cannot be reached).
fn parse_seed(s: &str) -> Result<String, String> {
    let s = s.trim();
    let addr = parse_host_port(s)?;
    if s.starts_with(':') {
        return Err(format!("`{s}`: a seed needs a host"));
    }
    Ok(addr.to_string())
}

fn parse_gossip_key(s: &str) -> Result<GossipKey, String> {
    let s = s.trim();
    check_secret_key(s).map_err(|e| {
        let cause = std::error::Error::source(&e).map(|c| format!(" ({c})")).unwrap_or_default();
        format!("{e}{cause}; generate one with `head -c 32 /dev/urandom | base64`")
    })?;
    Ok(GossipKey(s.to_string()))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use crate::config::Cli;

    fn parse(args: &[&str]) -> Result<crate::config::BrokerConfig, clap::Error> {
        Cli::try_parse_from([&["jet"], args].concat()).map(Cli::into_broker_config)
    }

    const KEY_32: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

    #[test]
    fn no_arguments_means_no_gossip() {
        let c = parse(&[]).unwrap();
        assert!(!c.cluster.gossip_enabled());
        assert_eq!(c.cluster.bootstrap_expect, None);
        assert_eq!(c.cluster.raft_bind().to_string(), "0.0.0.0:9093");
    }

    #[test]
    fn seeds_or_gossip_listen_turn_gossip_on() {
        let c = parse(&["--seeds", "10.0.0.1:7946, jet-1.jet:7000"]).unwrap();
        assert!(c.cluster.gossip_enabled());
        assert_eq!(c.cluster.seeds, ["10.0.0.1:7946", "jet-1.jet:7000"]);
        assert_eq!(c.cluster.gossip_bind().to_string(), "0.0.0.0:7946");
        let c = parse(&["--gossip-listen", "127.0.0.1:0"]).unwrap();
        assert!(c.cluster.gossip_enabled() && c.cluster.seeds.is_empty());
        assert_eq!(c.cluster.gossip_bind().to_string(), "127.0.0.1:0");
        let c = parse(&["serve", "--gossip-listen", "[::1]:7000", "--gossip-advertise", "jet-0:7000"]).unwrap();
        assert_eq!(c.cluster.gossip_bind().to_string(), "[::1]:7000");
        assert_eq!(c.cluster.gossip_advertise.map(|a| a.to_string()).as_deref(), Some("jet-0:7000"));
    }

    #[test]
    fn bad_addresses_name_the_flag() {
        for (flag, value) in [
            ("--seeds", "no-port"),
            ("--seeds", ":7946"),
            ("--gossip-listen", "127.0.0.1:70000"),
            ("--gossip-advertise", "PLAINTEXT://h:1"),
            ("--raft-listen", "h"),
        ] {
            let e = parse(&[flag, value]).unwrap_err().to_string();
            assert!(e.contains(flag), "{flag} {value}: {e}");
        }
    }

    #[test]
    fn bootstrap_expect_is_at_least_one() {
        assert_eq!(parse(&["--bootstrap-expect", "3"]).unwrap().cluster.bootstrap_expect, Some(3));
        for bad in ["0", "three"] {
            let e = parse(&["--bootstrap-expect", bad]).unwrap_err().to_string();
            assert!(e.contains("--bootstrap-expect"), "{bad}: {e}");
        }
    }

    #[test]
    fn gossip_key_is_checked_and_not_shown() {
        let c = parse(&["--seeds", "h:1", "--gossip-key", KEY_32]).unwrap();
        assert_eq!(c.cluster.gossip_key.as_ref().map(|k| k.base64()), Some(KEY_32));
        assert!(!format!("{c:?}").contains(KEY_32), "the key stays out of debug output");
        // 16 and 24-byte keys are AES-128 and AES-192.
        for ok in ["MDEyMzQ1Njc4OWFiY2RlZg==", "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3"] {
            assert!(parse(&["--gossip-key", ok]).is_ok(), "{ok}");
        }
        // Not base64; base64 of 5 bytes; base64 of 33 bytes.
        for bad in ["not base64!", "aGVsbG8=", "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWYw"] {
            let e = parse(&["--gossip-key", bad]).unwrap_err().to_string();
            assert!(e.contains("--gossip-key") && e.contains("16, 24 or 32-byte"), "{bad}: {e}");
        }
    }

    #[test]
    fn flags_that_need_gossip_are_refused_without_it() {
        let check = |args: &[&str]| parse(args).unwrap().cluster.check();
        assert_eq!(check(&["--bootstrap-expect", "3"]), Err(super::ClusterConfigError::BootstrapWithoutGossip(3)));
        let e = check(&["--bootstrap-expect", "3"]).unwrap_err().to_string();
        assert!(e.contains("--bootstrap-expect 3") && e.contains("--seeds"), "{e}");
        assert_eq!(check(&["--bootstrap-expect", "1"]), Ok(()), "one broker is met alone");
        assert!(check(&["--gossip-key", KEY_32]).unwrap_err().to_string().contains("--gossip-key"));
        assert!(check(&["--gossip-advertise", "h:1"]).unwrap_err().to_string().contains("--gossip-advertise"));
        assert_eq!(check(&["--seeds", "h:1", "--bootstrap-expect", "3", "--gossip-key", KEY_32]), Ok(()));
        assert_eq!(check(&[]), Ok(()));
    }

    #[test]
    fn every_flag_has_its_environment_variable() {
        use clap::CommandFactory;
        let command = Cli::command();
        let env = |id: &str| {
            let arg = command.get_arguments().find(|a| a.get_id() == id).unwrap_or_else(|| panic!("{id}"));
            arg.get_env().and_then(|e| e.to_str()).map(str::to_string)
        };
        for (id, var) in [
            ("gossip_listen", "JET_GOSSIP_LISTEN"),
            ("gossip_advertise", "JET_GOSSIP_ADVERTISE"),
            ("seeds", "JET_SEEDS"),
            ("bootstrap_expect", "JET_BOOTSTRAP_EXPECT"),
            ("gossip_key", "JET_GOSSIP_KEY"),
            ("raft_listen", "JET_RAFT_LISTEN"),
        ] {
            assert_eq!(env(id).as_deref(), Some(var), "{id}");
        }
    }

    #[test]
    fn raft_address_takes_the_advertised_host_for_a_wildcard() {
        let c = parse(&["--raft-listen", "0.0.0.0:19093"]).unwrap();
        assert_eq!(c.cluster.raft_advertised("broker-1.example").to_string(), "broker-1.example:19093");
        let c = parse(&["--raft-listen", "10.1.2.3:19093"]).unwrap();
        assert_eq!(c.cluster.raft_advertised("broker-1.example").to_string(), "10.1.2.3:19093");
        assert_eq!(parse(&[]).unwrap().cluster.raft_advertised("h").to_string(), "h:9093");
    }
}
