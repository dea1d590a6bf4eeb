//! Joining a classic group: new, known and static members, and the join phase of a
//! rebalance (prepare, complete, protocol selection).

use bytes::Bytes;
use kafka_protocol::ResponseError;
use tokio::sync::oneshot;

use super::{
    ClassicConfig, ClassicGroup, ClassicState, Effects, InitialDelay, JoinOutcome, JoinRequest, JoinedMember, Member,
    Reply, SyncOutcome,
};

impl ClassicGroup {
    /// JoinGroup. `effects` collects other members' parked requests this completes.
    pub fn join(
        &mut self,
        req: JoinRequest,
        cfg: &ClassicConfig,
        now_ms: i64,
        effects: &mut Effects,
    ) -> Reply<JoinOutcome> {
        let fail = |e| Reply::Now(JoinOutcome::error(e, &req.member_id));
        if !(cfg.min_session_timeout_ms..=cfg.max_session_timeout_ms).contains(&req.session_timeout_ms) {
            return fail(ResponseError::InvalidSessionTimeout);
        }
        if self.state == ClassicState::Dead {
            return fail(ResponseError::CoordinatorNotAvailable);
        }
        if !self.supports_protocols(&req.protocol_type, &req.protocols) {
            return fail(ResponseError::InconsistentGroupProtocol);
        }
        if req.member_id.is_empty() {
            self.join_new_member(req, cfg, now_ms, effects)
        } else {
            self.join_existing_member(req, cfg, now_ms, effects)
        }
    }

    /// Kafka's rule: a group with members only admits the same protocol type and at
    /// least one protocol every member supports.
    fn supports_protocols(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if protocol_type.is_empty() || protocols.is_empty() {
            return false;
        }
        if self.members.is_empty() {
            return true;
        }
        self.protocol_type.as_deref() == Some(protocol_type)
            && protocols
                .iter()
                .any(|(name, _)| self.members.values().all(|m| m.protocols.iter().any(|(n, _)| n == name)))
    }

    fn join_new_member(
        &mut self,
        req: JoinRequest,
        cfg: &ClassicConfig,
        now_ms: i64,
        effects: &mut Effects,
    ) -> Reply<JoinOutcome> {
        let prefix = req.group_instance_id.as_deref().unwrap_or(&req.client_id);
        let member_id = format!("{prefix}-{}", uuid::Uuid::new_v4());
        if let Some(instance) = req.group_instance_id.clone() {
            if let Some(old_id) = self.static_members.get(&instance).cloned() {
                return self.replace_static_member(old_id, member_id, req, cfg, now_ms, effects);
            }
        } else if req.require_known_member_id {
            if self.members.len() + self.pending_members.len() >= cfg.max_size {
                return Reply::Now(JoinOutcome::error(ResponseError::GroupMaxSizeReached, ""));
            }
            self.pending_members.insert(member_id.clone(), now_ms + i64::from(req.session_timeout_ms));
            return Reply::Now(JoinOutcome::error(ResponseError::MemberIdRequired, &member_id));
        }
        if self.members.len() >= cfg.max_size {
            return Reply::Now(JoinOutcome::error(ResponseError::GroupMaxSizeReached, ""));
        }
        self.add_member_and_rebalance(member_id, req, cfg, now_ms, effects)
    }

    fn join_existing_member(
        &mut self,
        req: JoinRequest,
        cfg: &ClassicConfig,
        now_ms: i64,
        effects: &mut Effects,
    ) -> Reply<JoinOutcome> {
        let id = req.member_id.clone();
        if self.pending_members.remove(&id).is_some() {
            return self.add_member_and_rebalance(id, req, cfg, now_ms, effects);
        }
        if let Err(e) = self.validate_member(&id, req.group_instance_id.as_deref()) {
            return Reply::Now(JoinOutcome::error(e, &id));
        }
        let Some(member) = self.members.get(&id) else {
            return Reply::Now(JoinOutcome::error(ResponseError::UnknownMemberId, &id));
        };
        let unchanged = member.protocols == req.protocols;
        tracing::debug!(group = %self.group_id, member = %id, state = self.state.name(), unchanged, "member rejoins");
        match self.state {
            ClassicState::CompletingRebalance if unchanged => {
                // A resent join: answer with the generation that already completed.
                Reply::Now(self.join_outcome_for(&id))
            }
            ClassicState::Stable if unchanged && self.leader.as_deref() != Some(id.as_str()) => {
                Reply::Now(self.join_outcome_for(&id))
            }
            _ => {
                let (tx, rx) = oneshot::channel();
                if let Some(m) = self.members.get_mut(&id) {
                    update_member(m, &req, tx, now_ms);
                }
                if self.state == ClassicState::PreparingRebalance {
                    self.maybe_complete_join(now_ms, effects);
                } else {
                    self.prepare_rebalance(
                        cfg,
                        now_ms,
                        effects,
                        "a member rejoined with changed protocols (or is the leader)",
                    );
                }
                Reply::Wait(rx)
            }
        }
    }

