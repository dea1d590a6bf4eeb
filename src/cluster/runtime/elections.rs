//! Elections and catch-up heartbeats for quiesced partition groups.
//!
//! Partition groups run without openraft's timers ([`super::partition_raft_config`],
//! `enable_tick = false`): an idle group sends nothing and wakes nobody, where a ticking
//! one wakes every `heartbeat_interval * 13 / 64` and heartbeats its followers (DESIGN.md
//! measured 3,000 ticking groups at 1.85 cores idle). Raft does not need the timers while
//! the leader lives: its replication streams send an entry-less append whenever the commit
//! index moves, so followers' high watermarks follow the leader's. What the timers did is
//! done here instead, once per broker, from the gossip view (failure detection per broker,
//! not per group — CockroachDB's quiescence, TiKV's hibernating regions):
//!
//! - **Elections**: a group this broker is a voter of, whose leader is not live in the
//!   view (failed or left) or whose leader's raft connection to this broker closed (a
//!   killed process: the kernel closes its sockets, so this is known at once, where gossip
//!   takes seconds), or that has no leader, campaigns — with a pre-vote round, so a
//!   broker that could not win raises no term and a healthy leader is not deposed by it.
//!   Replicas take turns in the order of the group's assignment (the first live replica at
//!   once, the next [`TURN`] later, ...), so the preferred leader wins a new group and the
//!   two followers of a dead leader do not split the vote; a campaign that did not produce
//!   a leader is retried after a random half to whole lease, as raft's randomized timeout would.
//! - **Catch-up**: when a broker comes (back) into the view, every group led here that it
//!   is a voter of sends it a heartbeat, which carries the commit index and the leader's
//!   identity to a replica that restarted while nothing was being written.

use std::collections::{BTreeSet, HashMap};
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use openraft::ServerState;
use openraft::async_runtime::watch::WatchReceiver;
use tokio::sync::watch;

use super::ClusterRuntime;
use crate::broker::raft_replica::PartitionRaft;
use crate::raft::NodeId;

/// How often the groups with a campaign pending are checked.
const SWEEP: Duration = Duration::from_millis(200);
/// How often every group is checked when neither the view nor a raft connection changed
/// (a group can lose its leader by raft's own doing: a transfer, a failed election). A
/// check reads each group's metrics, so with thousands of idle groups this sets most of
/// an idle broker's CPU.
const FULL_SWEEP: Duration = Duration::from_secs(2);
/// Between the first campaigns of consecutive replicas of a group.
const TURN: Duration = Duration::from_millis(super::PARTITION_LEASE_MS);
/// A campaign that produced no leader is retried after a random wait in this range.
const RETRY: (Duration, Duration) =
    (Duration::from_millis(super::PARTITION_LEASE_MS / 2), Duration::from_millis(super::PARTITION_LEASE_MS));

/// A group this broker campaigns for: when it next may.
#[derive(Debug, Clone, Copy)]
struct Campaign {
    next: Instant,
}

/// What one sweep decided, carried out after the registry's lock is released.
#[derive(Default)]
struct Actions {
    elect: Vec<PartitionRaft>,
    heartbeat: Vec<PartitionRaft>,
}

/// Runs until the runtime stops: checks every group every [`FULL_SWEEP`] and whenever the
/// view or a raft connection changes, the groups with a campaign pending every [`SWEEP`].
pub(super) async fn quiesced_groups(rt: Weak<ClusterRuntime>, mut stop: watch::Receiver<bool>) {
    let mut view = rt.upgrade().and_then(|rt| rt.directory.discovery().map(|d| d.view()));
    let Some(mut connections) = rt.upgrade().map(|rt| rt.transport.inbound_changes()) else { return };
    let mut campaigns: HashMap<(String, i32), Campaign> = HashMap::new();
    let mut live_before: BTreeSet<NodeId> = BTreeSet::new();
    let mut last_full = Instant::now();
    loop {
        let mut full = tokio::select! {
            () = tokio::time::sleep(SWEEP) => false,
            changed = view_changed(&mut view) => { if !changed { view = None }; true }
            changed = connections.changed() => { if changed.is_err() { return }; true }
            _ = stop.changed() => return,
        };
        full |= last_full.elapsed() >= FULL_SWEEP;
        if !full && campaigns.is_empty() {
            continue;
        }
        if *stop.borrow() {
            return;
        }
        let Some(rt) = rt.upgrade() else { return };
        let live: BTreeSet<NodeId> =
            rt.directory.live_brokers().iter().filter_map(|b| NodeId::try_from(b.broker_id).ok()).collect();
        let returned: BTreeSet<NodeId> = live.difference(&live_before).copied().collect();
        // A peer whose connection to this broker closed (its process died: the kernel
        // closes its sockets) counts as down for elections before gossip declares it.
        let disconnected = rt.transport.disconnected_peers();
        let reachable: BTreeSet<NodeId> = live.difference(&disconnected).copied().collect();
        let actions = sweep(&rt, &reachable, &returned, Instant::now(), full, &mut campaigns);
        if full {
            last_full = Instant::now();
        }
        live_before = live;
        drop(rt);
        for raft in actions.elect {
            if let Err(e) = raft.trigger().elect(true).await {
                tracing::debug!(error = %e, "a stopped raft member cannot campaign");
            }
        }
        for raft in actions.heartbeat {
            if let Err(e) = raft.trigger().heartbeat().await {
                tracing::debug!(error = %e, "a stopped raft member cannot heartbeat");
            }
        }
    }
}

