//! The topics this broker hosts: name and id lookup, creation, deletion and growth.
//!
//! Partition directories are `<data>/<topic>-<partition>`, as in Kafka. A deleted
//! topic's directories are first renamed to `<topic>-<partition>.<uuid>-delete` so the
//! name can be reused at once, then removed.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use crate::broker::partition::{Partition, PartitionError};
use crate::broker::topic_config::EffectiveTopicConfig;
use crate::config::KafkaSettings;

pub struct Topic {
    pub name: String,
    pub id: uuid::Uuid,
    partitions: RwLock<Vec<Arc<Partition>>>,
    configs: RwLock<BTreeMap<String, String>>,
}

impl Topic {
    pub fn partitions(&self) -> Vec<Arc<Partition>> {
        self.partitions.read().map(|p| p.clone()).unwrap_or_default()
    }

    pub fn partition(&self, index: i32) -> Option<Arc<Partition>> {
        let partitions = self.partitions.read().ok()?;
        usize::try_from(index).ok().and_then(|i| partitions.get(i).cloned())
    }

    pub fn partition_count(&self) -> i32 {
        self.partitions.read().map(|p| p.len() as i32).unwrap_or(0)
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

    /// Opens (or creates) the partitions of a topic and registers it.
    pub fn open_topic(
        &self,
        data_dir: &Path,
        settings: &KafkaSettings,
        name: &str,
        id: uuid::Uuid,
        partitions: i32,
        configs: BTreeMap<String, String>,
    ) -> Result<Arc<Topic>, PartitionError> {
        let effective = EffectiveTopicConfig::new(settings, &configs);
        let mut opened = Vec::with_capacity(partitions.max(0) as usize);
        for index in 0..partitions {
            let dir = partition_dir(data_dir, name, index);
            opened.push(Arc::new(Partition::open(name, index, &dir, effective.clone())?));
        }
        let topic = Arc::new(Topic {
            name: name.to_string(),
            id,
            partitions: RwLock::new(opened),
            configs: RwLock::new(configs),
        });
        if let Ok(mut maps) = self.maps.write() {
            if let Some(old) = maps.by_name.insert(name.to_string(), topic.clone()) {
                maps.by_id.remove(&old.id);
            }
            maps.by_id.insert(id, topic.clone());
        }
        self.changed();
        Ok(topic)
    }

    /// Adds partitions so the topic has `total`.
    pub fn grow(
        &self,
        data_dir: &Path,
        settings: &KafkaSettings,
        topic: &Topic,
        total: i32,
    ) -> Result<(), PartitionError> {
        let effective = EffectiveTopicConfig::new(settings, &topic.configs());
        let mut partitions = topic.partitions.write().map_err(|_| PartitionError::Poisoned)?;
        for index in partitions.len() as i32..total {
            let dir = partition_dir(data_dir, &topic.name, index);
            partitions.push(Arc::new(Partition::open(&topic.name, index, &dir, effective.clone())?));
        }
        drop(partitions);
        self.changed();
        Ok(())
    }

    /// Unregisters a topic and moves its directories out of the way; returns the
    /// renamed directories for the caller to remove.
    pub fn remove(&self, topic: &Topic) -> std::io::Result<Vec<PathBuf>> {
        if let Ok(mut maps) = self.maps.write() {
            maps.by_name.remove(&topic.name);
            maps.by_id.remove(&topic.id);
        }
        self.changed();
        let mut doomed = Vec::new();
        for p in topic.partitions() {
            let target =
                p.dir().with_file_name(format!("{}-{}.{}-delete", topic.name, p.index, uuid::Uuid::new_v4().simple()));
            match std::fs::rename(p.dir(), &target) {
                Ok(()) => doomed.push(target),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(doomed)
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
