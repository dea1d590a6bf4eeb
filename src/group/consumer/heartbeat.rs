//! ConsumerGroupHeartbeat (join, heartbeat, leave), timers and topic changes.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions as OwnedTopicPartitions;
use kafka_protocol::messages::consumer_group_heartbeat_response::{Assignment as ResponseAssignment, TopicPartitions};
use kafka_protocol::messages::{ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use super::assignor::SUPPORTED;
use super::member::{
    Assignment, JOIN_EPOCH, LEAVE_EPOCH, Member, MemberFenced, MemberState, Reconcile, STATIC_LEAVE_EPOCH, reconcile,
};
use super::subscription::compile_regex;
use super::{ClientInfo, ConsumerGroup, ConsumerGroupConfig, MemberTimers, Outcome, RebalanceTimer, TopicsSnapshot};
use crate::group::records::KeyValue;

/// An error answered in the heartbeat response.
#[derive(Debug)]
struct Refusal {
    error: ResponseError,
    message: String,
}

fn refuse<T>(error: ResponseError, message: impl Into<String>) -> Result<T, Refusal> {
    Err(Refusal { error, message: message.into() })
}

/// The per-call inputs every step needs.
pub(super) struct Context<'a> {
    pub(super) topics: &'a TopicsSnapshot,
    pub(super) now_ms: i64,
    pub(super) cfg: &'a ConsumerGroupConfig,
}

/// Kafka's `throwIfEmptyString`: set, but blank after Java's `trim`.
fn blank(value: &str) -> bool {
    value.chars().all(|c| c <= ' ')
}

/// Kafka's member ids: a random UUID in URL-safe base64 without padding, never starting
/// with `-`.
fn new_member_id() -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    loop {
        let bytes = Uuid::new_v4().into_bytes();
        let mut out = String::with_capacity(22);
        for chunk in bytes.chunks(3) {
            let n = chunk.iter().enumerate().fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
            for i in 0..=chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            }
        }
        if !out.starts_with('-') {
            return out;
        }
    }
}

fn owned_assignment(owned: Option<&Vec<OwnedTopicPartitions>>) -> Option<Assignment> {
    owned.map(|topics| {
        let mut assignment = Assignment::new();
        for t in topics {
            assignment.entry(t.topic_id).or_default().extend(t.partitions.iter().copied());
        }
        assignment.retain(|_, partitions| !partitions.is_empty());
        assignment
    })
}

/// Kafka's request validation (`throwIfConsumerGroupHeartbeatRequestIsInvalid`).
fn validate(req: &ConsumerGroupHeartbeatRequest, version: i16, regex: Option<&str>) -> Result<(), Refusal> {
    let invalid = |message: &str| refuse(ResponseError::InvalidRequest, message);
    if (version >= 1 || req.member_epoch > 0 || req.member_epoch == LEAVE_EPOCH) && blank(&req.member_id) {
        return invalid("MemberId can't be empty.");
    }
    if blank(&req.group_id.0) {
        return invalid("GroupId can't be empty.");
    }
    if req.instance_id.as_deref().is_some_and(blank) {
        return invalid("InstanceId can't be empty.");
    }
    if req.rack_id.as_deref().is_some_and(blank) {
        return invalid("RackId can't be empty.");
    }
    if req.member_epoch == JOIN_EPOCH {
        if req.rebalance_timeout_ms == -1 {
            return invalid("RebalanceTimeoutMs must be provided in first request.");
        }
        if req.topic_partitions.as_ref().is_none_or(|t| !t.is_empty()) {
            return invalid("TopicPartitions must be empty when (re-)joining.");
        }
        let has_names = req.subscribed_topic_names.as_ref().is_some_and(|n| !n.is_empty());
        if !has_names && regex.is_none_or(str::is_empty) {
            return invalid("SubscribedTopicNames or SubscribedTopicRegex must be set in first request.");
        }
    } else if req.member_epoch == STATIC_LEAVE_EPOCH {
        if req.instance_id.is_none() {
            return invalid("InstanceId can't be null.");
        }
    } else if req.member_epoch < STATIC_LEAVE_EPOCH {
        return invalid("MemberEpoch is invalid.");
    }
    if let Some(name) = req.server_assignor.as_deref()
        && !SUPPORTED.contains(&name)
    {
        return refuse(
            ResponseError::UnsupportedAssignor,
            format!("ServerAssignor {name} is not supported. Supported assignors: {}.", SUPPORTED.join(", ")),
        );
    }
    if let Some(pattern) = regex.filter(|r| !r.is_empty())
        && let Err(e) = compile_regex(pattern)
    {
        return refuse(
            ResponseError::InvalidRegularExpression,
            format!("SubscribedTopicRegex `{pattern}` is not a valid regular expression: {e}."),
        );
    }
    Ok(())
}

