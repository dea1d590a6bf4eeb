//! The brokers clients are told about: this broker alone, or every live broker in the
//! gossip view once [`gossip`](super::gossip) runs.
//!
//! Design decisions:
//!
//! - **The broker owns a [`BrokerDirectory`] from the moment it opens**, with its own
//!   identity; gossip is attached after the data directory has opened, so a broker
//!   recovering its logs is not advertised to other brokers' clients before it can serve.
//!   Without gossip (`jet` with no cluster flags) the directory lists this broker only and
//!   nothing else changes.
//! - **Metadata lists live brokers** (alive or draining): a broker declared failed drops
//!   out once gossip's failure detection runs out (about 2.25 s with the default timings),
//!   and comes back when it rejoins. This broker is always listed, even in the moment
//!   before gossip reports it to itself.
//! - **`--bootstrap-expect N` latches**: the first time N brokers (this one included) are
//!   live in the view, their identities become the bootstrap set and `/readyz` turns
//!   ready for good; a broker failing later does not make the others unready. The set is
//!   what the controller's raft group will be initialised from (the raft group then
//!   persists its own membership, so the set is not stored).
//! - **A node id claimed twice**: memberlist keeps the first holder and ignores the
//!   other, and both hear of it ([`IdConflict`]). The broker that was still joining
//!   through its seeds is the newcomer: it is not ready and refuses to run ([`refusal`]);
//!   the one already in the cluster logs the conflict and reports it in `/v1/cluster`.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use super::gossip::{self, BrokerIdentity, Discovery, GossipConfig, GossipError, HostPort, IdConflict, MembershipView};
use crate::config::cluster::ClusterArgs;
use crate::config::{BrokerConfig, ListenAddr, ListenerId};

/// Who the brokers are, as this broker answers Metadata and DescribeCluster.
pub struct BrokerDirectory {
    local: BrokerIdentity,
    bootstrap_expect: Option<usize>,
    discovery: OnceLock<Arc<dyn Discovery>>,
    /// The first N live brokers, once `--bootstrap-expect N` was met.
    bootstrapped: OnceLock<Vec<BrokerIdentity>>,
}

impl std::fmt::Debug for BrokerDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerDirectory")
            .field("local", &self.local)
            .field("gossip", &self.discovery.get().map(|d| d.gossip_addr()))
            .field("bootstrap_expect", &self.bootstrap_expect)
            .finish()
    }
}

impl BrokerDirectory {
    pub fn new(local: BrokerIdentity, bootstrap_expect: Option<u32>) -> BrokerDirectory {
        BrokerDirectory {
            local,
            bootstrap_expect: bootstrap_expect.map(|n| n as usize),
            discovery: OnceLock::new(),
            bootstrapped: OnceLock::new(),
        }
    }

    /// The directory of a broker configured by `config` (listener bound: its advertised
    /// port is known).
    pub fn for_config(config: &BrokerConfig) -> BrokerDirectory {
        let (host, port) = config.advertised();
        // `advertised` builds the port from a u16.
        let port = u16::try_from(port).unwrap_or_default();
        let raft = config.cluster.raft_advertised(&host);
        let mut listeners = config.advertised_listeners().into_iter();
        let name = listeners.next().map(|(name, _, _)| name).unwrap_or_else(|| "PLAINTEXT".into());
        let others = listeners.map(|(name, host, port)| (name, HostPort::new(host, port))).collect();
        let local = BrokerIdentity::new(config.node_id, HostPort::new(host, port), config.broker_rack.clone(), raft)
            .with_listeners(name, others);
        BrokerDirectory::new(local, config.cluster.bootstrap_expect)
    }

    /// This broker's identity.
    pub fn local(&self) -> &BrokerIdentity {
        &self.local
    }

