//! Topic-level configuration: the definitions Kafka users know (`retention.ms`,
//! `segment.bytes`, ...), their defaults (taken from the broker's settings), validation
//! for CreateTopics/AlterConfigs, and resolution into the log's settings.

use std::collections::BTreeMap;

use crate::config::KafkaSettings;
use crate::log::LogConfig;

/// Value types as DescribeConfigs v3+ reports them (Kafka's `ConfigType` ids).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    Boolean = 1,
    String = 2,
    Int = 3,
    Long = 5,
    Double = 6,
    List = 7,
}

/// Where a config's value comes from (DescribeConfigs `config_source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    DynamicTopic = 1,
    StaticBroker = 4,
    Default = 5,
}

/// One topic config definition.
pub struct ConfigDef {
    pub name: &'static str,
    pub kind: ConfigType,
    /// The broker setting that supplies the default, when there is one.
    pub broker_synonym: Option<&'static str>,
    /// Kafka's built-in default.
    pub kafka_default: &'static str,
    pub doc: &'static str,
    allowed: Option<&'static [&'static str]>,
    min: Option<i64>,
}

const fn def(name: &'static str, kind: ConfigType, kafka_default: &'static str, doc: &'static str) -> ConfigDef {
    ConfigDef { name, kind, broker_synonym: None, kafka_default, doc, allowed: None, min: None }
}

impl ConfigDef {
    const fn synonym(mut self, s: &'static str) -> Self {
        self.broker_synonym = Some(s);
        self
    }
    const fn one_of(mut self, v: &'static [&'static str]) -> Self {
        self.allowed = Some(v);
        self
    }
    const fn at_least(mut self, min: i64) -> Self {
        self.min = Some(min);
        self
    }
}

use ConfigType::{Boolean, Double, Int, List, Long};

const LONG_MAX: &str = "9223372036854775807";

/// Every topic config Jet accepts, in Kafka's order (alphabetical).
pub static TOPIC_CONFIGS: &[ConfigDef] = &[
    def("cleanup.policy", List, "delete", "delete (retention), compact (log compaction) or both")
        .synonym("log.cleanup.policy")
        .one_of(&["delete", "compact", "compact,delete", "delete,compact"]),
    def("compression.type", ConfigType::String, "producer", "Codec batches are stored with (producer: as sent)")
        .synonym("compression.type")
        .one_of(&["producer", "uncompressed", "none", "gzip", "snappy", "lz4", "zstd"]),
    def("delete.retention.ms", Long, "86400000", "Tombstone retention for compacted topics")
        .synonym("log.cleaner.delete.retention.ms")
        .at_least(0),
    def("file.delete.delay.ms", Long, "60000", "Delay before deleting a file").at_least(0),
    def("flush.messages", Long, LONG_MAX, "Messages between forced flushes").at_least(1),
    def("flush.ms", Long, LONG_MAX, "Interval between forced flushes (set: acknowledged before fsync)")
        .synonym("log.flush.interval.ms")
        .at_least(0),
    def("index.interval.bytes", Int, "4096", "Bytes between sparse offset-index entries")
        .synonym("log.index.interval.bytes")
        .at_least(0),
    def("max.compaction.lag.ms", Long, LONG_MAX, "Max time a message stays uncompacted")
        .synonym("log.cleaner.max.compaction.lag.ms")
        .at_least(1),
    def("max.message.bytes", Int, "1048588", "Largest record batch accepted").synonym("message.max.bytes").at_least(0),
    def("message.timestamp.after.max.ms", Long, "3600000", "Max allowed future timestamp skew").at_least(0),
    def("message.timestamp.before.max.ms", Long, LONG_MAX, "Max allowed past timestamp skew").at_least(0),
    def("message.timestamp.type", ConfigType::String, "CreateTime", "CreateTime or LogAppendTime")
        .synonym("log.message.timestamp.type")
        .one_of(&["CreateTime", "LogAppendTime"]),
    def("min.cleanable.dirty.ratio", Double, "0.5", "Compaction trigger ratio")
        .synonym("log.cleaner.min.cleanable.ratio"),
    def("min.compaction.lag.ms", Long, "0", "Min time a message stays uncompacted")
        .synonym("log.cleaner.min.compaction.lag.ms")
        .at_least(0),
    def("min.insync.replicas", Int, "1", "Replicas that must hold an acks=all write")
        .synonym("min.insync.replicas")
        .at_least(1),
    def("preallocate", Boolean, "false", "Preallocate segment files").synonym("log.preallocate"),
    def("retention.bytes", Long, "-1", "Partition size above which old segments are deleted")
        .synonym("log.retention.bytes"),
    def("retention.ms", Long, "604800000", "Age after which old segments are deleted (-1: never)")
        .synonym("log.retention.ms")
        .at_least(-1),
    def("segment.bytes", Int, "1073741824", "Segment file size").synonym("log.segment.bytes").at_least(14),
    def("segment.index.bytes", Int, "10485760", "Offset index size").at_least(4),
    def("segment.jitter.ms", Long, "0", "Random jitter subtracted from segment.ms").at_least(0),
    def("segment.ms", Long, "604800000", "Time after which a segment is rolled").synonym("log.roll.ms").at_least(1),
    def("unclean.leader.election.enable", Boolean, "false", "Allow out-of-sync replicas to lead"),
];