fn fenced(received: i32, known: i32) -> Result<(), Refusal> {
    let relation = if received > known { "greater" } else { "smaller" };
    refuse(
        ResponseError::FencedMemberEpoch,
        format!(
            "The consumer group member has a {relation} member epoch ({received}) than the one known by the group \
             coordinator ({known}). The member must abandon all its partitions and rejoin."
        ),
    )
}

/// Kafka's `throwIfConsumerGroupMemberEpochIsInvalid` (with KAFKA-19233: epoch 0 rejoins).
fn check_epoch(member: &Member, received: i32, owned: Option<&Assignment>) -> Result<(), Refusal> {
    if received == JOIN_EPOCH {
        return Ok(());
    }
    if received > member.epoch {
        return fenced(received, member.epoch);
    }
    // The previous epoch with owned partitions within the assignment: the response that
    // bumped the epoch was lost.
    if received < member.epoch && (received != member.previous_epoch || !member.owns_subset_of_assigned(owned)) {
        return fenced(received, member.epoch);
    }
    Ok(())
}

fn response_assignment(assignment: &Assignment) -> ResponseAssignment {
    ResponseAssignment::default().with_topic_partitions(
        assignment
            .iter()
            .map(|(id, partitions)| {
                TopicPartitions::default().with_topic_id(*id).with_partitions(partitions.iter().copied().collect())
            })
            .collect(),
    )
}

impl ConsumerGroup {
    /// Handles one ConsumerGroupHeartbeat (versions 0-1). Errors are answered in the
    /// response, with no records and no change to the group.
    pub fn heartbeat(
        &mut self,
        req: &ConsumerGroupHeartbeatRequest,
        version: i16,
        client: &ClientInfo<'_>,
        topics: &TopicsSnapshot,
        now_ms: i64,
        cfg: &ConsumerGroupConfig,
    ) -> Outcome<ConsumerGroupHeartbeatResponse> {
        let ctx = Context { topics, now_ms, cfg };
        let mut records = Vec::new();
        match self.try_heartbeat(req, version, client, &ctx, &mut records) {
            Ok(response) => Outcome { response, records },
            Err(refusal) => Outcome {
                response: ConsumerGroupHeartbeatResponse::default()
                    .with_error_code(refusal.error.code())
                    .with_error_message(Some(StrBytes::from_string(refusal.message))),
                records: Vec::new(),
            },
        }
    }

