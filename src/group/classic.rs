//! A classic-protocol group (JoinGroup / SyncGroup / Heartbeat / LeaveGroup): Kafka's
//! state machine, without I/O.
//!
//! ```text
//!  Empty ──join──▶ PreparingRebalance ──all joined / timeout──▶ CompletingRebalance
//!    ▲                 ▲        │                                    │ leader's SyncGroup
//!    └─ last member ───┘        └──── member change ◀── Stable ◀─────┘
//! ```
//!
//! Requests that must wait (a JoinGroup until the rebalance completes, a SyncGroup
//! until the leader's assignment arrives) park a oneshot sender on their member. Every
//! operation returns [`Effects`]: the parked requests to answer and the group metadata
//! to persist, which the coordinator writes durably *before* answering. Deadlines
//! (session timeouts, the join phase's end, members that never sync) are exposed through
//! [`ClassicGroup::next_deadline`] and handled by [`ClassicGroup::on_deadline`].

use bytes::Bytes;
use indexmap::IndexMap;
use kafka_protocol::ResponseError;
use std::collections::HashMap;
use tokio::sync::oneshot;

use crate::group::records::{GroupMetadataValue, MemberMetadata};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClassicState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl ClassicState {
    /// The name Kafka reports in ListGroups / DescribeGroups.
    pub fn name(self) -> &'static str {
        match self {
            ClassicState::Empty => "Empty",
            ClassicState::PreparingRebalance => "PreparingRebalance",
            ClassicState::CompletingRebalance => "CompletingRebalance",
            ClassicState::Stable => "Stable",
            ClassicState::Dead => "Dead",
        }
    }
}

