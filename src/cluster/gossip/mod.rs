//! Broker discovery and failure detection by gossip (SWIM, via the `memberlist` crate).
//!
//! The rest of Jet sees only [`Discovery`]: who the brokers are ([`BrokerIdentity`] in a
//! [`MembershipView`] snapshot), membership transitions ([`MembershipEvent`]), and
//! leadership hints ([`LeadershipHint`]). memberlist 0.8.x is the end of its line and
//! wire-incompatible with its successor, so its types stay inside `backend`; swapping it
//! means writing another `Discovery`.
//!
//! What memberlist 0.8.5 exposes shapes the events: it reports join, update and leave
//! (dead or left alike) but not suspicion, so a broker that dies without leaving shows
//! as [`MembershipEvent::Failed`] once probing and the suspicion timeout run out — about
//! `probe_interval + probe_timeout + suspicion_mult * max(1, log10 n) * probe_interval`.
//! A graceful [`Discovery::leave`] first re-advertises the identity with `leaving` set,
//! so peers report [`MembershipEvent::Left`] instead.

mod backend;
pub mod hints;
pub mod identity;
mod reconnect;
pub mod view;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::{broadcast, watch};

pub use backend::{check_secret_key, start};
pub use hints::{LeadershipHint, PartitionKey};
pub use identity::{BrokerIdentity, HostPort, METADATA_LIMIT, MetadataError};
pub use view::{Member, MemberState, MembershipEvent, MembershipView};

/// Broker discovery as the rest of Jet uses it.
pub trait Discovery: Send + Sync + 'static {
    /// This broker's identity as gossiped.
    fn local(&self) -> BrokerIdentity;

    /// The address this broker gossips on (what other brokers list as a seed).
    fn gossip_addr(&self) -> SocketAddr;

    /// The membership view; `changed()` wakes on every new snapshot.
    fn view(&self) -> watch::Receiver<Arc<MembershipView>>;

    /// Every membership transition from now on.
    fn events(&self) -> broadcast::Receiver<MembershipEvent>;

    /// Record and spread what this broker observes about a partition's leadership.
    /// Last writer wins by leader epoch, so an old observation never overrides a new one.
    fn observe_leader(&self, hint: LeadershipHint);

    /// The newest leadership any broker reported for a partition.
    fn leader_hint(&self, partition: &PartitionKey) -> Option<LeadershipHint>;

    /// Leave the cluster gracefully (peers see [`MembershipEvent::Left`]) and stop.
    fn leave(&self) -> BoxFuture<'_, Result<(), GossipError>>;

    /// Stop without announcing anything (peers detect a failure).
    fn shutdown(&self) -> BoxFuture<'_, Result<(), GossipError>>;

    /// Set once another broker is seen gossiping with this broker's id from another
    /// address (two brokers configured with the same node id).
    fn id_conflict(&self) -> watch::Receiver<Option<IdConflict>>;
}

/// Another broker claims this broker's id. memberlist keeps the first holder of an id and
/// ignores the other (both sides report the conflict); which side this broker is on
/// decides what it should do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdConflict {
    pub broker_id: i32,
    /// This broker's gossip address.
    pub ours: SocketAddr,
    /// The other claimant's gossip address.
    pub theirs: SocketAddr,
    /// The other claimant's identity, if its metadata is readable.
    pub their_identity: Option<BrokerIdentity>,
    /// The conflict surfaced while this broker was still joining through its seeds:
    /// it is the newcomer and should refuse to run. When false, this broker was already
    /// in the cluster and the newcomer is the one ignored.
    pub while_joining: bool,
}

impl std::fmt::Display for IdConflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "node id {} is also claimed by the broker gossiping at {}", self.broker_id, self.theirs)?;
        if let Some(other) = &self.their_identity {
            write!(f, " (Kafka address {})", other.kafka)?;
        }
        write!(f, "; this broker gossips at {}", self.ours)
    }
}

