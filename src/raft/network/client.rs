//! openraft's network for one group: a factory per group and a client per target, both a
//! few words (the group id and a handle on the target's shared [`Peer`]).

use std::future::Future;

use bytes::Bytes;
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
use super::wire::{RequestBody, ResponseBody, RetainedChunk, SnapshotMeta};
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
    /// This broker could not read what it was to send.
    Local(String),
}

/// About how much retained snapshot data one chunk carries.
const RETAINED_CHUNK_BYTES: usize = 1 << 20;

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

    /// Sends the retained data that goes with a snapshot (a compacted partition's, read
    /// from this broker's replica of the group), chunk by chunk, before the snapshot.
    async fn send_retained(
        &self,
        vote: Vote,
        last: Option<crate::raft::LogId>,
        snapshot: &[u8],
        option: &RPCOption,
    ) -> Result<(), Failure> {
        let action = RPCTypes::InstallSnapshot;
        let Some(group) = self.shared.registry.get(&self.group) else { return Ok(()) };
        let Some(range) = group.retained_range(snapshot) else { return Ok(()) };
        let mut from = range.0;
        loop {
            let read = group.read_retained(from, range.1, RETAINED_CHUNK_BYTES).await.map_err(Failure::Local)?;
            let (data, next) = read.unwrap_or((Bytes::new(), range.1));
            let done = next >= range.1 || data.is_empty();
            let chunk = RetainedChunk { vote, last, range, from, next, data, done };
            match self.call(RequestBody::SnapshotData(chunk), option).await? {
                ResponseBody::Staged => {}
                _ => return Err(Failure::Mismatch(action)),
            }
            if done {
                return Ok(());
            }
            from = next;
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
            Failure::Local(why) => RPCError::Network(NetworkError::from_string(format!(
                "cannot read the snapshot data of group {} to send: {why}",
                self.group
            ))),
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
        let data = snapshot.into_bytes();
        let send = async {
            self.send_retained(vote, meta.last_log_id, &data, &option).await?;
            let body = RequestBody::FullSnapshot { vote, meta, data };
            match self.call(body, &option).await {
                Ok(ResponseBody::Snapshot(response)) => Ok(response),
                Ok(_) => Err(Failure::Mismatch(action)),
                Err(failure) => Err(failure),
            }
        };
        tokio::select! {
            closed = cancel => Err(StreamingError::Closed(closed)),
            answer = send => answer.map_err(|failure| self.streaming_error(action, failure)),
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
