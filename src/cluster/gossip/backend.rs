//! [`Discovery`] on memberlist 0.8.5 (UDP gossip and probes, TCP push/pull, tokio). The
//! only file that names memberlist types.
//!
//! Node ids are broker ids in decimal, so two brokers claiming one id conflict in
//! memberlist itself (logged) rather than silently sharing a slot in the view.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use futures::future::BoxFuture;
use memberlist::Memberlist;
use memberlist::delegate::{
    AliveDelegate, ConflictDelegate, Delegate, EventDelegate, MergeDelegate, NodeDelegate, PingDelegate,
};
use memberlist::net::NetTransportOptions;
use memberlist::proto::{EncryptionAlgorithm, Label, MaybeResolvedAddress, Meta, NodeId, NodeState, SecretKey};
use memberlist::tokio::{TokioNetTransport, TokioSocketAddrResolver, TokioTcp};
use tokio::sync::{broadcast, watch};

use super::hints::{self, LeadershipHint, LeadershipHints, PartitionKey};
use super::identity::BrokerIdentity;
use super::reconnect::{RECONNECT_INTERVAL, Reconnect};
use super::view::{Change, MembershipEvent, MembershipView, ViewPublisher};
use super::{Discovery, GossipConfig, GossipError, IdConflict};

type Transport = TokioNetTransport<NodeId, TokioSocketAddrResolver, TokioTcp>;
type Gossip = Memberlist<Transport, JetDelegate>;
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// State the memberlist callbacks share with the [`Discovery`] handle.
#[derive(Debug)]
struct Shared {
    local: Mutex<BrokerIdentity>,
    publisher: ViewPublisher,
    hints: Mutex<LeadershipHints>,
    retransmit_mult: usize,
    /// Live members, for the hint retransmit limit.
    live: AtomicUsize,
    /// Rounds of trying the seeds in which none answered.
    failed_join_rounds: AtomicUsize,
    /// Set once this broker is in the cluster: a seed answered, another broker joined it,
    /// or it had no seed but itself. An id conflict seen before that makes it the newcomer.
    joined: AtomicBool,
    /// The first conflict over this broker's own id.
    id_conflict: watch::Sender<Option<IdConflict>>,
}

impl Shared {
    fn hints(&self) -> std::sync::MutexGuard<'_, LeadershipHints> {
        self.hints.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn local(&self) -> std::sync::MutexGuard<'_, BrokerIdentity> {
        self.local.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn change(&self, change: Change) {
        let live = self.publisher.change(change);
        self.live.store(live, Ordering::Relaxed);
    }
}

/// The memberlist delegate: metadata out, membership and hints in.
#[derive(Debug, Clone)]
struct JetDelegate(Arc<Shared>);

/// A peer whose metadata is not a Jet broker identity is kept out of the cluster.
#[derive(Debug, thiserror::Error)]
enum PeerRejected {
    #[error("gossip peer {node} sent unreadable broker metadata")]
    Metadata { node: String, source: super::MetadataError },
    #[error("gossip peer {node} claims broker id {claimed} in its metadata")]
    IdMismatch { node: String, claimed: i32 },
}

fn peer_identity(node: &NodeState<NodeId, SocketAddr>) -> Result<BrokerIdentity, PeerRejected> {
    let identity = BrokerIdentity::decode(node.meta())
        .map_err(|source| PeerRejected::Metadata { node: node.id().to_string(), source })?;
    if node.id().as_str() != identity.broker_id.to_string() {
        return Err(PeerRejected::IdMismatch { node: node.id().to_string(), claimed: identity.broker_id });
    }
    Ok(identity)
}

impl JetDelegate {
    fn alive(&self, node: &NodeState<NodeId, SocketAddr>) {
        match peer_identity(node) {
            Ok(identity) => self.0.change(Change::Alive { identity, gossip_addr: *node.address() }),
            Err(e) => tracing::warn!(error = %e, "ignoring gossip peer"),
        }
    }
}

impl NodeDelegate for JetDelegate {
    async fn node_meta(&self, limit: usize) -> Meta {
        // The identity was encoded once at start-up (and the `leaving` flag does not
        // change its length), so this cannot fail; if it somehow did, empty metadata
        // makes peers reject this node instead of memberlist panicking on size.
        let encoded = self.0.local().encode();
        match encoded.map(Bytes::from) {
            Ok(bytes) if bytes.len() <= limit => Meta::try_from(bytes).unwrap_or_else(|_| Meta::empty()),
            Ok(bytes) => {
                tracing::error!(len = bytes.len(), limit, "broker identity does not fit gossip metadata");
                Meta::empty()
            }
            Err(e) => {
                tracing::error!(error = %e, "broker identity does not fit gossip metadata");
                Meta::empty()
            }
        }
    }

