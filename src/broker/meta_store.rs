//! Node-local metadata in fjall: topics (id, partition count, config overrides), the
//! cluster id and the producer-id high-water mark.
//!
//! Every write is persisted with `SyncAll` before it is acknowledged: these writes are
//! rare (admin operations, one per producer-id block) and must survive a crash.
//!
//! Topic lifecycle intents (see [`crate::broker::lifecycle`]) live in their own
//! keyspace; a topic record and its intent change together in one atomic batch.

use std::collections::BTreeMap;
use std::path::Path;

use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    #[error("metadata store: {0}")]
    Store(#[from] fjall::Error),
    #[error("metadata store: fsync of {path}: {source}")]
    SyncDir { path: std::path::PathBuf, source: std::io::Error },
    #[error("metadata record `{key}` is unreadable: {source}")]
    Corrupt { key: String, source: serde_json::Error },
}

/// A topic change in progress, recorded durably before any directory is touched so
/// that start-up can finish or undo it after a crash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Intent {
    /// Partitions `0..partitions` of a new topic are being made; the topic record is
    /// written (and this intent forgotten) in one batch once they all exist.
    /// Start-up rolls it back.
    Create { name: String, id: uuid::Uuid, partitions: i32 },
    /// Partitions `from..to` are being added (CreatePartitions). Start-up rolls it back.
    Grow { name: String, id: uuid::Uuid, from: i32, to: i32 },
    /// The topic record is already gone (removed in the batch that wrote this intent);
    /// its directories are being removed. Start-up completes it.
    Delete { name: String, id: uuid::Uuid, partitions: i32 },
}

impl Intent {
    pub fn topic_id(&self) -> uuid::Uuid {
        match self {
            Intent::Create { id, .. } | Intent::Grow { id, .. } | Intent::Delete { id, .. } => *id,
        }
    }

    /// One intent per topic incarnation: a re-created name has a new id.
    fn key(&self) -> [u8; 16] {
        *self.topic_id().as_bytes()
    }
}

/// What is stored about a topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopicRecord {
    pub name: String,
    pub id: uuid::Uuid,
    pub partitions: i32,
    /// Topic-level config overrides (`retention.ms`, ...), by Kafka name.
    pub configs: BTreeMap<String, String>,
}

pub struct MetaStore {
    db: Database,
    topics: Keyspace,
    node: Keyspace,
    intents: Keyspace,
}

const CLUSTER_ID: &str = "cluster_id";
const PRODUCER_ID_LIMIT: &str = "producer_id_limit";

impl MetaStore {
    pub fn open(dir: &Path) -> Result<Self, MetaError> {
        let db = Database::builder(dir).open()?;
        let topics = db.keyspace("topics", KeyspaceCreateOptions::default)?;
        let node = db.keyspace("node", KeyspaceCreateOptions::default)?;
        let intents = db.keyspace("intents", KeyspaceCreateOptions::default)?;
        // fjall 3.1 creates a new keyspace's folder inside `keyspaces/` without fsyncing
        // `keyspaces/` (lsm-tree fsyncs only the folder's own contents): after a power
        // loss the folder could be gone and with it every topic record, acknowledged or
        // not (found by tests/powerloss.rs). Make the entries durable before any use.
        let keyspaces = dir.join("keyspaces");
        std::fs::File::open(&keyspaces)
            .and_then(|d| d.sync_all())
            .map_err(|source| MetaError::SyncDir { path: keyspaces, source })?;
        Ok(Self { db, topics, node, intents })
    }

    fn persist(&self) -> Result<(), MetaError> {
        Ok(self.db.persist(PersistMode::SyncAll)?)
    }

    pub fn topics(&self) -> Result<Vec<TopicRecord>, MetaError> {
        let mut out = Vec::new();
        for guard in self.topics.iter() {
            let (key, value) = guard.into_inner()?;
            let record = serde_json::from_slice(&value)
                .map_err(|source| MetaError::Corrupt { key: String::from_utf8_lossy(&key).into_owned(), source })?;
            out.push(record);
        }
        Ok(out)
    }

    pub fn put_topic(&self, record: &TopicRecord) -> Result<(), MetaError> {
        let value =
            serde_json::to_vec(record).map_err(|source| MetaError::Corrupt { key: record.name.clone(), source })?;
        self.topics.insert(record.name.as_bytes(), value)?;
        self.persist()
    }

