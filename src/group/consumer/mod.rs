//! KIP-848 consumer groups (the `consumer` group protocol of `ConsumerGroupHeartbeat`),
//! as a pure state machine: no I/O, no locks, no clocks. Every call takes `now_ms` and
//! returns the records to append to `__consumer_offsets`; the coordinator appends them
//! durably *before* it sends the response, and arms a timer for [`ConsumerGroup::next_deadline`].
//!
//! # Model (Kafka's `GroupMetadataManager`, `ConsumerGroup`, `CurrentAssignmentBuilder`)
//!
//! - The **group epoch** counts changes that need a new assignment: a member joins or
//!   leaves, a subscription changes, or the subscribed topics' metadata changes (a topic
//!   is created or deleted, partitions are added, a regular expression matches another
//!   topic). Each bump is persisted (`ConsumerGroupMetadataValue`).
//! - The **target assignment** is what the server-side assignor ([`assignor`]: `uniform`
//!   by default, or `range`, chosen by the members' `server_assignor`) computes for the
//!   group epoch; its epoch is the **assignment epoch**. Jet computes it as soon as the
//!   group epoch moves, and persists only the members whose target changed.
//! - Each member **reconciles** towards its target one heartbeat at a time, at its own
//!   **member epoch**: it first revokes what it owns outside its target (keeping its epoch
//!   until a heartbeat's `topic_partitions` shows the partitions are gone), then moves to
//!   the assignment epoch and receives the partitions that nobody else still owns;
//!   partitions another member has not released yet follow on later heartbeats.
//! - A member not heard from within the session timeout is removed; a member that does not
//!   revoke within its rebalance timeout is removed too (both through [`ConsumerGroup::on_deadline`]).
//!   Removal bumps the group epoch and reassigns its partitions.
//! - Static members (`instance_id`) that leave with epoch `-2` keep their assignment; a new
//!   member id with the same instance id takes over member, target and partitions.
//!
//! State is rebuilt after a restart by [`ConsumerGroup::replay`] of the records, then
//! [`ConsumerGroup::on_loaded`] arms session timers. Timers are not persisted, as in Kafka.
//!
//! If appending the returned records fails, the in-memory group is ahead of the log: the
//! coordinator either clones the group before the call and restores the clone, or
//! reloads it from the log.

mod assignor;
mod deadlines;
mod heartbeat;
mod member;
mod records;
pub(crate) mod subscription;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::consumer_group_describe_response::{self, DescribedGroup};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

pub use self::assignor::{RANGE, SUPPORTED as SUPPORTED_ASSIGNORS, UNIFORM};
pub use self::member::{Assignment, Member, MemberState};
pub use self::records::record_type;
use crate::group::records::KeyValue;

/// Broker settings for consumer groups (Kafka's `group.consumer.*`).
#[derive(Debug, Clone)]
pub struct ConsumerGroupConfig {
    /// `group.consumer.session.timeout.ms`.
    pub session_timeout_ms: i32,
    /// `group.consumer.heartbeat.interval.ms`.
    pub heartbeat_interval_ms: i32,
    /// `group.consumer.max.size`.
    pub max_size: usize,
    /// The first of `group.consumer.assignors`: used when no member asks for one.
    pub default_assignor: String,
}

impl Default for ConsumerGroupConfig {
    fn default() -> Self {
        Self {
            session_timeout_ms: 45_000,
            heartbeat_interval_ms: 5_000,
            max_size: i32::MAX as usize,
            default_assignor: UNIFORM.to_string(),
        }
    }
}

/// The broker's topics as the group sees them: name, id and partition count. The
/// coordinator builds one from the broker's topics for each call; `version` (if the
/// coordinator has one, such as a metadata change counter) is stored with regular
/// expression resolutions, and resolutions made at another version are refreshed on the
/// next heartbeat.
#[derive(Debug, Clone, Default)]
pub struct TopicsSnapshot {
    by_name: HashMap<String, (Uuid, i32)>,
    by_id: HashMap<Uuid, String>,
    version: i64,
}

impl TopicsSnapshot {
    pub fn new<S: Into<String>>(topics: impl IntoIterator<Item = (S, Uuid, i32)>) -> Self {
        let mut snapshot = Self::default();
        for (name, id, partitions) in topics {
            let name = name.into();
            snapshot.by_id.insert(id, name.clone());
            snapshot.by_name.insert(name, (id, partitions));
        }
        snapshot
    }

    pub fn with_version(mut self, version: i64) -> Self {
        self.version = version;
        self
    }

    /// Id and partition count of a topic.
    pub fn get(&self, name: &str) -> Option<(Uuid, i32)> {
        self.by_name.get(name).copied()
    }

    pub fn name(&self, id: &Uuid) -> Option<&str> {
        self.by_id.get(id).map(String::as_str)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }
}

impl<S: Into<String>> FromIterator<(S, Uuid, i32)> for TopicsSnapshot {
    fn from_iter<I: IntoIterator<Item = (S, Uuid, i32)>>(iter: I) -> Self {
        Self::new(iter)
    }
}