/// Gossip settings. Plain data: the command-line flags that fill it live with the rest
/// of the configuration.
#[derive(Debug, Clone)]
pub struct GossipConfig {
    /// What this broker gossips about itself.
    pub identity: BrokerIdentity,
    /// Where to listen for gossip (UDP and TCP on the same port; port 0 picks one).
    pub bind: SocketAddr,
    /// The address peers should use, when it differs from `bind` (NAT, 0.0.0.0).
    pub advertise: Option<SocketAddr>,
    /// `host:port` of brokers to join through; any one answering is enough. Retried in
    /// the background until one answers, so all brokers may start at once.
    pub seeds: Vec<String>,
    /// Base64 of a 16, 24 or 32-byte AES-GCM key; when set, every gossip packet and
    /// stream is encrypted and unencrypted ones are refused (Consul's `encrypt`).
    pub secret_key: Option<String>,
    /// A label every packet carries; brokers with different labels ignore each other
    /// (keeps two clusters on one network apart). Authenticated data when encrypted.
    pub cluster_label: Option<String>,
    /// How often each broker probes one peer.
    pub probe_interval: Duration,
    /// How long a probe waits for an ack before asking others to probe indirectly.
    pub probe_timeout: Duration,
    /// Deadline of gossip's TCP exchanges: joins, state syncs and the TCP ping a failed
    /// probe falls back to. A probe waits for that ping, so a broker that accepts
    /// connections but does not answer (paused, hung) is declared failed only after it.
    pub tcp_timeout: Duration,
    /// Suspicion lasts `suspicion_mult * max(1, log10 n) * probe_interval` before a
    /// suspect is declared dead.
    pub suspicion_mult: usize,
    /// How often piggybacked broadcasts (membership changes, hints) are sent.
    pub gossip_interval: Duration,
    /// How often a full state sync runs with a random peer.
    pub push_pull_interval: Duration,
    /// Each broadcast is sent `retransmit_mult * ceil(log10(n + 1))` times.
    pub retransmit_mult: usize,
    /// After this long, a dead broker's id may come back from a different address.
    pub dead_node_reclaim: Duration,
    /// Wait between attempts to reach the seeds.
    pub join_retry_interval: Duration,
    /// How long a graceful leave waits for its announcement to go out.
    pub leave_timeout: Duration,
    /// Partitions the leadership-hint table holds at most.
    pub max_hint_partitions: usize,
    /// Membership events buffered per slow subscriber before it lags.
    pub event_capacity: usize,
}

impl GossipConfig {
    /// Settings for a data-centre LAN, gossip on `bind`: a dead broker is declared failed
    /// within about 2.25 s (0.5 s probes, 0.25 s probe timeout, suspicion 3 x 0.5 s for
    /// clusters under 10 brokers), so raft elections start quickly.
    pub fn new(identity: BrokerIdentity, bind: SocketAddr) -> GossipConfig {
        GossipConfig {
            identity,
            bind,
            advertise: None,
            seeds: Vec::new(),
            secret_key: None,
            cluster_label: None,
            probe_interval: Duration::from_millis(500),
            probe_timeout: Duration::from_millis(250),
            // memberlist's default is 10 s, which would keep a paused leader "alive" for
            // 10 s per probe; a LAN state sync of a few hundred brokers takes far less.
            tcp_timeout: Duration::from_secs(2),
            suspicion_mult: 3,
            gossip_interval: Duration::from_millis(200),
            push_pull_interval: Duration::from_secs(30),
            retransmit_mult: 4,
            dead_node_reclaim: Duration::from_secs(30),
            join_retry_interval: Duration::from_secs(1),
            leave_timeout: Duration::from_secs(5),
            max_hint_partitions: 1_000_000,
            event_capacity: 1024,
        }
    }
}

/// Why gossip could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum GossipError {
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    #[error("gossip secret key must be base64 of a 16, 24 or 32-byte key")]
    SecretKey(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("gossip cluster label {label:?} is not usable")]
    Label { label: String, source: Box<dyn std::error::Error + Send + Sync> },
    #[error("broker id {0} does not make a gossip node id")]
    NodeId(i32, #[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("gossip could not start on {bind}")]
    Start { bind: SocketAddr, source: Box<dyn std::error::Error + Send + Sync> },
    #[error("gossip leave did not complete")]
    Leave(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("gossip shutdown failed")]
    Shutdown(#[source] Box<dyn std::error::Error + Send + Sync>),
}