    async fn notify_message(&self, msg: Cow<'_, [u8]>) {
        match hints::decode_message(&msg) {
            Ok(hint) => _ = self.0.hints().apply(hint),
            Err(e) => tracing::warn!(error = %e, "ignoring gossip message"),
        }
    }

    async fn broadcast_messages<F>(&self, limit: usize, encoded_len: F) -> impl Iterator<Item = Bytes> + Send
    where
        F: Fn(Bytes) -> (usize, Bytes) + Send + Sync + 'static,
    {
        let nodes = self.0.live.load(Ordering::Relaxed);
        let limit_sends = hints::retransmit_limit(self.0.retransmit_mult, nodes);
        let messages = self.0.hints().take_broadcasts(limit, limit_sends, |m| encoded_len(Bytes::copy_from_slice(m)).0);
        messages.into_iter().map(Bytes::from)
    }

    async fn local_state(&self, _join: bool) -> Bytes {
        Bytes::from(self.0.hints().encode_state())
    }

    async fn merge_remote_state(&self, buf: &[u8], _join: bool) {
        if let Err(e) = self.0.hints().merge_state(buf) {
            tracing::warn!(error = %e, "ignoring a peer's leadership hints");
        }
    }
}

impl EventDelegate for JetDelegate {
    type Id = NodeId;
    type Address = SocketAddr;

    async fn notify_join(&self, node: Arc<NodeState<NodeId, SocketAddr>>) {
        self.alive(&node);
    }

    async fn notify_leave(&self, node: Arc<NodeState<NodeId, SocketAddr>>) {
        match node.id().as_str().parse::<i32>() {
            Ok(broker_id) => self.0.change(Change::Gone { broker_id }),
            Err(e) => tracing::warn!(node = %node.id(), error = %e, "gossip peer id is not a broker id"),
        }
    }

    async fn notify_update(&self, node: Arc<NodeState<NodeId, SocketAddr>>) {
        self.alive(&node);
    }
}

impl AliveDelegate for JetDelegate {
    type Id = NodeId;
    type Address = SocketAddr;
    type Error = PeerRejected;

    async fn notify_alive(&self, peer: Arc<NodeState<NodeId, SocketAddr>>) -> Result<(), PeerRejected> {
        peer_identity(&peer).map(|_| ())
    }
}

impl ConflictDelegate for JetDelegate {
    type Id = NodeId;
    type Address = SocketAddr;

    async fn notify_conflict(
        &self,
        existing: Arc<NodeState<NodeId, SocketAddr>>,
        other: Arc<NodeState<NodeId, SocketAddr>>,
    ) {
        tracing::error!(
            broker_id = %existing.id(),
            existing = %existing.address(),
            other = %other.address(),
            "two brokers claim the same broker id; the second is ignored"
        );
        let broker_id = self.0.local().broker_id;
        if existing.id().as_str() != broker_id.to_string() {
            return;
        }
        let conflict = IdConflict {
            broker_id,
            ours: *existing.address(),
            theirs: *other.address(),
            their_identity: BrokerIdentity::decode(other.meta()).ok(),
            while_joining: !self.0.joined.load(Ordering::Acquire),
        };
        self.0.id_conflict.send_if_modified(|slot| {
            if slot.is_some() {
                return false;
            }
            *slot = Some(conflict);
            true
        });
    }
}

/// Never fails: merges are judged peer by peer in [`AliveDelegate`].
#[derive(Debug, thiserror::Error)]
#[error("unreachable")]
struct NoMergeError;

impl MergeDelegate for JetDelegate {
    type Id = NodeId;
    type Address = SocketAddr;
    type Error = NoMergeError;

    async fn notify_merge(&self, _peers: Arc<[NodeState<NodeId, SocketAddr>]>) -> Result<(), NoMergeError> {
        Ok(())
    }
}

impl PingDelegate for JetDelegate {
    type Id = NodeId;
    type Address = SocketAddr;

    async fn ack_payload(&self) -> Bytes {
        Bytes::new()
    }

    async fn notify_ping_complete(
        &self,
        _node: Arc<NodeState<NodeId, SocketAddr>>,
        _rtt: std::time::Duration,
        _payload: Bytes,
    ) {
    }
}

impl Delegate for JetDelegate {
    type Id = NodeId;
    type Address = SocketAddr;
}

/// A running gossip member.
pub struct MemberlistDiscovery {
    gossip: Gossip,
    shared: Arc<Shared>,
    leave_timeout: std::time::Duration,
    join_task: tokio::task::JoinHandle<()>,
}

