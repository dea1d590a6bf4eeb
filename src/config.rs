//! Command line and environment configuration.
//!
//! Every flag can also be given as an environment variable (`JET_<FLAG>`), and the
//! Kafka-named broker settings (`num.partitions`, `log.retention.ms`, ...) can be given
//! with `--set key=value` using Kafka's own property names, so a Kafka user's
//! `server.properties` knowledge carries over. A `server.properties` file can be given
//! with `--config`; see `layers` for the order in which the sources apply. The cluster
//! flags (gossip, `--bootstrap-expect`, the raft address) are in `cluster`.

pub mod advertise;
pub mod cluster;
pub mod kafka_keys;
pub mod layers;
mod listener;
pub mod properties;
pub mod startup_log;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

pub use listener::{ListenAddr, Listener, ListenerId, Listeners};
use listener::{parse_advertised, parse_listen, parse_listeners};

/// Jet: a Kafka-wire-compatible streaming broker.
#[derive(Debug, Parser)]
#[command(name = "jet", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Broker settings used when no subcommand is given (same as `jet serve`).
    #[command(flatten)]
    pub serve: BrokerConfig,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a broker (the default).
    Serve(Box<BrokerConfig>),
    /// Exit 0 if the broker's admin server reports it ready (`GET /readyz`), else 1:
    /// for a container HEALTHCHECK, no curl needed.
    Healthcheck(HealthcheckArgs),
    /// Admin commands against any Kafka-compatible broker (`crate::cli`).
    #[command(flatten)]
    Admin(crate::cli::AdminCommand),
}

impl Cli {
    /// The broker configuration, whichever way it was given (`jet`, `jet serve`); the
    /// defaults under another subcommand.
    pub fn into_broker_config(self) -> BrokerConfig {
        match self.command {
            Some(Command::Serve(config)) => *config,
            None | Some(Command::Healthcheck(_) | Command::Admin(_)) => self.serve,
        }
    }
}

/// `jet healthcheck`.
#[derive(Debug, Clone, Args)]
pub struct HealthcheckArgs {
    /// The broker's admin address (its `--admin-listen`; a wildcard host such as
    /// `0.0.0.0` means this machine).
    #[arg(long, env = "JET_ADMIN_LISTEN", default_value = "127.0.0.1:9644", value_parser = parse_admin_listen)]
    pub admin_listen: ListenAddr,

    /// Give up (and exit 1) after this many milliseconds.
    #[arg(long, default_value_t = 5_000)]
    pub timeout_ms: u64,
}

/// Everything a broker needs to start.
#[derive(Debug, Clone, Args)]
pub struct BrokerConfig {
    /// This broker's id (Kafka `node.id`).
    #[arg(long, env = "JET_NODE_ID", default_value_t = 1)]
    pub node_id: i32,

    /// Addresses the Kafka listeners bind to (Kafka `listeners`): `host:port`, or a
    /// comma-separated list of `NAME://host:port` (an empty host means all interfaces).
    /// Jet serves PLAINTEXT only for now: `SSL://`, `SASL_SSL://`, `SASL_PLAINTEXT://` are
    /// refused, and a name other than PLAINTEXT must be mapped to PLAINTEXT by
    /// `listener.security.protocol.map`. The first listener (or
    /// `inter.broker.listener.name`) is the one other brokers use.
    #[arg(long, env = "JET_LISTEN", default_value = "0.0.0.0:9092", value_parser = parse_listeners)]
    pub listen: Listeners,

    /// What clients are told to connect to (Kafka `advertised.listeners`): `host:port` for
    /// the broker's own listener, or `NAME://host:port,...` per listener; a client is told
    /// every broker's address on the listener it connected to. Defaults to the address a
    /// listener binds, or the host's canonical name for a listener on all interfaces, with
    /// the listener's port.
    #[arg(long, env = "JET_ADVERTISED_LISTENER", value_parser = parse_advertised)]
    pub advertised_listener: Option<String>,

