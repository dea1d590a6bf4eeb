//! Leadership hand-off before a broker stops (Kafka's controlled shutdown).
//!
//! A broker that is stopped with SIGTERM first asks raft to move the leadership of every
//! group it leads — its partitions and the controller — to the follower that holds the most
//! of the log, and waits (bounded) until it no longer leads them. Clients then see
//! `NOT_LEADER_OR_FOLLOWER` naming the new leader (KIP-951) within milliseconds, instead of
//! waiting out an election timeout after the broker is gone. A group whose followers are
//! all down (or whose transfer does not finish in time) is left to the election that
//! follows the broker's exit, as without a hand-off.

use std::time::Duration;

use openraft::async_runtime::watch::WatchReceiver;
use openraft::storage::RaftStateMachine;
use openraft::{RaftMetrics, ServerState};

use crate::raft::{NodeId, TypeConfig};

/// The follower to hand the leadership of a group to, as its leader `me` sees it in `m`:
/// a live voter holding the most of the log; `None` when `me` does not lead or no
/// follower is live.
pub fn hand_off_target(m: &RaftMetrics<TypeConfig>, me: NodeId, live: impl Fn(NodeId) -> bool) -> Option<NodeId> {
    if m.state != ServerState::Leader || m.current_leader != Some(me) {
        return None;
    }
    let voters: Vec<NodeId> = m.membership_config.membership().voter_ids().collect();
    m.replication
        .iter()
        .flatten()
        .filter(|(id, _)| **id != me && voters.contains(id) && live(**id))
        .max_by_key(|(id, matched)| (matched.map(|l| l.index), std::cmp::Reverse(**id)))
        .map(|(id, _)| *id)
}

/// What a hand-off did: groups led before, groups whose leadership moved in time.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct HandOff {
    pub led: usize,
    pub moved: usize,
}

/// Asks every raft member in `rafts` that `me` leads to transfer its leadership to
/// [`hand_off_target`], then waits up to `within` until `me` leads none of them.
pub async fn hand_off<SM>(
    rafts: &[openraft::Raft<TypeConfig, SM>],
    me: NodeId,
    live: impl Fn(NodeId) -> bool,
    within: Duration,
) -> HandOff
where
    SM: RaftStateMachine<TypeConfig>,
{
    let mut moving = Vec::new();
    let mut led = 0;
    for raft in rafts {
        let target = {
            let m = raft.metrics();
            let m = m.borrow_watched();
            if m.current_leader == Some(me) {
                led += 1;
            }
            hand_off_target(&m, me, &live)
        };
        let Some(target) = target else { continue };
        match raft.trigger().transfer_leader(target).await {
            Ok(()) => moving.push(raft),
            Err(e) => tracing::warn!(error = %e, target, "leadership transfer not started"),
        }
    }
    let deadline = tokio::time::Instant::now() + within;
    let mut moved = 0;
    for raft in moving {
        let mut metrics = raft.metrics();
        let gone = tokio::time::timeout_at(deadline, async {
            loop {
                if metrics.borrow_watched().current_leader != Some(me) {
                    return true;
                }
                if metrics.changed().await.is_err() {
                    return false;
                }
            }
        })
        .await;
        if gone == Ok(true) {
            moved += 1;
        }
    }
    HandOff { led, moved }
}
