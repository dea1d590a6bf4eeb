//! Metadata records as Kafka record batches: one record per [`MetadataRecord`], its key the
//! record type's name (so `kcat` on the metadata log shows what each record is) and its
//! value the record as JSON. Raft's own entries in the same log are control batches, which
//! [`decode`] skips as every consumer does.

use std::collections::BTreeMap;

use bytes::Bytes;
use kafka_protocol::records::RecordBatchDecoder;
use serde::{Deserialize, Serialize};

/// One change to the cluster metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum MetadataRecord {
    CreateTopic {
        name: String,
        id: uuid::Uuid,
        configs: BTreeMap<String, String>,
        /// Replicas per partition, the first the preferred leader.
        assignments: Vec<Vec<i32>>,
    },
    /// Partitions added after the existing ones.
    CreatePartitions {
        name: String,
        id: uuid::Uuid,
        added: Vec<Vec<i32>>,
    },
    DeleteTopic {
        name: String,
        id: uuid::Uuid,
    },
    /// Incremental: keys in `set` take the value, keys in `delete` return to the default.
    AlterTopicConfigs {
        name: String,
        id: uuid::Uuid,
        set: BTreeMap<String, String>,
        delete: Vec<String>,
    },
    /// A block of producer ids for `broker` (Kafka's AllocateProducerIds).
    AllocateProducerIds {
        broker: i32,
        count: i64,
    },
    /// Starts (or redirects) moving a partition to `target` replicas, or, with `None`,
    /// cancels its move (back to the replicas it had when the move started).
    ReassignPartition {
        name: String,
        id: uuid::Uuid,
        partition: i32,
        target: Option<Vec<i32>>,
    },
    /// The partition's raft group now has exactly `target` as voters: the move is done.
    CompleteReassignment {
        name: String,
        id: uuid::Uuid,
        partition: i32,
        target: Vec<i32>,
    },
}

impl MetadataRecord {
    /// The record type's name, stored as the record key.
    pub fn kind(&self) -> &'static str {
        match self {
            MetadataRecord::CreateTopic { .. } => "CreateTopic",
            MetadataRecord::CreatePartitions { .. } => "CreatePartitions",
            MetadataRecord::DeleteTopic { .. } => "DeleteTopic",
            MetadataRecord::AlterTopicConfigs { .. } => "AlterTopicConfigs",
            MetadataRecord::AllocateProducerIds { .. } => "AllocateProducerIds",
            MetadataRecord::ReassignPartition { .. } => "ReassignPartition",
            MetadataRecord::CompleteReassignment { .. } => "CompleteReassignment",
        }
    }
}

/// Errors encoding or decoding metadata batches.
#[derive(Debug, thiserror::Error)]
pub enum RecordsError {
    #[error("cannot encode a metadata batch: {0}")]
    Encode(String),
    #[error("cannot decode a metadata batch: {0}")]
    Decode(String),
    #[error("metadata record at offset {offset} is not valid: {source}")]
    Json {
        offset: i64,
        #[source]
        source: serde_json::Error,
    },
    #[error("metadata record at offset {0} has no value")]
    NoValue(i64),
}

/// One batch holding `records`, in order.
pub fn encode(records: &[MetadataRecord], now_ms: i64) -> Result<Bytes, RecordsError> {
    let mut encoded = Vec::with_capacity(records.len());
    for (i, r) in records.iter().enumerate() {
        let value = serde_json::to_vec(r).map_err(|e| RecordsError::Json { offset: i as i64, source: e })?;
        encoded.push((Bytes::from_static(r.kind().as_bytes()), Some(Bytes::from(value))));
    }
    let (batch, _) =
        crate::log::batch::plain_batch(encoded, now_ms).map_err(|e| RecordsError::Encode(e.to_string()))?;
    Ok(batch)
}

/// The metadata records in `batches` (whole batches, as one raft entry stores them), in
/// order, with their offsets; control batches (raft's own entries) are skipped.
pub fn decode(batches: &Bytes) -> Result<Vec<(i64, MetadataRecord)>, RecordsError> {
    let mut buf = batches.clone();
    let mut out = Vec::new();
    while !buf.is_empty() {
        let set = RecordBatchDecoder::decode(&mut buf).map_err(|e| RecordsError::Decode(format!("{e:#}")))?;
        for record in set.records.iter().filter(|r| !r.control) {
            let value = record.value.as_deref().ok_or(RecordsError::NoValue(record.offset))?;
            let parsed =
                serde_json::from_slice(value).map_err(|source| RecordsError::Json { offset: record.offset, source })?;
            out.push((record.offset, parsed));
        }
    }
    Ok(out)
}
