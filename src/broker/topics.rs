//! The topics this broker hosts: name and id lookup, creation, deletion and growth.
//!
//! Partition directories are `<data>/<topic>-<partition>`, as in Kafka, each with a
//! `partition.metadata` naming the topic id (see [`lifecycle`]). A deleted topic's
//! directories are first renamed to `<topic>-<partition>.<uuid>-delete` so the name can
//! be reused at once, then removed.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use crate::broker::lifecycle::{self, LifecycleError};
use crate::broker::meta_store::TopicRecord;
use crate::broker::partition::{Partition, PartitionError};
use crate::broker::replica::Replica;
use crate::broker::topic_config::EffectiveTopicConfig;
use crate::config::KafkaSettings;
use crate::log::Flusher;

pub struct Topic {
    pub name: String,
    pub id: uuid::Uuid,
    partitions: RwLock<Partitions>,
    configs: RwLock<BTreeMap<String, String>>,
}

/// A topic's partitions: as the handlers see them ([`Replica`]), and the local logs
/// under them that broker housekeeping (flushes, retention, cleaning, close) works on.
#[derive(Default)]
struct Partitions {
    replicas: Vec<Arc<dyn Replica>>,
    local: Vec<Arc<Partition>>,
}

impl Topic {
    pub fn new(record: &TopicRecord, partitions: Vec<Arc<Partition>>) -> Topic {
        let replicas = partitions.iter().map(|p| p.clone() as Arc<dyn Replica>).collect();
        Topic::with(record, Partitions { replicas, local: partitions })
    }

    /// A topic whose partitions have no local log (in-memory replicas in handler tests).
    pub fn with_replicas(record: &TopicRecord, replicas: Vec<Arc<dyn Replica>>) -> Topic {
        Topic::with(record, Partitions { replicas, local: Vec::new() })
    }

    fn with(record: &TopicRecord, partitions: Partitions) -> Topic {
        Topic {
            name: record.name.clone(),
            id: record.id,
            partitions: RwLock::new(partitions),
            configs: RwLock::new(record.configs.clone()),
        }
    }

    /// The local logs (housekeeping); handlers use [`Self::replica`].
    pub fn partitions(&self) -> Vec<Arc<Partition>> {
        self.partitions.read().map(|p| p.local.clone()).unwrap_or_default()
    }

    /// The local log of partition `index`, if it has one.
    pub fn partition(&self, index: i32) -> Option<Arc<Partition>> {
        let partitions = self.partitions.read().ok()?;
        usize::try_from(index).ok().and_then(|i| partitions.local.get(i).cloned())
    }

    /// Every partition as the handlers see it.
    pub fn replicas(&self) -> Vec<Arc<dyn Replica>> {
        self.partitions.read().map(|p| p.replicas.clone()).unwrap_or_default()
    }

    /// Partition `index` as the handlers see it.
    pub fn replica(&self, index: i32) -> Option<Arc<dyn Replica>> {
        let partitions = self.partitions.read().ok()?;
        usize::try_from(index).ok().and_then(|i| partitions.replicas.get(i).cloned())
    }

    pub fn partition_count(&self) -> i32 {
        self.partitions.read().map(|p| p.replicas.len() as i32).unwrap_or(0)
    }

    /// Topic-level config overrides.
    pub fn configs(&self) -> BTreeMap<String, String> {
        self.configs.read().map(|c| c.clone()).unwrap_or_default()
    }

    pub(crate) fn set_configs(
        &self,
        settings: &KafkaSettings,
        configs: BTreeMap<String, String>,
    ) -> Result<(), PartitionError> {
        let effective = EffectiveTopicConfig::new(settings, &configs);
        for p in self.partitions() {
            p.set_config(effective.clone())?;
        }
        if let Ok(mut c) = self.configs.write() {
            *c = configs;
        }
        Ok(())
    }
}

/// Kafka's internal topics (`Topic.isInternal`); a user topic named `__x` is not one.
pub fn is_internal(name: &str) -> bool {
    matches!(name, "__consumer_offsets" | "__transaction_state" | "__share_group_state")
}

pub fn partition_dir(data_dir: &Path, topic: &str, index: i32) -> PathBuf {
    data_dir.join(format!("{topic}-{index}"))
}

/// Kafka's topic name rules: 1–249 of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn validate_topic_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("Topic name is illegal, it can't be empty".into());
    }
    if name == "." || name == ".." {
        return Err("Topic name cannot be \".\" or \"..\"".into());
    }
    if name.len() > 249 {
        return Err(format!("Topic name is illegal, it can't be longer than 249 characters, topic name: {name}"));
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-') {
        return Err(format!(
            "Topic name {name} is illegal, it contains a character other than ASCII alphanumerics, '.', '_' and '-'"
        ));
    }
    Ok(())
}

#[derive(Default)]
struct Maps {
    by_name: HashMap<String, Arc<Topic>>,
    /// Fetch v13+ and Produce v13+ name every topic by id, per partition: a lookup must
    /// not scan all topics.
    by_id: HashMap<uuid::Uuid, Arc<Topic>>,
}

#[derive(Default)]
pub struct TopicRegistry {
    maps: RwLock<Maps>,
    /// Counts changes to the set of topics and their partition counts.
    version: std::sync::atomic::AtomicI64,
}

impl TopicRegistry {
    /// Changes whenever a topic is created or deleted or gains partitions.
    pub fn version(&self) -> i64 {
        self.version.load(std::sync::atomic::Ordering::Acquire)
    }