    /// Address the admin HTTP server binds to (`/livez`, `/readyz`, `/metrics`,
    /// `/v1/cluster`): `host:port`, port 0 for any free port.
    #[arg(long, env = "JET_ADMIN_LISTEN", default_value = "0.0.0.0:9644", value_parser = parse_admin_listen)]
    pub admin_listen: ListenAddr,

    /// Directory holding partition logs and metadata.
    #[arg(long, env = "JET_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// Cluster id reported to clients; generated and stored on first start when unset.
    #[arg(long, env = "JET_CLUSTER_ID")]
    pub cluster_id: Option<String>,

    /// A Kafka-style `server.properties` file. Its settings apply under environment
    /// variables, flags and `--set`; Kafka settings that do not apply to Jet are accepted
    /// and listed at start.
    #[arg(long = "config", value_name = "FILE", env = "JET_CONFIG")]
    pub config_file: Option<PathBuf>,

    /// Log lines as human-readable text or as one JSON object per line.
    #[arg(long, env = "JET_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// `broker.rack`: the rack (or zone) reported for this broker in Metadata.
    #[arg(long, env = "JET_BROKER_RACK")]
    pub broker_rack: Option<String>,

    /// The host advertised when no advertised listener is given: set at start for a
    /// wildcard listener (see `advertise`); `localhost` when unset.
    #[arg(skip)]
    pub default_advertised_host: Option<String>,

    /// Listener names read from the file and `--set` before the listeners.
    #[arg(skip)]
    pub listener_names: layers::ListenerNames,

    /// Gossip discovery, `--bootstrap-expect` and the raft address (see `cluster`).
    #[command(flatten)]
    pub cluster: cluster::ClusterArgs,

    #[command(flatten)]
    pub kafka: KafkaSettings,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Broker-wide settings named after Kafka's `server.properties` keys.
#[derive(Debug, Clone, Args)]
pub struct KafkaSettings {
    /// `num.partitions`: partitions of an auto-created topic or of a CreateTopics request
    /// that asks for the default.
    #[arg(long, env = "JET_NUM_PARTITIONS", default_value_t = 1)]
    pub num_partitions: i32,

    /// `max.broker.partitions` (the name KIP-578 proposed; not in Apache Kafka): most
    /// partitions this broker hosts in total, counting internal topics. A CreateTopics,
    /// CreatePartitions or auto-create that would pass it is refused with
    /// `POLICY_VIOLATION`. Each partition is a directory and open files, so this bounds
    /// what clients can make the broker hold (settable with `--set`).
    #[arg(skip = 10_000)]
    pub max_broker_partitions: i64,

    /// `log.max.open.segment.files` (Jet's own; Kafka keeps every segment open and leaves
    /// the bound to `ulimit -n`): most segment files held open at once, broker-wide.
    /// Segment files are opened when read or written and the least recently used are
    /// closed past this, so idle partitions hold no file descriptor. Capped at half the
    /// process's open-file limit (settable with `--set`).
    #[arg(skip = crate::log::open_files::DEFAULT_MAX_OPEN_SEGMENT_FILES as i64)]
    pub log_max_open_segment_files: i64,

    /// `auto.create.topics.enable`: create a topic on first Metadata/Produce use.
    #[arg(long, env = "JET_AUTO_CREATE_TOPICS_ENABLE", default_value_t = true, action = clap::ArgAction::Set)]
    pub auto_create_topics_enable: bool,

    /// `replica.selector.class` (KIP-392): `org.apache.kafka.common.replica.RackAwareReplicaSelector`
    /// (Jet's default; Kafka's is the leader only) sends a consumer that names its
    /// `client.rack` to an in-sync follower in that rack when the leader is in another;
    /// `org.apache.kafka.common.replica.LeaderSelector` keeps every consumer on the leader.
    #[arg(long, env = "JET_REPLICA_SELECTOR_CLASS", default_value = crate::cluster::read_replica::RACK_AWARE_CLASS)]
    pub replica_selector_class: crate::cluster::read_replica::ReplicaSelector,

