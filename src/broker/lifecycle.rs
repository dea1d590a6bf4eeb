//! Crash-safe topic lifecycle: a SIGKILL at any point of a create, a CreatePartitions or
//! a delete leaves either the topic or nothing, never orphan directories and never an old
//! topic's records under a new topic of the same name.
//!
//! Three rules make it so:
//! - **One durable intent per change** ([`Intent`], in the metadata store). A create or
//!   grow marks its intent before making any directory, and writes the topic record and
//!   forgets the intent in one atomic batch once every directory exists; a delete removes
//!   the record and marks its intent in one batch, then removes the directories, then
//!   forgets the intent. Start-up rolls back unfinished creates/grows and completes
//!   unfinished deletes ([`recover`]).
//! - **Every partition directory names its owner**: `partition.metadata` (Kafka's file
//!   name and layout, `version: 0` / `topic_id: …`) holds the topic id, written before
//!   the directory is used. A directory whose id is not the live topic's is never
//!   adopted, so a re-created name cannot serve an earlier incarnation's records.
//!   A directory of a live topic with no such file predates this scheme and is adopted
//!   (the file is written when the partition is opened).
//! - **Start-up removes what no topic owns** and logs each directory it removes:
//!   `*-delete` directories, `<topic>-<n>` for a topic that does not exist, an index at or
//!   beyond the topic's partition count, or another topic id. Directories whose names
//!   are not partition directories are left alone.

use std::path::{Path, PathBuf};

use super::meta_store::{Intent, MetaError, MetaStore, TopicRecord};
use super::partition::PartitionError;
use super::topics::{partition_dir, validate_topic_name};

/// Kafka's per-partition file naming the topic id.
pub const PARTITION_METADATA: &str = "partition.metadata";

/// The metadata store's directory inside the data directory.
pub const META_DIR: &str = "__jet_meta";

#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error("{what} {path}: {source}")]
    Io { what: &'static str, path: PathBuf, source: std::io::Error },
    #[error("{dir} belongs to topic id {found}, not to this topic (id {expected}); refusing to open it")]
    ForeignDir { dir: PathBuf, found: String, expected: uuid::Uuid },
    #[error(transparent)]
    Partition(#[from] PartitionError),
    #[error(transparent)]
    Meta(#[from] MetaError),
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> LifecycleError + 'a {
    move |source| LifecycleError::Io { what, path: path.to_path_buf(), source }
}

fn sync_dir(dir: &Path) -> Result<(), LifecycleError> {
    std::fs::File::open(dir).and_then(|f| f.sync_all()).map_err(io("sync directory", dir))
}

/// Who a partition directory says it belongs to.
#[derive(Debug, PartialEq)]
pub enum Owner {
    /// No `partition.metadata` (a directory made before topic ids were recorded).
    Unrecorded,
    Topic(uuid::Uuid),
    /// The file exists but does not parse.
    Unreadable(String),
}

pub fn read_owner(dir: &Path) -> Result<Owner, LifecycleError> {
    let path = dir.join(PARTITION_METADATA);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Owner::Unrecorded),
        Err(e) => return Err(LifecycleError::Io { what: "read", path, source: e }),
    };
    let id = text.lines().find_map(|l| l.strip_prefix("topic_id:")).map(str::trim);
    Ok(match id.map(uuid::Uuid::parse_str) {
        Some(Ok(id)) => Owner::Topic(id),
        _ => Owner::Unreadable(text.chars().take(80).collect()),
    })
}

/// Writes `partition.metadata` naming `id`, durably (temp file, fsync, rename, fsync).
pub fn write_owner(dir: &Path, id: uuid::Uuid) -> Result<(), LifecycleError> {
    let path = dir.join(PARTITION_METADATA);
    // `.tmp` files in a partition directory are removed by log recovery.
    let tmp = dir.join(format!("{PARTITION_METADATA}.tmp"));
    std::fs::write(&tmp, format!("version: 0\ntopic_id: {id}\n")).map_err(io("write", &tmp))?;
    std::fs::File::open(&tmp).and_then(|f| f.sync_all()).map_err(io("sync", &tmp))?;
    std::fs::rename(&tmp, &path).map_err(io("rename", &tmp))?;
    sync_dir(dir)
}

/// Makes a fresh directory for partition `index` of a topic being created or grown,
/// recording `id` in it. Anything already at that path is not owned by a live topic
/// (the topic is not registered yet, or not with this index): it is removed first.
pub fn make_partition_dir(data_dir: &Path, topic: &str, id: uuid::Uuid, index: i32) -> Result<PathBuf, LifecycleError> {
    let dir = partition_dir(data_dir, topic, index);
    if dir.symlink_metadata().is_ok() {
        tracing::warn!(dir = %dir.display(), "removing a leftover directory in the way of a new partition");
        std::fs::remove_dir_all(&dir).map_err(io("remove leftover", &dir))?;
    }
    std::fs::create_dir(&dir).map_err(io("create partition directory", &dir))?;
    sync_dir(data_dir)?;
    write_owner(&dir, id)?;
    Ok(dir)
}

