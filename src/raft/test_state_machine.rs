//! A minimal raft state machine for tests (the storage conformance suite, the transport's
//! clusters): it keeps the applied point, the membership, a snapshot of both, and counts
//! the records of normal entries so `client_write` answers with offsets. A partition's
//! real state machine is not built yet.

use std::io::{self, Cursor};
use std::sync::{Arc, Mutex, MutexGuard};

use futures::{Stream, StreamExt};
use openraft::storage::{EntryResponder, RaftStateMachine, Snapshot, SnapshotMeta};
use openraft::{EntryPayload, RaftSnapshotBuilder};

use super::{AppendBatches, Appended, CommittedLeaderId, JetNode, LogId, NodeId, StoredMembership, TypeConfig};
use crate::log::BatchIter;

type Meta = SnapshotMeta<CommittedLeaderId, NodeId, JetNode>;
type SnapshotOf = Snapshot<CommittedLeaderId, NodeId, JetNode, Cursor<Vec<u8>>>;

/// The state machine, behind a shared handle (the snapshot builder is a clone).
#[derive(Debug, Clone, Default)]
pub struct TestStateMachine(Arc<Mutex<SmState>>);

#[derive(Debug, Default)]
pub struct SmState {
    pub applied: Option<LogId>,
    pub membership: StoredMembership,
    /// Records in the normal entries applied so far (the next offset).
    pub records: i64,
    snapshot: Option<(Meta, Vec<u8>)>,
}

impl TestStateMachine {
    pub fn state(&self) -> MutexGuard<'_, SmState> {
        self.0.lock().expect("state machine lock")
    }
}

impl RaftSnapshotBuilder<TypeConfig> for TestStateMachine {
    type SnapshotData = Cursor<Vec<u8>>;

    async fn build_snapshot(&mut self) -> Result<SnapshotOf, io::Error> {
        let mut sm = self.state();
        let meta = Meta { last_log_id: sm.applied, last_membership: sm.membership.clone() };
        let data = serde_json::to_vec(&(sm.applied, &sm.membership, sm.records)).map_err(io::Error::other)?;
        sm.snapshot = Some((meta.clone(), data.clone()));
        Ok(Snapshot { meta, snapshot: Cursor::new(data) })
    }
}

/// Its snapshots carry no data besides their bytes.
impl crate::raft::network::RetainedData for TestStateMachine {}

impl RaftStateMachine<TypeConfig> for TestStateMachine {
    type SnapshotData = Cursor<Vec<u8>>;
    type SnapshotBuilder = TestStateMachine;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        let sm = self.state();
        Ok((sm.applied, sm.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + Send,
    {
        while let Some(item) = entries.next().await {
            let (entry, responder) = item?;
            let mut sm = self.state();
            let base_offset = sm.records;
            match &entry.payload {
                EntryPayload::Membership(m) => sm.membership = StoredMembership::new(Some(entry.log_id), m.clone()),
                EntryPayload::Normal(AppendBatches(batches)) => {
                    for batch in BatchIter::new(batches) {
                        let (header, _) = batch.map_err(io::Error::other)?;
                        sm.records += i64::from(header.last_offset_delta) + 1;
                    }
                }
                EntryPayload::Blank => {}
            }
            sm.applied = Some(entry.log_id);
            let appended = Appended { base_offset, log_end_offset: sm.records };
            drop(sm);
            if let Some(responder) = responder {
                responder.send(appended);
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn install_snapshot(&mut self, meta: &Meta, snapshot: Cursor<Vec<u8>>) -> Result<(), io::Error> {
        let data = snapshot.into_inner();
        let (applied, membership, records): (Option<LogId>, StoredMembership, i64) =
            serde_json::from_slice(&data).map_err(io::Error::other)?;
        let mut sm = self.state();
        (sm.applied, sm.membership, sm.records) = (applied, membership, records);
        sm.snapshot = Some((meta.clone(), data));
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<SnapshotOf>, io::Error> {
        let sm = self.state();
        Ok(sm.snapshot.clone().map(|(meta, data)| Snapshot { meta, snapshot: Cursor::new(data) }))
    }
}
