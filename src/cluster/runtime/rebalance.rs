//! Preferred leaders come back (Kafka's `auto.leader.rebalance.enable`).
//!
//! After a failover a partition stays with the follower that took over, so the brokers that
//! restarted lead nothing and the load piles onto the others. Every
//! `leader.imbalance.check.interval.seconds` each broker counts, from its copy of the
//! metadata and the leaders it knows (its own raft groups, gossip hints for the rest), how
//! many of each broker's preferred partitions (the first of their replicas) are led
//! elsewhere. A broker whose share is above `leader.imbalance.per.broker.percentage` gets
//! its partitions back: each current leader hands the partitions it leads to their preferred
//! leader when that broker is live and in sync (a raft leadership transfer, as on SIGTERM:
//! producers see NOT_LEADER_OR_FOLLOWER naming the new leader and move on). Partitions being
//! moved are left alone.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Weak;
use std::time::Duration;

use tokio::sync::watch;

use super::ClusterRuntime;
use crate::broker::raft_replica::PartitionRaft;
use crate::broker::replica::{Leader, Replica};
use crate::raft::NodeId;

/// Runs until the runtime stops: a check every `every`.
pub(super) async fn preferred_leaders(
    rt: Weak<ClusterRuntime>,
    mut stop: watch::Receiver<bool>,
    every: Duration,
    percentage: u32,
) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
        let Some(rt) = rt.upgrade() else { return };
        for (raft, to, topic, partition) in plan(&rt, percentage) {
            tracing::info!(topic, partition, to, "moving leadership back to the preferred leader");
            if let Err(e) = raft.trigger().transfer_leader(to).await {
                tracing::warn!(topic, partition, to, error = %e, "preferred leader transfer not started");
            }
        }
    }
}

/// For each broker: (partitions it is the preferred leader of, those led by another broker).
type Counts = BTreeMap<i32, (usize, usize)>;

/// Brokers whose preferred partitions are led elsewhere more than `percentage` % of the time.
fn imbalanced(counts: &Counts, percentage: u32) -> BTreeSet<i32> {
    counts
        .iter()
        .filter(|(_, (preferred, elsewhere))| *elsewhere * 100 > *preferred * percentage as usize)
        .map(|(broker, _)| *broker)
        .collect()
}

/// The transfers this broker starts: (group, preferred leader, topic, partition).
fn plan(rt: &ClusterRuntime, percentage: u32) -> Vec<(PartitionRaft, NodeId, String, i32)> {
    let Some(broker) = rt.broker.upgrade() else { return Vec::new() };
    let me = i32::try_from(rt.node_id).unwrap_or(-1);
    let image = rt.image();
    let mut counts = Counts::new();
    for topic in image.topics.values() {
        let Some(registered) = broker.topics.get(&topic.name).filter(|t| t.id == topic.id) else { continue };
        for (index, replicas) in topic.assignments.iter().enumerate() {
            let index = i32::try_from(index).unwrap_or(i32::MAX);
            let (Some(&preferred), Some(replica)) = (replicas.first(), registered.replica(index)) else { continue };
            if topic.reassignments.contains_key(&index) {
                continue;
            }
            let entry = counts.entry(preferred).or_default();
            entry.0 += 1;
            if replica.leader().node_id(me) != preferred {
                entry.1 += 1;
            }
        }
    }
    let wanted = imbalanced(&counts, percentage);
    if wanted.is_empty() {
        return Vec::new();
    }
    let live: BTreeSet<i32> = rt.directory.live_brokers().iter().map(|b| b.broker_id).collect();
    let Ok(topics) = rt.topics.lock() else { return Vec::new() };
    let mut moves = Vec::new();
    for (name, state) in topics.iter() {
        for (index, replica) in &state.hosted {
            let preferred =
                state.assignments.get(usize::try_from(*index).unwrap_or(usize::MAX)).and_then(|r| r.first());
            let Some(&preferred) = preferred.filter(|p| **p != me && wanted.contains(p) && live.contains(p)) else {
                continue;
            };
            if replica.leader() != Leader::ThisBroker {
                continue;
            }
            let in_sync = replica.in_sync_replicas(rt.replica_lag).is_some_and(|isr| isr.contains(&preferred));
            if let (true, Ok(to)) = (in_sync, NodeId::try_from(preferred)) {
                moves.push((replica.raft().clone(), to, name.clone(), *index));
            }
        }
    }
    moves
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broker_is_imbalanced_above_the_percentage_of_its_preferred_partitions() {
        let counts = Counts::from([(1, (10, 1)), (2, (10, 2)), (3, (4, 0)), (4, (1, 1))]);
        assert_eq!(imbalanced(&counts, 10), BTreeSet::from([2, 4]), "1 of 10 is not above 10 %");
        assert_eq!(imbalanced(&counts, 0), BTreeSet::from([1, 2, 4]));
        assert_eq!(imbalanced(&counts, 100), BTreeSet::new());
    }
}