    /// Starts answering from `discovery`'s view, and records the bootstrap set as soon as
    /// the view first holds `--bootstrap-expect` brokers. Call once, inside the runtime.
    pub fn attach(self: &Arc<Self>, discovery: Arc<dyn Discovery>) {
        let mut view = discovery.view();
        if self.discovery.set(discovery).is_err() {
            tracing::warn!("gossip was already attached to the broker directory");
            return;
        }
        if self.bootstrap_expect.is_none() {
            return;
        }
        let directory = self.clone();
        tokio::spawn(async move {
            loop {
                let snapshot = view.borrow_and_update().clone();
                if directory.try_bootstrap(&snapshot) {
                    return;
                }
                if view.changed().await.is_err() {
                    return; // Gossip stopped.
                }
            }
        });
    }

    /// The gossip member behind the view, when gossip runs.
    pub fn discovery(&self) -> Option<&Arc<dyn Discovery>> {
        self.discovery.get()
    }

    /// The gossip view, when gossip runs.
    pub fn view(&self) -> Option<Arc<MembershipView>> {
        self.discovery.get().map(|d| d.view().borrow().clone())
    }

    /// Live brokers by broker id: this one alone without gossip.
    pub fn live_brokers(&self) -> Vec<BrokerIdentity> {
        match self.view() {
            None => vec![self.local.clone()],
            Some(view) => self.live_in(&view),
        }
    }

    /// Live brokers as a client of this broker's listener `listener` is told them: each
    /// with its address on the listener of the same name (`kafka`), brokers without one
    /// left out (as Kafka's metadata cache does).
    pub fn live_brokers_on(&self, listener: ListenerId) -> Vec<BrokerIdentity> {
        self.live_brokers_by_listener(listener).0
    }

    /// [`live_brokers_on`](Self::live_brokers_on), and the ids of the live brokers left
    /// out because they have no listener by that name.
    pub fn live_brokers_by_listener(&self, listener: ListenerId) -> (Vec<BrokerIdentity>, Vec<i32>) {
        let live = self.live_brokers();
        let name = match usize::from(listener.0) {
            0 => &self.local.listener,
            i => match self.local.other_listeners.get(i - 1) {
                Some((name, _)) => name,
                None => &self.local.listener,
            },
        };
        if listener.0 == 0 && live.iter().all(|b| b.listener.eq_ignore_ascii_case(name)) {
            return (live, Vec::new()); // One listener everywhere: nothing to look up.
        }
        let mut without = Vec::new();
        let listed = live
            .into_iter()
            .filter_map(|b| match b.endpoint(name) {
                Some(endpoint) => Some(BrokerIdentity { kafka: endpoint.clone(), ..b }),
                None => {
                    without.push(b.broker_id);
                    None
                }
            })
            .collect();
        (listed, without)
    }

    fn live_in(&self, view: &MembershipView) -> Vec<BrokerIdentity> {
        let mut live: Vec<BrokerIdentity> = view.live().map(|m| m.identity.clone()).collect();
        if !live.iter().any(|b| b.broker_id == self.local.broker_id) {
            live.push(self.local.clone());
            live.sort_by_key(|b| b.broker_id);
        }
        live
    }

    /// Latches the bootstrap set if the view has enough brokers; whether it is latched.
    fn try_bootstrap(&self, view: &MembershipView) -> bool {
        let Some(expect) = self.bootstrap_expect else { return true };
        if self.bootstrapped.get().is_some() {
            return true;
        }
        let live = self.live_in(view);
        if live.len() < expect {
            return false;
        }
        let ids: Vec<i32> = live.iter().map(|b| b.broker_id).collect();
        if self.bootstrapped.set(live).is_ok() {
            tracing::info!(bootstrap_expect = expect, brokers = ?ids, "bootstrap-expect met: these brokers form the cluster");
        }
        true
    }

    /// The brokers the controller bootstraps its raft membership from, once
    /// `--bootstrap-expect` was met (`None` before, and without the flag).
    pub fn bootstrap_members(&self) -> Option<&[BrokerIdentity]> {
        self.bootstrapped.get().map(Vec::as_slice)
    }

    pub fn bootstrap_expect(&self) -> Option<usize> {
        self.bootstrap_expect
    }

    /// Another broker's claim on this broker's id, if gossip has seen one.
    pub fn id_conflict(&self) -> Option<IdConflict> {
        self.discovery.get().and_then(|d| d.id_conflict().borrow().clone())
    }

