//! Crash injection between every step of create, CreatePartitions and delete: the steps
//! are called one by one (as [`Broker`](super::super::Broker) calls them), the "crash"
//! is simply stopping there, and start-up ([`recover`]) must leave the whole topic or
//! nothing.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use clap::Parser;

use super::*;
use crate::broker::Broker;
use crate::broker::replica::Replica;
use crate::broker::topics::TopicRegistry;
use crate::config::KafkaSettings;
use crate::log::test_util::producer_batch;
use crate::log::validate_produced_batches;

fn settings() -> KafkaSettings {
    crate::config::Cli::try_parse_from(["jet"]).unwrap().into_broker_config().kafka
}

fn record(name: &str, partitions: i32) -> TopicRecord {
    TopicRecord { name: name.into(), id: uuid::Uuid::new_v4(), partitions, configs: BTreeMap::new() }
}

/// Every directory in the data directory except the metadata store's, sorted.
fn dirs(data: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(data)
        .unwrap()
        .flatten()
        .filter(|e| e.file_type().unwrap().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != META_DIR)
        .collect();
    out.sort();
    out
}

fn expected_dirs(name: &str, partitions: i32) -> Vec<String> {
    let mut out: Vec<String> = (0..partitions).map(|i| format!("{name}-{i}")).collect();
    out.sort();
    out
}

/// After start-up: no intents left, and the topic either fully there (record and every
/// directory, each recording its id) or entirely gone.
fn assert_whole_or_nothing(data: &Path, meta: &MetaStore, name: &str) -> Option<TopicRecord> {
    let live = recover(data, meta).unwrap();
    assert!(meta.intents().unwrap().is_empty(), "start-up must forget every intent");
    let found = live.into_iter().find(|t| t.name == name);
    match &found {
        Some(t) => {
            assert_eq!(dirs(data), expected_dirs(name, t.partitions));
            for i in 0..t.partitions {
                assert_eq!(read_owner(&partition_dir(data, name, i)).unwrap(), Owner::Topic(t.id));
            }
        }
        None => assert_eq!(dirs(data), Vec::<String>::new(), "no directory may outlive its topic"),
    }
    found
}

#[test]
fn create_interrupted_at_every_step_rolls_back_or_is_complete() {
    let settings = settings();
    // Steps: 0 mark, 1..=3 one directory each, 4 a directory made but not yet
    // recording its id, 5 commit.
    for crash_after in 0..=5 {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path();
        let meta = MetaStore::open(&data.join(META_DIR)).unwrap();
        let rec = record("t", 3);
        let intent = Intent::Create { name: "t".into(), id: rec.id, partitions: 3 };
        meta.mark(&intent).unwrap();
        if crash_after >= 1 {
            let made = (1..=crash_after.min(3)).map(|i| i - 1);
            for index in made {
                make_partition_dir(data, "t", rec.id, index).unwrap();
            }
        }
        if crash_after == 4 {
            std::fs::create_dir(partition_dir(data, "t", 3)).unwrap();
        }
        if crash_after == 5 {
            let parts =
                TopicRegistry::make_partitions(data, &settings, &rec, 0, &crate::log::Flusher::start()).unwrap();
            meta.commit_topic(&rec, &intent).unwrap();
            drop(parts);
        }
        let found = assert_whole_or_nothing(data, &meta, "t");
        assert_eq!(found.is_some(), crash_after == 5, "crash after step {crash_after}");
    }
}