/// Broker settings a classic group obeys (Kafka's names and defaults).
#[derive(Debug, Clone)]
pub struct ClassicConfig {
    /// `group.min.session.timeout.ms`
    pub min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms`
    pub max_session_timeout_ms: i32,
    /// `group.initial.rebalance.delay.ms`
    pub initial_rebalance_delay_ms: i32,
    /// `group.max.size`
    pub max_size: usize,
}

/// A JoinGroup request, independent of its wire version.
#[derive(Debug, Clone)]
pub struct JoinRequest {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    /// JoinGroup v4+: a new member first gets `MEMBER_ID_REQUIRED` and its id.
    pub require_known_member_id: bool,
}

/// A SyncGroup request, independent of its wire version.
#[derive(Debug, Clone, Default)]
pub struct SyncRequest {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub generation: i32,
    /// v5+: must match the group's when set.
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    /// The leader's plan: member id → assignment.
    pub assignments: Vec<(String, Bytes)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinedMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub metadata: Bytes,
}

/// What a JoinGroup is answered with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinOutcome {
    pub error: Option<ResponseError>,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// KIP-814: a rejoining static leader learns it leads but must not reassign.
    pub skip_assignment: bool,
    /// Filled for the leader only.
    pub members: Vec<JoinedMember>,
}

impl JoinOutcome {
    pub fn error(error: ResponseError, member_id: &str) -> Self {
        JoinOutcome {
            error: Some(error),
            generation: -1,
            protocol_type: None,
            protocol_name: None,
            leader: String::new(),
            member_id: member_id.to_string(),
            skip_assignment: false,
            members: Vec::new(),
        }
    }
}

/// What a SyncGroup is answered with.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SyncOutcome {
    pub error: Option<ResponseError>,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncOutcome {
    pub fn error(error: ResponseError) -> Self {
        SyncOutcome { error: Some(error), ..Default::default() }
    }
}

/// A request either answered now or parked until the group moves on.
pub enum Reply<T> {
    Now(T),
    Wait(oneshot::Receiver<T>),
}

/// Parked requests to answer and metadata to persist, in that order of importance: the
/// coordinator persists first and answers once that is durable.
#[derive(Default)]
pub struct Effects {
    pub joins: Vec<(oneshot::Sender<JoinOutcome>, JoinOutcome)>,
    pub syncs: Vec<(oneshot::Sender<SyncOutcome>, SyncOutcome)>,
    /// The group's metadata changed in a way that must survive a restart.
    pub persist: bool,
}

impl Effects {
    /// Answers every parked request.
    pub fn deliver(self) {
        for (tx, outcome) in self.joins {
            let _ = tx.send(outcome);
        }
        for (tx, outcome) in self.syncs {
            let _ = tx.send(outcome);
        }
    }
}

struct Member {
    group_instance_id: Option<String>,
    client_id: String,
    client_host: String,
    session_timeout_ms: i32,
    rebalance_timeout_ms: i32,
    protocols: Vec<(String, Bytes)>,
    assignment: Bytes,
    awaiting_join: Option<oneshot::Sender<JoinOutcome>>,
    awaiting_sync: Option<oneshot::Sender<SyncOutcome>>,
    session_deadline: i64,
}

impl Member {
    fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols.iter().find(|(name, _)| name == protocol).map(|(_, m)| m.clone()).unwrap_or_default()
    }
}

pub struct ClassicGroup {
    pub group_id: String,
    state: ClassicState,
    generation: i32,
    protocol_type: Option<String>,
    protocol_name: Option<String>,
    leader: Option<String>,
    /// In join order.
    members: IndexMap<String, Member>,
    /// Ids handed out with `MEMBER_ID_REQUIRED`, with the deadline to rejoin by.
    pending_members: HashMap<String, i64>,
    static_members: HashMap<String, String>,
    /// End of the join phase (PreparingRebalance only).
    rebalance_deadline: Option<i64>,
    /// The join phase is the initial delay of a group that was empty.
    initial_delay: Option<InitialDelay>,
    /// Members that must still send SyncGroup for this generation, and the deadline.
    pending_sync: Vec<String>,
    sync_deadline: Option<i64>,
    state_timestamp: i64,
}

#[derive(Clone, Copy)]
struct InitialDelay {
    /// Where the delay may extend to at most (the largest rebalance timeout).
    limit: i64,
}

mod join;
mod ops;
pub use ops::LeaveMember;

impl ClassicGroup {
    pub fn new(group_id: &str, now_ms: i64) -> Self {
        ClassicGroup {
            group_id: group_id.to_string(),
            state: ClassicState::Empty,
            generation: 0,
            protocol_type: None,
            protocol_name: None,
            leader: None,
            members: IndexMap::new(),
            pending_members: HashMap::new(),
            static_members: HashMap::new(),
            rebalance_deadline: None,
            initial_delay: None,
            pending_sync: Vec::new(),
            sync_deadline: None,
            state_timestamp: now_ms,
        }
    }

    pub fn state(&self) -> ClassicState {
        self.state
    }

    pub fn generation(&self) -> i32 {
        self.generation
    }

    pub fn protocol_type(&self) -> Option<&str> {
        self.protocol_type.as_deref()
    }

    pub fn protocol_name(&self) -> Option<&str> {
        self.protocol_name.as_deref()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    pub fn member_count(&self) -> usize {
        self.members.len()
    }

    /// When the group became its current state (offset expiration of empty groups).
    pub fn state_timestamp(&self) -> i64 {
        self.state_timestamp
    }

    /// Whether this is a `consumer` group whose members subscribe to `topic` (an offset
    /// of such a topic must not be deleted). Decodes Kafka's ConsumerProtocolSubscription.
    pub fn is_subscribed_to(&self, topic: &str) -> bool {
        let (Some("consumer"), Some(protocol)) = (self.protocol_type.as_deref(), self.protocol_name.as_deref()) else {
            return false;
        };
        self.members.values().any(|m| subscription_topics(&m.metadata_for(protocol)).iter().any(|t| t == topic))
    }

    /// Members as DescribeGroups reports them: (id, instance id, client id, host,
    /// metadata, assignment); metadata and assignment only once the group is stable.
    pub fn describe_members(&self) -> Vec<(String, Option<String>, String, String, Bytes, Bytes)> {
        let stable = self.state == ClassicState::Stable;
        let protocol = self.protocol_name.as_deref().unwrap_or_default();
        self.members
            .iter()
            .map(|(id, m)| {
                let (metadata, assignment) =
                    if stable { (m.metadata_for(protocol), m.assignment.clone()) } else { Default::default() };
                (
                    id.clone(),
                    m.group_instance_id.clone(),
                    m.client_id.clone(),
                    m.client_host.clone(),
                    metadata,
                    assignment,
                )
            })
            .collect()
    }

    /// The earliest moment [`ClassicGroup::on_deadline`] has something to do.
    pub fn next_deadline(&self) -> Option<i64> {
        let sessions = self.members.values().filter(|m| m.awaiting_join.is_none()).map(|m| m.session_deadline);
        sessions
            .chain(self.pending_members.values().copied())
            .chain(self.rebalance_deadline)
            .chain(self.sync_deadline)
            .min()
    }

    /// The metadata record for the current generation.
    pub fn metadata_value(&self) -> GroupMetadataValue {
        let protocol = self.protocol_name.clone();
        GroupMetadataValue {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation,
            leader: self.leader.clone(),
            current_state_timestamp: self.state_timestamp,
            members: self
                .members
                .iter()
                .map(|(id, m)| MemberMetadata {
                    member_id: id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout: m.rebalance_timeout_ms,
                    session_timeout: m.session_timeout_ms,
                    subscription: protocol.as_deref().map(|p| m.metadata_for(p)).unwrap_or_default(),
                    assignment: m.assignment.clone(),
                })
                .collect(),
            protocol,
        }
    }

    /// Rebuilds a group from its last persisted metadata (broker start). Members come
    /// back as they were in that generation with fresh session deadlines: a member that
    /// keeps heartbeating carries on without a rebalance; one that is gone expires.
    pub fn restore(group_id: &str, value: GroupMetadataValue, now_ms: i64) -> Self {
        let mut group = ClassicGroup::new(group_id, value.current_state_timestamp.max(0));
        group.generation = value.generation;
        group.protocol_type = (!value.protocol_type.is_empty()).then_some(value.protocol_type);
        group.protocol_name = value.protocol;
        group.leader = value.leader;
        for m in value.members {
            if let Some(instance) = &m.group_instance_id {
                group.static_members.insert(instance.clone(), m.member_id.clone());
            }
            let protocols = group.protocol_name.iter().map(|p| (p.clone(), m.subscription.clone())).collect();
            group.members.insert(
                m.member_id,
                Member {
                    group_instance_id: m.group_instance_id,
                    client_id: m.client_id,
                    client_host: m.client_host,
                    session_timeout_ms: m.session_timeout,
                    rebalance_timeout_ms: m.rebalance_timeout,
                    protocols,
                    assignment: m.assignment,
                    awaiting_join: None,
                    awaiting_sync: None,
                    session_deadline: now_ms + i64::from(m.session_timeout),
                },
            );
        }
        group.state = if group.members.is_empty() { ClassicState::Empty } else { ClassicState::Stable };
        group
    }

    /// Marks the group deleted; parked requests are told to find the coordinator again.
    pub fn mark_dead(&mut self) -> Effects {
        let effects = self.abandon_waiters();
        self.transition(ClassicState::Dead, 0);
        effects
    }

    /// Answers every parked request with `COORDINATOR_NOT_AVAILABLE` (the group is going
    /// away or the broker is shutting down): its members find the coordinator again.
    pub fn abandon_waiters(&mut self) -> Effects {
        let mut effects = Effects::default();
        for (id, m) in self.members.iter_mut() {
            if let Some(tx) = m.awaiting_join.take() {
                effects.joins.push((tx, JoinOutcome::error(ResponseError::CoordinatorNotAvailable, id)));
            }
            if let Some(tx) = m.awaiting_sync.take() {
                effects.syncs.push((tx, SyncOutcome::error(ResponseError::CoordinatorNotAvailable)));
            }
        }
        effects
    }

    fn transition(&mut self, state: ClassicState, now_ms: i64) {
        self.state = state;
        self.state_timestamp = now_ms;
    }
}

/// The topics of a Kafka `ConsumerProtocolSubscription` (any version): `int16 version,
/// [string topics], ...`. Unparseable metadata subscribes to nothing.
pub fn subscription_topics(metadata: &[u8]) -> Vec<String> {
    let mut r = crate::group::records::Reader::new(metadata);
    let parse = |r: &mut crate::group::records::Reader| -> Result<Vec<String>, crate::group::records::RecordError> {
        let _version = r.i16()?;
        let n = r.array_len()?;
        (0..n).map(|_| r.string()).collect()
    };
    parse(&mut r).unwrap_or_default()
}

#[cfg(test)]
mod tests;