fn options(config: &GossipConfig) -> Result<memberlist::Options, GossipError> {
    let mut options = memberlist::Options::lan()
        .with_probe_interval(config.probe_interval)
        .with_probe_timeout(config.probe_timeout)
        .with_timeout(config.tcp_timeout)
        .with_suspicion_mult(config.suspicion_mult)
        .with_gossip_interval(config.gossip_interval)
        .with_push_pull_interval(config.push_pull_interval)
        .with_retransmit_mult(config.retransmit_mult)
        .with_dead_node_reclaim_time(config.dead_node_reclaim);
    if let Some(label) = &config.cluster_label {
        let parsed = Label::try_from(label.as_str())
            .map_err(|e| GossipError::Label { label: label.clone(), source: Box::new(e) })?;
        options = options.with_label(parsed);
    }
    if let Some(secret) = &config.secret_key {
        let key: SecretKey = secret.trim().parse().map_err(|e| GossipError::SecretKey(Box::new(e)))?;
        options = options
            .with_primary_key(key)
            .with_encryption_algo(EncryptionAlgorithm::default())
            .with_gossip_verify_incoming(true)
            .with_gossip_verify_outgoing(true);
    }
    Ok(options)
}

/// Whether `base64` is a usable gossip key (base64 of a 16, 24 or 32-byte AES key).
pub fn check_secret_key(base64: &str) -> Result<(), GossipError> {
    base64.trim().parse::<SecretKey>().map(|_| ()).map_err(|e| GossipError::SecretKey(Box::new(e)))
}

/// Start gossiping: bind, then keep trying the seeds in the background until one answers.
/// Fails before binding anything if the identity does not fit node metadata.
pub async fn start(config: GossipConfig) -> Result<Arc<dyn Discovery>, GossipError> {
    Ok(Arc::new(MemberlistDiscovery::start(config).await?))
}

impl MemberlistDiscovery {
    pub async fn start(config: GossipConfig) -> Result<MemberlistDiscovery, GossipError> {
        config.identity.encode()?;
        let options = options(&config)?;
        let id = config.identity.broker_id;
        let node_id = NodeId::new(id.to_string()).map_err(|e| GossipError::NodeId(id, Box::new(e)))?;
        let mut transport = NetTransportOptions::new(node_id);
        transport.add_bind_address(config.bind);
        let transport = transport.maybe_advertise_address(config.advertise);
        let shared = Arc::new(Shared {
            local: Mutex::new(config.identity.clone()),
            publisher: ViewPublisher::new(config.event_capacity),
            hints: Mutex::new(LeadershipHints::new(config.max_hint_partitions)),
            retransmit_mult: config.retransmit_mult,
            live: AtomicUsize::new(1),
            failed_join_rounds: AtomicUsize::new(0),
            joined: AtomicBool::new(false),
            id_conflict: watch::Sender::new(None),
        });
        let gossip = Gossip::with_delegate(JetDelegate(shared.clone()), transport, options)
            .await
            .map_err(|e| GossipError::Start { bind: config.bind, source: Box::new(e) as BoxError })?;
        let own = *gossip.advertise_address();
        let join_task =
            tokio::spawn(join_seeds(gossip.clone(), shared.clone(), config.seeds, own, config.join_retry_interval));
        tracing::info!(broker_id = id, gossip = %own, "gossip started");
        Ok(MemberlistDiscovery { gossip, shared, leave_timeout: config.leave_timeout, join_task })
    }
}

/// Resolve and join the seeds until one answers, another broker joins us, or there is no
/// seed but ourselves. A broker started before its seeds keeps trying, so a whole cluster
/// may start at once with the same seed list (its own address in it is skipped).
async fn join_seeds(
    gossip: Gossip,
    shared: Arc<Shared>,
    seeds: Vec<String>,
    own: SocketAddr,
    retry: std::time::Duration,
) {
    join_seeds_until_in(&gossip, &shared, &seeds, own, retry).await;
    shared.joined.store(true, Ordering::Release);
    reconnect(&gossip, &seeds, own).await;
}

/// Every [`RECONNECT_INTERVAL`], joins the members that are not online and the seeds
/// that are not members, so the view heals after a partition (see [`super::reconnect`]).
async fn reconnect(gossip: &Gossip, seeds: &[String], own: SocketAddr) {
    let mut memory = Reconnect::default();
    loop {
        tokio::time::sleep(RECONNECT_INTERVAL).await;
        let members: Vec<(String, SocketAddr)> =
            gossip.members().await.iter().map(|m| (m.id().to_string(), *m.address())).collect();
        let online: Vec<String> = gossip.online_members().await.iter().map(|m| m.id().to_string()).collect();
        let mut resolved = Vec::new();
        for seed in seeds {
            if let Ok(found) = tokio::net::lookup_host(seed.as_str()).await {
                resolved.extend(found);
            }
        }
        for addr in memory.round(&members, &online, &resolved, own, std::time::Instant::now()) {
            match gossip.join(MaybeResolvedAddress::Resolved(addr)).await {
                Ok(member) => {
                    tracing::info!(%member, "gossip: reached a member that was not online (partition healed?)")
                }
                Err(e) => tracing::debug!(%addr, error = %e, "gossip: a member that is not online did not answer"),
            }
        }
    }
}