#[test]
fn grow_interrupted_at_every_step_keeps_the_old_partitions_only() {
    let settings = settings();
    for crash_after in 0..=3 {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path();
        let meta = MetaStore::open(&data.join(META_DIR)).unwrap();
        let rec = record("g", 2);
        let create = Intent::Create { name: "g".into(), id: rec.id, partitions: 2 };
        meta.mark(&create).unwrap();
        drop(TopicRegistry::make_partitions(data, &settings, &rec, 0, &crate::log::Flusher::start()).unwrap());
        meta.commit_topic(&rec, &create).unwrap();
        let grown = TopicRecord { partitions: 4, ..rec.clone() };
        let intent = Intent::Grow { name: "g".into(), id: rec.id, from: 2, to: 4 };
        meta.mark(&intent).unwrap();
        if crash_after >= 1 {
            make_partition_dir(data, "g", rec.id, 2).unwrap();
        }
        if crash_after >= 2 {
            make_partition_dir(data, "g", rec.id, 3).unwrap();
        }
        if crash_after == 3 {
            meta.commit_topic(&grown, &intent).unwrap();
        }
        let found = assert_whole_or_nothing(data, &meta, "g").expect("the topic survives");
        assert_eq!(found.partitions, if crash_after == 3 { 4 } else { 2 }, "crash after step {crash_after}");
    }
}

#[test]
fn delete_interrupted_at_every_step_is_completed() {
    let settings = settings();
    // Steps: 0 none (the topic stays), 1 record removed + intent marked, 2 one directory
    // renamed to *-delete, 3 all renamed, 4 the renamed ones removed, 5 intent forgotten.
    for crash_after in 0..=5 {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path();
        let meta = MetaStore::open(&data.join(META_DIR)).unwrap();
        let rec = record("d", 2);
        let create = Intent::Create { name: "d".into(), id: rec.id, partitions: 2 };
        meta.mark(&create).unwrap();
        drop(TopicRegistry::make_partitions(data, &settings, &rec, 0, &crate::log::Flusher::start()).unwrap());
        meta.commit_topic(&rec, &create).unwrap();
        let intent = Intent::Delete { name: "d".into(), id: rec.id, partitions: 2 };
        if crash_after >= 1 {
            meta.delete_topic("d", &intent).unwrap();
        }
        let renamed: Vec<_> =
            (0..2).map(|i| data.join(format!("d-{i}.{}-delete", uuid::Uuid::new_v4().simple()))).collect();
        for (i, target) in renamed.iter().enumerate() {
            if crash_after >= 2 + i {
                std::fs::rename(partition_dir(data, "d", i as i32), target).unwrap();
            }
        }
        if crash_after >= 4 {
            renamed.iter().for_each(|d| std::fs::remove_dir_all(d).unwrap());
        }
        if crash_after >= 5 {
            meta.forget(&intent).unwrap();
        }
        let found = assert_whole_or_nothing(data, &meta, "d");
        assert_eq!(found.is_some(), crash_after == 0, "crash after step {crash_after}");
    }
}

#[test]
fn directories_of_an_earlier_topic_or_beyond_the_count_are_removed_others_left() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let meta = MetaStore::open(&data.join(META_DIR)).unwrap();
    let rec = record("t", 1);
    let intent = Intent::Create { name: "t".into(), id: rec.id, partitions: 1 };
    meta.commit_topic(&rec, &intent).unwrap();
    // t-0 from an earlier incarnation of `t`: must not be adopted.
    make_partition_dir(data, "t", uuid::Uuid::new_v4(), 0).unwrap();
    make_partition_dir(data, "t", rec.id, 1).unwrap();
    make_partition_dir(data, "gone", uuid::Uuid::new_v4(), 0).unwrap();
    std::fs::create_dir(data.join("lost+found")).unwrap();
    std::fs::write(data.join("recovery-point-offset-checkpoint"), "0\n").unwrap();
    let removed = remove_unowned_dirs(data, std::slice::from_ref(&rec)).unwrap();
    assert_eq!(removed.len(), 3);
    assert_eq!(dirs(data), vec!["lost+found".to_string()]);
    assert!(data.join("recovery-point-offset-checkpoint").exists());
    // Opening the topic then makes a fresh, empty t-0 recording the right id.
    claim_partition_dir(&partition_dir(data, "t", 0), rec.id).unwrap();
    assert_eq!(read_owner(&partition_dir(data, "t", 0)).unwrap(), Owner::Topic(rec.id));
}

