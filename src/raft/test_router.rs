//! An in-memory raft network for tests: RPCs are calls on the target node's [`Raft`]
//! handle, and a test can isolate a node (no RPC to or from it) and heal it again.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::io::Cursor;
use std::sync::{Arc, Mutex};

use openraft::errors::{RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::{RPCOption, RaftNetworkFactory, v2::RaftNetworkV2};
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse};

use super::{JetNode, NodeId, TypeConfig, Vote};
use crate::broker::raft_replica::PartitionRaft;
use crate::raft::replica_state::PartitionSnapshot;

/// The nodes of one group and the links a test has cut.
#[derive(Default)]
pub struct Router {
    nodes: Mutex<HashMap<NodeId, PartitionRaft>>,
    isolated: Mutex<HashSet<NodeId>>,
}

impl Router {
    pub fn new() -> Arc<Router> {
        Arc::new(Router::default())
    }

    pub fn add(&self, id: NodeId, raft: PartitionRaft) {
        self.nodes.lock().expect("router lock").insert(id, raft);
    }

    pub fn remove(&self, id: NodeId) {
        self.nodes.lock().expect("router lock").remove(&id);
    }

    /// No RPC reaches `id` or leaves it until [`Self::heal`].
    pub fn isolate(&self, id: NodeId) {
        self.isolated.lock().expect("router lock").insert(id);
    }

    pub fn heal(&self, id: NodeId) {
        self.isolated.lock().expect("router lock").remove(&id);
    }

    /// The network of node `from`.
    pub fn network(self: &Arc<Self>, from: NodeId) -> RouterNetwork {
        RouterNetwork { router: self.clone(), from }
    }

    fn target(&self, from: NodeId, to: NodeId) -> Result<PartitionRaft, Unreachable<TypeConfig>> {
        let cut = {
            let isolated = self.isolated.lock().expect("router lock");
            isolated.contains(&from) || isolated.contains(&to)
        };
        let unreachable = |why: &'static str| Unreachable::new(&LinkDown { from, to, why });
        if cut {
            return Err(unreachable("link cut"));
        }
        self.nodes.lock().expect("router lock").get(&to).cloned().ok_or_else(|| unreachable("no such node"))
    }
}

/// Why an RPC did not reach its target.
#[derive(Debug, thiserror::Error)]
#[error("{from} -> {to}: {why}")]
struct LinkDown {
    from: NodeId,
    to: NodeId,
    why: &'static str,
}

/// One node's view of the router (its network factory).
pub struct RouterNetwork {
    router: Arc<Router>,
    from: NodeId,
}

impl RaftNetworkFactory<TypeConfig> for RouterNetwork {
    type Network = Link;

    async fn new_client(&mut self, target: NodeId, _node: &JetNode) -> Link {
        Link { router: self.router.clone(), from: self.from, to: target }
    }
}

/// A link from one node to another.
pub struct Link {
    router: Arc<Router>,
    from: NodeId,
    to: NodeId,
}

fn unreachable<E: std::error::Error + 'static>(e: &E) -> Unreachable<TypeConfig> {
    Unreachable::new(e)
}

impl RaftNetworkV2<TypeConfig> for Link {
    type SnapshotData = Cursor<Vec<u8>>;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        let raft = self.router.target(self.from, self.to)?;
        let response = raft.append_entries(rpc).await.map_err(|e| unreachable(&e))?;
        // A link cut while the call ran loses the answer.
        self.router.target(self.from, self.to)?;
        Ok(response)
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        let raft = self.router.target(self.from, self.to)?;
        let response = raft.vote(rpc).await.map_err(|e| unreachable(&e))?;
        self.router.target(self.from, self.to)?;
        Ok(response)
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: PartitionSnapshot,
        _cancel: impl Future<Output = ReplicationClosed> + Send + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let raft = self.router.target(self.from, self.to)?;
        raft.install_full_snapshot(vote, snapshot).await.map_err(|e| StreamingError::Unreachable(unreachable(&e)))
    }
}
