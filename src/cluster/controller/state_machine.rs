//! The controller's raft state machine: applies committed metadata records to the
//! [`MetadataImage`] and publishes each new image on a `watch` channel, which the broker
//! follows to create and remove its partition replicas.
//!
//! Snapshots are the whole image (small: topics, assignments, configs, the producer-id
//! counter) as JSON, written durably to `controller-snapshot.json` in the controller's
//! directory, so a restart loads the image and replays only the entries after it, and a
//! far-behind broker installs it instead of replaying the log.
//!
//! A record's verdict (accepted, or rejected with the Kafka error) is kept by raft index
//! for the broker that proposed it ([`ControllerStateMachine::verdicts`]); only the
//! latest [`VERDICTS_KEPT`] entries are kept (a proposer reads its verdict as soon as
//! `client_write` returns, which is after apply).

use std::collections::VecDeque;
use std::io::{self, Cursor};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use futures::{Stream, StreamExt};
use openraft::storage::{EntryResponder, RaftStateMachine, Snapshot, SnapshotMeta};
use openraft::{EntryPayload, RaftSnapshotBuilder};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::cluster::metadata::{Applied, MetadataError, MetadataImage, records};
use crate::log::write_durably;
use crate::raft::{Appended, CommittedLeaderId, JetNode, LogId, NodeId, StoredMembership, TypeConfig};

/// The snapshot file in the controller's directory.
pub const SNAPSHOT_FILE: &str = "controller-snapshot.json";
/// Verdicts kept for proposers to read.
pub const VERDICTS_KEPT: usize = 4096;

type Meta = SnapshotMeta<CommittedLeaderId, NodeId, JetNode>;
type SnapshotOf = Snapshot<CommittedLeaderId, NodeId, JetNode, Cursor<Vec<u8>>>;

/// The verdict of each record of one entry, in order.
pub type Verdicts = Vec<Result<Applied, MetadataError>>;

/// What a snapshot holds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct SnapshotBody {
    image: MetadataImage,
    applied: Option<LogId>,
    membership: StoredMembership,
}

#[derive(Debug, Default)]
struct State {
    body: SnapshotBody,
    verdicts: VecDeque<(u64, Verdicts)>,
    snapshot: Option<(Meta, Vec<u8>)>,
}

/// The controller state machine; clones share one state (openraft's snapshot builder is
/// a clone).
#[derive(Debug, Clone)]
pub struct ControllerStateMachine {
    state: Arc<Mutex<State>>,
    image_tx: Arc<watch::Sender<Arc<MetadataImage>>>,
    dir: PathBuf,
}

fn poisoned<T>(e: std::sync::PoisonError<T>) -> io::Error {
    io::Error::other(format!("controller state lock poisoned: {e}"))
}

impl ControllerStateMachine {
    /// Opens the state machine of the controller in `dir`, loading its snapshot if any.
    pub fn open(dir: &Path) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(SNAPSHOT_FILE);
        let mut state = State::default();
        match std::fs::read(&path) {
            Ok(data) => {
                let body: SnapshotBody = serde_json::from_slice(&data)
                    .map_err(|e| io::Error::other(format!("controller snapshot {}: {e}", path.display())))?;
                let meta = Meta { last_log_id: body.applied, last_membership: body.membership.clone() };
                state.snapshot = Some((meta, data));
                state.body = body;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io::Error::new(e.kind(), format!("controller snapshot {}: {e}", path.display()))),
        }
        let (image_tx, _) = watch::channel(Arc::new(state.body.image.clone()));
        Ok(ControllerStateMachine { state: Arc::new(Mutex::new(state)), image_tx: Arc::new(image_tx), dir: dir.into() })
    }

    fn lock(&self) -> io::Result<MutexGuard<'_, State>> {
        self.state.lock().map_err(poisoned)
    }

    /// The image, updated after every applied entry.
    pub fn image(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.image_tx.subscribe()
    }

    /// The verdicts of the entry at raft index `index`, while kept.
    pub fn verdicts(&self, index: u64) -> Option<Verdicts> {
        let state = self.lock().ok()?;
        state.verdicts.iter().find(|(i, _)| *i == index).map(|(_, v)| v.clone())
    }

    fn publish(&self, image: &MetadataImage) {
        self.image_tx.send_replace(Arc::new(image.clone()));
    }

    fn persist(&self, data: &[u8]) -> io::Result<()> {
        let text = std::str::from_utf8(data).map_err(io::Error::other)?;
        write_durably(&self.dir, SNAPSHOT_FILE, text).map_err(io::Error::other)
    }
}

impl RaftSnapshotBuilder<TypeConfig> for ControllerStateMachine {
    type SnapshotData = Cursor<Vec<u8>>;

    async fn build_snapshot(&mut self) -> Result<SnapshotOf, io::Error> {
        let (meta, data) = {
            let state = self.lock()?;
            let meta = Meta { last_log_id: state.body.applied, last_membership: state.body.membership.clone() };
            (meta, serde_json::to_vec(&state.body).map_err(io::Error::other)?)
        };
        self.persist(&data)?;
        self.lock()?.snapshot = Some((meta.clone(), data.clone()));
        Ok(Snapshot { meta, snapshot: Cursor::new(data) })
    }
}

/// Its snapshots carry no data besides their bytes.
impl crate::raft::network::RetainedData for ControllerStateMachine {}

impl RaftStateMachine<TypeConfig> for ControllerStateMachine {
    type SnapshotData = Cursor<Vec<u8>>;
    type SnapshotBuilder = ControllerStateMachine;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        let state = self.lock()?;
        Ok((state.body.applied, state.body.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + Send,
    {
        while let Some(item) = entries.next().await {
            let (entry, responder) = item?;
            let mut response = Appended { base_offset: -1, log_end_offset: -1 };
            {
                let mut state = self.lock()?;
                match &entry.payload {
                    EntryPayload::Normal(batches) => {
                        let decoded = records::decode(&batches.0).map_err(io::Error::other)?;
                        if let (Some((first, _)), Some((last, _))) = (decoded.first(), decoded.last()) {
                            response = Appended { base_offset: *first, log_end_offset: last + 1 };
                        }
                        let verdicts: Verdicts = decoded.iter().map(|(_, r)| state.body.image.apply(r)).collect();
                        if state.verdicts.len() >= VERDICTS_KEPT {
                            state.verdicts.pop_front();
                        }
                        state.verdicts.push_back((entry.log_id.index, verdicts));
                    }
                    EntryPayload::Membership(m) => {
                        state.body.membership = StoredMembership::new(Some(entry.log_id), m.clone());
                    }
                    EntryPayload::Blank => {}
                }
                state.body.applied = Some(entry.log_id);
                self.publish(&state.body.image);
            }
            if let Some(responder) = responder {
                responder.send(response);
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn install_snapshot(&mut self, meta: &Meta, snapshot: Cursor<Vec<u8>>) -> Result<(), io::Error> {
        let data = snapshot.into_inner();
        let body: SnapshotBody = serde_json::from_slice(&data).map_err(io::Error::other)?;
        self.persist(&data)?;
        let mut state = self.lock()?;
        self.publish(&body.image);
        state.body = body;
        state.snapshot = Some((meta.clone(), data));
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<SnapshotOf>, io::Error> {
        let state = self.lock()?;
        Ok(state.snapshot.clone().map(|(meta, data)| Snapshot { meta, snapshot: Cursor::new(data) }))
    }
}
