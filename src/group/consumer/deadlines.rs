//! Session and rebalance timeouts, reloading, and topic changes.

use super::heartbeat::Context;
use super::member::MemberState;
use super::{ConsumerGroup, ConsumerGroupConfig, MemberTimers, RebalanceTimer, TopicsSnapshot};
use crate::group::records::KeyValue;

impl ConsumerGroup {
    /// Arms timers after [`ConsumerGroup::replay`]: every member gets a full session, and
    /// members revoking get their rebalance timeout (Kafka's `onLoaded`).
    pub fn on_loaded(&mut self, now_ms: i64, cfg: &ConsumerGroupConfig) {
        self.timers = self
            .members
            .values()
            .map(|m| {
                let rebalance = (m.state == MemberState::UnrevokedPartitions).then(|| RebalanceTimer {
                    deadline_ms: now_ms.saturating_add(i64::from(m.rebalance_timeout_ms.max(0))),
                    epoch: m.epoch,
                });
                let session_deadline_ms = now_ms.saturating_add(i64::from(cfg.session_timeout_ms));
                (m.member_id.clone(), MemberTimers { session_deadline_ms, rebalance })
            })
            .collect();
    }

    /// The earliest time [`ConsumerGroup::on_deadline`] has something to do.
    pub fn next_deadline(&self) -> Option<i64> {
        self.timers
            .values()
            .flat_map(|t| std::iter::once(t.session_deadline_ms).chain(t.rebalance.map(|r| r.deadline_ms)))
            .min()
    }

    /// Removes members whose session expired and members that did not revoke within their
    /// rebalance timeout.
    pub fn on_deadline(&mut self, now_ms: i64, topics: &TopicsSnapshot, cfg: &ConsumerGroupConfig) -> Vec<KeyValue> {
        let ctx = Context { topics, now_ms, cfg };
        let mut records = Vec::new();
        let mut expired = Vec::new();
        for (member_id, timers) in &mut self.timers {
            let epoch = self.members.get(member_id).map(|m| m.epoch);
            if let Some(rebalance) = timers.rebalance
                && rebalance.deadline_ms <= now_ms
            {
                timers.rebalance = None;
                if epoch == Some(rebalance.epoch) {
                    expired.push(member_id.clone());
                    continue;
                }
            }
            if timers.session_deadline_ms <= now_ms {
                expired.push(member_id.clone());
            }
        }
        for member_id in expired {
            if self.members.contains_key(&member_id) {
                self.remove_member(&member_id, &ctx, &mut records);
            } else {
                self.timers.remove(&member_id);
            }
        }
        records
    }

    /// A topic was created or deleted, or partitions were added: re-resolves regular
    /// expressions and, if the subscribed topics changed, bumps the group epoch and
    /// computes a new target assignment.
    pub fn on_topics_changed(
        &mut self,
        topics: &TopicsSnapshot,
        now_ms: i64,
        cfg: &ConsumerGroupConfig,
    ) -> Vec<KeyValue> {
        let ctx = Context { topics, now_ms, cfg };
        let mut records = Vec::new();
        if self.members.is_empty() {
            return records;
        }
        let changed = self.refresh_regexes(&ctx, true, &mut records);
        self.maybe_bump_group_epoch(changed, &ctx, &mut records);
        records
    }
}
