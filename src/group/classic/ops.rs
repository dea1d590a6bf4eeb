//! The classic group's other operations: member checks, sync, heartbeat, leave and
//! deadlines.

use bytes::Bytes;
use kafka_protocol::ResponseError;
use tokio::sync::oneshot;

use super::{ClassicConfig, ClassicGroup, ClassicState, Effects, JoinOutcome, Reply, SyncOutcome, SyncRequest};

/// One member of a LeaveGroup request.
#[derive(Debug, Clone)]
pub struct LeaveMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
}

impl ClassicGroup {
    /// Checks that `member_id` is a member and is the current owner of `instance_id`.
    pub(super) fn validate_member(&self, member_id: &str, instance_id: Option<&str>) -> Result<(), ResponseError> {
        if let Some(instance) = instance_id {
            match self.static_members.get(instance) {
                Some(owner) if owner == member_id => {}
                Some(_) => return Err(ResponseError::FencedInstanceId),
                None if self.members.contains_key(member_id) => return Err(ResponseError::FencedInstanceId),
                None => return Err(ResponseError::UnknownMemberId),
            }
        }
        if self.members.contains_key(member_id) { Ok(()) } else { Err(ResponseError::UnknownMemberId) }
    }

    /// Checks a member and generation for OffsetCommit / Heartbeat-like requests.
    pub fn validate_generation(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Result<(), ResponseError> {
        self.validate_member(member_id, instance_id)?;
        if generation != self.generation {
            return Err(ResponseError::IllegalGeneration);
        }
        Ok(())
    }

    /// Kafka's OffsetCommit rules for a classic group.
    pub fn validate_offset_commit(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Result<(), ResponseError> {
        match self.state {
            ClassicState::Dead => return Err(ResponseError::CoordinatorNotAvailable),
            // A standalone (admin / assign()) commit with no generation: only when no
            // members own the partitions.
            _ if generation < 0 && member_id.is_empty() && instance_id.is_none() => {
                return if self.members.is_empty() { Ok(()) } else { Err(ResponseError::UnknownMemberId) };
            }
            _ => {}
        }
        self.validate_generation(member_id, instance_id, generation)?;
        if self.state == ClassicState::CompletingRebalance {
            return Err(ResponseError::RebalanceInProgress);
        }
        Ok(())
    }

    /// SyncGroup. The leader's request carries every member's assignment.
    pub fn sync(&mut self, req: SyncRequest, now_ms: i64, effects: &mut Effects) -> Reply<SyncOutcome> {
        let SyncRequest { member_id, group_instance_id, generation, protocol_type, protocol_name, assignments } = req;
        let (member_id, instance_id) = (member_id.as_str(), group_instance_id.as_deref());
        let (protocol_type, protocol_name) = (protocol_type.as_deref(), protocol_name.as_deref());
        let fail = |e| Reply::Now(SyncOutcome::error(e));
        match self.state {
            ClassicState::Dead => return fail(ResponseError::CoordinatorNotAvailable),
            ClassicState::Empty => return fail(ResponseError::UnknownMemberId),
            _ => {}
        }
        if let Err(e) = self.validate_generation(member_id, instance_id, generation) {
            return fail(e);
        }
        if protocol_type.is_some_and(|t| Some(t) != self.protocol_type.as_deref())
            || protocol_name.is_some_and(|n| Some(n) != self.protocol_name.as_deref())
        {
            return fail(ResponseError::InconsistentGroupProtocol);
        }
        tracing::debug!(group = %self.group_id, member = %member_id, generation, state = self.state.name(), "sync");
        self.pending_sync.retain(|m| m != member_id);
        if self.pending_sync.is_empty() {
            self.sync_deadline = None;
        }
        match self.state {
            ClassicState::PreparingRebalance => fail(ResponseError::RebalanceInProgress),
            ClassicState::Stable => Reply::Now(self.sync_outcome_for(member_id)),
            _ => {
                let (tx, rx) = oneshot::channel();
                if let Some(m) = self.members.get_mut(member_id) {
                    m.awaiting_sync = Some(tx);
                    m.session_deadline = now_ms + i64::from(m.session_timeout_ms);
                }
                if self.leader.as_deref() == Some(member_id) {
                    let mut assignments: std::collections::HashMap<String, Bytes> = assignments.into_iter().collect();
                    for (id, m) in self.members.iter_mut() {
                        m.assignment = assignments.remove(id).unwrap_or_default();
                    }
                    self.transition(ClassicState::Stable, now_ms);
                    effects.persist = true;
                    let ids: Vec<String> = self.members.keys().cloned().collect();
                    for id in ids {
                        let outcome = self.sync_outcome_for(&id);
                        if let Some(tx) = self.members.get_mut(&id).and_then(|m| m.awaiting_sync.take()) {
                            effects.syncs.push((tx, outcome));
                        }
                    }
                }
                Reply::Wait(rx)
            }
        }
    }

    fn sync_outcome_for(&self, member_id: &str) -> SyncOutcome {
        SyncOutcome {
            error: None,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            assignment: self.members.get(member_id).map(|m| m.assignment.clone()).unwrap_or_default(),
        }
    }

    /// Heartbeat: keeps a member's session alive and tells it about rebalances.
    pub fn heartbeat(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        now_ms: i64,
    ) -> Result<(), ResponseError> {
        match self.state {
            ClassicState::Dead => return Err(ResponseError::CoordinatorNotAvailable),
            ClassicState::Empty => return Err(ResponseError::UnknownMemberId),
            _ => {}
        }
        self.validate_generation(member_id, instance_id, generation)?;
        if let Some(m) = self.members.get_mut(member_id) {
            m.session_deadline = now_ms + i64::from(m.session_timeout_ms);
        }
        if self.state == ClassicState::PreparingRebalance {
            return Err(ResponseError::RebalanceInProgress);
        }
        Ok(())
    }

    /// LeaveGroup: one result per member, in request order.
    pub fn leave(
        &mut self,
        leaving: &[LeaveMember],
        cfg: &ClassicConfig,
        now_ms: i64,
        effects: &mut Effects,
    ) -> Vec<Result<(), ResponseError>> {
        let mut removed = false;
        let results = leaving
            .iter()
            .map(|l| {
                let id = match &l.group_instance_id {
                    Some(instance) => match self.static_members.get(instance) {
                        Some(owner) if l.member_id.is_empty() || *owner == l.member_id => owner.clone(),
                        Some(_) => return Err(ResponseError::FencedInstanceId),
                        None => return Err(ResponseError::UnknownMemberId),
                    },
                    None => l.member_id.clone(),
                };
                if self.pending_members.remove(&id).is_some() {
                    return Ok(());
                }
                if !self.members.contains_key(&id) {
                    return Err(ResponseError::UnknownMemberId);
                }
                self.remove_member(&id, effects);
                removed = true;
                Ok(())
            })
            .collect();
        if removed {
            self.after_members_removed(cfg, now_ms, effects);
        }
        results
    }

    /// Removes a member, answering its parked requests.
    pub(super) fn remove_member(&mut self, id: &str, effects: &mut Effects) {
        let Some(mut m) = self.members.shift_remove(id) else { return };
        if let Some(tx) = m.awaiting_join.take() {
            effects.joins.push((tx, JoinOutcome::error(ResponseError::UnknownMemberId, id)));
        }
        if let Some(tx) = m.awaiting_sync.take() {
            effects.syncs.push((tx, SyncOutcome::error(ResponseError::UnknownMemberId)));
        }
        if let Some(instance) = &m.group_instance_id
            && self.static_members.get(instance).map(String::as_str) == Some(id)
        {
            self.static_members.remove(instance);
        }
        self.pending_sync.retain(|p| p != id);
        if self.leader.as_deref() == Some(id) {
            self.leader = self.members.keys().next().cloned();
        }
    }

    pub(super) fn after_members_removed(&mut self, cfg: &ClassicConfig, now_ms: i64, effects: &mut Effects) {
        match self.state {
            ClassicState::Stable | ClassicState::CompletingRebalance => {
                self.prepare_rebalance(cfg, now_ms, effects, "members left or expired")
            }
            ClassicState::PreparingRebalance => self.maybe_complete_join(now_ms, effects),
            ClassicState::Empty | ClassicState::Dead => {}
        }
    }

    /// Handles every deadline that has passed by `now_ms`.
    pub fn on_deadline(&mut self, cfg: &ClassicConfig, now_ms: i64, effects: &mut Effects) {
        self.pending_members.retain(|_, deadline| *deadline > now_ms);
        let expired: Vec<String> = self
            .members
            .iter()
            .filter(|(_, m)| m.awaiting_join.is_none() && m.session_deadline <= now_ms)
            .map(|(id, _)| id.clone())
            .collect();
        let mut removed = !expired.is_empty();
        for id in &expired {
            tracing::info!(group = %self.group_id, member = %id, "member session expired");
            self.remove_member(id, effects);
        }
        if self.sync_deadline.is_some_and(|d| d <= now_ms) {
            let unsynced = std::mem::take(&mut self.pending_sync);
            self.sync_deadline = None;
            for id in &unsynced {
                tracing::info!(group = %self.group_id, member = %id, "member did not sync in time");
                self.remove_member(id, effects);
                removed = true;
            }
        }
        if removed {
            self.after_members_removed(cfg, now_ms, effects);
        }
        if self.state != ClassicState::PreparingRebalance {
            self.rebalance_deadline = None;
        } else if self.rebalance_deadline.is_some_and(|d| d <= now_ms) {
            self.initial_delay = None;
            self.complete_join(now_ms, effects);
        } else {
            self.maybe_complete_join(now_ms, effects);
        }
    }
}