    fn try_heartbeat(
        &mut self,
        req: &ConsumerGroupHeartbeatRequest,
        version: i16,
        client: &ClientInfo<'_>,
        ctx: &Context<'_>,
        records: &mut Vec<KeyValue>,
    ) -> Result<ConsumerGroupHeartbeatResponse, Refusal> {
        // The field only exists from v1.
        let regex = if version >= 1 { req.subscribed_topic_regex.as_deref() } else { None };
        validate(req, version, regex)?;
        if self.dead && req.member_epoch == JOIN_EPOCH {
            // A deleted group starts over (Kafka creates a new group object).
            *self = ConsumerGroup::new(&self.group_id.clone());
        }
        if req.member_epoch == LEAVE_EPOCH || req.member_epoch == STATIC_LEAVE_EPOCH {
            return self.leave(req, ctx, records);
        }
        if !self.exists() && req.member_epoch != JOIN_EPOCH {
            return refuse(ResponseError::GroupIdNotFound, format!("Consumer group {} not found.", self.group_id));
        }
        let member_id = if req.member_id.is_empty() { new_member_id() } else { req.member_id.to_string() };
        if self.members.len() >= ctx.cfg.max_size && !self.members.contains_key(&member_id) {
            return refuse(
                ResponseError::GroupMaxSizeReached,
                format!("The consumer group has reached its maximum capacity of {} members.", ctx.cfg.max_size),
            );
        }
        let owned = owned_assignment(req.topic_partitions.as_ref());
        let (member, replaced) = self.resolve_member(req, &member_id, owned.as_ref())?;
        if member.state == MemberState::Unknown && owned.as_ref().is_none_or(|o| !o.is_empty()) {
            return refuse(
                ResponseError::FencedMemberEpoch,
                "The consumer group member is in a unknown state. The member must abandon all its partitions and rejoin.",
            );
        }

        // From here on nothing fails: apply.
        let is_new = !self.members.contains_key(&member_id) && replaced.is_none();
        if let Some(old_id) = replaced {
            self.replace_static_member(&old_id, &member, records);
        }
        let mut updated = member.clone();
        if let Some(instance_id) = &req.instance_id {
            updated.instance_id = Some(instance_id.to_string());
        }
        if let Some(rack_id) = &req.rack_id {
            updated.rack_id = Some(rack_id.to_string());
        }
        if req.rebalance_timeout_ms != -1 {
            updated.rebalance_timeout_ms = req.rebalance_timeout_ms;
        }
        if let Some(assignor) = &req.server_assignor {
            updated.server_assignor = Some(assignor.to_string());
        }
        if let Some(names) = &req.subscribed_topic_names {
            updated.subscribed_topic_names = names.iter().map(|n| n.0.to_string()).collect();
        }
        if let Some(regex) = regex {
            updated.subscribed_topic_regex = Some(regex.to_string()).filter(|r| !r.is_empty());
        }
        updated.client_id = client.client_id.to_string();
        updated.client_host = client.client_host.to_string();

        let subscription_changed = updated.subscribed_topic_names != member.subscribed_topic_names
            || updated.subscribed_topic_regex != member.subscribed_topic_regex;
        if is_new || !updated.same_metadata(&member) {
            records.push(self.member_metadata_record(&updated));
        }
        self.members.insert(member_id.clone(), updated.clone());
        let regexes_changed = self.refresh_regexes(ctx, false, records);
        self.maybe_bump_group_epoch(subscription_changed || regexes_changed, ctx, records);

        // Reconcile this member towards its target.
        let target = self.target.get(&member_id).cloned().unwrap_or_default();
        let owned_by_others = self.owned_partitions_except(&member_id);
        let input = Reconcile {
            target_epoch: self.assignment_epoch,
            target: &target,
            owned_by_others: &owned_by_others,
            owned: owned.as_ref(),
        };
        let reconciled = if updated.is_reconciled_to(self.assignment_epoch) {
            updated.clone()
        } else {
            reconcile(&updated, &input).map_err(|MemberFenced| Refusal {
                error: ResponseError::FencedMemberEpoch,
                message: "The member must abandon all its partitions and rejoin.".into(),
            })?
        };
        if !reconciled.same_current_assignment(&updated) {
            records.push(self.current_assignment_record(&reconciled));
        }
        let timers =
            self.timers.entry(member_id.clone()).or_insert(MemberTimers { session_deadline_ms: 0, rebalance: None });
        timers.session_deadline_ms = ctx.now_ms.saturating_add(i64::from(ctx.cfg.session_timeout_ms));
        if !reconciled.same_current_assignment(&updated) || is_new {
            timers.rebalance = (reconciled.state == MemberState::UnrevokedPartitions).then(|| RebalanceTimer {
                deadline_ms: ctx.now_ms.saturating_add(i64::from(reconciled.rebalance_timeout_ms.max(0))),
                epoch: reconciled.epoch,
            });
        }
        self.members.insert(member_id.clone(), reconciled.clone());

        let mut response = ConsumerGroupHeartbeatResponse::default()
            .with_member_id(Some(StrBytes::from_string(member_id)))
            .with_member_epoch(reconciled.epoch)
            .with_heartbeat_interval_ms(ctx.cfg.heartbeat_interval_ms);
        let full_request = req.member_epoch == JOIN_EPOCH
            || (req.rebalance_timeout_ms != -1
                && (req.subscribed_topic_names.is_some() || regex.is_some())
                && req.topic_partitions.is_some());
        if full_request || reconciled.assigned != member.assigned {
            response.assignment = Some(response_assignment(&reconciled.assigned));
        }
        Ok(response)
    }

