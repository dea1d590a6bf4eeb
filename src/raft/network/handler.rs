//! The receiving side's view of a raft group: a type-erased handler per group, so groups
//! whose state machines differ (partitions, the controller) share one transport.

use std::collections::HashMap;
use std::io::Cursor;
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use futures::future::BoxFuture;
use openraft::Raft;
use openraft::Snapshot;
use openraft::storage::RaftStateMachine;

use super::wire::{RemoteFailure, RequestBody, ResponseBody, RetainedChunk};
use crate::raft::{GroupId, TypeConfig};

/// Snapshot data that travels as one byte string. The transport ships a snapshot whole
/// (a partition's is small); a state machine's `SnapshotData` converts to and from bytes.
pub trait SnapshotBytes: Send + Sync + 'static {
    fn into_bytes(self) -> Bytes;
    fn from_bytes(bytes: Bytes) -> Self;
}

impl SnapshotBytes for Cursor<Vec<u8>> {
    fn into_bytes(self) -> Bytes {
        Bytes::from(self.into_inner())
    }

    fn from_bytes(bytes: Bytes) -> Self {
        Cursor::new(Vec::from(bytes))
    }
}

/// What [`RetainedData::read_retained`] reads.
pub type RetainedRead = Result<Option<(Bytes, i64)>, String>;

/// Data a state machine's snapshot carries besides its bytes: a compacted partition's
/// retained data (see `crate::log::retained`), sent in chunks before the snapshot. The
/// defaults are a state machine whose snapshots carry none (the controller's).
pub trait RetainedData {
    /// The offsets `[from, to)` of the data that goes with `snapshot`, if any.
    fn retained_range(_snapshot: &[u8]) -> Option<(i64, i64)> {
        None
    }

    /// Sender: whole batches from `from` below `to`, about `max_bytes` (at least one),
    /// with the offset after them; `None` when none is left. The future does the I/O.
    fn read_retained(&mut self, _from: i64, _to: i64, _max_bytes: usize) -> BoxFuture<'static, RetainedRead> {
        Box::pin(async { Ok(None) })
    }

    /// Receiver: stages one chunk (the future does the I/O).
    fn stage_retained(&mut self, _chunk: RetainedChunk) -> BoxFuture<'static, Result<(), String>> {
        Box::pin(async { Err("this group's snapshots carry no data".into()) })
    }

    /// Receiver: whether everything that goes with the snapshot at `last` was staged.
    fn retained_staged(&mut self, _last: Option<crate::raft::LogId>) -> bool {
        true
    }
}

/// One raft group as the transport's server sees it: it takes a request body and answers.
/// Implemented for every `Raft<TypeConfig, SM>` whose snapshots are [`SnapshotBytes`].
pub trait GroupHandler: Send + Sync + 'static {
    fn handle(&self, body: RequestBody) -> BoxFuture<'static, Result<ResponseBody, RemoteFailure>>;

    /// See [`RetainedData::retained_range`].
    fn retained_range(&self, snapshot: &[u8]) -> Option<(i64, i64)>;

    /// See [`RetainedData::read_retained`] (run on the group's state machine).
    fn read_retained(
        &self,
        from: i64,
        to: i64,
        max_bytes: usize,
    ) -> BoxFuture<'static, Result<Option<(Bytes, i64)>, String>>;
}

fn stopped(e: impl std::fmt::Display) -> RemoteFailure {
    RemoteFailure::Stopped(e.to_string())
}

impl<SM> GroupHandler for Raft<TypeConfig, SM>
where
    SM: RaftStateMachine<TypeConfig> + RetainedData,
    SM::SnapshotData: SnapshotBytes,
{
    fn retained_range(&self, snapshot: &[u8]) -> Option<(i64, i64)> {
        SM::retained_range(snapshot)
    }

    fn read_retained(
        &self,
        from: i64,
        to: i64,
        max_bytes: usize,
    ) -> BoxFuture<'static, Result<Option<(Bytes, i64)>, String>> {
        let raft = self.clone();
        Box::pin(async move {
            let read = raft.with_state_machine(move |sm: &mut SM| {
                // The read's future is handed out: its I/O runs off the state machine's task.
                Box::pin(std::future::ready(sm.read_retained(from, to, max_bytes)))
            });
            read.await.map_err(|e| e.to_string())?.await
        })
    }

    fn handle(&self, body: RequestBody) -> BoxFuture<'static, Result<ResponseBody, RemoteFailure>> {
        let raft = self.clone();
        Box::pin(async move {
            match body {
                RequestBody::AppendEntries(rpc) => {
                    raft.append_entries(rpc).await.map(ResponseBody::AppendEntries).map_err(stopped)
                }
                RequestBody::Vote(rpc) => raft.vote(rpc).await.map(ResponseBody::Vote).map_err(stopped),
                RequestBody::PreVote(rpc) => raft.pre_vote(rpc).await.map(ResponseBody::Vote).map_err(stopped),
                RequestBody::FullSnapshot { vote, meta, data } => {
                    if SM::retained_range(&data).is_some() {
                        let last = meta.last_log_id;
                        let staged = raft.with_state_machine(move |sm: &mut SM| {
                            let staged = sm.retained_staged(last);
                            Box::pin(async move { staged })
                        });
                        if !staged.await.map_err(stopped)? {
                            return Err(RemoteFailure::Refused("the snapshot's data did not all arrive".into()));
                        }
                    }
                    let snapshot = Snapshot { meta, snapshot: SM::SnapshotData::from_bytes(data) };
                    raft.install_full_snapshot(vote, snapshot).await.map(ResponseBody::Snapshot).map_err(stopped)
                }
                RequestBody::SnapshotData(chunk) => {
                    let staged = raft
                        .with_state_machine(move |sm: &mut SM| Box::pin(std::future::ready(sm.stage_retained(chunk))));
                    match staged.await.map_err(stopped)?.await {
                        Ok(()) => Ok(ResponseBody::Staged),
                        Err(why) => Err(RemoteFailure::Refused(why)),
                    }
                }
                RequestBody::TransferLeader(rpc) => {
                    raft.handle_transfer_leader(rpc).await.map(ResponseBody::TransferLeader).map_err(stopped)
                }
            }
        })
    }
}

/// The groups this broker hosts. Looked up once per request under a read lock held only
/// for the map access.
#[derive(Default)]
pub(super) struct Registry {
    groups: RwLock<HashMap<GroupId, Arc<dyn GroupHandler>>>,
}

impl Registry {
    pub(super) fn insert(&self, group: GroupId, handler: Arc<dyn GroupHandler>) {
        self.write().insert(group, handler);
    }

    pub(super) fn remove(&self, group: &GroupId) -> bool {
        self.write().remove(group).is_some()
    }

    pub(super) fn get(&self, group: &GroupId) -> Option<Arc<dyn GroupHandler>> {
        // A poisoned lock only means a panic elsewhere while holding it; the map itself is
        // always consistent (single insert/remove calls), so keep serving.
        let groups = self.groups.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        groups.get(group).cloned()
    }

    pub(super) fn len(&self) -> usize {
        self.groups.read().unwrap_or_else(|poisoned| poisoned.into_inner()).len()
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<GroupId, Arc<dyn GroupHandler>>> {
        self.groups.write().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