pub fn find(name: &str) -> Option<&'static ConfigDef> {
    TOPIC_CONFIGS.iter().find(|d| d.name == name)
}

/// Why a config value was refused (reported as `INVALID_CONFIG`).
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigValueError {
    #[error("Unknown topic config name: {0}")]
    Unknown(String),
    #[error("Invalid value {value} for configuration {name}: {reason}")]
    Invalid { name: String, value: String, reason: String },
}

/// Checks one `name=value` for a topic.
pub fn validate(name: &str, value: &str) -> Result<(), ConfigValueError> {
    let def = find(name).ok_or_else(|| ConfigValueError::Unknown(name.to_string()))?;
    let invalid =
        |reason: String| ConfigValueError::Invalid { name: name.to_string(), value: value.to_string(), reason };
    match def.kind {
        Long | Int => {
            let n: i64 = value.trim().parse().map_err(|e: std::num::ParseIntError| invalid(e.to_string()))?;
            if def.kind == Int && i32::try_from(n).is_err() {
                return Err(invalid("out of int range".into()));
            }
            if let Some(min) = def.min
                && n < min
            {
                return Err(invalid(format!("Value must be at least {min}")));
            }
        }
        Double => {
            let v = value.trim().parse::<f64>().map_err(|e| invalid(e.to_string()))?;
            // Kafka's only Double topic config is a ratio.
            if !(0.0..=1.0).contains(&v) {
                return Err(invalid("Value must be between 0 and 1".into()));
            }
        }
        Boolean => {
            if !value.eq_ignore_ascii_case("true") && !value.eq_ignore_ascii_case("false") {
                return Err(invalid("Expected value to be either true or false".into()));
            }
        }
        ConfigType::String | List => {
            if let Some(allowed) = def.allowed {
                let normalized: std::string::String = value.split(',').map(str::trim).collect::<Vec<_>>().join(",");
                if !allowed.contains(&normalized.as_str()) {
                    return Err(invalid(format!("String must be one of: {}", allowed.join(", "))));
                }
            }
        }
    }
    Ok(())
}