    /// KIP-345: a static member rejoining with a new member id takes the old one's place.
    fn replace_static_member(
        &mut self,
        old_id: String,
        new_id: String,
        req: JoinRequest,
        cfg: &ClassicConfig,
        now_ms: i64,
        effects: &mut Effects,
    ) -> Reply<JoinOutcome> {
        // The new incarnation takes the old one's place in the join order too.
        let position = self.members.get_index_of(&old_id);
        let Some(mut member) = self.members.shift_remove(&old_id) else {
            return self.add_member_and_rebalance(new_id, req, cfg, now_ms, effects);
        };
        // The old incarnation's parked requests learn they were replaced.
        if let Some(tx) = member.awaiting_join.take() {
            effects.joins.push((tx, JoinOutcome::error(ResponseError::FencedInstanceId, &old_id)));
        }
        if let Some(tx) = member.awaiting_sync.take() {
            effects.syncs.push((tx, SyncOutcome::error(ResponseError::FencedInstanceId)));
        }
        let was_leader = self.leader.as_deref() == Some(old_id.as_str());
        if let Some(instance) = &req.group_instance_id {
            self.static_members.insert(instance.clone(), new_id.clone());
        }
        if was_leader {
            self.leader = Some(new_id.clone());
        }
        self.pending_sync.retain(|m| m != &old_id);
        let (tx, rx) = oneshot::channel();
        update_member(&mut member, &req, tx, now_ms);
        let position = position.unwrap_or(self.members.len()).min(self.members.len());
        self.members.shift_insert(position, new_id.clone(), member);
        // Kafka rebalances a stable group only if the new member's protocols would change
        // the group's protocol; its metadata (e.g. owned partitions, now empty after a
        // restart) may differ.
        let same_protocol = self.select_protocol() == self.protocol_name;
        match self.state {
            ClassicState::Stable if same_protocol => {
                // Keep the assignment, no rebalance.
                if let Some(m) = self.members.get_mut(&new_id) {
                    m.awaiting_join = None;
                }
                effects.persist = true;
                let mut outcome = self.join_outcome_for(&new_id);
                outcome.skip_assignment = was_leader;
                Reply::Now(outcome)
            }
            ClassicState::PreparingRebalance => {
                self.maybe_complete_join(now_ms, effects);
                Reply::Wait(rx)
            }
            _ => {
                self.prepare_rebalance(
                    cfg,
                    now_ms,
                    effects,
                    "a static member rejoined with protocols that change the group's",
                );
                Reply::Wait(rx)
            }
        }
    }

    fn add_member_and_rebalance(
        &mut self,
        member_id: String,
        req: JoinRequest,
        cfg: &ClassicConfig,
        now_ms: i64,
        effects: &mut Effects,
    ) -> Reply<JoinOutcome> {
        let (tx, rx) = oneshot::channel();
        if let Some(instance) = &req.group_instance_id {
            self.static_members.insert(instance.clone(), member_id.clone());
        }
        if self.members.is_empty() {
            self.protocol_type = Some(req.protocol_type.clone());
        }
        let mut member = Member {
            group_instance_id: req.group_instance_id.clone(),
            client_id: String::new(),
            client_host: String::new(),
            session_timeout_ms: 0,
            rebalance_timeout_ms: 0,
            protocols: Vec::new(),
            assignment: Bytes::new(),
            awaiting_join: None,
            awaiting_sync: None,
            session_deadline: 0,
        };
        update_member(&mut member, &req, tx, now_ms);
        if self.leader.is_none() {
            self.leader = Some(member_id.clone());
        }
        self.members.insert(member_id, member);
        if let (ClassicState::PreparingRebalance, Some(delay)) = (self.state, self.initial_delay) {
            // A member arriving during the initial delay extends it (up to its limit).
            let extended = now_ms + i64::from(cfg.initial_rebalance_delay_ms);
            self.rebalance_deadline = Some(extended.min(delay.limit));
        }
        if self.state == ClassicState::PreparingRebalance {
            self.maybe_complete_join(now_ms, effects);
        } else {
            self.prepare_rebalance(cfg, now_ms, effects, "a new member joined");
        }
        Reply::Wait(rx)
    }

    pub(super) fn prepare_rebalance(&mut self, cfg: &ClassicConfig, now_ms: i64, effects: &mut Effects, reason: &str) {
        tracing::info!(group = %self.group_id, generation = self.generation, reason, "preparing to rebalance");
        if self.state == ClassicState::CompletingRebalance {
            // The leader's assignment for the old generation will never come.
            for m in self.members.values_mut() {
                m.assignment = Bytes::new();
                if let Some(tx) = m.awaiting_sync.take() {
                    effects.syncs.push((tx, SyncOutcome::error(ResponseError::RebalanceInProgress)));
                }
            }
        }
        self.pending_sync.clear();
        self.sync_deadline = None;
        let max_rebalance = self.members.values().map(|m| i64::from(m.rebalance_timeout_ms)).max().unwrap_or(0);
        if self.state == ClassicState::Empty && cfg.initial_rebalance_delay_ms > 0 {
            let limit = now_ms + max_rebalance;
            self.initial_delay = Some(InitialDelay { limit });
            self.rebalance_deadline = Some((now_ms + i64::from(cfg.initial_rebalance_delay_ms)).min(limit));
        } else {
            self.initial_delay = None;
            self.rebalance_deadline = Some(now_ms + max_rebalance);
        }
        self.transition(ClassicState::PreparingRebalance, now_ms);
        self.maybe_complete_join(now_ms, effects);
    }

