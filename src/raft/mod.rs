//! Raft replication of partitions (issue 10): the type configuration and the raft log
//! store over a partition's segment files.
//!
//! The raft term is the Kafka leader epoch stamped into every batch
//! (`partitionLeaderEpoch`): [`Term`] is a `u64` newtype (openraft's storage suite needs
//! `Term: From<u64>`) converted to Kafka's `i32` only at the edge
//! ([`Term::to_leader_epoch`]). Leader ids are `leader_id_std` (one leader per term), so a
//! term names exactly one leader, as a Kafka leader epoch does.

pub mod control;
pub mod log_store;
#[cfg(test)]
mod log_store_tests;
pub mod network;
pub mod partition_state;
pub mod replica_state;
#[cfg(test)]
pub(crate) mod test_router;
#[cfg(test)]
pub(crate) mod test_state_machine;

use std::fmt;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// A raft term; equal to the Kafka leader epoch of the entries written in it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Term(pub u64);

/// A term that does not fit Kafka's `i32` leader epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("raft term {0} does not fit a Kafka leader epoch (i32)")]
pub struct TermOverflow(pub u64);

impl Term {
    /// The Kafka leader epoch of this term.
    pub fn to_leader_epoch(self) -> Result<i32, TermOverflow> {
        i32::try_from(self.0).map_err(|_| TermOverflow(self.0))
    }

    /// The term of a stored batch's `partitionLeaderEpoch`; `None` for Kafka's "no epoch"
    /// (-1) or any other negative value, which a raft log never writes.
    pub fn from_leader_epoch(epoch: i32) -> Option<Term> {
        u64::try_from(epoch).ok().map(Term)
    }
}

impl From<u64> for Term {
    fn from(t: u64) -> Self {
        Term(t)
    }
}

impl fmt::Display for Term {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl openraft::vote::RaftTerm for Term {
    fn next(&self) -> Self {
        Term(self.0 + 1)
    }

    fn as_u64(&self) -> Option<u64> {
        Some(self.0)
    }
}

/// A broker id (Kafka's `broker.id`/`node.id`, non-negative).
pub type NodeId = u64;

/// A raft group: one partition, named by topic and index. The controller's metadata log
/// is a partition too (`__cluster_metadata`/0, as in KRaft), so one transport, one log
/// store and one entry format serve every group on a broker.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct GroupId {
    pub topic: String,
    pub partition: i32,
}

impl GroupId {
    pub fn new(topic: impl Into<String>, partition: i32) -> GroupId {
        GroupId { topic: topic.into(), partition }
    }
}

impl fmt::Display for GroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// What a raft member is: where to reach its raft transport and its Kafka listener.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JetNode {
    /// `host:port` of the raft transport.
    pub raft_addr: String,
    /// Advertised Kafka listener host and port (what Metadata names).
    pub kafka_host: String,
    pub kafka_port: i32,
    /// `broker.rack`, if set.
    pub rack: Option<String>,
}

/// The application data of one raft entry: the record batches of one append, as stored
/// (Kafka v2 batches, offsets and leader epoch as the leader assigned them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendBatches(pub Bytes);

impl fmt::Display for AppendBatches {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "batches({} bytes)", self.0.len())
    }
}

/// What applying an append answers: the offset of its first record and the log end after
/// it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Appended {
    pub base_offset: i64,
    pub log_end_offset: i64,
}

/// The leader id: one leader per term (`leader_id_std`), so term = leader epoch.
pub type LeaderId = openraft::impls::leader_id_std::LeaderId<Term, NodeId>;
/// The leader id as a log id carries it: the term alone.
pub type CommittedLeaderId = openraft::vote::leader_id_std::CommittedLeaderId<Term>;

/// Jet's raft types: one group per partition, entries stored in the segment files.
/// Written out rather than with `declare_raft_types!`, which cannot set the responder.
#[derive(Debug, Clone, Copy, Default, Eq, PartialEq, Ord, PartialOrd)]
pub struct TypeConfig {}

impl openraft::RaftTypeConfig for TypeConfig {
    type D = AppendBatches;
    type R = Appended;
    type NodeId = NodeId;
    type Node = JetNode;
    type Term = Term;
    type LeaderId = LeaderId;
    type Vote = openraft::impls::Vote<Self::LeaderId>;
    type Payload = openraft::EntryPayload<Self::D, Self::NodeId, Self::Node>;
    type Entry = openraft::Entry<<Self::LeaderId as openraft::vote::RaftLeaderId>::Committed, Self::Payload>;
    type Responder<T>
        = WriteCallback<T>
    where
        T: openraft::OptionalSend + 'static;
    type Batch<T>
        = openraft::impls::InlineBatch<T>
    where
        T: openraft::OptionalSend + 'static;
    type AsyncRuntime = openraft_rt_tokio::TokioRuntime;
    type ErrorSource = openraft::impls::BoxedErrorSource;
}

/// How a write learns its fate from openraft: a callback openraft's core runs when the
/// write is applied, or when it refuses it — then synchronously, before the core handles
/// any message sent after it (see [`replica_state`]'s proposals).
pub struct WriteCallback<T>(Box<dyn FnOnce(T) + Send>);

impl<T> WriteCallback<T> {
    pub fn new(callback: impl FnOnce(T) + Send + 'static) -> Self {
        WriteCallback(Box::new(callback))
    }
}

impl<T: openraft::OptionalSend + 'static> openraft::raft::responder::Responder<TypeConfig, T> for WriteCallback<T> {
    fn on_complete(self, result: T) {
        (self.0)(result);
    }
}

/// A raft entry of a partition.
pub type Entry = openraft::Entry<CommittedLeaderId, openraft::EntryPayload<AppendBatches, NodeId, JetNode>>;
/// A log id (term, index).
pub type LogId = openraft::LogId<CommittedLeaderId>;
/// A vote.
pub type Vote = openraft::impls::Vote<LeaderId>;
/// A membership as stored with the log id of its entry.
pub type StoredMembership = openraft::StoredMembership<CommittedLeaderId, NodeId, JetNode>;