/// The broker-level value of a topic config's synonym, when the broker sets it.
fn broker_value(settings: &KafkaSettings, def: &ConfigDef) -> Option<String> {
    Some(match def.broker_synonym? {
        "log.cleanup.policy" => settings.log_cleanup_policy.clone(),
        "compression.type" => settings.compression_type.clone(),
        "log.flush.interval.ms" => settings.log_flush_interval_ms?.to_string(),
        "log.index.interval.bytes" => settings.log_index_interval_bytes.to_string(),
        "message.max.bytes" => settings.message_max_bytes.to_string(),
        "log.message.timestamp.type" => settings.log_message_timestamp_type.clone(),
        "log.retention.bytes" => settings.log_retention_bytes.to_string(),
        "log.retention.ms" => settings.log_retention_ms.to_string(),
        "log.segment.bytes" => settings.log_segment_bytes.to_string(),
        "log.preallocate" => settings.log_preallocate.to_string(),
        "log.roll.ms" => settings.log_roll_ms.to_string(),
        "log.cleaner.delete.retention.ms" => settings.log_cleaner_delete_retention_ms.to_string(),
        "log.cleaner.max.compaction.lag.ms" => settings.log_cleaner_max_compaction_lag_ms.to_string(),
        "log.cleaner.min.cleanable.ratio" => settings.log_cleaner_min_cleanable_ratio.to_string(),
        "log.cleaner.min.compaction.lag.ms" => settings.log_cleaner_min_compaction_lag_ms.to_string(),
        "min.insync.replicas" => settings.min_insync_replicas.to_string(),
        _ => return None,
    })
}

/// Checks the broker settings that are defaults of topic configs with the topic rules,
/// plus the broker-only ones, so a bad flag fails at start rather than at first use.
pub fn validate_broker_settings(settings: &KafkaSettings) -> Result<(), String> {
    for def in TOPIC_CONFIGS {
        if let (Some(synonym), Some(value)) = (def.broker_synonym, broker_value(settings, def)) {
            validate(def.name, &value).map_err(|e| format!("{synonym}: {e}"))?;
        }
    }
    let at_least = |name: &str, value: i64, min: i64| {
        if value < min { Err(format!("{name} must be at least {min}, got {value}")) } else { Ok(()) }
    };
    at_least("num.partitions", i64::from(settings.num_partitions), 1)?;
    at_least("max.broker.partitions", settings.max_broker_partitions, 1)?;
    at_least("log.max.open.segment.files", settings.log_max_open_segment_files, 1)?;
    at_least("default.replication.factor", i64::from(settings.default_replication_factor), 1)?;
    at_least("socket.request.max.bytes", i64::from(settings.socket_request_max_bytes), 1024)?;
    at_least("fetch.max.bytes", i64::from(settings.fetch_max_bytes), 1024)?;
    at_least("offsets.topic.num.partitions", i64::from(settings.offsets_topic_num_partitions), 1)?;
    at_least("offsets.topic.segment.bytes", i64::from(settings.offsets_topic_segment_bytes), 1)?;
    at_least("log.cleaner.threads", i64::from(settings.log_cleaner_threads), 0)?;
    at_least("log.cleaner.backoff.ms", settings.log_cleaner_backoff_ms, 0)?;
    // Kafka's minimum: the offset maps must hold a useful number of keys.
    at_least("log.cleaner.dedupe.buffer.size", settings.log_cleaner_dedupe_buffer_size, 1024 * 1024)?;
    at_least("producer.id.expiration.ms", settings.producer_id_expiration_ms, 1)?;
    at_least("producer.id.expiration.check.interval.ms", settings.producer_id_expiration_check_interval_ms, 1)?;
    at_least("max.producer.ids.per.partition", settings.max_producer_ids_per_partition, 0)?;
    at_least("max.producer.ids", settings.max_producer_ids, 0)?;
    at_least("max.connections", settings.max_connections, 0)?;
    at_least("max.connections.per.ip", settings.max_connections_per_ip, 0)?;
    crate::server::limits::parse_overrides(&settings.max_connections_per_ip_overrides)?;
    Ok(())
}

/// A config's effective value for a topic and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    pub value: String,
    pub source: ConfigSource,
}

pub fn resolve(settings: &KafkaSettings, overrides: &BTreeMap<String, String>, def: &ConfigDef) -> Resolved {
    if let Some(v) = overrides.get(def.name) {
        return Resolved { value: v.clone(), source: ConfigSource::DynamicTopic };
    }
    match broker_value(settings, def) {
        Some(v) if v != def.kafka_default => Resolved { value: v, source: ConfigSource::StaticBroker },
        _ => Resolved { value: def.kafka_default.to_string(), source: ConfigSource::Default },
    }
}