    /// Completes the join phase once every member has rejoined (outside an initial delay).
    pub(super) fn maybe_complete_join(&mut self, now_ms: i64, effects: &mut Effects) {
        let all_joined = self.members.values().all(|m| m.awaiting_join.is_some()) && self.pending_members.is_empty();
        if self.state == ClassicState::PreparingRebalance && all_joined && self.initial_delay.is_none() {
            self.complete_join(now_ms, effects);
        }
    }

    pub(super) fn complete_join(&mut self, now_ms: i64, effects: &mut Effects) {
        // Whoever did not rejoin in time is out of the group.
        let gone: Vec<String> =
            self.members.iter().filter(|(_, m)| m.awaiting_join.is_none()).map(|(id, _)| id.clone()).collect();
        for id in gone {
            self.remove_member(&id, effects);
        }
        self.rebalance_deadline = None;
        self.initial_delay = None;
        self.generation += 1;
        if self.members.is_empty() {
            self.protocol_name = None;
            self.leader = None;
            self.transition(ClassicState::Empty, now_ms);
            effects.persist = true;
            return;
        }
        self.protocol_name = self.select_protocol();
        if !self.leader.as_ref().is_some_and(|l| self.members.contains_key(l)) {
            self.leader = self.members.keys().next().cloned();
        }
        self.transition(ClassicState::CompletingRebalance, now_ms);
        tracing::info!(
            group = %self.group_id,
            generation = self.generation,
            members = self.members.len(),
            protocol = self.protocol_name.as_deref().unwrap_or_default(),
            "rebalance completed: waiting for the leader's assignment"
        );
        self.pending_sync = self.members.keys().cloned().collect();
        let max_rebalance = self.members.values().map(|m| i64::from(m.rebalance_timeout_ms)).max().unwrap_or(0);
        self.sync_deadline = Some(now_ms + max_rebalance);
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            let outcome = self.join_outcome_for(&id);
            if let Some(m) = self.members.get_mut(&id) {
                m.session_deadline = now_ms + i64::from(m.session_timeout_ms);
                if let Some(tx) = m.awaiting_join.take() {
                    effects.joins.push((tx, outcome));
                }
            }
        }
    }

    /// The protocol with the most first-choice votes among those every member supports.
    pub(super) fn select_protocol(&self) -> Option<String> {
        let first = self.members.values().next()?;
        let candidates: Vec<&String> = first
            .protocols
            .iter()
            .map(|(name, _)| name)
            .filter(|name| self.members.values().all(|m| m.protocols.iter().any(|(n, _)| n == *name)))
            .collect();
        let votes = |candidate: &String| {
            self.members
                .values()
                .filter(|m| m.protocols.iter().map(|(n, _)| n).find(|n| candidates.contains(n)) == Some(candidate))
                .count()
        };
        // Ties go to the earliest in the first member's preference order.
        let mut best: Option<(&String, usize)> = None;
        for c in &candidates {
            let v = votes(c);
            if best.is_none_or(|(_, bv)| v > bv) {
                best = Some((c, v));
            }
        }
        best.map(|(c, _)| c.clone())
    }

    fn join_outcome_for(&self, member_id: &str) -> JoinOutcome {
        let protocol = self.protocol_name.clone().unwrap_or_default();
        let is_leader = self.leader.as_deref() == Some(member_id);
        let members = if is_leader {
            self.members
                .iter()
                .map(|(id, m)| JoinedMember {
                    member_id: id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    metadata: m.metadata_for(&protocol),
                })
                .collect()
        } else {
            Vec::new()
        };
        JoinOutcome {
            error: None,
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader: self.leader.clone().unwrap_or_default(),
            member_id: member_id.to_string(),
            skip_assignment: false,
            members,
        }
    }
}

/// Applies a join's details to a member and parks its join.
fn update_member(m: &mut Member, req: &JoinRequest, awaiting: oneshot::Sender<JoinOutcome>, now_ms: i64) {
    m.client_id.clone_from(&req.client_id);
    m.client_host.clone_from(&req.client_host);
    m.session_timeout_ms = req.session_timeout_ms;
    m.rebalance_timeout_ms = req.rebalance_timeout_ms;
    m.protocols.clone_from(&req.protocols);
    m.awaiting_join = Some(awaiting);
    m.session_deadline = now_ms + i64::from(req.session_timeout_ms);
}
