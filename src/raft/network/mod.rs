//! The broker-wide raft transport: every raft group on a broker (one per partition, and
//! the controller) talks to its peers over one multiplexed TCP connection per peer broker.
//!
//! # Shape
//!
//! - **Frames** ([`wire`]): a `u32` length, then one `postcard`-encoded message. A
//!   connection opens with a hello each way (magic, version, sender and intended node id:
//!   a broker at an address that moved to another node id is refused, not mistaken for the
//!   old one), then carries requests `{id, group, body}` one way and responses
//!   `{id, result}` the other. Record
//!   batches are `bytes::Bytes` serialized as byte strings, so a payload costs its own
//!   size. The length is checked against a cap before anything is allocated; a frame that
//!   is too large or does not decode closes that connection with a log line naming the
//!   peer (the other connections, and the broker, go on).
//! - **Server** ([`RaftTransport::serve`]): takes a bound listener, so tests use port 0. A
//!   request is handed to its group's handler from a registry `GroupId → Arc<dyn
//!   GroupHandler>`; any `Raft<TypeConfig, SM>` is a handler (its snapshot data converts
//!   to bytes, [`SnapshotBytes`]), so groups with different state machines share the
//!   transport. A request for a group the broker does not host gets an error reply, which
//!   the caller reports to openraft as `Unreachable` (it backs off and retries: the group
//!   may be about to be created here).
//! - **Client** ([`RaftTransport::network`]): a `RaftNetworkFactory` per group whose
//!   clients hold the group id and a handle on the target's shared `peer` connection.
//!   Requests are pipelined: any number from any groups in flight on one connection,
//!   answered in completion order and matched by id. Each call is bounded by
//!   `RPCOption::soft_ttl` (openraft's `Timeout` past it). A failed dial starts a per-peer
//!   backoff window (doubling, capped) in which calls fail at once as `Unreachable`; a
//!   connection lost mid-call is a `NetworkError` (retry at once: the next call dials).
//!   Write queues are bounded on both sides: a peer that stops reading makes calls wait
//!   and time out, and stops having its own requests read, instead of growing memory.
//!
//! # Cost per group
//!
//! Nothing in the transport is per group and per peer beyond openraft's own client
//! objects (three words and a group id): per peer there is one connection with a reader
//! and a writer task on the sending side, and on the receiving side one reader and one
//! writer per accepted connection plus a short task per request in flight (bounded per
//! connection). 10,000 groups replicating to the same two peers use two connections.
//!
//! # Quiescence instead of heartbeats
//!
//! Partition groups run without openraft's timers, so an idle group sends nothing at all
//! (see `cluster::runtime::elections`): there is no per-group heartbeat left to coalesce.
//! What the transport adds for it is [`RaftTransport::disconnected_peers`]: a peer whose
//! connection to this broker closed (a killed process's sockets are closed by the kernel)
//! counts as down for elections at once, before gossip's failure detection. The controller
//! group still ticks (one group per broker).
//!
//! # Not yet
//!
//! `stream_append` uses openraft's sequential default (one AppendEntries in flight per
//! group per target); a pipelined override can send the next request before the previous
//! answer, but the server must then apply a group's appends in arrival order. Snapshots
//! travel whole in one frame (a partition's is small); a large controller snapshot would
//! need chunking.

mod client;
mod handler;
mod peer;
mod server;
pub mod wire;

#[cfg(test)]
mod test_cluster;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;

pub use self::client::{GroupNetwork, GroupNetworkFactory};
use self::handler::Registry;
pub use self::handler::{GroupHandler, RetainedData, RetainedRead, SnapshotBytes};
pub use self::peer::CallError;
use self::peer::Peer;
pub use self::wire::RetainedChunk;
use super::{GroupId, NodeId};

/// Limits and timings of the transport.
#[derive(Debug, Clone)]
pub struct TransportConfig {
    /// The largest frame sent or accepted; a bigger length prefix closes the connection.
    pub max_frame_bytes: usize,
    /// How long a dial may take before the peer counts as unreachable.
    pub connect_timeout: Duration,
    /// The wait after a failed dial, doubling per consecutive failure: (first, cap). The
    /// cap stays below the raft election timeout (500 ms), so a leader reaches a restarted
    /// follower before that follower's first election timer fires.
    pub reconnect_backoff: (Duration, Duration),
    /// Requests one accepted connection may have in its handlers at once; the reader
    /// stops reading until one finishes.
    pub max_in_flight_per_connection: usize,
    /// Frames queued for one connection's writer (either side) before senders wait.
    pub max_queued_frames: usize,
    /// How long an accepted connection may take to send its hello.
    pub handshake_timeout: Duration,
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            max_frame_bytes: wire::DEFAULT_MAX_FRAME_BYTES,
            connect_timeout: Duration::from_secs(1),
            reconnect_backoff: (Duration::from_millis(50), Duration::from_millis(400)),
            max_in_flight_per_connection: 4096,
            max_queued_frames: 1024,
            handshake_timeout: Duration::from_secs(10),
        }
    }
}

/// Counters of the transport, for tests and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransportStats {
    /// Connections the server accepted, ever.
    pub accepted_connections: u64,
    /// Connections this broker dialled successfully, ever.
    pub dialled_connections: u64,
    /// Peers with an open outbound connection now.
    pub open_outbound: usize,
    /// Connections closed because a frame was oversized or did not decode.
    pub malformed_frames: u64,
    /// Requests received from peers (every group's appends, votes, heartbeats), ever.
    pub requests_received: u64,
    /// Groups registered.
    pub groups: usize,
}