/// Effective settings of one topic, parsed once for the produce and log paths.
#[derive(Debug, Clone, PartialEq)]
pub struct EffectiveTopicConfig {
    pub log: LogConfig,
    pub max_message_bytes: usize,
    pub log_append_time: bool,
    /// `message.timestamp.before.max.ms` / `after.max.ms`: how far a CreateTime
    /// timestamp may lie behind / ahead of the broker's clock.
    pub timestamp_before_max_ms: i64,
    pub timestamp_after_max_ms: i64,
    /// `compression.type` when it names a codec: batches are rewritten with it.
    pub compression: Option<crate::log::Compression>,
    /// `Some(interval)` when `flush.ms` asks for interval flushing instead of an fsync
    /// before every acknowledgement.
    pub flush_interval_ms: Option<i64>,
    /// `cleanup.policy` includes `delete`: retention applies.
    pub cleanup_delete: bool,
    /// `cleanup.policy` includes `compact`: the cleaner compacts the log, and records
    /// without a key are refused.
    pub cleanup_compact: bool,
    /// The compaction configs (used when `cleanup_compact`).
    pub compaction: crate::log::cleaner::CompactionSettings,
    /// `min.insync.replicas`: replicas that must be in sync for an `acks=all` write to be
    /// taken, and hold it before it is acknowledged.
    pub min_insync_replicas: usize,
}

impl Default for EffectiveTopicConfig {
    /// Kafka's defaults.
    fn default() -> Self {
        Self {
            log: LogConfig::default(),
            max_message_bytes: 1_048_588,
            log_append_time: false,
            timestamp_before_max_ms: i64::MAX,
            timestamp_after_max_ms: 3_600_000,
            compression: None,
            flush_interval_ms: None,
            cleanup_delete: true,
            cleanup_compact: false,
            compaction: crate::log::cleaner::CompactionSettings::default(),
            min_insync_replicas: 1,
        }
    }
}

