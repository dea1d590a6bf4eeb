//! openraft's network for one group: a factory per group and a client per target, both a
//! few words (the group id and a handle on the target's shared [`Peer`]).

use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{NetworkError, RPCError, ReplicationClosed, StreamingError, Timeout, Unreachable};
use openraft::network::{RPCOption, RaftNetworkFactory, RaftNetworkV2};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest, TransferLeaderResponse,
    VoteRequest, VoteResponse,
};
use openraft::{OptionalSend, RPCTypes, Snapshot};

use super::Shared;
use super::handler::SnapshotBytes;
use super::peer::{CallError, Peer};
use super::wire::{RequestBody, ResponseBody, SnapshotMeta};
use crate::raft::{GroupId, JetNode, NodeId, TypeConfig, Vote};

/// openraft's network factory for one group on the broker-wide transport; `D` is the
/// group's snapshot data type. Made by [`super::RaftTransport::network`].
pub struct GroupNetworkFactory<D> {
    shared: Arc<Shared>,
    group: GroupId,
    snapshot_data: PhantomData<fn() -> D>,
}

impl<D> GroupNetworkFactory<D> {
    pub(super) fn new(shared: Arc<Shared>, group: GroupId) -> Self {
        GroupNetworkFactory { shared, group, snapshot_data: PhantomData }
    }
}

impl<D: SnapshotBytes> RaftNetworkFactory<TypeConfig> for GroupNetworkFactory<D> {
    type Network = GroupNetwork<D>;

    async fn new_client(&mut self, target: NodeId, node: &JetNode) -> GroupNetwork<D> {
        GroupNetwork {
            peer: self.shared.peer(target, &node.raft_addr),
            shared: self.shared.clone(),
            group: self.group.clone(),
            snapshot_data: PhantomData,
        }
    }
}

/// One group's client for one target broker, over the connection shared with every other
/// group that talks to that broker.
pub struct GroupNetwork<D> {
    shared: Arc<Shared>,
    peer: Arc<Peer>,
    group: GroupId,
    snapshot_data: PhantomData<fn() -> D>,
}

/// How a call failed, before it is dressed as the error type a method returns.
enum Failure {
    Timeout(Duration),
    Call(CallError),
    /// The peer answered with the wrong kind of response (a protocol bug on one side).
    Mismatch(RPCTypes),
}

impl<D> GroupNetwork<D> {
    /// Sends `body` and waits at most `option.soft_ttl()` for the answer.
    async fn call(&self, body: RequestBody, option: &RPCOption) -> Result<ResponseBody, Failure> {
        let ttl = option.soft_ttl();
        let call = self.peer.call(&self.shared, &self.group, &body);
        match tokio::time::timeout(ttl, call).await {
            Ok(result) => result.map_err(Failure::Call),
            Err(_elapsed) => Err(Failure::Timeout(ttl)),
        }
    }

    fn timeout(&self, action: RPCTypes, timeout: Duration) -> Timeout<TypeConfig> {
        Timeout { action, id: self.shared.node, target: self.peer.node, timeout }
    }

    fn rpc_error(&self, action: RPCTypes, failure: Failure) -> RPCError<TypeConfig> {
        match failure {
            Failure::Timeout(ttl) => RPCError::Timeout(self.timeout(action, ttl)),
            Failure::Call(e) if e.is_unreachable() => RPCError::Unreachable(Unreachable::new(&e)),
            Failure::Call(e) => RPCError::Network(NetworkError::new(&e)),
            Failure::Mismatch(action) => RPCError::Network(self.mismatch(action)),
        }
    }

    fn streaming_error(&self, action: RPCTypes, failure: Failure) -> StreamingError<TypeConfig> {
        match self.rpc_error(action, failure) {
            RPCError::Timeout(e) => StreamingError::Timeout(e),
            RPCError::Unreachable(e) => StreamingError::Unreachable(e),
            RPCError::Network(e) => StreamingError::Network(e),
            RPCError::RemoteError(e) => StreamingError::Network(NetworkError::new(&e)),
        }
    }

    fn mismatch(&self, action: RPCTypes) -> NetworkError<TypeConfig> {
        NetworkError::from_string(format!(
            "raft peer {} answered a {action} request for group {} with another kind of response",
            self.peer.node, self.group
        ))
    }
}

impl<D: SnapshotBytes> RaftNetworkV2<TypeConfig> for GroupNetwork<D> {
    type SnapshotData = D;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        let action = RPCTypes::AppendEntries;
        match self.call(RequestBody::AppendEntries(rpc), &option).await {
            Ok(ResponseBody::AppendEntries(response)) => Ok(response),
            Ok(_) => Err(self.rpc_error(action, Failure::Mismatch(action))),
            Err(failure) => Err(self.rpc_error(action, failure)),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        let action = RPCTypes::Vote;
        match self.call(RequestBody::Vote(rpc), &option).await {
            Ok(ResponseBody::Vote(response)) => Ok(response),
            Ok(_) => Err(self.rpc_error(action, Failure::Mismatch(action))),
            Err(failure) => Err(self.rpc_error(action, failure)),
        }
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        let action = RPCTypes::Vote;
        match self.call(RequestBody::PreVote(rpc), &option).await {
            Ok(ResponseBody::Vote(response)) => Ok(response),
            Ok(_) => Err(self.rpc_error(action, Failure::Mismatch(action))),
            Err(failure) => Err(self.rpc_error(action, failure)),
        }
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot<crate::raft::CommittedLeaderId, NodeId, JetNode, D>,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let action = RPCTypes::InstallSnapshot;
        let Snapshot { meta, snapshot } = snapshot;
        let meta: SnapshotMeta = meta;
        let body = RequestBody::FullSnapshot { vote, meta, data: snapshot.into_bytes() };
        tokio::select! {
            closed = cancel => Err(StreamingError::Closed(closed)),
            answer = self.call(body, &option) => match answer {
                Ok(ResponseBody::Snapshot(response)) => Ok(response),
                Ok(_) => Err(self.streaming_error(action, Failure::Mismatch(action))),
                Err(failure) => Err(self.streaming_error(action, failure)),
            },
        }
    }

    async fn transfer_leader(
        &mut self,
        rpc: TransferLeaderRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<TypeConfig>, RPCError<TypeConfig>> {
        let action = RPCTypes::TransferLeader;
        match self.call(RequestBody::TransferLeader(rpc), &option).await {
            Ok(ResponseBody::TransferLeader(response)) => Ok(response),
            Ok(_) => Err(self.rpc_error(action, Failure::Mismatch(action))),
            Err(failure) => Err(self.rpc_error(action, failure)),
        }
    }
}