    /// Intents left by a run that stopped in the middle of a topic change.
    pub fn intents(&self) -> Result<Vec<Intent>, MetaError> {
        let mut out = Vec::new();
        for guard in self.intents.iter() {
            let (key, value) = guard.into_inner()?;
            let intent = serde_json::from_slice(&value).map_err(|source| MetaError::Corrupt {
                key: format!("intent {}", String::from_utf8_lossy(&key)),
                source,
            })?;
            out.push(intent);
        }
        Ok(out)
    }

    fn encode_intent(intent: &Intent) -> Result<Vec<u8>, MetaError> {
        serde_json::to_vec(intent)
            .map_err(|source| MetaError::Corrupt { key: format!("intent {}", intent.topic_id()), source })
    }

    /// Durably records a create or grow intent before its directories are made.
    pub fn mark(&self, intent: &Intent) -> Result<(), MetaError> {
        self.intents.insert(intent.key(), Self::encode_intent(intent)?)?;
        self.persist()
    }

    /// Durably forgets an intent once its directories are in their final state.
    pub fn forget(&self, intent: &Intent) -> Result<(), MetaError> {
        self.intents.remove(intent.key())?;
        self.persist()
    }

    /// Writes the topic record and forgets the create/grow intent that made it, in one
    /// atomic, synced batch: after a crash either both happened or neither did.
    pub fn commit_topic(&self, record: &TopicRecord, intent: &Intent) -> Result<(), MetaError> {
        let value =
            serde_json::to_vec(record).map_err(|source| MetaError::Corrupt { key: record.name.clone(), source })?;
        let mut batch = self.db.batch().durability(Some(PersistMode::SyncAll));
        batch.insert(&self.topics, record.name.as_bytes(), value);
        batch.remove(&self.intents, intent.key());
        Ok(batch.commit()?)
    }

    /// Removes the topic record and records the delete intent in one atomic, synced
    /// batch: from then on start-up finishes the deletion.
    pub fn delete_topic(&self, name: &str, intent: &Intent) -> Result<(), MetaError> {
        let mut batch = self.db.batch().durability(Some(PersistMode::SyncAll));
        batch.remove(&self.topics, name.as_bytes());
        batch.insert(&self.intents, intent.key(), Self::encode_intent(intent)?);
        Ok(batch.commit()?)
    }

    /// The stored cluster id, or `fresh` stored as the cluster id on first start.
    pub fn cluster_id_or(&self, fresh: impl FnOnce() -> String) -> Result<String, MetaError> {
        if let Some(v) = self.node.get(CLUSTER_ID)? {
            return Ok(String::from_utf8_lossy(&v).into_owned());
        }
        let id = fresh();
        self.node.insert(CLUSTER_ID, id.as_bytes())?;
        self.persist()?;
        Ok(id)
    }

    /// The first producer id never handed out by any earlier run.
    pub fn producer_id_limit(&self) -> Result<i64, MetaError> {
        Ok(match self.node.get(PRODUCER_ID_LIMIT)? {
            Some(v) if v.len() == 8 => {
                let mut b = [0u8; 8];
                b.copy_from_slice(&v);
                i64::from_be_bytes(b)
            }
            _ => 0,
        })
    }

    /// Durably reserves producer ids below `limit` for this run.
    pub fn set_producer_id_limit(&self, limit: i64) -> Result<(), MetaError> {
        self.node.insert(PRODUCER_ID_LIMIT, limit.to_be_bytes())?;
        self.persist()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_and_counters_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let record = TopicRecord {
            name: "t".into(),
            id: uuid::Uuid::new_v4(),
            partitions: 3,
            configs: [("retention.ms".to_string(), "1000".to_string())].into(),
        };
        {
            let store = MetaStore::open(dir.path()).unwrap();
            store.put_topic(&record).unwrap();
            assert_eq!(store.cluster_id_or(|| "abc".into()).unwrap(), "abc");
            store.set_producer_id_limit(2000).unwrap();
        }
        let store = MetaStore::open(dir.path()).unwrap();
        assert_eq!(store.topics().unwrap(), vec![record.clone()]);
        assert_eq!(store.cluster_id_or(|| "other".into()).unwrap(), "abc");
        assert_eq!(store.producer_id_limit().unwrap(), 2000);
        let intent = Intent::Delete { name: "t".into(), id: record.id, partitions: 3 };
        store.delete_topic("t", &intent).unwrap();
        assert!(store.topics().unwrap().is_empty());
        assert_eq!(store.intents().unwrap(), vec![intent.clone()]);
        store.forget(&intent).unwrap();
        assert!(store.intents().unwrap().is_empty());
    }
}
