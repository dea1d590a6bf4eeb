//! One member of a consumer group and its reconciliation towards the target assignment
//! (Kafka's `ConsumerGroupMember` and `CurrentAssignmentBuilder`).

use std::collections::{BTreeMap, BTreeSet, HashSet};

use uuid::Uuid;

/// Partitions by topic id. Ordered so that records, responses and comparisons are
/// deterministic.
pub type Assignment = BTreeMap<Uuid, BTreeSet<i32>>;

/// Epoch of a member that joins (request) and of a member that has not been reconciled yet.
pub const JOIN_EPOCH: i32 = 0;
/// Epoch of a dynamic member leaving the group.
pub const LEAVE_EPOCH: i32 = -1;
/// Epoch of a static member leaving temporarily: it keeps its assignment until its
/// session expires or it rejoins with the same instance id.
pub const STATIC_LEAVE_EPOCH: i32 = -2;

/// Where a member is in its reconciliation (the `State` byte of
/// `ConsumerGroupCurrentMemberAssignmentValue`, Kafka's `MemberState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MemberState {
    /// The member owns exactly what it was given at its epoch.
    #[default]
    Stable,
    /// The member must stop owning `pending_revocation` before it moves to a new epoch.
    UnrevokedPartitions,
    /// The member is at the target epoch, but some of its target partitions are still
    /// owned by other members; they are given out once released.
    UnreleasedPartitions,
    /// A state written by a newer coordinator: the member is fenced on its next heartbeat
    /// unless it owns nothing.
    Unknown,
}

impl MemberState {
    pub fn to_byte(self) -> i8 {
        match self {
            MemberState::Stable => 0,
            MemberState::UnrevokedPartitions => 1,
            MemberState::UnreleasedPartitions => 2,
            MemberState::Unknown => 127,
        }
    }

    pub fn from_byte(value: i8) -> Self {
        match value {
            0 => MemberState::Stable,
            1 => MemberState::UnrevokedPartitions,
            2 => MemberState::UnreleasedPartitions,
            _ => MemberState::Unknown,
        }
    }
}

/// A member: its subscription (persisted as `ConsumerGroupMemberMetadataValue`) and its
/// current assignment (`ConsumerGroupCurrentMemberAssignmentValue`). Its target
/// assignment lives in the group.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Member {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: BTreeSet<String>,
    pub subscribed_topic_regex: Option<String>,
    /// `-1` until the member's first heartbeat sets it.
    pub rebalance_timeout_ms: i32,
    pub server_assignor: Option<String>,
    pub epoch: i32,
    pub previous_epoch: i32,
    pub state: MemberState,
    pub assigned: Assignment,
    pub pending_revocation: Assignment,
}

impl Member {
    pub fn new(member_id: &str) -> Self {
        Self {
            member_id: member_id.to_string(),
            rebalance_timeout_ms: -1,
            epoch: JOIN_EPOCH,
            previous_epoch: -1,
            ..Self::default()
        }
    }

    /// The subscription part only (what `ConsumerGroupMemberMetadataValue` holds).
    pub fn same_metadata(&self, other: &Member) -> bool {
        self.instance_id == other.instance_id
            && self.rack_id == other.rack_id
            && self.client_id == other.client_id
            && self.client_host == other.client_host
            && self.subscribed_topic_names == other.subscribed_topic_names
            && self.subscribed_topic_regex == other.subscribed_topic_regex
            && self.rebalance_timeout_ms == other.rebalance_timeout_ms
            && self.server_assignor == other.server_assignor
    }

    /// The current-assignment part only (`ConsumerGroupCurrentMemberAssignmentValue`).
    pub fn same_current_assignment(&self, other: &Member) -> bool {
        self.epoch == other.epoch
            && self.previous_epoch == other.previous_epoch
            && self.state == other.state
            && self.assigned == other.assigned
            && self.pending_revocation == other.pending_revocation
    }

    pub fn is_reconciled_to(&self, target_epoch: i32) -> bool {
        self.state == MemberState::Stable && self.epoch == target_epoch
    }