#[derive(Default)]
struct Stats {
    accepted: AtomicU64,
    dialled: AtomicU64,
    malformed: AtomicU64,
    received: AtomicU64,
}

/// The peers whose connections to this broker are open, by count; a peer whose count
/// fell to zero stays listed (at zero) until it connects again.
struct Inbound {
    open: Mutex<HashMap<NodeId, usize>>,
    changed: tokio::sync::watch::Sender<u64>,
}

impl Default for Inbound {
    fn default() -> Self {
        Inbound { open: Mutex::new(HashMap::new()), changed: tokio::sync::watch::channel(0).0 }
    }
}

impl Inbound {
    fn adjust(&self, node: NodeId, opened: bool) {
        {
            let mut open = self.open.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let n = open.entry(node).or_default();
            *n = if opened { *n + 1 } else { n.saturating_sub(1) };
        }
        self.changed.send_modify(|v| *v += 1);
    }
}

/// Counts a peer's accepted connection as open until dropped.
struct InboundGuard {
    shared: Arc<Shared>,
    node: NodeId,
}

impl InboundGuard {
    fn new(shared: Arc<Shared>, node: NodeId) -> InboundGuard {
        shared.inbound.adjust(node, true);
        InboundGuard { shared, node }
    }
}

impl Drop for InboundGuard {
    fn drop(&mut self) {
        self.shared.inbound.adjust(self.node, false);
    }
}

/// State shared by the server, the peers and every group's clients.
struct Shared {
    node: NodeId,
    config: TransportConfig,
    registry: Registry,
    peers: Mutex<HashMap<NodeId, Arc<Peer>>>,
    stats: Stats,
    inbound: Inbound,
    closed: AtomicBool,
}

impl Shared {
    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    fn peers(&self) -> std::sync::MutexGuard<'_, HashMap<NodeId, Arc<Peer>>> {
        // Single inserts and removals keep the map consistent even after a panic.
        self.peers.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The peer `node` at `addr`; a node whose address changed gets a new peer and the old
    /// connection is closed (clients made for the old address keep dialling it, and the
    /// hello check makes that unreachable if another node answers there).
    fn peer(&self, node: NodeId, addr: &str) -> Arc<Peer> {
        let mut peers = self.peers();
        if let Some(peer) = peers.get(&node).filter(|p| p.addr == addr) {
            return peer.clone();
        }
        let peer = Arc::new(Peer::new(node, addr.to_string()));
        if let Some(old) = peers.insert(node, peer.clone()) {
            old.close();
        }
        peer
    }
}

/// The raft transport of one broker. Cheap to clone (a shared handle).
#[derive(Clone)]
pub struct RaftTransport {
    shared: Arc<Shared>,
}

impl RaftTransport {
    /// A transport for broker `node` (named in the hello of every connection it dials).
    pub fn new(node: NodeId, config: TransportConfig) -> RaftTransport {
        RaftTransport {
            shared: Arc::new(Shared {
                node,
                config,
                registry: Registry::default(),
                peers: Mutex::new(HashMap::new()),
                stats: Stats::default(),
                inbound: Inbound::default(),
                closed: AtomicBool::new(false),
            }),
        }
    }

    /// Serves peers' requests on `listener` until `shutdown` resolves; then stops accepting
    /// and closes every accepted connection.
    pub async fn serve(&self, listener: TcpListener, shutdown: impl Future<Output = ()>) {
        server::serve(self.shared.clone(), listener, shutdown).await;
    }

    /// Routes requests for `group` to `handler` (a `Raft<TypeConfig, SM>`), replacing any
    /// earlier one.
    pub fn register(&self, group: GroupId, handler: impl GroupHandler) {
        self.shared.registry.insert(group, Arc::new(handler));
    }

    /// Stops routing requests to `group`; later ones get a "not hosted" reply. Whether it
    /// was registered.
    pub fn unregister(&self, group: &GroupId) -> bool {
        self.shared.registry.remove(group)
    }

    /// openraft's network factory for `group`, whose snapshots are `D`.
    pub fn network<D: SnapshotBytes>(&self, group: GroupId) -> GroupNetworkFactory<D> {
        GroupNetworkFactory::new(self.shared.clone(), group)
    }

    /// Closes every outbound connection and fails later calls as unreachable (the broker is
    /// stopping). The server is stopped by its own shutdown future.
    pub fn close(&self) {
        self.shared.closed.store(true, Ordering::Release);
        let peers: Vec<Arc<Peer>> = self.shared.peers().values().cloned().collect();
        for peer in peers {
            peer.close();
        }
    }

    /// Peers that had a connection open to this broker and have none now: a peer process
    /// that died (its sockets closed by the kernel) is here at once, long before failure
    /// detection by gossip declares it. A peer leaves the set when it connects again.
    pub fn disconnected_peers(&self) -> std::collections::BTreeSet<NodeId> {
        let open = self.shared.inbound.open.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        open.iter().filter(|(_, n)| **n == 0).map(|(node, _)| *node).collect()
    }

    /// Changes whenever a peer's connection to this broker opens or closes.
    pub fn inbound_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.shared.inbound.changed.subscribe()
    }

    pub fn stats(&self) -> TransportStats {
        let stats = &self.shared.stats;
        TransportStats {
            accepted_connections: stats.accepted.load(Ordering::Relaxed),
            dialled_connections: stats.dialled.load(Ordering::Relaxed),
            open_outbound: self.shared.peers().values().filter(|p| p.is_connected()).count(),
            malformed_frames: stats.malformed.load(Ordering::Relaxed),
            requests_received: stats.received.load(Ordering::Relaxed),
            groups: self.shared.registry.len(),
        }
    }
}
