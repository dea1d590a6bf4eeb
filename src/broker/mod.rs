//! Broker state shared by every connection: identity, topics and partitions, the
//! metadata store, the group-commit flusher and producer-id allocation.

pub mod data_dir;
pub mod fetch_sessions;
pub mod in_sync;
pub mod lifecycle;
pub mod log_cleaner;
pub mod meta_store;
pub mod partition;
pub mod producer_batches;
pub mod producer_state;
pub mod raft_replica;
pub mod rate_limited;
pub mod replica;
pub mod topic_config;
pub mod topics;
pub mod txn_verification;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kafka_protocol::ResponseError;

use crate::cluster::runtime::admin::NewTopic;
use crate::config::BrokerConfig;
use crate::log::Flusher;
use lifecycle::LifecycleError;
use meta_store::{Intent, MetaError, MetaStore, TopicRecord};
use partition::PartitionError;
use topics::{Topic, TopicRegistry};

/// Producer ids are reserved durably in blocks of this size.
const PRODUCER_ID_BLOCK: i64 = 1000;

/// Most partitions one admin request may create (Kafka's controller refuses an
/// operation of more than 10000 metadata records with `POLICY_VIOLATION`). Each
/// partition is a directory and open files here, so this also bounds what one request
/// can make the broker do.
pub const MAX_PARTITIONS_PER_REQUEST: i64 = 10_000;

/// The error Kafka gives an operation over [`MAX_PARTITIONS_PER_REQUEST`].
pub fn too_many_partitions() -> ApiError {
    ApiError::with_message(ResponseError::PolicyViolation, "Unable to perform excessively large batch operation.")
}

