//! The membership view any part of Jet reads: every broker gossip has heard of with its
//! identity and state, published as a `watch` of immutable snapshots (readers never
//! block gossip), plus a `broadcast` of the transitions for consumers that must see every
//! one (the raft layer turns `Failed` into elections).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{broadcast, watch};

use super::identity::BrokerIdentity;

/// What gossip believes about a broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberState {
    /// Answering probes.
    Alive,
    /// Announced a graceful leave and is still reachable (draining).
    Leaving,
    /// Left gracefully.
    Left,
    /// Declared dead by failure detection (probes and the suspicion timeout ran out)
    /// without announcing a leave.
    Failed,
}

impl MemberState {
    /// Still serving: counts as a live broker.
    pub fn is_live(self) -> bool {
        matches!(self, MemberState::Alive | MemberState::Leaving)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub identity: BrokerIdentity,
    /// Where this broker gossips.
    pub gossip_addr: SocketAddr,
    pub state: MemberState,
}

/// A snapshot of membership. `version` increases with every change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MembershipView {
    pub version: u64,
    members: BTreeMap<i32, Member>,
}

impl MembershipView {
    pub fn get(&self, broker_id: i32) -> Option<&Member> {
        self.members.get(&broker_id)
    }

    /// Every broker heard of, live or not, by broker id.
    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.members.values()
    }

    /// Live brokers (alive or draining), by broker id: what Metadata lists.
    pub fn live(&self) -> impl Iterator<Item = &Member> {
        self.members.values().filter(|m| m.state.is_live())
    }
}

/// One membership transition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MembershipEvent {
    /// A broker joined (or came back after leaving or failing).
    Joined(BrokerIdentity),
    /// A live broker's identity changed (for example it announced it is leaving).
    Updated(BrokerIdentity),
    /// A broker left gracefully.
    Left(i32),
    /// A broker was declared dead by failure detection.
    Failed(i32),
}

/// A change reported by the gossip layer.
#[derive(Debug, Clone)]
pub(crate) enum Change {
    Alive { identity: BrokerIdentity, gossip_addr: SocketAddr },
    Gone { broker_id: i32 },
}

/// Apply a change to a view; returns the event it amounts to, if any.
pub(crate) fn apply(view: &mut MembershipView, change: Change) -> Option<MembershipEvent> {
    let event = match change {
        Change::Alive { identity, gossip_addr } => {
            let state = if identity.leaving { MemberState::Leaving } else { MemberState::Alive };
            let event = match view.members.get(&identity.broker_id) {
                Some(m) if m.state.is_live() && m.identity == identity && m.gossip_addr == gossip_addr => return None,
                Some(m) if m.state.is_live() => MembershipEvent::Updated(identity.clone()),
                _ => MembershipEvent::Joined(identity.clone()),
            };
            view.members.insert(identity.broker_id, Member { identity, gossip_addr, state });
            event
        }
        Change::Gone { broker_id } => {
            let member = view.members.get_mut(&broker_id)?;
            let (state, event) = match member.state {
                MemberState::Left | MemberState::Failed => return None,
                MemberState::Leaving => (MemberState::Left, MembershipEvent::Left(broker_id)),
                MemberState::Alive => (MemberState::Failed, MembershipEvent::Failed(broker_id)),
            };
            member.state = state;
            event
        }
    };
    view.version += 1;
    Some(event)
}

/// Owns the published view and event stream.
#[derive(Debug)]
pub(crate) struct ViewPublisher {
    view: Mutex<MembershipView>,
    snapshots: watch::Sender<Arc<MembershipView>>,
    events: broadcast::Sender<MembershipEvent>,
}

impl ViewPublisher {
    pub(crate) fn new(event_capacity: usize) -> ViewPublisher {
        ViewPublisher {
            view: Mutex::new(MembershipView::default()),
            snapshots: watch::Sender::new(Arc::new(MembershipView::default())),
            events: broadcast::Sender::new(event_capacity.max(1)),
        }
    }

    /// Apply a change, publish it if it is one; returns the number of live brokers.
    pub(crate) fn change(&self, change: Change) -> usize {
        let mut view = self.view.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(event) = apply(&mut view, change) {
            tracing::info!(?event, "gossip membership change");
            self.snapshots.send_replace(Arc::new(view.clone()));
            // No receivers is fine: the snapshot carries the state.
            let _ = self.events.send(event);
        }
        view.live().count()
    }

    pub(crate) fn subscribe_view(&self) -> watch::Receiver<Arc<MembershipView>> {
        self.snapshots.subscribe()
    }

    pub(crate) fn subscribe_events(&self) -> broadcast::Receiver<MembershipEvent> {
        self.events.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::super::identity::HostPort;
    use super::*;

    fn identity(id: i32) -> BrokerIdentity {
        BrokerIdentity::new(id, HostPort::new("h", 9092), None, HostPort::new("h", 9093))
    }

    fn alive(id: i32) -> Change {
        Change::Alive { identity: identity(id), gossip_addr: ([127, 0, 0, 1], 7000 + id as u16).into() }
    }

    #[test]
    fn join_update_fail_rejoin() {
        let mut v = MembershipView::default();
        assert_eq!(apply(&mut v, alive(1)), Some(MembershipEvent::Joined(identity(1))));
        assert_eq!(apply(&mut v, alive(1)), None, "a repeated alive with nothing new is not an event");
        assert_eq!(v.version, 1);
        let mut moved = identity(1);
        moved.kafka.port = 19092;
        let change = Change::Alive { identity: moved.clone(), gossip_addr: ([127, 0, 0, 1], 7001).into() };
        assert_eq!(apply(&mut v, change), Some(MembershipEvent::Updated(moved)));
        assert_eq!(apply(&mut v, Change::Gone { broker_id: 1 }), Some(MembershipEvent::Failed(1)));
        assert_eq!(apply(&mut v, Change::Gone { broker_id: 1 }), None);
        assert_eq!(v.live().count(), 0);
        assert_eq!(v.get(1).map(|m| m.state), Some(MemberState::Failed));
        assert_eq!(apply(&mut v, alive(1)), Some(MembershipEvent::Joined(identity(1))));
        assert_eq!(apply(&mut v, Change::Gone { broker_id: 2 }), None, "unknown brokers are ignored");
    }

    #[test]
    fn announced_leave_is_left_not_failed() {
        let mut v = MembershipView::default();
        apply(&mut v, alive(1));
        apply(&mut v, alive(2));
        let leaving = BrokerIdentity { leaving: true, ..identity(2) };
        let change = Change::Alive { identity: leaving.clone(), gossip_addr: ([127, 0, 0, 1], 7002).into() };
        assert_eq!(apply(&mut v, change), Some(MembershipEvent::Updated(leaving)));
        assert_eq!(v.live().count(), 2, "a draining broker still serves");
        assert_eq!(apply(&mut v, Change::Gone { broker_id: 2 }), Some(MembershipEvent::Left(2)));
        assert_eq!(v.live().map(|m| m.identity.broker_id).collect::<Vec<_>>(), vec![1]);
    }

    #[test]
    fn publisher_sends_snapshots_and_events() {
        let p = ViewPublisher::new(8);
        let mut snapshots = p.subscribe_view();
        let mut events = p.subscribe_events();
        p.change(alive(3));
        assert!(snapshots.has_changed().unwrap());
        assert_eq!(snapshots.borrow_and_update().live().count(), 1);
        assert_eq!(events.try_recv().unwrap(), MembershipEvent::Joined(identity(3)));
        p.change(alive(3));
        assert!(!snapshots.has_changed().unwrap(), "no change, no new snapshot");
    }
}