#[test]
fn a_directory_without_an_id_is_adopted_and_a_foreign_one_refused() {
    let dir = tempfile::tempdir().unwrap();
    let legacy = dir.path().join("t-0");
    std::fs::create_dir(&legacy).unwrap();
    std::fs::write(legacy.join("00000000000000000000.log"), b"").unwrap();
    let id = uuid::Uuid::new_v4();
    claim_partition_dir(&legacy, id).unwrap();
    assert_eq!(read_owner(&legacy).unwrap(), Owner::Topic(id));
    assert!(legacy.join("00000000000000000000.log").exists());
    let err = claim_partition_dir(&legacy, uuid::Uuid::new_v4()).unwrap_err();
    assert!(matches!(err, LifecycleError::ForeignDir { .. }), "{err}");
    // An unreadable id is refused (not adopted, not deleted: start-up keeps it).
    std::fs::write(legacy.join(PARTITION_METADATA), b"\0\0garbage").unwrap();
    let err = claim_partition_dir(&legacy, id).unwrap_err();
    assert!(matches!(err, LifecycleError::ForeignDir { .. }), "{err}");
    let rec = TopicRecord { name: "t".into(), id, partitions: 1, configs: BTreeMap::new() };
    assert!(remove_unowned_dirs(dir.path(), &[rec]).unwrap().is_empty());
    assert!(legacy.join("00000000000000000000.log").exists());
}

#[test]
fn partition_dir_names_parse_unambiguously() {
    assert_eq!(parse_partition_dir("orders-3"), Some(("orders", 3)));
    assert_eq!(parse_partition_dir("a-1-2"), Some(("a-1", 2)));
    assert_eq!(parse_partition_dir("a-+2"), None);
    assert_eq!(parse_partition_dir("a-"), None);
    assert_eq!(parse_partition_dir("lost+found"), None);
    assert_eq!(parse_partition_dir("__jet_meta"), None);
}

fn broker(data: &Path, extra: &[&str]) -> Arc<Broker> {
    let mut args = vec!["jet", "--listen", "127.0.0.1:0", "--data-dir", data.to_str().unwrap()];
    args.extend_from_slice(extra);
    let mut config = crate::config::Cli::try_parse_from(args).unwrap().into_broker_config();
    config.apply_overrides().unwrap();
    Broker::open(config).unwrap()
}

/// The process dies: the broker is gone once no thread holds it any more (the log
/// cleaner may be in a pass with its own reference, and the data directory's lock goes
/// with the last one), as a killed process is gone before it is restarted.
fn crash(b: Arc<Broker>) {
    let gone = Arc::downgrade(&b);
    drop(b);
    let start = std::time::Instant::now();
    while gone.strong_count() > 0 {
        assert!(start.elapsed() < std::time::Duration::from_secs(30), "the broker is still held after 30 s");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

fn append_one(b: &Broker, topic: &str) {
    let bytes = producer_batch(1, crate::broker::now_ms(), 8, kafka_protocol::records::Compression::None, (-1, -1, -1));
    let headers = validate_produced_batches(&bytes, 1 << 20).unwrap();
    let p = b.topic(topic).unwrap().partition(0).unwrap();
    p.append_unlimited(bytes::Bytes::from(bytes), &headers, crate::broker::now_ms()).unwrap();
    p.flush().unwrap();
}

fn log_end(b: &Broker, topic: &str) -> i64 {
    b.topic(topic).unwrap().partition(0).unwrap().high_watermark()
}

#[test]
fn a_topic_deleted_during_a_crash_never_comes_back_in_a_new_topic() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path(), &[]);
    b.create_topic("t", 2, 1, BTreeMap::new(), false).unwrap();
    append_one(&b, "t");
    assert_eq!(log_end(&b, "t"), 1);
    let t = b.topic("t").unwrap();
    // The crash: the delete is marked, nothing else happened.
    b.meta.delete_topic("t", &Intent::Delete { name: "t".into(), id: t.id, partitions: 2 }).unwrap();
    drop(t);
    crash(b);
    let b = broker(dir.path(), &[]);
    assert!(b.topic("t").is_none());
    assert_eq!(dirs(dir.path()), Vec::<String>::new());
    b.create_topic("t", 2, 1, BTreeMap::new(), false).unwrap();
    assert_eq!(log_end(&b, "t"), 0, "the new topic must not serve the old one's records");
}