    /// Moves to `epoch`, remembering the current one (a client whose response was lost
    /// may come back with it).
    fn set_epoch(&mut self, epoch: i32) {
        self.previous_epoch = self.epoch;
        self.epoch = epoch;
    }

    /// Whether `owned` (what the member reports) is within its assigned partitions.
    pub fn owns_subset_of_assigned(&self, owned: Option<&Assignment>) -> bool {
        owned.is_some_and(|owned| {
            owned.iter().all(|(topic, partitions)| {
                self.assigned.get(topic).is_some_and(|assigned| partitions.is_subset(assigned))
            })
        })
    }
}

/// What a heartbeat tells the reconciliation: the partitions the member reports owning
/// (`None` when the request left `topic_partitions` out).
pub struct Reconcile<'a> {
    pub target_epoch: i32,
    pub target: &'a Assignment,
    /// Partitions owned (assigned or pending revocation) by the other members.
    pub owned_by_others: &'a HashSet<(Uuid, i32)>,
    pub owned: Option<&'a Assignment>,
}

#[derive(Debug, PartialEq, Eq)]
pub struct MemberFenced;

/// Moves `member` one step towards the target (Kafka's `CurrentAssignmentBuilder`).
pub fn reconcile(member: &Member, input: &Reconcile<'_>) -> Result<Member, MemberFenced> {
    match member.state {
        MemberState::Stable if member.epoch == input.target_epoch => Ok(member.clone()),
        MemberState::Stable | MemberState::UnreleasedPartitions => Ok(next_assignment(member, member.epoch, input)),
        MemberState::UnrevokedPartitions => {
            if still_owns_any(input.owned, &member.pending_revocation) {
                Ok(member.clone())
            } else {
                Ok(next_assignment(member, member.epoch + 1, input))
            }
        }
        MemberState::Unknown => {
            if input.owned.is_none_or(|owned| !owned.is_empty()) {
                return Err(MemberFenced);
            }
            Ok(next_assignment(member, input.target_epoch, input))
        }
    }
}

/// `None` (not reported) counts as still owning everything.
fn still_owns_any(owned: Option<&Assignment>, revoking: &Assignment) -> bool {
    let Some(owned) = owned else { return true };
    owned.iter().any(|(topic, partitions)| revoking.get(topic).is_some_and(|r| !r.is_disjoint(partitions)))
}

fn next_assignment(member: &Member, epoch_if_revoking: i32, input: &Reconcile<'_>) -> Member {
    let mut assigned = Assignment::new();
    let mut revoking = Assignment::new();
    let mut to_assign = Assignment::new();
    let mut unreleased = false;
    let topics: BTreeSet<&Uuid> = input.target.keys().chain(member.assigned.keys()).collect();
    for topic in topics {
        let empty = BTreeSet::new();
        let target = input.target.get(topic).unwrap_or(&empty);
        let current = member.assigned.get(topic).unwrap_or(&empty);
        let keep: BTreeSet<i32> = current.intersection(target).copied().collect();
        let revoke: BTreeSet<i32> = current.difference(&keep).copied().collect();
        let mut add = BTreeSet::new();
        for &p in target.difference(&keep) {
            if input.owned_by_others.contains(&(*topic, p)) {
                unreleased = true;
            } else {
                add.insert(p);
            }
        }
        for (map, set) in [(&mut assigned, keep), (&mut revoking, revoke), (&mut to_assign, add)] {
            if !set.is_empty() {
                map.insert(*topic, set);
            }
        }
    }
    let mut next = member.clone();
    if !revoking.is_empty() && still_owns_any(input.owned, &revoking) {
        // Give up partitions first; the epoch stays until the member acknowledges.
        next.state = MemberState::UnrevokedPartitions;
        next.set_epoch(epoch_if_revoking);
        next.assigned = assigned;
        next.pending_revocation = revoking;
        return next;
    }
    for (topic, partitions) in to_assign {
        assigned.entry(topic).or_default().extend(partitions);
    }
    next.state = if unreleased { MemberState::UnreleasedPartitions } else { MemberState::Stable };
    next.set_epoch(input.target_epoch);
    next.assigned = assigned;
    next.pending_revocation = Assignment::new();
    next
}