impl EffectiveTopicConfig {
    pub fn new(settings: &KafkaSettings, overrides: &BTreeMap<String, String>) -> Self {
        let get =
            |name: &str| -> String { find(name).map(|d| resolve(settings, overrides, d).value).unwrap_or_default() };
        let long = |name: &str, fallback: i64| get(name).trim().parse::<i64>().unwrap_or(fallback);
        let flush_ms = long("flush.ms", i64::MAX);
        let policy = get("cleanup.policy");
        let cleanup_compact = policy.split(',').any(|p| p.trim() == "compact");
        let cleanup_delete = policy.split(',').any(|p| p.trim() == "delete");
        let max_message_bytes = long("max.message.bytes", 1_048_588).max(0) as usize;
        let compaction = crate::log::cleaner::CompactionSettings {
            delete_retention_ms: long("delete.retention.ms", 86_400_000),
            min_compaction_lag_ms: long("min.compaction.lag.ms", 0),
            max_compaction_lag_ms: long("max.compaction.lag.ms", i64::MAX),
            min_cleanable_dirty_ratio: get("min.cleanable.dirty.ratio").trim().parse().unwrap_or(0.5),
            max_batch_bytes: max_message_bytes,
        };
        let segment_ms = long("segment.ms", 604_800_000);
        // As Kafka's `LogConfig.maxSegmentMs`: a compacted log rolls by
        // max.compaction.lag.ms too, so its records become cleanable in time.
        let segment_ms =
            if cleanup_compact { segment_ms.min(compaction.max_compaction_lag_ms.max(1)) } else { segment_ms };
        Self {
            log: LogConfig {
                segment_bytes: long("segment.bytes", 1 << 30).max(14) as u64,
                segment_ms,
                index_interval_bytes: long("index.interval.bytes", 4096).max(0) as u64,
                retention_ms: long("retention.ms", 604_800_000),
                retention_bytes: long("retention.bytes", -1),
                preallocate: get("preallocate").trim() == "true",
            },
            max_message_bytes,
            log_append_time: get("message.timestamp.type") == "LogAppendTime",
            timestamp_before_max_ms: long("message.timestamp.before.max.ms", i64::MAX),
            timestamp_after_max_ms: long("message.timestamp.after.max.ms", 3_600_000),
            compression: crate::log::recompress::topic_codec(&get("compression.type")),
            flush_interval_ms: (flush_ms != i64::MAX).then_some(flush_ms),
            cleanup_delete,
            cleanup_compact,
            compaction,
            min_insync_replicas: usize::try_from(long("min.insync.replicas", 1)).unwrap_or(1).max(1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn settings() -> KafkaSettings {
        crate::config::Cli::try_parse_from(["jet"]).unwrap().into_broker_config().kafka
    }

    #[test]
    fn validation() {
        assert!(validate("retention.ms", "1000").is_ok());
        assert!(validate("retention.ms", "-1").is_ok());
        assert!(validate("retention.ms", "-2").is_err());
        assert!(validate("retention.ms", "abc").is_err());
        assert!(validate("segment.bytes", "99999999999").is_err());
        assert!(validate("cleanup.policy", "compact, delete").is_ok());
        assert!(validate("cleanup.policy", "shred").is_err());
        assert!(validate("message.timestamp.type", "LogAppendTime").is_ok());
        assert_eq!(validate("nope", "1"), Err(ConfigValueError::Unknown("nope".into())));
    }

    #[test]
    fn broker_settings_are_validated_like_topic_configs() {
        let mut s = settings();
        assert_eq!(validate_broker_settings(&s), Ok(()));
        s.log_message_timestamp_type = "WallClock".into();
        assert!(validate_broker_settings(&s).unwrap_err().starts_with("log.message.timestamp.type"));
        let mut s = settings();
        s.num_partitions = 0;
        assert!(validate_broker_settings(&s).is_err());
        let mut s = settings();
        s.log_retention_ms = -5;
        assert!(validate_broker_settings(&s).is_err());
    }

    #[test]
    fn cleanup_policy_and_compaction_configs() {
        let s = settings();
        let eff = EffectiveTopicConfig::new(&s, &BTreeMap::new());
        assert!(eff.cleanup_delete && !eff.cleanup_compact);
        let over: BTreeMap<_, _> = [
            ("cleanup.policy".to_string(), "compact, delete".to_string()),
            ("max.compaction.lag.ms".to_string(), "60000".to_string()),
            ("delete.retention.ms".to_string(), "5".to_string()),
            ("min.cleanable.dirty.ratio".to_string(), "0.25".to_string()),
        ]
        .into();
        let eff = EffectiveTopicConfig::new(&s, &over);
        assert!(eff.cleanup_delete && eff.cleanup_compact);
        assert_eq!((eff.compaction.delete_retention_ms, eff.compaction.min_cleanable_dirty_ratio), (5, 0.25));
        // A compacted log also rolls by max.compaction.lag.ms (Kafka's maxSegmentMs).
        assert_eq!(eff.log.segment_ms, 60_000);
        assert!(validate("min.cleanable.dirty.ratio", "1.5").is_err());
        assert!(validate("min.cleanable.dirty.ratio", "0.1").is_ok());
        let mut s = settings();
        s.log_cleaner_delete_retention_ms = 7;
        let r = resolve(&s, &BTreeMap::new(), find("delete.retention.ms").unwrap());
        assert_eq!(r, Resolved { value: "7".into(), source: ConfigSource::StaticBroker });
    }

    #[test]
    fn resolution_sources_and_effective_values() {
        let mut s = settings();
        let none = BTreeMap::new();
        let r = resolve(&s, &none, find("retention.ms").unwrap());
        assert_eq!(r, Resolved { value: "604800000".into(), source: ConfigSource::Default });
        s.log_retention_ms = 1000;
        let r = resolve(&s, &none, find("retention.ms").unwrap());
        assert_eq!(r.source, ConfigSource::StaticBroker);
        let over: BTreeMap<_, _> = [("retention.ms".to_string(), "5".to_string())].into();
        assert_eq!(resolve(&s, &over, find("retention.ms").unwrap()).source, ConfigSource::DynamicTopic);
        let eff = EffectiveTopicConfig::new(&s, &over);
        assert_eq!(eff.log.retention_ms, 5);
        assert_eq!(eff.flush_interval_ms, None);
        assert!(!eff.log_append_time);
    }
}
