//! A partition's raft state machine: applying committed entries moves the high watermark.
//!
//! The data is already in the segment files (the raft log is the partition log), so
//! applying an entry stores nothing: it advances the high watermark to the end offset of
//! the last applied entry (translated through the raft index for raft's own entries,
//! read from the stored batches' offsets for appends), rebuilds idempotent-producer state
//! from the applied batches (how followers learn it), takes membership entries, and
//! persists the applied point and membership (`save_applied`) before the high watermark
//! moves, once per call. The state itself lives in [`ReplicaState`], shared with the
//! replica and the log store's events.
//!
//! A normal entry holding a log-start control batch (DeleteRecords, retention; see
//! [`control`]) moves the log start of every replica as it is applied.
//!
//! Snapshots are small — the point below the log start raft may purge up to, its
//! membership, and producer state — and never triggered by openraft
//! (`SnapshotPolicy::Never`): the replica triggers one when a log-start entry leaves whole
//! segments below the log start, and openraft purges the entries it covers (the
//! segments go then).

use std::io::{self, Cursor};
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::{Stream, StreamExt};
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::{EntryPayload, RaftSnapshotBuilder};

use super::network::{RetainedChunk, RetainedData, RetainedRead};
use super::replica_state::{PartitionSnapshot, PartitionSnapshotMeta, ReplicaState};
use super::{AppendBatches, Appended, LogId, StoredMembership, TypeConfig, control};
use crate::broker::partition::PartitionError;
use crate::log::LogError;
use crate::log::batch::BatchIter;

/// The state machine handed to openraft; a handle on the replica's shared state.
#[derive(Clone)]
pub struct PartitionStateMachine {
    state: Arc<ReplicaState>,
}

impl PartitionStateMachine {
    pub fn new(state: Arc<ReplicaState>) -> Self {
        PartitionStateMachine { state }
    }
}

/// `(first offset, end offset)` of an entry's stored batches.
fn span_of(batches: &[u8]) -> Result<Option<(i64, i64)>, LogError> {
    let mut span: Option<(i64, i64)> = None;
    for item in BatchIter::new(batches) {
        let (h, _) = item?;
        let first = span.map_or(h.base_offset, |s| s.0);
        span = Some((first, h.last_offset() + 1));
    }
    Ok(span)
}

fn io(e: PartitionError) -> io::Error {
    io::Error::other(e)
}

impl RaftSnapshotBuilder<TypeConfig> for PartitionStateMachine {
    type SnapshotData = Cursor<Vec<u8>>;

    async fn build_snapshot(&mut self) -> Result<PartitionSnapshot, io::Error> {
        self.state.build_snapshot().map_err(io)
    }
}

/// A compacted partition's snapshot carries its retained data (see
/// [`crate::log::retained`]).
impl RetainedData for PartitionStateMachine {
    fn retained_range(snapshot: &[u8]) -> Option<(i64, i64)> {
        ReplicaState::retained_range(snapshot)
    }

    fn read_retained(&mut self, from: i64, to: i64, max_bytes: usize) -> BoxFuture<'static, RetainedRead> {
        let state = self.state.clone();
        Box::pin(async move {
            let read = tokio::task::spawn_blocking(move || state.read_retained(from, to, max_bytes));
            read.await.map_err(|e| e.to_string())?.map_err(|e| e.to_string())
        })
    }

    fn stage_retained(&mut self, chunk: RetainedChunk) -> BoxFuture<'static, Result<(), String>> {
        let state = self.state.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || state.stage_retained(chunk)).await.map_err(|e| e.to_string())?
        })
    }

    fn retained_staged(&mut self, last: Option<LogId>) -> bool {
        self.state.retained_staged(last)
    }
}

impl RaftStateMachine<TypeConfig> for PartitionStateMachine {
    type SnapshotData = Cursor<Vec<u8>>;
    type SnapshotBuilder = PartitionStateMachine;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        self.state.applied_state().map_err(io)
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + Send,
    {
        let mut normal = Vec::new();
        let mut last: Option<(LogId, i64)> = None;
        let mut memberships = Vec::new();
        let mut log_start: Option<i64> = None;
        let mut responders = Vec::new();
        while let Some(item) = entries.next().await {
            let (entry, responder) = item?;
            let index = entry.log_id.index;
            let span = match &entry.payload {
                EntryPayload::Normal(AppendBatches(batches)) => {
                    let span = span_of(batches).map_err(|e| io(e.into()))?;
                    if let Some(offset) = control::log_start_in(batches).map_err(io::Error::other)? {
                        log_start = Some(log_start.map_or(offset, |o| o.max(offset)));
                    }
                    normal.push(batches.clone());
                    span
                }
                EntryPayload::Membership(m) => {
                    memberships.push(StoredMembership::new(Some(entry.log_id), m.clone()));
                    None
                }
                EntryPayload::Blank => None,
            };
            // Raft's own entries are one control batch each: their offsets come from the
            // raft index (the decoded entry no longer carries them).
            let (base_offset, end_offset) = match span {
                Some(s) => s,
                None => {
                    let end = self.state.log().map_err(io)?.end_offset_of(index).map_err(|e| io(e.into()))?;
                    (end - 1, end)
                }
            };
            last = Some((entry.log_id, end_offset));
            if let Some(r) = responder {
                responders.push((r, Appended { base_offset, log_end_offset: end_offset }));
            }
        }
        if let Some((applied, end_offset)) = last {
            let batches: Vec<&[u8]> = normal.iter().map(|b| &b[..]).collect();
            self.state.applied(&batches, applied, memberships, end_offset, log_start).map_err(io)?;
        }
        for (r, appended) in responders {
            r.send(appended);
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn install_snapshot(
        &mut self,
        meta: &PartitionSnapshotMeta,
        snapshot: Cursor<Vec<u8>>,
    ) -> Result<(), io::Error> {
        // Off the runtime's workers: with retained data, it moves and checks that data.
        let (state, meta) = (self.state.clone(), meta.clone());
        let install = tokio::task::spawn_blocking(move || state.install_snapshot(&meta, snapshot.into_inner()));
        install.await.map_err(io::Error::other)?.map_err(io)
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<PartitionSnapshot>, io::Error> {
        self.state.current_snapshot().map_err(io)
    }
}