/// Checks that an existing topic's partition directory is its own before opening it:
/// records the id in a directory that has none (made before ids were recorded, or
/// missing altogether), refuses one that names another topic.
pub fn claim_partition_dir(dir: &Path, id: uuid::Uuid) -> Result<(), LifecycleError> {
    if !dir.exists() {
        std::fs::create_dir_all(dir).map_err(io("create partition directory", dir))?;
        if let Some(parent) = dir.parent() {
            sync_dir(parent)?;
        }
        return write_owner(dir, id);
    }
    match read_owner(dir)? {
        Owner::Topic(found) if found == id => Ok(()),
        Owner::Unrecorded => {
            tracing::info!(dir = %dir.display(), topic_id = %id, "recording the topic id of a partition directory");
            write_owner(dir, id)
        }
        Owner::Topic(found) => {
            Err(LifecycleError::ForeignDir { dir: dir.to_path_buf(), found: found.to_string(), expected: id })
        }
        Owner::Unreadable(text) => Err(LifecycleError::ForeignDir {
            dir: dir.to_path_buf(),
            found: format!("unreadable ({text:?})"),
            expected: id,
        }),
    }
}

/// Splits `<topic>-<index>` (the index has no `-`, so the split is unambiguous).
pub fn parse_partition_dir(name: &str) -> Option<(&str, i32)> {
    let (topic, index) = name.rsplit_once('-')?;
    if index.is_empty() || !index.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let index = index.parse().ok()?;
    validate_topic_name(topic).ok()?;
    Some((topic, index))
}

/// Why a directory in the data directory belongs to no live topic, or `None` if it does
/// (or is not a partition directory at all).
fn unowned_reason(name: &str, dir: &Path, topics: &[TopicRecord]) -> Result<Option<String>, LifecycleError> {
    if name.ends_with("-delete") {
        return Ok(Some("left by a topic deletion".into()));
    }
    let Some((topic, index)) = parse_partition_dir(name) else { return Ok(None) };
    let Some(record) = topics.iter().find(|t| t.name == topic) else {
        return Ok(Some(format!("no topic named {topic}")));
    };
    if index >= record.partitions {
        return Ok(Some(format!("topic {topic} has {} partition(s)", record.partitions)));
    }
    Ok(match read_owner(dir)? {
        Owner::Topic(id) if id != record.id => {
            Some(format!("it belongs to an earlier topic {topic} (id {id}), not the current one (id {})", record.id))
        }
        // Ours, or made before ids were recorded (adopted when opened), or unreadable:
        // opening it refuses an unreadable file rather than deleting possible data.
        Owner::Topic(_) | Owner::Unrecorded | Owner::Unreadable(_) => None,
    })
}

/// Removes (and logs) every directory that no topic in `topics` owns; returns them.
pub fn remove_unowned_dirs(data_dir: &Path, topics: &[TopicRecord]) -> Result<Vec<PathBuf>, LifecycleError> {
    let mut removed = Vec::new();
    let entries = std::fs::read_dir(data_dir).map_err(io("list", data_dir))?;
    for entry in entries {
        let entry = entry.map_err(io("list", data_dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if name == META_DIR || !entry.file_type().map_err(io("stat", &path))?.is_dir() {
            continue;
        }
        let Some(reason) = unowned_reason(&name, &path, topics)? else { continue };
        match std::fs::remove_dir_all(&path) {
            Ok(()) => {
                tracing::warn!(dir = %path.display(), reason, "removed a directory that no topic owns");
                removed.push(path);
            }
            Err(e) => {
                tracing::error!(dir = %path.display(), reason, error = %e, "cannot remove a directory that no topic owns")
            }
        }
    }
    if !removed.is_empty() {
        sync_dir(data_dir)?;
    }
    Ok(removed)
}

/// Start-up: finishes or undoes every interrupted topic change and removes every
/// directory no topic owns, then forgets the intents. Returns the live topics.
pub fn recover(data_dir: &Path, meta: &MetaStore) -> Result<Vec<TopicRecord>, LifecycleError> {
    let intents = meta.intents()?;
    for intent in &intents {
        match intent {
            Intent::Create { name, id, partitions } => {
                tracing::warn!(topic = name, topic_id = %id, partitions, "rolling back a topic creation interrupted by a crash")
            }
            Intent::Grow { name, id, from, to } => {
                tracing::warn!(topic = name, topic_id = %id, from, to, "rolling back a partition increase interrupted by a crash")
            }
            Intent::Delete { name, id, partitions } => {
                tracing::warn!(topic = name, topic_id = %id, partitions, "completing a topic deletion interrupted by a crash")
            }
        }
    }
    let topics = meta.topics()?;
    // What an intent left is exactly what no live topic owns: a created or added
    // partition's directory carries an id or index the records do not have, a deleted
    // topic's directory an id no record has.
    remove_unowned_dirs(data_dir, &topics)?;
    for intent in &intents {
        meta.forget(intent)?;
    }
    Ok(topics)
}

#[cfg(test)]
#[path = "lifecycle_tests.rs"]
mod tests;