    /// Why this broker must not report ready for its cluster role yet, if it must not.
    pub fn not_ready_reason(&self) -> Option<String> {
        if let Some(conflict) = self.id_conflict().filter(|c| c.while_joining) {
            return Some(format!("refused: {conflict}; give this broker another --node-id"));
        }
        let expect = self.bootstrap_expect?;
        let view = self.view().unwrap_or_default();
        if self.try_bootstrap(&view) {
            return None;
        }
        let live: Vec<String> = self.live_in(&view).iter().map(|b| b.broker_id.to_string()).collect();
        Some(format!(
            "bootstrapping: waiting for {expect} brokers in the gossip view (--bootstrap-expect {expect}); {} so far (node ids {})",
            live.len(),
            live.join(", ")
        ))
    }
}

/// Waits for another broker's claim on this broker's id that makes this broker the
/// newcomer, logging (once) a claim this broker wins instead. Never resolves otherwise.
pub async fn refusal(discovery: Arc<dyn Discovery>) -> IdConflict {
    let mut conflicts = discovery.id_conflict();
    let conflict = match conflicts.wait_for(Option::is_some).await {
        Ok(seen) => seen.clone(),
        Err(_) => None, // Gossip stopped.
    };
    match conflict {
        Some(c) if c.while_joining => c,
        Some(c) => {
            tracing::error!(
                "{c}: that broker was started later and is ignored by the cluster; give it another --node-id"
            );
            std::future::pending().await
        }
        None => std::future::pending().await,
    }
}