    /// The member a (non-leave) heartbeat is for, and the member id a static member
    /// replaces. Changes nothing.
    fn resolve_member(
        &self,
        req: &ConsumerGroupHeartbeatRequest,
        member_id: &str,
        owned: Option<&Assignment>,
    ) -> Result<(Member, Option<String>), Refusal> {
        let joining = req.member_epoch == JOIN_EPOCH;
        let Some(instance_id) = req.instance_id.as_deref() else {
            return match self.members.get(member_id) {
                Some(member) => check_epoch(member, req.member_epoch, owned).map(|()| (member.clone(), None)),
                None if joining => Ok((Member::new(member_id), None)),
                None => refuse(
                    ResponseError::UnknownMemberId,
                    format!("Member {member_id} is not a member of group {}.", self.group_id),
                ),
            };
        };
        match self.static_member(instance_id) {
            // A fenced static member rejoining with its own member id.
            Some(existing) if existing.member_id == member_id => {
                check_epoch(existing, req.member_epoch, owned).map(|()| (existing.clone(), None))
            }
            Some(existing) if joining => {
                if existing.epoch != STATIC_LEAVE_EPOCH {
                    return refuse(
                        ResponseError::UnreleasedInstanceId,
                        format!(
                            "Static member {member_id} with instance id {instance_id} cannot join the group because \
                             the instance id is owned by {} member.",
                            existing.member_id
                        ),
                    );
                }
                // Take over the departed member: its subscription and assignment, a new id.
                let mut member = existing.clone();
                member.member_id = member_id.to_string();
                member.epoch = JOIN_EPOCH;
                member.previous_epoch = JOIN_EPOCH;
                Ok((member, Some(existing.member_id.clone())))
            }
            Some(existing) => refuse(
                ResponseError::FencedInstanceId,
                format!(
                    "Static member {member_id} with instance id {instance_id} was fenced by member {}.",
                    existing.member_id
                ),
            ),
            None if joining => {
                Ok((self.members.get(member_id).cloned().unwrap_or_else(|| Member::new(member_id)), None))
            }
            None => refuse(ResponseError::UnknownMemberId, format!("Instance id {instance_id} is unknown.")),
        }
    }

    fn static_member(&self, instance_id: &str) -> Option<&Member> {
        self.members.values().find(|m| m.instance_id.as_deref() == Some(instance_id))
    }

    /// Kafka's `replaceMember`: the old member's records are deleted and the new member
    /// written with the old target and current assignment.
    fn replace_static_member(&mut self, old_id: &str, new_member: &Member, records: &mut Vec<KeyValue>) {
        records.extend(self.member_tombstones(old_id));
        self.members.remove(old_id);
        self.timers.remove(old_id);
        let target = self.target.remove(old_id).unwrap_or_default();
        records.push(self.member_metadata_record(new_member));
        records.push(self.target_member_record(&new_member.member_id, &target));
        records.push(self.current_assignment_record(new_member));
        self.target.insert(new_member.member_id.clone(), target);
        self.members.insert(new_member.member_id.clone(), new_member.clone());
    }

    fn leave(
        &mut self,
        req: &ConsumerGroupHeartbeatRequest,
        ctx: &Context<'_>,
        records: &mut Vec<KeyValue>,
    ) -> Result<ConsumerGroupHeartbeatResponse, Refusal> {
        if !self.exists() {
            return refuse(ResponseError::GroupIdNotFound, format!("Consumer group {} not found.", self.group_id));
        }
        let member_id = req.member_id.to_string();
        let response = |epoch| {
            ConsumerGroupHeartbeatResponse::default()
                .with_member_id(Some(StrBytes::from_string(member_id.clone())))
                .with_member_epoch(epoch)
        };
        let Some(instance_id) = req.instance_id.as_deref() else {
            if !self.members.contains_key(&member_id) {
                return refuse(
                    ResponseError::UnknownMemberId,
                    format!("Member {member_id} is not a member of group {}.", self.group_id),
                );
            }
            self.remove_member(&member_id, ctx, records);
            return Ok(response(req.member_epoch));
        };
        let Some(existing) = self.static_member(instance_id) else {
            return refuse(ResponseError::UnknownMemberId, format!("Instance id {instance_id} is unknown."));
        };
        if existing.member_id != member_id {
            return refuse(
                ResponseError::FencedInstanceId,
                format!(
                    "Static member {member_id} with instance id {instance_id} was fenced by member {}.",
                    existing.member_id
                ),
            );
        }
        if req.member_epoch == STATIC_LEAVE_EPOCH {
            // Leaves temporarily: keeps its assignment until its session expires.
            let mut departed = existing.clone();
            departed.epoch = STATIC_LEAVE_EPOCH;
            departed.pending_revocation = Assignment::new();
            records.push(self.current_assignment_record(&departed));
            if let Some(timers) = self.timers.get_mut(&member_id) {
                timers.rebalance = None;
            }
            self.members.insert(member_id.clone(), departed);
            return Ok(response(STATIC_LEAVE_EPOCH));
        }
        self.remove_member(&member_id, ctx, records);
        Ok(response(req.member_epoch))
    }

    /// Kafka's `consumerGroupFenceMember`: tombstones, a group epoch bump and (Jet
    /// computes it right away) a new target assignment.
    pub(super) fn remove_member(&mut self, member_id: &str, ctx: &Context<'_>, records: &mut Vec<KeyValue>) {
        records.extend(self.member_tombstones(member_id));
        self.members.remove(member_id);
        self.target.remove(member_id);
        self.timers.remove(member_id);
        self.refresh_regexes(ctx, false, records);
        self.maybe_bump_group_epoch(true, ctx, records);
    }
}