#[test]
fn a_create_that_fails_half_way_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path(), &[]);
    // Partition 3's directory cannot be made: a file (not a directory) is in the way.
    std::fs::write(dir.path().join("t-3"), b"in the way").unwrap();
    let Err(err) = b.create_topic("t", 5, 1, BTreeMap::new(), false) else { panic!("created") };
    assert_eq!(err.code, kafka_protocol::ResponseError::KafkaStorageError, "{err:?}");
    assert!(b.topic("t").is_none());
    assert_eq!(dirs(dir.path()), Vec::<String>::new());
    assert!(b.meta.intents().unwrap().is_empty());
    assert!(b.meta.topics().unwrap().iter().all(|r| r.name != "t"));
    // The same for CreatePartitions.
    std::fs::remove_file(dir.path().join("t-3")).unwrap();
    b.create_topic("t", 2, 1, BTreeMap::new(), false).unwrap();
    std::fs::write(dir.path().join("t-3"), b"in the way").unwrap();
    let t = b.topic("t").unwrap();
    assert!(b.create_partitions(&t, 5, None, false).is_err());
    assert_eq!(t.partition_count(), 2);
    assert_eq!(dirs(dir.path()), expected_dirs("t", 2));
    assert_eq!(b.meta.topics().unwrap().iter().find(|r| r.name == "t").unwrap().partitions, 2);
}

#[test]
fn partitions_are_capped_per_broker() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path(), &["--set", "max.broker.partitions=5"]);
    b.create_topic("a", 3, 1, BTreeMap::new(), false).unwrap();
    let Err(err) = b.create_topic("b", 3, 1, BTreeMap::new(), false) else { panic!("created") };
    assert_eq!(err.code, kafka_protocol::ResponseError::PolicyViolation);
    assert!(err.message.as_deref().unwrap().contains("max.broker.partitions"), "{err:?}");
    // validate_only is refused the same way, and nothing was made.
    assert!(b.create_topic("b", 3, 1, BTreeMap::new(), true).is_err());
    assert_eq!(dirs(dir.path()), expected_dirs("a", 3));
    let a = b.topic("a").unwrap();
    let err = b.create_partitions(&a, 6, None, false).unwrap_err();
    assert_eq!(err.code, kafka_protocol::ResponseError::PolicyViolation);
    b.create_partitions(&a, 5, None, false).unwrap();
    // Auto-creation obeys it too.
    let Err(err) = b.get_or_auto_create("c") else { panic!("created") };
    assert_eq!(err.code, kafka_protocol::ResponseError::PolicyViolation);
}

#[test]
fn a_stale_topic_handle_cannot_touch_a_deleted_or_recreated_topic() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path(), &[]);
    b.create_topic("t", 1, 1, BTreeMap::new(), false).unwrap();
    // A request looked the topic up, then another deleted and re-created it.
    let stale = b.topic("t").unwrap();
    b.delete_topic(&stale).unwrap();
    assert!(b.create_partitions(&stale, 3, None, false).is_err(), "would write the deleted topic's record back");
    assert!(b.set_topic_configs(&stale, BTreeMap::new()).is_err(), "would write the deleted topic's record back");
    assert!(b.meta.topics().unwrap().is_empty());
    b.create_topic("t", 1, 1, BTreeMap::new(), false).unwrap();
    let err = b.delete_topic(&stale).unwrap_err();
    assert_eq!(err.code, kafka_protocol::ResponseError::UnknownTopicOrPartition);
    let current = b.topic("t").expect("the new topic survives a stale delete");
    assert_ne!(current.id, stale.id);
    assert_eq!(b.meta.topics().unwrap()[0].id, current.id);
    assert_eq!(dirs(dir.path()), expected_dirs("t", 1));
}