/// Who sent a heartbeat (from the request header and the connection), stored with the
/// member and shown by ConsumerGroupDescribe.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClientInfo<'a> {
    pub client_id: &'a str,
    /// Kafka's format: `/` followed by the address, e.g. `/127.0.0.1`.
    pub client_host: &'a str,
}

/// A response and the records to append (durably) before sending it.
#[derive(Debug, Clone)]
pub struct Outcome<T> {
    pub response: T,
    pub records: Vec<KeyValue>,
}

/// The group's state, with Kafka's display names (ListGroups, ConsumerGroupDescribe).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumerGroupState {
    Empty,
    /// The group epoch moved past the target assignment. (Jet computes targets right
    /// away, so this is only seen when an assignment could not be computed.)
    Assigning,
    /// Some member has not reached the target assignment.
    Reconciling,
    Stable,
    /// The group's metadata was deleted (a tombstone was replayed).
    Dead,
}

impl ConsumerGroupState {
    pub fn as_str(self) -> &'static str {
        match self {
            ConsumerGroupState::Empty => "Empty",
            ConsumerGroupState::Assigning => "Assigning",
            ConsumerGroupState::Reconciling => "Reconciling",
            ConsumerGroupState::Stable => "Stable",
            ConsumerGroupState::Dead => "Dead",
        }
    }
}

impl std::fmt::Display for ConsumerGroupState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A regular expression's matching topics, shared by the members that subscribe with it
/// (`ConsumerGroupRegularExpressionValue`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResolvedRegex {
    pub topics: BTreeSet<String>,
    /// The [`TopicsSnapshot`] version it was resolved at.
    pub version: i64,
    pub timestamp_ms: i64,
}

/// Deadlines of one member (not persisted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct MemberTimers {
    session_deadline_ms: i64,
    /// The member must have left `epoch` (revoked) by `deadline_ms`.
    rebalance: Option<RebalanceTimer>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RebalanceTimer {
    deadline_ms: i64,
    epoch: i32,
}

/// What Kafka reports as a group's authorized operations without an authorizer: READ,
/// DELETE, DESCRIBE, DESCRIBE_CONFIGS, ALTER_CONFIGS (ACL operation codes 3, 6, 8, 10, 11).
pub const GROUP_AUTHORIZED_OPERATIONS: i32 = (1 << 3) | (1 << 6) | (1 << 8) | (1 << 10) | (1 << 11);

/// One KIP-848 consumer group.
#[derive(Debug, Clone)]
pub struct ConsumerGroup {
    group_id: String,
    group_epoch: i32,
    /// Hash of the subscribed topics' names, ids and partition counts at `group_epoch`.
    metadata_hash: i64,
    assignment_epoch: i32,
    members: BTreeMap<String, Member>,
    /// Target assignment by member id.
    target: BTreeMap<String, Assignment>,
    regexes: BTreeMap<String, ResolvedRegex>,
    timers: BTreeMap<String, MemberTimers>,
    dead: bool,
}

impl ConsumerGroup {
    pub fn new(group_id: &str) -> Self {
        Self {
            group_id: group_id.to_string(),
            group_epoch: 0,
            metadata_hash: 0,
            assignment_epoch: 0,
            members: BTreeMap::new(),
            target: BTreeMap::new(),
            regexes: BTreeMap::new(),
            timers: BTreeMap::new(),
            dead: false,
        }
    }

    pub fn group_id(&self) -> &str {
        &self.group_id
    }

    /// Whether the group has ever been written (a first member joined). A group that
    /// answered a heartbeat with an error without existing can be dropped.
    pub fn exists(&self) -> bool {
        self.group_epoch > 0 && !self.dead
    }

    pub fn group_epoch(&self) -> i32 {
        self.group_epoch
    }

    pub fn assignment_epoch(&self) -> i32 {
        self.assignment_epoch
    }