async fn join_seeds_until_in(
    gossip: &Gossip,
    shared: &Shared,
    seeds: &[String],
    own: SocketAddr,
    retry: std::time::Duration,
) {
    loop {
        if shared.live.load(Ordering::Relaxed) > 1 {
            return; // Another broker joined us first: we are in the cluster.
        }
        let mut addrs = Vec::new();
        for seed in seeds {
            match tokio::net::lookup_host(seed.as_str()).await {
                Ok(found) => addrs.extend(found.filter(|a| *a != own)),
                Err(e) => tracing::warn!(seed, error = %e, "cannot resolve gossip seed"),
            }
        }
        if addrs.is_empty() && seeds.iter().all(|s| s.parse::<SocketAddr>().is_ok_and(|a| a == own)) {
            return; // Only ourselves to join: we are the first broker.
        }
        // One seed at a time: memberlist's `join_many` future is not `Send`.
        for addr in addrs {
            match gossip.join(MaybeResolvedAddress::Resolved(addr)).await {
                Ok(seed) => {
                    tracing::info!(%seed, "joined gossip cluster");
                    return;
                }
                Err(e) => tracing::warn!(seed = %addr, error = %e, "gossip seed did not answer; retrying"),
            }
        }
        shared.failed_join_rounds.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(retry).await;
    }
}

impl Discovery for MemberlistDiscovery {
    fn local(&self) -> BrokerIdentity {
        self.shared.local().clone()
    }

    fn gossip_addr(&self) -> SocketAddr {
        *self.gossip.advertise_address()
    }

    fn view(&self) -> watch::Receiver<Arc<MembershipView>> {
        self.shared.publisher.subscribe_view()
    }

    fn events(&self) -> broadcast::Receiver<MembershipEvent> {
        self.shared.publisher.subscribe_events()
    }

    fn observe_leader(&self, hint: LeadershipHint) {
        self.shared.hints().apply(hint);
    }

    fn leader_hint(&self, partition: &PartitionKey) -> Option<LeadershipHint> {
        self.shared.hints().get(partition)
    }

    fn leave(&self) -> BoxFuture<'_, Result<(), GossipError>> {
        Box::pin(async move {
            self.join_task.abort();
            self.shared.local().leaving = true;
            // Re-advertise with `leaving` set and wait until that has gone out, so peers
            // record a leave rather than a failure. Best effort: the leave below still runs.
            if let Err(e) = self.gossip.update_node(self.leave_timeout).await {
                tracing::warn!(error = %e, "could not announce gossip leave");
            }
            let left = self.gossip.leave(self.leave_timeout).await;
            let shutdown = self.gossip.shutdown().await;
            left.map_err(|e| GossipError::Leave(Box::new(e) as BoxError))?;
            shutdown.map_err(|e| GossipError::Shutdown(Box::new(e) as BoxError))
        })
    }

    fn shutdown(&self) -> BoxFuture<'_, Result<(), GossipError>> {
        Box::pin(async move {
            self.join_task.abort();
            self.gossip.shutdown().await.map_err(|e| GossipError::Shutdown(Box::new(e) as BoxError))
        })
    }

    fn id_conflict(&self) -> watch::Receiver<Option<IdConflict>> {
        self.shared.id_conflict.subscribe()
    }
}

/// Dropping stops gossip like [`Discovery::shutdown`] (memberlist's background tasks
/// hold their own handles and would otherwise keep running); shutdown is idempotent.
impl Drop for MemberlistDiscovery {
    fn drop(&mut self) {
        self.join_task.abort();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let gossip = self.gossip.clone();
            runtime.spawn(async move {
                if let Err(e) = gossip.shutdown().await {
                    tracing::warn!(error = %e, "gossip shutdown on drop failed");
                }
            });
        }
    }
}

#[cfg(test)]
impl MemberlistDiscovery {
    /// Join one address now, reporting the outcome (the background join only logs it).
    pub(super) async fn join_now(&self, addr: SocketAddr) -> Result<SocketAddr, BoxError> {
        self.gossip.join(MaybeResolvedAddress::Resolved(addr)).await.map_err(|e| Box::new(e) as BoxError)
    }

    /// Rounds of trying the seeds in which none answered (each is followed by a retry).
    pub(super) fn failed_join_rounds(&self) -> usize {
        self.shared.failed_join_rounds.load(Ordering::Relaxed)
    }

    /// Hints still waiting to be broadcast.
    pub(super) fn hints_queued(&self) -> usize {
        self.shared.hints().queued()
    }
}