    fn changed(&self) {
        self.version.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    pub fn get(&self, name: &str) -> Option<Arc<Topic>> {
        self.maps.read().ok()?.by_name.get(name).cloned()
    }

    pub fn get_by_id(&self, id: uuid::Uuid) -> Option<Arc<Topic>> {
        self.maps.read().ok()?.by_id.get(&id).cloned()
    }

    pub fn all(&self) -> Vec<Arc<Topic>> {
        let mut topics: Vec<_> = self.maps.read().map(|m| m.by_name.values().cloned().collect()).unwrap_or_default();
        topics.sort_by(|a, b| a.name.cmp(&b.name));
        topics
    }

    /// Opens the partitions of a topic recorded in the metadata store (start-up) and
    /// registers it. Each directory must be the topic's own (see [`lifecycle`]).
    pub fn open_topic(
        &self,
        data_dir: &Path,
        settings: &KafkaSettings,
        record: &TopicRecord,
        flusher: &Flusher,
    ) -> Result<Arc<Topic>, LifecycleError> {
        let effective = EffectiveTopicConfig::new(settings, &record.configs);
        let mut opened = Vec::with_capacity(record.partitions.max(0) as usize);
        for index in 0..record.partitions {
            let dir = partition_dir(data_dir, &record.name, index);
            lifecycle::claim_partition_dir(&dir, record.id)?;
            opened.push(Partition::open(&record.name, index, &dir, effective.clone(), flusher)?);
        }
        Ok(self.register(Topic::new(record, opened)))
    }

    /// Makes and opens partitions `from..to` of a topic being created or grown, each in
    /// a fresh directory recording the topic id. On failure (e.g. out of file
    /// descriptors half way) closes and removes every directory it made.
    pub fn make_partitions(
        data_dir: &Path,
        settings: &KafkaSettings,
        record: &TopicRecord,
        from: i32,
        flusher: &Flusher,
    ) -> Result<Vec<Arc<Partition>>, LifecycleError> {
        let effective = EffectiveTopicConfig::new(settings, &record.configs);
        let mut made = Vec::with_capacity((record.partitions - from).max(0) as usize);
        let mut result = Ok(());
        for index in from..record.partitions {
            let opened = lifecycle::make_partition_dir(data_dir, &record.name, record.id, index).and_then(|dir| {
                Partition::open(&record.name, index, &dir, effective.clone(), flusher).map_err(LifecycleError::from)
            });
            match opened {
                Ok(p) => made.push(p),
                Err(e) => {
                    result = Err((index, e));
                    break;
                }
            }
        }
        let Err((failed, e)) = result else { return Ok(made) };
        drop(made);
        remove_partition_dirs(data_dir, &record.name, from..=failed);
        Err(e)
    }

    /// Registers a topic whose partitions are open.
    pub fn register(&self, topic: Topic) -> Arc<Topic> {
        let topic = Arc::new(topic);
        if let Ok(mut maps) = self.maps.write() {
            if let Some(old) = maps.by_name.insert(topic.name.clone(), topic.clone()) {
                maps.by_id.remove(&old.id);
            }
            maps.by_id.insert(topic.id, topic.clone());
        }
        self.changed();
        topic
    }

    /// Appends partitions made by [`TopicRegistry::make_partitions`] to a topic.
    pub fn extend(&self, topic: &Topic, added: Vec<Arc<Partition>>) -> Result<(), PartitionError> {
        let mut partitions = topic.partitions.write().map_err(|_| PartitionError::Poisoned)?;
        partitions.replicas.extend(added.iter().map(|p| p.clone() as Arc<dyn Replica>));
        partitions.local.extend(added);
        drop(partitions);
        self.changed();
        Ok(())
    }

    /// Total partitions of every topic.
    pub fn partition_total(&self) -> i64 {
        self.all().iter().map(|t| i64::from(t.partition_count())).sum()
    }

    /// Unregisters a topic and moves its directories out of the way so the name can be
    /// reused at once; returns the renamed directories for the caller to remove, and
    /// whether every directory was moved. The caller marks the partitions removed (and
    /// waits for the log cleaner to let go of them) first.
    pub fn remove(&self, topic: &Topic) -> (Vec<PathBuf>, bool) {
        if let Ok(mut maps) = self.maps.write() {
            maps.by_name.remove(&topic.name);
            maps.by_id.remove(&topic.id);
        }
        self.changed();
        let mut doomed = Vec::new();
        let mut complete = true;
        for p in topic.partitions() {
            let target =
                p.dir().with_file_name(format!("{}-{}.{}-delete", topic.name, p.index, uuid::Uuid::new_v4().simple()));
            match std::fs::rename(p.dir(), &target) {
                Ok(()) => doomed.push(target),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    // Start-up removes it: the topic record is gone and the intent kept.
                    tracing::warn!(dir = %p.dir().display(), error = %e, "could not move a deleted partition directory");
                    complete = false;
                }
            }
        }
        (doomed, complete)
    }
}

/// Removes the directories of partitions `indexes` of `topic` (undoing a create).
pub fn remove_partition_dirs(data_dir: &Path, topic: &str, indexes: impl Iterator<Item = i32>) {
    for index in indexes {
        let dir = partition_dir(data_dir, topic, index);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {
                tracing::info!(dir = %dir.display(), "removed the directory of a partition whose creation failed")
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            // Start-up removes it: the create intent is kept or no record owns it.
            Err(e) => tracing::warn!(dir = %dir.display(), error = %e, "could not remove a partition directory"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names() {
        assert!(validate_topic_name("orders.v1_x-2").is_ok());
        assert!(validate_topic_name("").is_err());
        assert!(validate_topic_name("..").is_err());
        assert!(validate_topic_name("a/b").is_err());
        assert!(validate_topic_name(&"x".repeat(250)).is_err());
    }
}