    pub fn member(&self, member_id: &str) -> Option<&Member> {
        self.members.get(member_id)
    }

    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.members.values()
    }

    pub fn target_assignment(&self, member_id: &str) -> Option<&Assignment> {
        self.target.get(member_id)
    }

    pub fn resolved_regex(&self, regex: &str) -> Option<&ResolvedRegex> {
        self.regexes.get(regex)
    }

    pub fn state(&self) -> ConsumerGroupState {
        if self.dead {
            ConsumerGroupState::Dead
        } else if self.members.is_empty() {
            ConsumerGroupState::Empty
        } else if self.group_epoch > self.assignment_epoch {
            ConsumerGroupState::Assigning
        } else if self.members.values().any(|m| !m.is_reconciled_to(self.assignment_epoch)) {
            ConsumerGroupState::Reconciling
        } else {
            ConsumerGroupState::Stable
        }
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    pub fn member_count(&self) -> usize {
        self.members.len()
    }

    /// Whether some member subscribes to `topic`, by name or through a regular
    /// expression (OffsetDelete answers GROUP_SUBSCRIBED_TO_TOPIC).
    pub fn is_subscribed_to(&self, topic: &str) -> bool {
        self.members.values().any(|m| {
            m.subscribed_topic_names.contains(topic)
                || m.subscribed_topic_regex
                    .as_ref()
                    .and_then(|r| self.regexes.get(r))
                    .is_some_and(|r| r.topics.contains(topic))
        })
    }

    /// Kafka's `ConsumerGroup.validateOffsetCommit` for OffsetCommit v9+ (the coordinator
    /// refuses older versions from members of a consumer group with UNSUPPORTED_VERSION,
    /// except transactional commits): a negative epoch commits as an admin, only while the
    /// group has no members; otherwise the member must exist and send its current epoch.
    pub fn validate_offset_commit(&self, member_id: &str, member_epoch: i32) -> Result<(), ResponseError> {
        if member_epoch < 0 && self.members.is_empty() {
            return Ok(());
        }
        self.validate_member_epoch(member_id, member_epoch)
    }

    /// Kafka's `ConsumerGroup.validateOffsetFetch`: an empty (null) member id with a
    /// negative epoch is an admin fetch; otherwise the member must exist and send its
    /// current epoch.
    pub fn validate_offset_fetch(&self, member_id: &str, member_epoch: i32) -> Result<(), ResponseError> {
        if member_id.is_empty() && member_epoch < 0 {
            return Ok(());
        }
        self.validate_member_epoch(member_id, member_epoch)
    }

    fn validate_member_epoch(&self, member_id: &str, member_epoch: i32) -> Result<(), ResponseError> {
        let member = self.members.get(member_id).ok_or(ResponseError::UnknownMemberId)?;
        if member.epoch != member_epoch {
            return Err(ResponseError::StaleMemberEpoch);
        }
        Ok(())
    }

    /// The assignor the next target assignment uses: the one most members ask for (ties:
    /// the first name), else the configured default.
    fn preferred_assignor(&self, cfg: &ConsumerGroupConfig) -> String {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for name in self.members.values().filter_map(|m| m.server_assignor.as_deref()) {
            *counts.entry(name).or_default() += 1;
        }
        let best = counts.iter().max_by(|(a_name, a), (b_name, b)| a.cmp(b).then(b_name.cmp(a_name)));
        match best {
            Some((name, _)) => (*name).to_string(),
            None if SUPPORTED_ASSIGNORS.contains(&cfg.default_assignor.as_str()) => cfg.default_assignor.clone(),
            None => UNIFORM.to_string(),
        }
    }

    /// The group in ConsumerGroupDescribe's shape (`member_type` only from v1).
    pub fn describe(
        &self,
        version: i16,
        topics: &TopicsSnapshot,
        include_authorized_operations: bool,
        cfg: &ConsumerGroupConfig,
    ) -> DescribedGroup {
        let to_described = |assignment: &Assignment| {
            let topic_partitions = assignment
                .iter()
                // Like Kafka, topics that no longer exist are left out.
                .filter_map(|(id, partitions)| {
                    let name = topics.name(id)?;
                    Some(
                        consumer_group_describe_response::TopicPartitions::default()
                            .with_topic_id(*id)
                            .with_topic_name(StrBytes::from_string(name.to_string()).into())
                            .with_partitions(partitions.iter().copied().collect()),
                    )
                })
                .collect();
            consumer_group_describe_response::Assignment::default().with_topic_partitions(topic_partitions)
        };
        let empty = Assignment::new();
        let members = self
            .members
            .values()
            .map(|m| {
                let described = consumer_group_describe_response::Member::default()
                    .with_member_id(StrBytes::from_string(m.member_id.clone()))
                    .with_instance_id(m.instance_id.clone().map(StrBytes::from_string))
                    .with_rack_id(m.rack_id.clone().map(StrBytes::from_string))
                    .with_member_epoch(m.epoch)
                    .with_client_id(StrBytes::from_string(m.client_id.clone()))
                    .with_client_host(StrBytes::from_string(m.client_host.clone()))
                    .with_subscribed_topic_names(
                        m.subscribed_topic_names.iter().map(|t| StrBytes::from_string(t.clone()).into()).collect(),
                    )
                    .with_subscribed_topic_regex(m.subscribed_topic_regex.clone().map(StrBytes::from_string))
                    .with_assignment(to_described(&m.assigned))
                    .with_target_assignment(to_described(self.target.get(&m.member_id).unwrap_or(&empty)));
                // 1 = a member of the consumer protocol (0 would be a classic member).
                if version >= 1 { described.with_member_type(1) } else { described }
            })
            .collect();
        let mut group = DescribedGroup::default()
            .with_group_id(StrBytes::from_string(self.group_id.clone()).into())
            .with_group_state(StrBytes::from_static_str(self.state().as_str()))
            .with_group_epoch(self.group_epoch)
            .with_assignment_epoch(self.assignment_epoch)
            .with_assignor_name(StrBytes::from_string(self.preferred_assignor(cfg)))
            .with_members(members);
        if include_authorized_operations {
            group.authorized_operations = GROUP_AUTHORIZED_OPERATIONS;
        }
        group
    }
}
