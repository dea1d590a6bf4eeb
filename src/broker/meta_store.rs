//! Node-local metadata in fjall: topics (id, partition count, config overrides), the
//! cluster id and the producer-id high-water mark.
//!
//! Every write is persisted with `SyncAll` before it is acknowledged: these writes are
//! rare (admin operations, one per producer-id block) and must survive a crash.

use std::collections::BTreeMap;
use std::path::Path;

use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    #[error("metadata store: {0}")]
    Store(#[from] fjall::Error),
    #[error("metadata record `{key}` is unreadable: {source}")]
    Corrupt { key: String, source: serde_json::Error },
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
}

const CLUSTER_ID: &str = "cluster_id";
const PRODUCER_ID_LIMIT: &str = "producer_id_limit";

impl MetaStore {
    pub fn open(dir: &Path) -> Result<Self, MetaError> {
        let db = Database::builder(dir).open()?;
        let topics = db.keyspace("topics", KeyspaceCreateOptions::default)?;
        let node = db.keyspace("node", KeyspaceCreateOptions::default)?;
        Ok(Self { db, topics, node })
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

    pub fn delete_topic(&self, name: &str) -> Result<(), MetaError> {
        self.topics.remove(name.as_bytes())?;
        self.persist()
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
        assert_eq!(store.topics().unwrap(), vec![record]);
        assert_eq!(store.cluster_id_or(|| "other".into()).unwrap(), "abc");
        assert_eq!(store.producer_id_limit().unwrap(), 2000);
        store.delete_topic("t").unwrap();
        assert!(store.topics().unwrap().is_empty());
    }
}