    /// `replica.lag.time.max.ms`: a follower stays in the in-sync replicas (Metadata's
    /// ISR, the followers KIP-392 may send consumers to) while it has held everything
    /// committed within this long.
    #[arg(long, env = "JET_REPLICA_LAG_TIME_MAX_MS", default_value_t = 30_000)]
    pub replica_lag_time_max_ms: u64,

    /// `auto.leader.rebalance.enable`: partitions move back to their preferred leader (the
    /// first of their replicas) once it is live and in sync again, for brokers with more than
    /// `leader.imbalance.per.broker.percentage` of their preferred partitions led elsewhere,
    /// checked every `leader.imbalance.check.interval.seconds`.
    #[arg(long, env = "JET_AUTO_LEADER_REBALANCE_ENABLE", default_value_t = true, action = clap::ArgAction::Set)]
    pub auto_leader_rebalance_enable: bool,

    /// `leader.imbalance.check.interval.seconds` (see `auto.leader.rebalance.enable`).
    #[arg(long, env = "JET_LEADER_IMBALANCE_CHECK_INTERVAL_SECONDS", default_value_t = 300)]
    pub leader_imbalance_check_interval_seconds: u64,

    /// `leader.imbalance.per.broker.percentage` (see `auto.leader.rebalance.enable`).
    #[arg(long, env = "JET_LEADER_IMBALANCE_PER_BROKER_PERCENTAGE", default_value_t = 10)]
    pub leader_imbalance_per_broker_percentage: u32,

    /// `min.insync.replicas` (the default of the topic config): an `acks=all` write is
    /// refused with `NOT_ENOUGH_REPLICAS` while fewer replicas are in sync, and answered
    /// once at least this many hold it (and a majority, which raft needs to commit).
    #[arg(long, env = "JET_MIN_INSYNC_REPLICAS", default_value_t = 1)]
    pub min_insync_replicas: i32,

    /// `default.replication.factor` (a single node only has one replica).
    #[arg(long, env = "JET_DEFAULT_REPLICATION_FACTOR", default_value_t = 1)]
    pub default_replication_factor: i16,

    /// `socket.request.max.bytes`: largest request frame accepted.
    #[arg(long, env = "JET_SOCKET_REQUEST_MAX_BYTES", default_value_t = 100 * 1024 * 1024)]
    pub socket_request_max_bytes: u32,

    /// `queued.max.request.bytes`: request bytes the broker holds at once across all
    /// connections (at least `socket.request.max.bytes`). A quarter of it is kept for
    /// decompression scratch; frames get the rest, at least one maximal frame.
    #[arg(long, env = "JET_QUEUED_MAX_REQUEST_BYTES", default_value_t = 1 << 30)]
    pub queued_max_request_bytes: u64,

    /// `fetch.max.bytes`: most bytes one Fetch response carries, whatever the client asks.
    #[arg(long, env = "JET_FETCH_MAX_BYTES", default_value_t = 57_671_680)]
    pub fetch_max_bytes: i32,

    /// `message.max.bytes`: largest record batch accepted (topic `max.message.bytes` default).
    #[arg(long, env = "JET_MESSAGE_MAX_BYTES", default_value_t = 1_048_588)]
    pub message_max_bytes: i64,

    /// `log.segment.bytes`.
    #[arg(long, env = "JET_LOG_SEGMENT_BYTES", default_value_t = 1 << 30)]
    pub log_segment_bytes: i64,

    /// `log.preallocate` (topic `preallocate` default): grow segment files in zero-filled
    /// chunks ahead of the appends, so an `acks=all` fsync does not also commit file-size
    /// and block-allocation metadata.
    #[arg(long, env = "JET_LOG_PREALLOCATE", default_value_t = false, action = clap::ArgAction::Set)]
    pub log_preallocate: bool,

