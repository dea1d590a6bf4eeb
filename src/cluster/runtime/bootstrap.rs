//! Forming the controller group: bootstrap from the `--bootstrap-expect` set, and the
//! controller's leader adding every other live broker as a learner (so every broker
//! applies the metadata log).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use openraft::async_runtime::watch::WatchReceiver;
use tokio::sync::watch;

use super::{ClusterRuntime, jet_node};
use crate::raft::{JetNode, NodeId};

/// How often the bootstrap and learner loops look again.
const POLL: Duration = Duration::from_millis(200);

/// Sleeps `d`, or returns `false` once the runtime stops.
async fn pause(stop: &mut watch::Receiver<bool>, d: Duration) -> bool {
    if *stop.borrow() {
        return false;
    }
    tokio::select! {
        () = tokio::time::sleep(d) => true,
        _ = stop.changed() => !*stop.borrow(),
    }
}

/// Waits for the `--bootstrap-expect` set; its lowest node id initializes the controller
/// group with the set as voters. Without the flag this broker waits to be added by an
/// existing cluster's controller.
pub(super) async fn bootstrap(rt: Arc<ClusterRuntime>, mut stop: watch::Receiver<bool>) {
    if rt.directory.bootstrap_expect().is_none() {
        tracing::info!("no --bootstrap-expect: waiting to be added to an existing cluster's controller group");
        return;
    }
    let members = loop {
        // Latches the set once enough brokers are in the view.
        let _ = rt.directory.not_ready_reason();
        if let Some(members) = rt.directory.bootstrap_members() {
            break members.to_vec();
        }
        if !pause(&mut stop, POLL).await {
            return;
        }
    };
    let lowest = members.iter().map(|b| b.broker_id).min();
    if lowest != i32::try_from(rt.node_id).ok() {
        return;
    }
    let voters: BTreeMap<NodeId, JetNode> =
        members.iter().filter_map(|b| NodeId::try_from(b.broker_id).ok().map(|id| (id, jet_node(b)))).collect();
    let ids: Vec<NodeId> = voters.keys().copied().collect();
    match rt.controller.bootstrap(voters).await {
        Ok(true) => tracing::info!(voters = ?ids, "initialized the controller group"),
        Ok(false) => tracing::info!("the controller group was formed before; leaving its membership as it is"),
        Err(e) => tracing::error!(error = %e, "cannot initialize the controller group"),
    }
}

/// On the controller's leader: adds each live broker that is not a member yet as a
/// learner, so it applies the metadata log.
pub(super) async fn keep_learners(rt: Arc<ClusterRuntime>, mut stop: watch::Receiver<bool>) {
    while pause(&mut stop, POLL * 5).await {
        if rt.controller.leader() != Some(rt.node_id) {
            continue;
        }
        let membership = rt.controller.raft().metrics().borrow_watched().membership_config.clone();
        let known: Vec<NodeId> = membership.nodes().map(|(id, _)| *id).collect();
        for broker in rt.directory.live_brokers() {
            let Ok(id) = NodeId::try_from(broker.broker_id) else { continue };
            if known.contains(&id) {
                continue;
            }
            match rt.controller.raft().add_learner(id, jet_node(&broker), false).await {
                Ok(_) => tracing::info!(broker = id, "added a broker to the controller group as a learner"),
                Err(e) => tracing::warn!(broker = id, error = %e, "cannot add a broker to the controller group"),
            }
        }
    }
}