/// Resolves when the view changes (`false` once it never will).
async fn view_changed(view: &mut Option<watch::Receiver<Arc<crate::cluster::gossip::view::MembershipView>>>) -> bool {
    match view {
        Some(v) => v.changed().await.is_ok(),
        None => std::future::pending().await,
    }
}

/// Decides, for every group hosted here (`full`) or for those with a campaign pending,
/// whether to campaign (see the module doc) or to heartbeat the voters in `returned`.
fn sweep(
    rt: &ClusterRuntime,
    live: &BTreeSet<NodeId>,
    returned: &BTreeSet<NodeId>,
    now: Instant,
    full: bool,
    campaigns: &mut HashMap<(String, i32), Campaign>,
) -> Actions {
    let me = rt.node_id;
    let mut actions = Actions::default();
    let Ok(topics) = rt.topics.lock() else { return actions };
    let mut seen: BTreeSet<(String, i32)> = BTreeSet::new();
    for (name, state) in topics.iter() {
        for (index, replica) in &state.hosted {
            if !full && !campaigns.contains_key(&(name.clone(), *index)) {
                continue;
            }
            let raft = replica.raft();
            let (leading, leader, voter, returned_voter) = {
                let m = raft.metrics();
                let m = m.borrow_watched();
                let voter_ids: Vec<NodeId> = m.membership_config.membership().voter_ids().collect();
                (
                    m.state == ServerState::Leader && m.current_leader == Some(me),
                    m.current_leader,
                    voter_ids.contains(&me),
                    voter_ids.iter().any(|id| *id != me && returned.contains(id)),
                )
            };
            if leading {
                if returned_voter {
                    actions.heartbeat.push(raft.clone());
                }
                continue;
            }
            let healthy = leader.is_some_and(|l| l != me && live.contains(&l));
            if !voter || healthy {
                continue;
            }
            let key = (name.clone(), *index);
            let rank = state
                .assignments
                .get(usize::try_from(*index).unwrap_or(usize::MAX))
                .and_then(|replicas| {
                    replicas
                        .iter()
                        .filter_map(|r| NodeId::try_from(*r).ok())
                        .filter(|r| live.contains(r))
                        .position(|r| r == me)
                })
                .unwrap_or(0);
            let campaign = campaigns.entry(key.clone()).or_insert(Campaign { next: now + TURN * rank as u32 });
            if now >= campaign.next {
                actions.elect.push(raft.clone());
                campaign.next = now + retry_wait();
            }
            seen.insert(key);
        }
    }
    // Groups with a leader again (or gone) start afresh next time.
    campaigns.retain(|key, _| seen.contains(key));
    actions
}

/// A random wait in [`RETRY`] (std's randomly keyed hasher as the source: no generator
/// is needed for a jitter).
fn retry_wait() -> Duration {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    let clock = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    h.write_u128(clock.as_nanos());
    let span = (RETRY.1 - RETRY.0).as_millis() as u64;
    RETRY.0 + Duration::from_millis(h.finish() % span.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_waits_stay_in_range_and_vary() {
        let waits: BTreeSet<Duration> = (0..64).map(|_| retry_wait()).collect();
        assert!(waits.iter().all(|w| *w >= RETRY.0 && *w < RETRY.1), "{waits:?}");
        assert!(waits.len() > 8, "a jitter that does not vary: {waits:?}");
    }
}