    /// `log.roll.ms` (topic `segment.ms` default).
    #[arg(long, env = "JET_LOG_ROLL_MS", default_value_t = 7 * 24 * 3600 * 1000)]
    pub log_roll_ms: i64,

    /// `log.retention.ms` (-1: keep forever).
    #[arg(long, env = "JET_LOG_RETENTION_MS", default_value_t = 7 * 24 * 3600 * 1000)]
    pub log_retention_ms: i64,

    /// `log.retention.bytes` per partition (-1: unlimited).
    #[arg(long, env = "JET_LOG_RETENTION_BYTES", default_value_t = -1)]
    pub log_retention_bytes: i64,

    /// `log.retention.check.interval.ms`.
    #[arg(long, env = "JET_LOG_RETENTION_CHECK_INTERVAL_MS", default_value_t = 300_000)]
    pub log_retention_check_interval_ms: u64,

    /// `log.index.interval.bytes`.
    #[arg(long, env = "JET_LOG_INDEX_INTERVAL_BYTES", default_value_t = 4096)]
    pub log_index_interval_bytes: i64,

    /// `log.flush.interval.ms` (topic `flush.ms` default). When unset, every write is
    /// fsynced before it is acknowledged or made visible (group commit). When set, data is
    /// fsynced on this interval instead and acknowledged before it is durable: WEAKER —
    /// a machine crash can lose up to this much acknowledged data.
    #[arg(long, env = "JET_LOG_FLUSH_INTERVAL_MS")]
    pub log_flush_interval_ms: Option<i64>,

    /// `log.message.timestamp.type`: CreateTime or LogAppendTime.
    #[arg(long, env = "JET_LOG_MESSAGE_TIMESTAMP_TYPE", default_value = "CreateTime")]
    pub log_message_timestamp_type: String,

    /// `log.cleanup.policy`.
    #[arg(long, env = "JET_LOG_CLEANUP_POLICY", default_value = "delete")]
    pub log_cleanup_policy: String,

    /// `compression.type` (topic default): producer, none, gzip, snappy, lz4, zstd.
    #[arg(long, env = "JET_COMPRESSION_TYPE", default_value = "producer")]
    pub compression_type: String,

    /// `offsets.topic.num.partitions`.
    #[arg(long, env = "JET_OFFSETS_TOPIC_NUM_PARTITIONS", default_value_t = 50)]
    pub offsets_topic_num_partitions: i32,

    /// `offsets.topic.segment.bytes`: `segment.bytes` of `__consumer_offsets` (Kafka's
    /// default 100 MiB, kept small so compaction and loading are fast).
    #[arg(skip = 100 * 1024 * 1024)]
    pub offsets_topic_segment_bytes: i32,

    /// `transaction.state.log.num.partitions`: partitions of `__transaction_state`.
    #[arg(skip = 50)]
    pub transaction_state_log_num_partitions: i32,

    /// `transaction.state.log.segment.bytes` (Kafka's default 100 MiB).
    #[arg(skip = 100 * 1024 * 1024)]
    pub transaction_state_log_segment_bytes: i32,