/// How often interval flushing (`flush.ms`) is checked.
const HOUSEKEEPING_TICK: Duration = Duration::from_millis(100);

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error(transparent)]
    Meta(#[from] MetaError),
    #[error("opening partition: {0}")]
    Partition(#[from] PartitionError),
    #[error("topic directories: {0}")]
    Lifecycle(#[from] LifecycleError),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    DataDir(#[from] data_dir::DataDirError),
    #[error("invalid setting: {0}")]
    Config(String),
    /// Fetches send records from the segment files through placeholders in a reserved
    /// address range (see `protocol::splice`); without it they cannot be served.
    #[error("cannot reserve address space for zero-copy fetches (is `ulimit -v` set?): {0}")]
    AddressSpace(String),
}

/// A Kafka error code with an optional message, for per-resource results.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub code: ResponseError,
    pub message: Option<String>,
}

impl ApiError {
    pub fn new(code: ResponseError) -> Self {
        Self { code, message: None }
    }
    pub fn with_message(code: ResponseError, message: impl Into<String>) -> Self {
        Self { code, message: Some(message.into()) }
    }
}

impl From<PartitionError> for ApiError {
    fn from(e: PartitionError) -> Self {
        ApiError::with_message(e.code(), e.to_string())
    }
}

impl From<LifecycleError> for ApiError {
    fn from(e: LifecycleError) -> Self {
        match e {
            LifecycleError::Partition(e) => e.into(),
            e => ApiError::with_message(ResponseError::KafkaStorageError, e.to_string()),
        }
    }
}

impl From<MetaError> for ApiError {
    fn from(e: MetaError) -> Self {
        ApiError::with_message(ResponseError::KafkaStorageError, e.to_string())
    }
}

struct ProducerIds {
    next: i64,
    limit: i64,
}

pub struct Broker {
    pub config: BrokerConfig,
    pub node_id: i32,
    pub host: String,
    pub port: i32,
    pub cluster_id: String,
    pub topics: TopicRegistry,
    pub flusher: Flusher,
    pub fetch_sessions: fetch_sessions::FetchSessions,
    /// Consumer groups coordinated here.
    pub groups: crate::group::GroupCoordinator,
    /// The transaction coordinator of the `__transaction_state` partitions led here.
    pub txns: crate::txn::TxnCoordinator,
    /// The log cleaner's threads (compaction).
    pub cleaner: log_cleaner::LogCleaner,
    /// Idempotent producer ids tracked across partitions, against `max.producer.ids`.
    pub producer_id_gate: producer_state::ProducerIdGate,
    /// The brokers clients are told about (this one alone until gossip is attached).
    pub cluster: Arc<crate::cluster::directory::BrokerDirectory>,
    /// Request and connection counters for `/metrics`.
    pub metrics: crate::metrics::BrokerMetrics,
    /// Produce-path decompression scratch, part of the request-memory budget.
    pub scratch_budget: crate::protocol::frame::ScratchBudget,
    meta: MetaStore,
    /// Held while the broker runs: no other `jet` opens the same data directory.
    _dir_lock: data_dir::DirLock,
    producer_ids: Mutex<ProducerIds>,
    /// Serialises topic creation/deletion so concurrent auto-creates agree.
    admin: Mutex<()>,
    /// Flips to `true` when the broker starts shutting down: long-polls return early and
    /// connections stop reading.
    shutdown: tokio::sync::watch::Sender<bool>,
    /// The raft side in a cluster (set once at start when gossip runs).
    replication: std::sync::OnceLock<Arc<crate::cluster::runtime::ClusterRuntime>>,
}

/// A lock poisoned by a panic elsewhere: the state it guards may be half-updated, so
/// the request fails rather than acting on it.
pub(crate) fn poisoned<T>(e: std::sync::PoisonError<T>) -> ApiError {
    ApiError::with_message(ResponseError::UnknownServerError, e.to_string())
}

pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

impl Broker {
    /// Opens the data directory, recovering every partition.
    pub fn open(config: BrokerConfig) -> Result<Arc<Broker>, BrokerError> {
        topic_config::validate_broker_settings(&config.kafka).map_err(BrokerError::Config)?;
        crate::protocol::splice::region().map_err(|e| BrokerError::AddressSpace(e.to_string()))?;
        let data_dir = config.data_dir.clone();
        // Durably: a data directory created now and lost to a power loss would take every
        // later acknowledged write with it (tests/powerloss.rs).
        let dir_lock = data_dir::prepare(&data_dir)?;
        let stored = data_dir::check_meta(&data_dir, config.node_id, config.cluster_id.as_deref())?;
        let meta = MetaStore::open(&data_dir.join("__jet_meta"))?;
        let cluster_id = match (&stored, &config.cluster_id) {
            (Some(stored), _) => stored.cluster_id.clone(),
            (None, Some(id)) => id.clone(),
            // A data directory from before meta.properties keeps the id it had.
            (None, None) => meta.cluster_id_or(data_dir::new_cluster_id)?,
        };
        if stored.is_none() {
            let meta = data_dir::MetaProperties { node_id: config.node_id, cluster_id: cluster_id.clone() };
            data_dir::write_meta(&data_dir, &meta)?;
        }
        // Before any partition opens its files.
        let wanted = usize::try_from(config.kafka.log_max_open_segment_files).unwrap_or(usize::MAX);
        crate::log::open_files::FileCache::global().set_limit(crate::log::open_files::cap_for_process(wanted));
        let topics = TopicRegistry::default();
        let flusher = Flusher::start();
        // Finish or undo interrupted topic changes and remove what no topic owns before
        // opening anything.
        for record in lifecycle::recover(&data_dir, &meta)? {
            topics.open_topic(&data_dir, &config.kafka, &record, &flusher)?;
        }
        let limit = meta.producer_id_limit()?;
        let (host, port) = config.advertised();
        let groups = crate::group::GroupCoordinator::new(crate::group::GroupSettings::from_kafka(&config.kafka));
        let txns = crate::txn::TxnCoordinator::new(crate::txn::TxnSettings::from_kafka(&config.kafka));
        if let Some(offsets) = topics.get(crate::group::OFFSETS_TOPIC) {
            groups.load(&offsets)?;
        }
        let broker = Arc::new(Broker {
            node_id: config.node_id,
            host,
            port,
            cluster_id,
            topics,
            flusher,
            fetch_sessions: fetch_sessions::FetchSessions::default(),
            groups,
            txns,
            meta,
            _dir_lock: dir_lock,
            producer_ids: Mutex::new(ProducerIds { next: limit, limit }),
            cluster: Arc::new(crate::cluster::directory::BrokerDirectory::for_config(&config)),
            admin: Mutex::new(()),
            shutdown: tokio::sync::watch::channel(false).0,
            replication: std::sync::OnceLock::new(),
            cleaner: log_cleaner::LogCleaner::default(),
            metrics: crate::metrics::BrokerMetrics::default(),
            scratch_budget: crate::protocol::frame::ScratchBudget::new(config.decompression_scratch_bytes()),
            producer_id_gate: producer_state::ProducerIdGate::new(
                usize::try_from(config.kafka.max_producer_ids).unwrap_or(usize::MAX),
            ),
            config,
        });
        broker.cleaner.start(Arc::downgrade(&broker), &broker.config.kafka);
        Ok(broker)
    }

    /// Serialises admin changes (topic creation, deletion, growth, config changes).
    fn admin_lock(&self) -> Result<std::sync::MutexGuard<'_, ()>, ApiError> {
        self.admin.lock().map_err(poisoned)
    }

    /// Attaches the cluster runtime (once, at start).
    pub fn attach_replication(&self, runtime: Arc<crate::cluster::runtime::ClusterRuntime>) {
        let _ = self.replication.set(runtime);
    }

    /// The cluster runtime, when this broker is part of a cluster.
    pub fn replication(&self) -> Option<&Arc<crate::cluster::runtime::ClusterRuntime>> {
        self.replication.get()
    }

    /// The controller clients are told about: in a cluster the controller group's leader
    /// (-1 while none is elected); a single node is its own controller.
    pub fn controller_id(&self) -> i32 {
        self.replication().map_or(Some(self.node_id), |c| c.controller_id()).unwrap_or(-1)
    }

    /// Starts shutting down (see [`Broker::shutdown_signal`]).
    pub fn begin_shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    /// Resolves `changed()` once shutdown begins.
    pub fn shutdown_signal(&self) -> tokio::sync::watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    pub fn is_shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }

    pub fn topic(&self, name: &str) -> Option<Arc<Topic>> {
        self.topics.get(name)
    }

    /// Creates a topic whose partition i has the replicas `assignments[i]` (checked by the
    /// caller: registered brokers, none twice, one replication factor); `validate_only`
    /// checks without creating. On a single node every list is this broker.
    pub fn create_assigned_topic(
        &self,
        name: &str,
        assignments: Vec<Vec<i32>>,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<Option<Arc<Topic>>, ApiError> {
        let partitions = i32::try_from(assignments.len()).map_err(|_| too_many_partitions())?;
        let Some(cluster) = self.replication() else {
            return self.create_topic(name, partitions, 1, configs, validate_only);
        };
        topics::validate_topic_name(name)
            .map_err(|m| ApiError::with_message(ResponseError::InvalidTopicException, m))?;
        if i64::from(partitions) > MAX_PARTITIONS_PER_REQUEST {
            return Err(too_many_partitions());
        }
        for (k, v) in &configs {
            topic_config::validate(k, v)
                .map_err(|e| ApiError::with_message(ResponseError::InvalidConfig, e.to_string()))?;
        }
        cluster.create_topic(name, NewTopic::Assigned(assignments), configs, validate_only)
    }

    /// Creates a topic; `validate_only` checks without creating.
    pub fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<Option<Arc<Topic>>, ApiError> {
        topics::validate_topic_name(name)
            .map_err(|m| ApiError::with_message(ResponseError::InvalidTopicException, m))?;
        let partitions = if partitions == -1 { self.config.kafka.num_partitions } else { partitions };
        if partitions <= 0 {
            return Err(ApiError::with_message(
                ResponseError::InvalidPartitions,
                "Number of partitions must be larger than 0.",
            ));
        }
        if i64::from(partitions) > MAX_PARTITIONS_PER_REQUEST {
            return Err(too_many_partitions());
        }
        let replication_factor =
            if replication_factor == -1 { self.config.kafka.default_replication_factor } else { replication_factor };
        if replication_factor <= 0 {
            return Err(ApiError::with_message(
                ResponseError::InvalidReplicationFactor,
                "Replication factor must be larger than 0.",
            ));
        }
        if let Some(cluster) = self.replication() {
            for (k, v) in &configs {
                topic_config::validate(k, v)
                    .map_err(|e| ApiError::with_message(ResponseError::InvalidConfig, e.to_string()))?;
            }
            let placed = NewTopic::Placed { partitions, replication_factor };
            return cluster.create_topic(name, placed, configs, validate_only);
        }
        if replication_factor > 1 {
            return Err(ApiError::with_message(
                ResponseError::InvalidReplicationFactor,
                format!(
                    "Unable to replicate the partition {replication_factor} time(s): The target replication factor of {replication_factor} cannot be reached because only 1 broker(s) are registered."
                ),
            ));
        }
        for (k, v) in &configs {
            topic_config::validate(k, v)
                .map_err(|e| ApiError::with_message(ResponseError::InvalidConfig, e.to_string()))?;
        }
        let _guard = self.admin_lock()?;
        if self.topics.get(name).is_some() {
            return Err(ApiError::with_message(
                ResponseError::TopicAlreadyExists,
                format!("Topic '{name}' already exists."),
            ));
        }
        self.check_partition_cap(partitions)?;
        if validate_only {
            return Ok(None);
        }
        let record = TopicRecord { name: name.to_string(), id: uuid::Uuid::new_v4(), partitions, configs };
        let intent = Intent::Create { name: record.name.clone(), id: record.id, partitions };
        self.meta.mark(&intent)?;
        let made = match TopicRegistry::make_partitions(
            &self.config.data_dir,
            &self.config.kafka,
            &record,
            0,
            &self.flusher,
        ) {
            Ok(made) => made,
            Err(e) => {
                tracing::warn!(topic = name, error = %e, "topic creation failed; rolled back");
                self.abandon(&intent);
                return Err(e.into());
            }
        };
        // Durable before visible: registered only once the record is synced.
        if let Err(e) = self.meta.commit_topic(&record, &intent) {
            drop(made);
            topics::remove_partition_dirs(&self.config.data_dir, name, 0..partitions);
            self.abandon(&intent);
            return Err(e.into());
        }
        let topic = self.topics.register(Topic::new(&record, made));
        tracing::info!(topic = name, topic_id = %record.id, partitions, "created topic");
        Ok(Some(topic))
    }

    /// Refuses to host more than `max.broker.partitions` partitions in total.
    fn check_partition_cap(&self, adding: i32) -> Result<(), ApiError> {
        let limit = self.config.kafka.max_broker_partitions;
        let hosted = self.topics.partition_total();
        if hosted + i64::from(adding) > limit {
            return Err(ApiError::with_message(
                ResponseError::PolicyViolation,
                format!(
                    "Adding {adding} partition(s) would exceed the broker's limit of {limit} partitions \
                     (max.broker.partitions); it hosts {hosted}."
                ),
            ));
        }
        Ok(())
    }

    /// With the admin lock held: the topic a request looked up is still the registered
    /// one (not deleted, or deleted and re-created, by a request that held the lock in
    /// between), so its record is not written back or another incarnation's removed.
    fn ensure_registered(&self, topic: &Topic) -> Result<(), ApiError> {
        match self.topics.get(&topic.name) {
            Some(current) if current.id == topic.id => Ok(()),
            _ => Err(ApiError::with_message(
                ResponseError::UnknownTopicOrPartition,
                format!("Topic '{}' was deleted by another request.", topic.name),
            )),
        }
    }

    /// Forgets the intent of a create/grow that failed and was undone; if that fails
    /// too, start-up rolls it back.
    fn abandon(&self, intent: &Intent) {
        if let Err(e) = self.meta.forget(intent) {
            tracing::warn!(?intent, error = %e, "could not forget an undone topic change; start-up will finish it");
        }
    }

    /// An internal topic (`__consumer_offsets`, `__transaction_state`), created with its
    /// own settings on first use as Kafka does when a client needs it: in a cluster on up to
    /// three brokers (Kafka's default replication factor for both), as many as are live.
    pub fn internal_topic(
        &self,
        name: &str,
        partitions: i32,
        configs: BTreeMap<String, String>,
    ) -> Result<Arc<Topic>, ApiError> {
        if let Some(t) = self.topic(name) {
            return Ok(t);
        }
        let replication_factor = match self.replication() {
            Some(_) => i16::try_from(self.cluster.live_brokers().len().clamp(1, 3)).unwrap_or(1),
            None => -1,
        };
        match self.create_topic(name, partitions, replication_factor, configs, false) {
            Ok(Some(t)) => {
                tracing::info!(topic = name, partitions, "created an internal topic");
                Ok(t)
            }
            Err(e) if e.code == ResponseError::TopicAlreadyExists => {
                self.topic(name).ok_or_else(|| ApiError::new(ResponseError::CoordinatorNotAvailable))
            }
            // Creation is never validate-only here, so `Ok(None)` cannot happen.
            Ok(None) => Err(ApiError::new(ResponseError::CoordinatorNotAvailable)),
            Err(e) => Err(e),
        }
    }

    /// Returns the topic, creating it with defaults when auto-creation is on.
    pub fn get_or_auto_create(&self, name: &str) -> Result<Arc<Topic>, ApiError> {
        if let Some(t) = self.topics.get(name) {
            return Ok(t);
        }
        if name == crate::group::OFFSETS_TOPIC {
            // Created with its own settings, as Kafka does when a client asks for it.
            return self.groups.offsets_topic(self).map_err(ApiError::new);
        }
        if !self.config.kafka.auto_create_topics_enable {
            return Err(ApiError::new(ResponseError::UnknownTopicOrPartition));
        }
        match self.create_topic(name, -1, -1, BTreeMap::new(), false) {
            Ok(Some(t)) => Ok(t),
            Ok(None) => Err(ApiError::new(ResponseError::UnknownTopicOrPartition)),
            Err(e) if e.code == ResponseError::TopicAlreadyExists => {
                self.topics.get(name).ok_or_else(|| ApiError::new(ResponseError::UnknownTopicOrPartition))
            }
            Err(e) => Err(e),
        }
    }

    pub fn delete_topic(&self, topic: &Topic) -> Result<(), ApiError> {
        if topics::is_internal(&topic.name) {
            return Err(ApiError::with_message(ResponseError::InvalidTopicException, "Cannot delete internal topic."));
        }
        if let Some(cluster) = self.replication().filter(|c| c.is_replicated(topic)) {
            return cluster.delete_topic(topic);
        }
        let _guard = self.admin_lock()?;
        self.ensure_registered(topic)?;
        // Mark first: once the record is gone start-up removes the directories even if
        // this run stops half way.
        let intent = Intent::Delete { name: topic.name.clone(), id: topic.id, partitions: topic.partition_count() };
        self.meta.delete_topic(&topic.name, &intent)?;
        // Nothing may write into a directory by path once it is moved (a topic of the same
        // name may be created there at once): fence the partitions, then wait for a cleaner
        // pass that is writing cleaned segments into one of them to stop (Kafka's
        // `abortAndPauseCleaning` before deleting a log).
        for p in topic.partitions() {
            p.mark_removed();
            self.cleaner.abort_and_wait(p.dir());
        }
        let (doomed, mut complete) = self.topics.remove(topic);
        for dir in doomed {
            if let Err(e) = std::fs::remove_dir_all(&dir) {
                tracing::warn!(dir = %dir.display(), error = %e, "could not remove deleted partition directory");
                complete = false;
            }
        }
        if complete && let Err(e) = self.meta.forget(&intent) {
            tracing::warn!(topic = topic.name, error = %e, "could not forget a finished deletion; start-up will");
        }
        tracing::info!(topic = topic.name, topic_id = %topic.id, "deleted topic");
        Ok(())
    }

    /// Grows `topic` to `total` partitions; `assignments` (checked by the handler) place the
    /// new ones on a cluster (a single node has one place).
    pub fn create_partitions(
        &self,
        topic: &Topic,
        total: i32,
        assignments: Option<Vec<Vec<i32>>>,
        validate_only: bool,
    ) -> Result<(), ApiError> {
        if let Some(cluster) = self.replication().filter(|c| c.is_replicated(topic)) {
            return cluster.create_partitions(topic, total, assignments, validate_only);
        }
        let _guard = self.admin_lock()?;
        self.ensure_registered(topic)?;
        let current = topic.partition_count();
        if total == current {
            return Err(ApiError::with_message(
                ResponseError::InvalidPartitions,
                format!("Topic already has {current} partition(s)."),
            ));
        }
        if total < current {
            return Err(ApiError::with_message(
                ResponseError::InvalidPartitions,
                format!(
                    "The topic {} currently has {current} partition(s); {total} would not be an increase.",
                    topic.name
                ),
            ));
        }
        if i64::from(total) - i64::from(current) > MAX_PARTITIONS_PER_REQUEST {
            return Err(too_many_partitions());
        }
        self.check_partition_cap(total - current)?;
        if validate_only {
            return Ok(());
        }
        let record =
            TopicRecord { name: topic.name.clone(), id: topic.id, partitions: total, configs: topic.configs() };
        let intent = Intent::Grow { name: topic.name.clone(), id: topic.id, from: current, to: total };
        self.meta.mark(&intent)?;
        let made = match TopicRegistry::make_partitions(
            &self.config.data_dir,
            &self.config.kafka,
            &record,
            current,
            &self.flusher,
        ) {
            Ok(made) => made,
            Err(e) => {
                tracing::warn!(topic = topic.name, error = %e, "partition increase failed; rolled back");
                self.abandon(&intent);
                return Err(e.into());
            }
        };
        if let Err(e) = self.meta.commit_topic(&record, &intent) {
            drop(made);
            topics::remove_partition_dirs(&self.config.data_dir, &topic.name, current..total);
            self.abandon(&intent);
            return Err(e.into());
        }
        self.topics.extend(topic, made)?;
        tracing::info!(topic = topic.name, from = current, to = total, "added partitions");
        Ok(())
    }

    /// Replaces a topic's config overrides (already validated).
    pub fn set_topic_configs(&self, topic: &Topic, configs: BTreeMap<String, String>) -> Result<(), ApiError> {
        if let Some(cluster) = self.replication().filter(|c| c.is_replicated(topic)) {
            return cluster.set_topic_configs(topic, configs);
        }
        let _guard = self.admin_lock()?;
        self.ensure_registered(topic)?;
        self.meta.put_topic(&TopicRecord {
            name: topic.name.clone(),
            id: topic.id,
            partitions: topic.partition_count(),
            configs: configs.clone(),
        })?;
        topic.set_configs(&self.config.kafka, configs)?;
        Ok(())
    }

    /// Hands out a producer id never used before, even across restarts (on a cluster, by
    /// any broker: from a block the controller allocated to this one).
    pub fn next_producer_id(&self) -> Result<i64, ApiError> {
        if let Some(cluster) = self.replication() {
            return cluster.next_producer_id();
        }
        let mut ids = self.producer_ids.lock().map_err(poisoned)?;
        if ids.next >= ids.limit {
            let limit = ids.limit + PRODUCER_ID_BLOCK;
            self.meta.set_producer_id_limit(limit)?;
            ids.limit = limit;
        }
        let id = ids.next;
        ids.next += 1;
        Ok(id)
    }

    /// The caps on tracked producer ids for a produce append, and what it needs to open a
    /// transaction (`txn`: see [`txn_verification`]).
    pub fn producer_limits(&self, txn: txn_verification::TxnVerification) -> producer_state::ProducerLimits<'_> {
        producer_state::ProducerLimits {
            per_partition: usize::try_from(self.config.kafka.max_producer_ids_per_partition).unwrap_or(usize::MAX),
            gate: &self.producer_id_gate,
            txn,
        }
    }

    /// One housekeeping round: interval flushes, retention when `retention_due`,
    /// producer-id expiry when `expiry_due`, and a recount of tracked producer ids.
    pub fn housekeeping(&self, retention_due: bool, expiry_due: bool) {
        let now = now_ms();
        let expiration_ms = self.config.kafka.producer_id_expiration_ms;
        let (mut producers, mut expired) = (0usize, 0usize);
        self.producer_id_gate.begin_recount();
        for topic in self.topics.all() {
            for p in topic.partitions() {
                if let Err(e) = p.maybe_recover_failed_log(now) {
                    tracing::debug!(topic = topic.name, partition = p.index, error = %e, "log still fenced after a failed fsync");
                }
                let counted = if expiry_due {
                    p.expire_producers(now, expiration_ms).map(|(removed, left)| {
                        expired += removed;
                        left
                    })
                } else {
                    p.producer_count()
                };
                match counted {
                    Ok(n) => producers += n,
                    Err(e) => tracing::warn!(topic = topic.name, partition = p.index, error = %e, "producer state"),
                }
                // Through the flusher (which fences the log if the fsync fails), on this
                // blocking-pool thread, with the partition unlocked.
                let flushed = match p.interval_flush_due(now) {
                    Ok(Some(target)) => futures::executor::block_on(p.commit(&self.flusher, target)),
                    Ok(None) => Ok(()),
                    Err(e) => Err(e),
                };
                if let Err(e) = flushed {
                    tracing::warn!(topic = topic.name, partition = p.index, error = %e, "interval flush failed");
                }
                if !retention_due {
                    continue;
                }
                match p.apply_retention(now) {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(
                        topic = topic.name,
                        partition = p.index,
                        segments = n,
                        "retention deleted segments"
                    ),
                    Err(e) => tracing::warn!(topic = topic.name, partition = p.index, error = %e, "retention failed"),
                }
            }
        }
        self.producer_id_gate.finish_recount(producers);
        if expired > 0 {
            tracing::info!(expired, tracked = producers, "expired idle producer ids (producer.id.expiration.ms)");
        }
    }

    /// Housekeeping every `HOUSEKEEPING_TICK` (100 ms) until `shutdown` changes; retention runs
    /// every `log.retention.check.interval.ms`, producer-id expiry every
    /// `producer.id.expiration.check.interval.ms`.
    pub async fn run_housekeeping(self: Arc<Self>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let mut ticker = tokio::time::interval(HOUSEKEEPING_TICK);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let retention_every = Duration::from_millis(self.config.kafka.log_retention_check_interval_ms.max(1));
        let mut last_retention = tokio::time::Instant::now();
        let expiry_every = Duration::from_millis(
            u64::try_from(self.config.kafka.producer_id_expiration_check_interval_ms).unwrap_or(1).max(1),
        );
        let mut last_expiry = tokio::time::Instant::now();
        loop {
            tokio::select! {
                _ = ticker.tick() => {
                    let retention_due = last_retention.elapsed() >= retention_every;
                    if retention_due {
                        last_retention = tokio::time::Instant::now();
                    }
                    let expiry_due = last_expiry.elapsed() >= expiry_every;
                    if expiry_due {
                        last_expiry = tokio::time::Instant::now();
                    }
                    let broker = self.clone();
                    if let Err(e) =
                        tokio::task::spawn_blocking(move || broker.housekeeping(retention_due, expiry_due)).await
                    {
                        tracing::error!(error = %e, "housekeeping task failed");
                    }
                }
                _ = shutdown.changed() => return,
            }
        }
    }

    /// Every partition's sealed segments, for a scrub pass.
    pub fn scrub_targets(&self) -> Vec<(String, Vec<crate::log::scrubber::ScrubTarget>)> {
        let mut out = Vec::new();
        for topic in self.topics.all() {
            for p in topic.partitions() {
                match p.scrub_targets() {
                    Ok(targets) => out.push((format!("{}-{}", topic.name, p.index), targets)),
                    Err(e) => tracing::warn!(topic = topic.name, partition = p.index, error = %e, "cannot scrub"),
                }
            }
        }
        out
    }

    /// One full scrub pass now, on the calling thread (blocking, rate-limited like the
    /// background pass). Returns (segments verified, new damaged ranges).
    pub fn scrub_now(&self) -> (usize, usize) {
        crate::log::scrubber::run_pass(&self.scrub_targets(), crate::log::scrubber::DEFAULT_BYTES_PER_SEC, || false)
    }

    /// Starts the background scrubber thread (see [`crate::log::scrubber`]); `None` if the
    /// thread cannot be created (logged; the broker runs without it).
    pub fn start_scrubber(self: &Arc<Self>) -> Option<crate::log::scrubber::Scrubber> {
        let broker = Arc::downgrade(self);
        let targets = move || broker.upgrade().map_or_else(Vec::new, |b| b.scrub_targets());
        match crate::log::scrubber::Scrubber::start(crate::log::scrubber::ScrubberConfig::default(), targets) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::error!(error = %e, "cannot start the scrubber thread; sealed segments are not scrubbed");
                None
            }
        }
    }

    /// Flushes and closes every partition log (clean shutdown).
    pub fn close(&self) {
        self.cleaner.stop();
        // On a full disk every partition fails alike: the first few are named, the rest
        // counted (the next start recovers them as after a crash).
        const NAMED_FAILURES: usize = 3;
        let mut failed = 0usize;
        for topic in self.topics.all() {
            for p in topic.partitions() {
                if let Err(e) = p.close() {
                    failed += 1;
                    if failed <= NAMED_FAILURES {
                        tracing::error!(topic = topic.name, partition = p.index, error = %e, "close on shutdown failed");
                    }
                }
            }
        }
        if failed > NAMED_FAILURES {
            tracing::error!(
                partitions = failed,
                "close on shutdown failed for {failed} partitions in all; the next start recovers them"
            );
        }
    }
}