/// Why gossip did not start.
#[derive(Debug, thiserror::Error)]
pub enum GossipStartError {
    #[error("--{flag} {addr}: cannot resolve the host")]
    Resolve {
        flag: &'static str,
        addr: ListenAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("--{flag} {addr}: the host resolves to no address")]
    NoAddress { flag: &'static str, addr: ListenAddr },
    #[error(transparent)]
    Gossip(#[from] GossipError),
}

async fn resolve(flag: &'static str, addr: &ListenAddr) -> Result<SocketAddr, GossipStartError> {
    let found = tokio::net::lookup_host((addr.host.as_str(), addr.port))
        .await
        .map_err(|source| GossipStartError::Resolve { flag, addr: addr.clone(), source })?
        .next();
    found.ok_or_else(|| GossipStartError::NoAddress { flag, addr: addr.clone() })
}

/// The gossip settings for `local` from the command line.
pub async fn gossip_config(args: &ClusterArgs, local: BrokerIdentity) -> Result<GossipConfig, GossipStartError> {
    let bind = resolve("gossip-listen", &args.gossip_bind()).await?;
    let mut config = GossipConfig::new(local, bind);
    if let Some(advertise) = &args.gossip_advertise {
        config.advertise = Some(resolve("gossip-advertise", advertise).await?);
    }
    config.seeds = args.seeds.clone();
    config.secret_key = args.gossip_key.as_ref().map(|k| k.base64().to_string());
    Ok(config)
}

/// Starts gossip when the command line asks for it (`--seeds` or `--gossip-listen`).
pub async fn start_gossip(
    args: &ClusterArgs,
    local: BrokerIdentity,
) -> Result<Option<Arc<dyn Discovery>>, GossipStartError> {
    if !args.gossip_enabled() {
        return Ok(None);
    }
    let config = gossip_config(args, local).await?;
    if config.secret_key.is_none() {
        // memberlist 0.8.5 lets a plaintext peer take over a member's id (DESIGN.md).
        tracing::warn!(
            "gossip is not encrypted: any host that reaches the gossip port can join the cluster or pose as a broker; give every broker the same --gossip-key"
        );
    }
    Ok(Some(gossip::start(config).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(id: i32) -> BrokerIdentity {
        BrokerIdentity::new(id, HostPort::new("localhost", 9092), Some("r".into()), HostPort::new("localhost", 9093))
    }

    #[test]
    fn without_gossip_this_broker_alone_is_listed_and_ready() {
        let d = BrokerDirectory::new(identity(4), None);
        assert_eq!(d.live_brokers(), vec![identity(4)]);
        assert_eq!(d.not_ready_reason(), None);
        assert!(d.bootstrap_members().is_none());
        // --bootstrap-expect 1 is met by this broker alone.
        let d = BrokerDirectory::new(identity(4), Some(1));
        assert_eq!(d.not_ready_reason(), None);
        assert_eq!(d.bootstrap_members(), Some(&[identity(4)][..]));
    }

    #[test]
    fn bootstrap_expect_waits_and_says_for_what() {
        let d = BrokerDirectory::new(identity(1), Some(3));
        let reason = d.not_ready_reason().expect("not ready with one broker of three");
        assert!(reason.contains("waiting for 3 brokers") && reason.contains("1 so far (node ids 1)"), "{reason}");
    }

    /// A membership view driven by the test, as gossip would publish it.
    struct ScriptedGossip {
        local: BrokerIdentity,
        view: std::sync::Mutex<MembershipView>,
        snapshots: tokio::sync::watch::Sender<Arc<MembershipView>>,
        conflict: tokio::sync::watch::Sender<Option<IdConflict>>,
        events: tokio::sync::broadcast::Sender<gossip::MembershipEvent>,
    }

    impl ScriptedGossip {
        fn new(local: BrokerIdentity) -> Arc<ScriptedGossip> {
            Arc::new(ScriptedGossip {
                local,
                view: Default::default(),
                snapshots: tokio::sync::watch::Sender::new(Default::default()),
                conflict: tokio::sync::watch::Sender::new(None),
                events: tokio::sync::broadcast::Sender::new(8),
            })
        }

        fn change(&self, change: gossip::view::Change) {
            let mut view = self.view.lock().unwrap();
            gossip::view::apply(&mut view, change);
            self.snapshots.send_replace(Arc::new(view.clone()));
        }

        fn alive(&self, id: i32) {
            let gossip_addr = SocketAddr::from(([127, 0, 0, 1], 7000 + id as u16));
            self.change(gossip::view::Change::Alive { identity: identity(id), gossip_addr });
        }
    }

    impl Discovery for ScriptedGossip {
        fn local(&self) -> BrokerIdentity {
            self.local.clone()
        }
        fn gossip_addr(&self) -> SocketAddr {
            SocketAddr::from(([127, 0, 0, 1], 7000))
        }
        fn view(&self) -> tokio::sync::watch::Receiver<Arc<MembershipView>> {
            self.snapshots.subscribe()
        }
        fn events(&self) -> tokio::sync::broadcast::Receiver<gossip::MembershipEvent> {
            self.events.subscribe()
        }
        fn observe_leader(&self, _hint: gossip::LeadershipHint) {}
        fn leader_hint(&self, _partition: &gossip::PartitionKey) -> Option<gossip::LeadershipHint> {
            None
        }
        fn leave(&self) -> futures::future::BoxFuture<'_, Result<(), GossipError>> {
            Box::pin(async { Ok(()) })
        }
        fn shutdown(&self) -> futures::future::BoxFuture<'_, Result<(), GossipError>> {
            Box::pin(async { Ok(()) })
        }
        fn id_conflict(&self) -> tokio::sync::watch::Receiver<Option<IdConflict>> {
            self.conflict.subscribe()
        }
    }

    #[tokio::test]
    async fn live_brokers_follow_the_view_and_always_include_this_one() {
        let d = Arc::new(BrokerDirectory::new(identity(2), None));
        let gossip = ScriptedGossip::new(identity(2));
        d.attach(gossip.clone());
        let ids = |d: &BrokerDirectory| d.live_brokers().iter().map(|b| b.broker_id).collect::<Vec<_>>();
        assert_eq!(ids(&d), [2], "before gossip reports this broker to itself");
        for id in [3, 1, 2] {
            gossip.alive(id);
        }
        assert_eq!(ids(&d), [1, 2, 3], "by node id");
        gossip.change(gossip::view::Change::Gone { broker_id: 3 });
        assert_eq!(ids(&d), [1, 2], "a failed broker is not listed");
        gossip.alive(3);
        assert_eq!(ids(&d), [1, 2, 3], "and is again once it is back");
    }

    #[tokio::test]
    async fn brokers_are_listed_by_their_address_on_the_clients_listener() {
        let two_listeners = |id: i32, external: Option<u16>| {
            let others = external.map(|port| ("EXTERNAL".to_string(), HostPort::new("203.0.113.7", port)));
            BrokerIdentity::new(id, HostPort::new(format!("jet-{id}.internal"), 9092), None, HostPort::new("h", 9093))
                .with_listeners("INTERNAL".into(), others.into_iter().collect())
        };
        let d = Arc::new(BrokerDirectory::new(two_listeners(1, Some(31001)), None));
        let gossip = ScriptedGossip::new(two_listeners(1, Some(31001)));
        d.attach(gossip.clone());
        let alive = |identity: BrokerIdentity| {
            let gossip_addr = SocketAddr::from(([127, 0, 0, 1], 7000 + identity.broker_id as u16));
            gossip.change(gossip::view::Change::Alive { identity, gossip_addr });
        };
        alive(two_listeners(1, Some(31001)));
        alive(two_listeners(2, Some(31002)));
        alive(two_listeners(3, None));
        let on = |listener: u8| {
            d.live_brokers_on(ListenerId(listener))
                .into_iter()
                .map(|b| (b.broker_id, b.kafka.to_string()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            on(0),
            [(1, "jet-1.internal:9092".into()), (2, "jet-2.internal:9092".into()), (3, "jet-3.internal:9092".into())]
        );
        // Broker 3 has no EXTERNAL listener: external clients are not sent to it.
        assert_eq!(on(1), [(1, "203.0.113.7:31001".to_string()), (2, "203.0.113.7:31002".to_string())]);
        assert_eq!(d.live_brokers_by_listener(ListenerId(1)).1, [3]);
        assert!(d.live_brokers_by_listener(ListenerId(0)).1.is_empty());
    }

    #[tokio::test]
    async fn bootstrap_expect_latches_once_met_even_if_a_broker_fails_later() {
        let d = Arc::new(BrokerDirectory::new(identity(1), Some(2)));
        let gossip = ScriptedGossip::new(identity(1));
        d.attach(gossip.clone());
        gossip.alive(1);
        assert!(d.not_ready_reason().is_some_and(|r| r.contains("1 so far")));
        gossip.alive(2);
        // The attached watcher latches without anyone asking /readyz.
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        while d.bootstrap_members().is_none() {
            assert!(tokio::time::Instant::now() < deadline, "bootstrap set not recorded");
            tokio::task::yield_now().await;
        }
        assert_eq!(d.bootstrap_members().map(|m| m.iter().map(|b| b.broker_id).collect::<Vec<_>>()), Some(vec![1, 2]));
        gossip.change(gossip::view::Change::Gone { broker_id: 2 });
        assert_eq!(d.not_ready_reason(), None, "met once is met");
    }

    #[tokio::test]
    async fn a_newcomer_with_a_taken_id_is_not_ready_and_the_holder_is() {
        let conflict = |while_joining| IdConflict {
            broker_id: 1,
            ours: SocketAddr::from(([127, 0, 0, 1], 7001)),
            theirs: SocketAddr::from(([127, 0, 0, 1], 7002)),
            their_identity: None,
            while_joining,
        };
        let holder = Arc::new(BrokerDirectory::new(identity(1), None));
        let gossip = ScriptedGossip::new(identity(1));
        holder.attach(gossip.clone());
        gossip.conflict.send_replace(Some(conflict(false)));
        assert_eq!(holder.not_ready_reason(), None);
        assert_eq!(holder.id_conflict(), Some(conflict(false)));

        let newcomer = Arc::new(BrokerDirectory::new(identity(1), None));
        let gossip = ScriptedGossip::new(identity(1));
        newcomer.attach(gossip.clone());
        gossip.conflict.send_replace(Some(conflict(true)));
        let reason = newcomer.not_ready_reason().unwrap_or_default();
        assert!(
            reason.starts_with("refused: node id 1 is also claimed") && reason.contains("127.0.0.1:7002"),
            "{reason}"
        );
        let refused = tokio::time::timeout(std::time::Duration::from_secs(5), refusal(gossip)).await;
        assert_eq!(refused.ok(), Some(conflict(true)));
    }
}