    /// `transaction.max.timeout.ms`: the longest `transaction.timeout.ms` a producer may ask.
    #[arg(skip = 900_000)]
    pub transaction_max_timeout_ms: i32,

    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms`: how often expired
    /// transactions are looked for (and aborted).
    #[arg(skip = 10_000)]
    pub transaction_abort_timed_out_transaction_cleanup_interval_ms: i64,

    /// `transaction.partition.verification.enable`: whether a partition leader verifies a
    /// transactional write with the coordinator before it opens a transaction (KIP-890).
    #[arg(skip = true)]
    pub transaction_partition_verification_enable: bool,

    /// `transactional.id.expiration.ms`: how long a transactional id with no transaction
    /// open is kept after its last change (Kafka's default 7 days).
    #[arg(skip = 604_800_000)]
    pub transactional_id_expiration_ms: i64,

    /// `transaction.remove.expired.transaction.cleanup.interval.ms`: how often expired
    /// transactional ids are looked for (and removed).
    #[arg(skip = 3_600_000)]
    pub transaction_remove_expired_transaction_cleanup_interval_ms: i64,

    /// `group.initial.rebalance.delay.ms`: how long the first rebalance of an empty
    /// classic group waits for more members (settable with `--set`, like the rest below).
    #[arg(skip = 3_000)]
    pub group_initial_rebalance_delay_ms: i32,

    /// `group.min.session.timeout.ms`.
    #[arg(skip = 6_000)]
    pub group_min_session_timeout_ms: i32,

    /// `group.max.session.timeout.ms`.
    #[arg(skip = 1_800_000)]
    pub group_max_session_timeout_ms: i32,

    /// `group.max.size`: members of one classic group.
    #[arg(skip = i32::MAX)]
    pub group_max_size: i32,

    /// `group.consumer.session.timeout.ms` (KIP-848 groups).
    #[arg(skip = 45_000)]
    pub group_consumer_session_timeout_ms: i32,

    /// `group.consumer.heartbeat.interval.ms` (KIP-848 groups).
    #[arg(skip = 5_000)]
    pub group_consumer_heartbeat_interval_ms: i32,

    /// `group.consumer.max.size`: members of one KIP-848 group.
    #[arg(skip = i32::MAX)]
    pub group_consumer_max_size: i32,

    /// `offsets.retention.minutes`: how long an empty group's committed offsets are kept.
    #[arg(skip = 7 * 24 * 60)]
    pub offsets_retention_minutes: i64,

    /// `offsets.retention.check.interval.ms`.
    #[arg(skip = 600_000)]
    pub offsets_retention_check_interval_ms: i64,

    /// `offset.metadata.max.bytes`: largest metadata string of a committed offset.
    #[arg(skip = 4_096)]
    pub offset_metadata_max_bytes: i32,

    /// `log.cleaner.enable`: run the log cleaner (compaction of `cleanup.policy=compact`).
    #[arg(skip = true)]
    pub log_cleaner_enable: bool,

    /// `log.cleaner.threads`: threads (of their own, off the runtime) cleaning logs.
    #[arg(skip = 1)]
    pub log_cleaner_threads: i32,

    /// `log.cleaner.dedupe.buffer.size`: memory for the cleaners' offset maps, shared
    /// between the threads (24 bytes per key).
    #[arg(skip = 134_217_728)]
    pub log_cleaner_dedupe_buffer_size: i64,

    /// `log.cleaner.backoff.ms`: how long a cleaner sleeps when no log needs cleaning.
    #[arg(skip = 15_000)]
    pub log_cleaner_backoff_ms: i64,

    /// `log.cleaner.delete.retention.ms` (topic `delete.retention.ms` default).
    #[arg(skip = 86_400_000)]
    pub log_cleaner_delete_retention_ms: i64,

    /// `log.cleaner.min.cleanable.ratio` (topic `min.cleanable.dirty.ratio` default).
    #[arg(skip = 0.5)]
    pub log_cleaner_min_cleanable_ratio: f64,

    /// `log.cleaner.min.compaction.lag.ms` (topic `min.compaction.lag.ms` default).
    #[arg(skip = 0)]
    pub log_cleaner_min_compaction_lag_ms: i64,

    /// `log.cleaner.max.compaction.lag.ms` (topic `max.compaction.lag.ms` default).
    #[arg(skip = i64::MAX)]
    pub log_cleaner_max_compaction_lag_ms: i64,

    /// `producer.id.expiration.ms`: an idempotent producer whose last write is older
    /// than this is forgotten (its next batch is accepted as from a new producer).
    #[arg(skip = 86_400_000)]
    pub producer_id_expiration_ms: i64,

    /// `producer.id.expiration.check.interval.ms`: how often expiry runs.
    #[arg(skip = 600_000)]
    pub producer_id_expiration_check_interval_ms: i64,

    /// `max.producer.ids.per.partition` (Jet; Kafka has no cap): producer ids one
    /// partition tracks. A batch from another id is refused with `POLICY_VIOLATION`
    /// until some expire. About 200 bytes each.
    #[arg(skip = 10_000)]
    pub max_producer_ids_per_partition: i64,

    /// `max.producer.ids` (Jet): producer ids tracked across all partitions.
    #[arg(skip = 200_000)]
    pub max_producer_ids: i64,

    /// `max.connections`: open client connections; at the limit the listener stops
    /// accepting until one closes (connections wait in the kernel's backlog).
    #[arg(skip = i64::from(i32::MAX))]
    pub max_connections: i64,

    /// `max.connections.per.ip`: connections from one address; more are closed at once.
    #[arg(skip = i64::from(i32::MAX))]
    pub max_connections_per_ip: i64,

    /// `max.connections.per.ip.overrides`: `host:count,...`, per-host exceptions to
    /// `max.connections.per.ip` (hosts by name or address).
    #[arg(skip)]
    pub max_connections_per_ip_overrides: String,

    /// Any setting by its Kafka property name, e.g. `--set num.partitions=3`. Overrides
    /// the dedicated flags above.
    #[arg(long = "set", value_name = "KEY=VALUE", env = "JET_SET", value_delimiter = ',')]
    pub overrides: Vec<String>,
}

/// The admin server's address: plain `host:port` (HTTP, no listener name).
fn parse_admin_listen(s: &str) -> Result<ListenAddr, String> {
    if s.contains("://") {
        return Err(format!("`{s}`: expected host:port (the admin server speaks plain HTTP)"));
    }
    parse_listen(s)
}

/// A setting that names an unknown key, carries an unparsable value or asks for what Jet
/// refuses.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{given_in}: {error}")]
    At { given_in: String, error: Box<ConfigError> },
    #[error(transparent)]
    File(#[from] properties::PropertiesError),
    #[error("setting `{key}={value}` is refused: {reason}")]
    Refused { key: String, value: String, reason: &'static str },
    #[error("setting `{key}={value}`: Jet keeps its data in one directory; give exactly one")]
    SeveralLogDirs { key: String, value: String },
    #[error("`--set {0}`: expected KEY=VALUE")]
    NotKeyValue(String),
    #[error("unknown broker setting `{0}`")]
    UnknownKey(String),
    #[error("listeners: {reason}")]
    Listeners { reason: String },
    #[error("setting `{key}`: cannot parse `{value}`: {reason}")]
    BadValue { key: String, value: String, reason: String },
    #[error(transparent)]
    Security(#[from] crate::security::SecurityError),
}

impl BrokerConfig {
    /// The request-memory budget: never below one maximal frame.
    pub fn queued_request_bytes(&self) -> usize {
        let max_frame = u64::from(self.kafka.socket_request_max_bytes);
        usize::try_from(self.kafka.queued_max_request_bytes.max(max_frame)).unwrap_or(usize::MAX)
    }

    /// The part of the request-memory budget for produce-path scratch (decompressing
    /// batches to validate them, recompressing them): a quarter of it.
    pub fn decompression_scratch_bytes(&self) -> usize {
        self.queued_request_bytes() / 4
    }

    /// The part of the request-memory budget for request frames: the rest, but never
    /// less than one maximal frame.
    pub fn frame_budget_bytes(&self) -> usize {
        let max_frame = usize::try_from(self.kafka.socket_request_max_bytes).unwrap_or(usize::MAX);
        (self.queued_request_bytes() - self.decompression_scratch_bytes()).max(max_frame)
    }

    /// Applies `--set key=value` overrides onto the typed settings (no config file; the
    /// `jet` binary uses [`BrokerConfig::resolve`]).
    pub fn apply_overrides(&mut self) -> Result<(), ConfigError> {
        let joined = layers::joined_overrides(std::mem::take(&mut self.kafka.overrides));
        for kv in &joined {
            if let Some((key, value)) = kv.split_once('=') {
                self.listener_names.learn(key.trim(), value.trim());
            }
        }
        for kv in &joined {
            let (key, value) = kv.split_once('=').ok_or_else(|| ConfigError::NotKeyValue(kv.clone()))?;
            self.set_property(key.trim(), value.trim())?;
        }
        self.check_listeners()
    }
}

fn parse<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    value.parse::<T>().map_err(|e| ConfigError::BadValue {
        key: key.to_string(),
        value: value.to_string(),
        reason: e.to_string(),
    })
}

/// A duration in hours or minutes as milliseconds; negative is forever (`-1`). The count
/// is an int, as Kafka types `log.retention.hours`/`.minutes` and `log.roll.hours`.
fn scaled(key: &str, value: &str, ms_per_unit: i64) -> Result<i64, ConfigError> {
    let n = i64::from(parse::<i32>(key, value)?);
    if n < 0 {
        return Ok(-1); // as Kafka: any negative retention is "forever"
    }
    n.checked_mul(ms_per_unit).ok_or_else(|| ConfigError::BadValue {
        key: key.to_string(),
        value: value.to_string(),
        reason: format!("too large: at most {} ({} ms)", i64::MAX / ms_per_unit, i64::MAX),
    })
}

impl KafkaSettings {
    /// Sets one setting by its Kafka property name.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        match key {
            "num.partitions" => self.num_partitions = parse(key, value)?,
            "max.broker.partitions" => self.max_broker_partitions = parse(key, value)?,
            "log.max.open.segment.files" => self.log_max_open_segment_files = parse(key, value)?,
            "auto.create.topics.enable" => self.auto_create_topics_enable = parse(key, value)?,
            "default.replication.factor" => self.default_replication_factor = parse(key, value)?,
            "replica.selector.class" => self.replica_selector_class = parse(key, value)?,
            "replica.lag.time.max.ms" => self.replica_lag_time_max_ms = parse(key, value)?,
            "auto.leader.rebalance.enable" => self.auto_leader_rebalance_enable = parse(key, value)?,
            "leader.imbalance.check.interval.seconds" => {
                self.leader_imbalance_check_interval_seconds = parse(key, value)?
            }
            "leader.imbalance.per.broker.percentage" => {
                self.leader_imbalance_per_broker_percentage = parse(key, value)?
            }
            "min.insync.replicas" => self.min_insync_replicas = parse(key, value)?,
            "socket.request.max.bytes" => self.socket_request_max_bytes = parse(key, value)?,
            "message.max.bytes" => self.message_max_bytes = parse(key, value)?,
            "queued.max.request.bytes" => self.queued_max_request_bytes = parse(key, value)?,
            "fetch.max.bytes" => self.fetch_max_bytes = parse(key, value)?,
            "log.segment.bytes" => self.log_segment_bytes = parse(key, value)?,
            "log.preallocate" => self.log_preallocate = parse(key, value)?,
            "log.roll.ms" => self.log_roll_ms = parse(key, value)?,
            "log.roll.hours" => self.log_roll_ms = scaled(key, value, 3_600_000)?,
            "log.retention.ms" => self.log_retention_ms = parse(key, value)?,
            "log.retention.minutes" => self.log_retention_ms = scaled(key, value, 60_000)?,
            "log.retention.hours" => self.log_retention_ms = scaled(key, value, 3_600_000)?,
            "log.retention.bytes" => self.log_retention_bytes = parse(key, value)?,
            "log.retention.check.interval.ms" => self.log_retention_check_interval_ms = parse(key, value)?,
            "log.index.interval.bytes" => self.log_index_interval_bytes = parse(key, value)?,
            "log.flush.interval.ms" => self.log_flush_interval_ms = Some(parse(key, value)?),
            "log.message.timestamp.type" => self.log_message_timestamp_type = value.to_string(),
            "log.cleanup.policy" => self.log_cleanup_policy = value.to_string(),
            "compression.type" => self.compression_type = value.to_string(),
            "offsets.topic.num.partitions" => self.offsets_topic_num_partitions = parse(key, value)?,
            "offsets.topic.segment.bytes" => self.offsets_topic_segment_bytes = parse(key, value)?,
            "transaction.state.log.num.partitions" => self.transaction_state_log_num_partitions = parse(key, value)?,
            "transaction.state.log.segment.bytes" => self.transaction_state_log_segment_bytes = parse(key, value)?,
            "transaction.max.timeout.ms" => self.transaction_max_timeout_ms = parse(key, value)?,
            "transaction.abort.timed.out.transaction.cleanup.interval.ms" => {
                self.transaction_abort_timed_out_transaction_cleanup_interval_ms = parse(key, value)?
            }
            "transactional.id.expiration.ms" => self.transactional_id_expiration_ms = parse(key, value)?,
            "transaction.partition.verification.enable" => {
                self.transaction_partition_verification_enable = parse(key, value)?
            }
            "transaction.remove.expired.transaction.cleanup.interval.ms" => {
                self.transaction_remove_expired_transaction_cleanup_interval_ms = parse(key, value)?
            }
            "group.initial.rebalance.delay.ms" => self.group_initial_rebalance_delay_ms = parse(key, value)?,
            "group.min.session.timeout.ms" => self.group_min_session_timeout_ms = parse(key, value)?,
            "group.max.session.timeout.ms" => self.group_max_session_timeout_ms = parse(key, value)?,
            "group.max.size" => self.group_max_size = parse(key, value)?,
            "group.consumer.session.timeout.ms" => self.group_consumer_session_timeout_ms = parse(key, value)?,
            "group.consumer.heartbeat.interval.ms" => self.group_consumer_heartbeat_interval_ms = parse(key, value)?,
            "group.consumer.max.size" => self.group_consumer_max_size = parse(key, value)?,
            "offsets.retention.minutes" => self.offsets_retention_minutes = parse(key, value)?,
            "offsets.retention.check.interval.ms" => self.offsets_retention_check_interval_ms = parse(key, value)?,
            "offset.metadata.max.bytes" => self.offset_metadata_max_bytes = parse(key, value)?,
            "log.cleaner.enable" => self.log_cleaner_enable = parse(key, value)?,
            "log.cleaner.threads" => self.log_cleaner_threads = parse(key, value)?,
            "log.cleaner.dedupe.buffer.size" => self.log_cleaner_dedupe_buffer_size = parse(key, value)?,
            "log.cleaner.backoff.ms" => self.log_cleaner_backoff_ms = parse(key, value)?,
            "log.cleaner.delete.retention.ms" => self.log_cleaner_delete_retention_ms = parse(key, value)?,
            "log.cleaner.min.cleanable.ratio" => self.log_cleaner_min_cleanable_ratio = parse(key, value)?,
            "log.cleaner.min.compaction.lag.ms" => self.log_cleaner_min_compaction_lag_ms = parse(key, value)?,
            "log.cleaner.max.compaction.lag.ms" => self.log_cleaner_max_compaction_lag_ms = parse(key, value)?,
            "producer.id.expiration.ms" => self.producer_id_expiration_ms = parse(key, value)?,
            "producer.id.expiration.check.interval.ms" => {
                self.producer_id_expiration_check_interval_ms = parse(key, value)?
            }
            "max.producer.ids.per.partition" => self.max_producer_ids_per_partition = parse(key, value)?,
            "max.producer.ids" => self.max_producer_ids = parse(key, value)?,
            "max.connections" => self.max_connections = parse(key, value)?,
            "max.connections.per.ip" => self.max_connections_per_ip = parse(key, value)?,
            "max.connections.per.ip.overrides" => self.max_connections_per_ip_overrides = value.to_string(),
            _ => {
                crate::security::check_security_setting(key, value)?;
                return Err(ConfigError::UnknownKey(key.to_string()));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
