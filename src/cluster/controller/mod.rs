//! The controller: one raft group (the partition `__cluster_metadata`/0) whose committed
//! log of [`MetadataRecord`]s is the cluster metadata (topics, configs, replica
//! assignments, producer-id blocks), applied to a [`MetadataImage`] on every voter.
//!
//! Its leader is the cluster's controller (what Metadata and DescribeCluster name); admin
//! changes are proposed there and answered with the verdict apply reached. Every broker
//! follows the image ([`Controller::image`]) to open and close its partition replicas.
//!
//! The group uses the same raft types, log store (the segment files), transport and
//! group-commit flusher as the partitions: it is a partition like any other, with a
//! different state machine ([`state_machine`]).

pub mod state_machine;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use std::io::Cursor;

use openraft::RaftNetworkFactory;
use openraft::async_runtime::watch::WatchReceiver;
use openraft::error::{ClientWriteError, InitializeError, RaftError};
use openraft::network::NetSnapshot;
use tokio::sync::watch;

use crate::cluster::metadata::{MetadataImage, MetadataRecord, RecordsError, records};
use crate::log::{Flusher, LogConfig};
use crate::raft::log_store::{PartitionRaftLog, RaftLogError, RaftLogStore};
use crate::raft::{AppendBatches, GroupId, JetNode, NodeId, TypeConfig};
pub use state_machine::{ControllerStateMachine, Verdicts};

/// The metadata log's topic name (KRaft's).
pub const METADATA_TOPIC: &str = "__cluster_metadata";

/// The controller's raft group.
pub fn group_id() -> GroupId {
    GroupId::new(METADATA_TOPIC, 0)
}

/// Segment size of the metadata log: it is small and snapshotted.
const METADATA_SEGMENT_BYTES: u64 = 8 * 1024 * 1024;

/// Errors of the controller.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    #[error("this broker is not the controller (the controller is {leader:?})")]
    NotController { leader: Option<NodeId> },
    #[error("controller raft: {0}")]
    Write(#[from] RaftError<TypeConfig, ClientWriteError<TypeConfig>>),
    #[error("controller raft: {0}")]
    Initialize(#[from] RaftError<TypeConfig, InitializeError<TypeConfig>>),
    #[error("controller raft: {0}")]
    Fatal(#[from] openraft::error::Fatal<TypeConfig>),
    #[error(transparent)]
    Records(#[from] RecordsError),
    #[error("the verdict of controller entry {0} is no longer kept")]
    VerdictLost(u64),
    #[error(transparent)]
    Log(#[from] RaftLogError),
    #[error("controller state: {0}")]
    Io(#[from] std::io::Error),
}

/// This broker's member of the controller group.
pub struct Controller {
    raft: openraft::Raft<TypeConfig, ControllerStateMachine>,
    sm: ControllerStateMachine,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

impl Controller {
    /// Opens (or creates) the controller's log and state in `dir` and starts its raft
    /// member. It does nothing until [`bootstrap`](Self::bootstrap) or a leader contacts it.
    pub async fn open<N>(
        dir: &Path,
        node_id: NodeId,
        config: Arc<openraft::Config>,
        network: N,
        flusher: Option<Flusher>,
    ) -> Result<Controller, ControllerError>
    where
        N: RaftNetworkFactory<TypeConfig>,
        N::Network: NetSnapshot<TypeConfig, SnapshotData = Cursor<Vec<u8>>>,
    {
        let log_config = LogConfig { segment_bytes: METADATA_SEGMENT_BYTES, retention_ms: -1, ..LogConfig::default() };
        let log = PartitionRaftLog::open(dir, log_config)?;
        let store = match flusher {
            Some(f) => RaftLogStore::with_flusher(log, f),
            None => RaftLogStore::new(log),
        };
        let sm = ControllerStateMachine::open(dir)?;
        let raft = openraft::Raft::new(node_id, config, network, store, sm.clone()).await?;
        Ok(Controller { raft, sm })
    }

    /// The raft member (to register with the transport).
    pub fn raft(&self) -> &openraft::Raft<TypeConfig, ControllerStateMachine> {
        &self.raft
    }

    /// Makes `voters` the controller group, once: a group that already has a membership
    /// (this broker was bootstrapped before, or joined one) is left as it is.
    pub async fn bootstrap(&self, voters: BTreeMap<NodeId, JetNode>) -> Result<bool, ControllerError> {
        match self.raft.initialize(voters).await {
            Ok(()) => Ok(true),
            Err(RaftError::APIError(InitializeError::NotAllowed(_))) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// The metadata image, updated after every applied entry.
    pub fn image(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.sm.image()
    }

    /// The controller (the group's leader), if one is known.
    pub fn leader(&self) -> Option<NodeId> {
        self.raft.metrics().borrow_watched().current_leader
    }

    /// Proposes `records` as one entry and waits until it is committed and applied;
    /// returns each record's verdict. Only the controller takes proposals.
    pub async fn propose(&self, records: &[MetadataRecord]) -> Result<Verdicts, ControllerError> {
        let batch = records::encode(records, now_ms())?;
        let written = match self.raft.client_write(AppendBatches(batch)).await {
            Ok(w) => w,
            Err(e) => {
                if let Some(forward) = e.forward_to_leader() {
                    return Err(ControllerError::NotController { leader: forward.leader_id });
                }
                return Err(e.into());
            }
        };
        let index = written.log_id.index;
        self.sm.verdicts(index).ok_or(ControllerError::VerdictLost(index))
    }

    /// Stops the raft member.
    pub async fn shutdown(&self) -> Result<(), ControllerError> {
        self.raft.shutdown().await.map_err(|e| ControllerError::Io(std::io::Error::other(e.to_string())))
    }
}
