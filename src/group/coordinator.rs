//! [`GroupCoordinator`]: every group of this broker, its committed offsets, and the
//! writes that make them durable.
//!
//! Each operation runs under one lock: validate, change the in-memory state, append the
//! resulting records to the group's `__consumer_offsets` partition, unlock. It returns a
//! [`Completion`] that waits (outside the lock) for those records to be fsynced, then
//! answers the parked requests the change completed, then yields its own answer. So a
//! client never learns of a change that a crash could undo, and the log holds changes in
//! the order they were made.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use futures::FutureExt;
use kafka_protocol::ResponseError;
use tracing::{info, warn};

use crate::broker::partition::PartitionError;
use crate::broker::producer_state::{ProducerIdGate, ProducerLimits};
use crate::broker::replica::Replica;
use crate::broker::topics::Topic;
use crate::broker::{Broker, now_ms};
use crate::config::KafkaSettings;
use crate::group::classic::{ClassicConfig, ClassicGroup, Effects, Reply};
use crate::group::consumer::{ConsumerGroup, ConsumerGroupConfig, TopicsSnapshot};
use crate::group::deadlines::DeadlineQueue;
use crate::group::durability::{Barrier, OffsetsPartitions};
use crate::group::records::{self, KeyValue, OffsetValue};
use crate::group::{OFFSETS_TOPIC, partition_for};
use crate::log::batch::internal_batch;

/// Group settings, from the broker's Kafka settings.
#[derive(Debug, Clone)]
pub struct GroupSettings {
    pub classic: ClassicConfig,
    pub consumer: ConsumerGroupConfig,
    pub offsets_partitions: i32,
    pub offsets_segment_bytes: i32,
    pub offsets_retention_ms: i64,
    pub offsets_retention_check_interval_ms: i64,
    pub offset_metadata_max_bytes: usize,
}

impl GroupSettings {
    pub fn from_kafka(k: &KafkaSettings) -> Self {
        GroupSettings {
            classic: ClassicConfig {
                min_session_timeout_ms: k.group_min_session_timeout_ms,
                max_session_timeout_ms: k.group_max_session_timeout_ms,
                initial_rebalance_delay_ms: k.group_initial_rebalance_delay_ms,
                max_size: usize::try_from(k.group_max_size).unwrap_or(0),
            },
            consumer: ConsumerGroupConfig {
                session_timeout_ms: k.group_consumer_session_timeout_ms,
                heartbeat_interval_ms: k.group_consumer_heartbeat_interval_ms,
                max_size: usize::try_from(k.group_consumer_max_size).unwrap_or(0),
                ..ConsumerGroupConfig::default()
            },
            offsets_partitions: k.offsets_topic_num_partitions,
            offsets_segment_bytes: k.offsets_topic_segment_bytes,
            offsets_retention_ms: k.offsets_retention_minutes.saturating_mul(60_000),
            offsets_retention_check_interval_ms: k.offsets_retention_check_interval_ms.max(1),
            offset_metadata_max_bytes: usize::try_from(k.offset_metadata_max_bytes).unwrap_or(0),
        }
    }
}

/// A group of either protocol. The group id space is shared: an empty group turns into
/// the other kind when a member of the other protocol arrives.
pub(crate) enum Group {
    Classic(Box<ClassicGroup>),
    Consumer(ConsumerGroup),
}

impl Group {
    pub fn is_empty(&self) -> bool {
        match self {
            Group::Classic(g) => g.is_empty(),
            Group::Consumer(g) => g.is_empty(),
        }
    }

    pub fn next_deadline(&self) -> Option<i64> {
        match self {
            Group::Classic(g) => g.next_deadline(),
            Group::Consumer(g) => g.next_deadline(),
        }
    }

    pub fn is_subscribed_to(&self, topic: &str) -> bool {
        match self {
            Group::Classic(g) => g.is_subscribed_to(topic),
            Group::Consumer(g) => g.is_subscribed_to(topic),
        }
    }

    /// Tombstones for the group's own records (not its offsets).
    pub fn delete_records(&self, group_id: &str) -> Vec<KeyValue> {
        match self {
            Group::Classic(_) => vec![KeyValue { key: records::group_metadata_key(group_id), value: None }],
            Group::Consumer(g) => g.delete_records(),
        }
    }
}

/// A group and the offsets it committed.
pub(crate) struct GroupEntry {
    pub group: Group,
    pub offsets: BTreeMap<(String, i32), OffsetValue>,
    /// Transactional offset commits (TxnOffsetCommit) per producer id, waiting for their
    /// transaction's marker: a COMMIT makes them the group's offsets, an ABORT drops them.
    pub pending: BTreeMap<i64, BTreeMap<(String, i32), OffsetValue>>,
}

impl GroupEntry {
    /// Whether the group holds offsets, committed or pending in a transaction (a group
    /// that does is not forgotten when it has no members).
    pub fn holds_offsets(&self) -> bool {
        !self.offsets.is_empty() || !self.pending.is_empty()
    }
}

pub(crate) struct State {
    pub groups: HashMap<String, GroupEntry>,
    deadlines: DeadlineQueue,
    pub partitions: OffsetsPartitions,
}

impl State {
    /// The group, created as an empty classic group if it does not exist yet.
    pub fn entry(&mut self, group_id: &str, now_ms: i64) -> &mut GroupEntry {
        self.groups.entry(group_id.to_string()).or_insert_with(|| GroupEntry {
            group: Group::Classic(Box::new(ClassicGroup::new(group_id, now_ms))),
            offsets: BTreeMap::new(),
            pending: BTreeMap::new(),
        })
    }

    /// Re-files a group's next deadline after a change.
    pub fn reschedule(&mut self, group_id: &str) {
        let next = self.groups.get(group_id).and_then(|e| e.group.next_deadline());
        self.deadlines.set(group_id, next);
    }
}

/// One group's row in ListGroups.
pub struct Listing {
    pub group_id: String,
    pub protocol_type: String,
    pub state: &'static str,
    pub group_type: &'static str,
}

pub struct GroupCoordinator {
    pub settings: GroupSettings,
    state: Mutex<State>,
    /// Wakes the timer task when deadlines may have moved earlier.
    timer: tokio::sync::Notify,
}

/// What an operation still has to do after its lock is released: wait for its records
/// to be durable, answer the parked requests it completed, then produce its own answer.
#[must_use]
pub struct Completion<T> {
    durable: Barrier,
    effects: Effects,
    /// `Err` when the change could not be written: nothing was answered.
    reply: Result<Reply<T>, ResponseError>,
}

impl<T> Completion<T> {
    pub fn ready(value: T) -> Self {
        Completion { durable: None, effects: Effects::default(), reply: Ok(Reply::Now(value)) }
    }

    /// Answers `value` once `durable` (if any) is committed.
    pub(crate) fn durable(durable: Barrier, value: T) -> Self {
        Completion { durable, effects: Effects::default(), reply: Ok(Reply::Now(value)) }
    }

    pub fn failed(error: ResponseError) -> Self {
        Completion { durable: None, effects: Effects::default(), reply: Err(error) }
    }

    /// Waits for the write, answers others, then returns this request's answer;
    /// `failed` builds the answer when the write fails or the group went away.
    pub async fn finish(self, failed: impl Fn(ResponseError) -> T) -> T {
        if let Err(e) = crate::group::durability::durable(self.durable).await {
            // Parked requests are dropped: their handlers answer with `failed` too. The
            // partition's groups are rebuilt from the log by the next request.
            return failed(e);
        }
        self.effects.deliver();
        match self.reply {
            Ok(Reply::Now(value)) => value,
            Ok(Reply::Wait(rx)) => rx.await.unwrap_or_else(|_closed| failed(ResponseError::CoordinatorNotAvailable)),
            Err(e) => failed(e),
        }
    }
}

impl GroupCoordinator {
    pub fn new(settings: GroupSettings) -> Self {
        GroupCoordinator {
            settings,
            state: Mutex::new(State {
                groups: HashMap::new(),
                deadlines: DeadlineQueue::default(),
                partitions: OffsetsPartitions::default(),
            }),
            timer: tokio::sync::Notify::new(),
        }
    }

    pub(crate) fn lock(&self) -> Result<MutexGuard<'_, State>, ResponseError> {
        self.state.lock().map_err(|_poisoned| ResponseError::CoordinatorNotAvailable)
    }

    /// The topic holding `group_id`, created on first use.
    pub fn offsets_topic(&self, broker: &Broker) -> Result<Arc<Topic>, ResponseError> {
        let configs = BTreeMap::from([
            ("cleanup.policy".to_string(), "compact".to_string()),
            ("segment.bytes".to_string(), self.settings.offsets_segment_bytes.to_string()),
            ("compression.type".to_string(), "producer".to_string()),
        ]);
        broker.internal_topic(OFFSETS_TOPIC, self.settings.offsets_partitions, configs).map_err(|e| {
            // E.g. a bad offsets.topic.num.partitions or a full disk: say why (rate
            // limited: every group request tries again).
            if let Some(suppressed) = crate::broker::rate_limited::GROUP_WRITE_ERRORS.check(now_ms()) {
                warn!(code = ?e.code, message = ?e.message, suppressed, "cannot create {OFFSETS_TOPIC}");
            }
            ResponseError::CoordinatorNotAvailable
        })
    }

    /// Appends `records` to `group_id`'s partition; returns what an answer derived from
    /// the state must wait on: these records (`None` when the topic flushes on an
    /// interval), or without records the partition's last write still being synced.
    /// A failed append rolls the partition's groups back to the log and fences it
    /// (see [`crate::group::durability`]): NOT_COORDINATOR.
    pub(crate) fn append(
        &self,
        broker: &Broker,
        state: &mut State,
        group_id: &str,
        records: Vec<KeyValue>,
    ) -> Result<Barrier, ResponseError> {
        self.append_to_group(broker, state, group_id, records, None)
    }

    /// [`append`](Self::append), as a transactional batch of `transaction` (producer id
    /// and epoch) when given: a TxnOffsetCommit's pending offsets.
    pub(crate) fn append_to_group(
        &self,
        broker: &Broker,
        state: &mut State,
        group_id: &str,
        records: Vec<KeyValue>,
        transaction: Option<(i64, i16)>,
    ) -> Result<Barrier, ResponseError> {
        let topic = self.offsets_topic(broker)?;
        let index = partition_for(group_id, topic.partition_count());
        let now = now_ms();
        if records.is_empty() {
            return Ok(state.partitions.barrier(index));
        }
        let built = internal_batch(records.into_iter().map(|kv| (kv.key, kv.value)), now, transaction);
        let (batch, headers) = built.map_err(|e| {
            warn!(error = %e, "a __consumer_offsets batch could not be built");
            ResponseError::UnknownServerError
        })?;
        self.append_batch(state, &topic, index, batch, headers, now)
    }

    /// Appends one built batch to partition `index` of `__consumer_offsets` (under the
    /// coordinator's lock, so the log holds changes in the order they were made). A batch
    /// the partition's producer state refuses (a fenced producer) gets that error; any
    /// other failure rolls the partition's groups back to the log and fences it (see
    /// [`crate::group::durability`]): NOT_COORDINATOR.
    pub(crate) fn append_batch(
        &self,
        state: &mut State,
        topic: &Arc<Topic>,
        index: i32,
        batch: bytes::Bytes,
        headers: Vec<crate::log::batch::BatchHeader>,
        now: i64,
    ) -> Result<Barrier, ResponseError> {
        if state.partitions.blocked(index, now) {
            return Err(ResponseError::NotCoordinator);
        }
        let replica = topic.replica(index).ok_or(ResponseError::CoordinatorNotAvailable)?;
        if !replica.appends_when_called() {
            return crate::group::replicated::append(state, index, replica, batch, headers, now);
        }
        let partition = topic.partition(index).ok_or(ResponseError::CoordinatorNotAvailable)?;
        // Through the seam, as a produce: the answer waits for the high watermark.
        let gate = ProducerIdGate::unlimited();
        let limits = ProducerLimits {
            per_partition: usize::MAX,
            gate: &gate,
            txn: crate::broker::txn_verification::TxnVerification::Off,
        };
        // The local log appends inside the call, under the coordinator's lock.
        let appended = Replica::append(&*partition, batch, &headers, now, limits)
            .now_or_never()
            .unwrap_or(Err(PartitionError::AppendWouldWait));
        match appended {
            Ok(appended) if appended.duplicate => Err(ResponseError::UnknownServerError),
            Ok(appended) => {
                if let Some(commit) = &appended.commit {
                    state.partitions.wrote(index, commit.clone());
                }
                Ok(appended.commit.map(|c| (index, c)))
            }
            // Refused before anything was written (fencing): the groups are as the log.
            Err(PartitionError::Rejected(code)) if crate::group::durability::is_producer_refusal(code) => Err(code),
            Err(e) => {
                self.write_failed(state, topic, &partition, &e, now);
                Err(ResponseError::NotCoordinator)
            }
        }
    }

    /// Appends `records` plus a classic group's changed metadata, re-arms the group's
    /// deadline, and packages what is left to do.
    pub(crate) fn complete<T>(
        &self,
        broker: &Broker,
        state: &mut State,
        group_id: &str,
        mut records: Vec<KeyValue>,
        effects: Effects,
        reply: Reply<T>,
    ) -> Completion<T> {
        state.reschedule(group_id);
        self.timer.notify_one();
        if effects.persist
            && let Some(GroupEntry { group: Group::Classic(g), .. }) = state.groups.get(group_id)
        {
            let value = records::encode_group_metadata(&g.metadata_value());
            records.push(KeyValue { key: records::group_metadata_key(group_id), value: Some(value) });
        }
        match self.append(broker, state, group_id, records) {
            Ok(durable) => Completion { durable, effects, reply: Ok(reply) },
            // Dropping the effects makes every parked request fail alike.
            Err(e) => Completion::failed(e),
        }
    }

    /// The earliest group deadline, or end of a backoff after a failed write.
    pub fn next_deadline(&self) -> Option<i64> {
        self.lock().ok().and_then(|s| match (s.deadlines.first(), s.partitions.next_retry()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        })
    }

    /// Serves every due deadline.
    pub fn expire_due(&self, broker: &Broker, now: i64) -> Vec<Completion<()>> {
        let Ok(mut state) = self.lock() else { return Vec::new() };
        let due = state.deadlines.pop_due(now);
        let topics = if !due.is_empty() { topics_snapshot(broker) } else { Default::default() };
        let offsets_topic = broker.topic(OFFSETS_TOPIC);
        let mut done = Vec::new();
        for id in due {
            if let Some(topic) = &offsets_topic {
                let index = partition_for(&id, topic.partition_count());
                if self.ensure_loaded(&mut state, topic, index, now).is_err() {
                    // Its partition backs off after a failed write: serve it afterwards.
                    let retry = state.partitions.retry_at(index).unwrap_or(now).max(now.saturating_add(1));
                    state.deadlines.set(&id, Some(retry));
                    continue;
                }
            }
            let mut effects = Effects::default();
            let records = match state.groups.get_mut(&id).map(|e| &mut e.group) {
                Some(Group::Classic(g)) => {
                    g.on_deadline(&self.settings.classic, now, &mut effects);
                    Vec::new()
                }
                Some(Group::Consumer(g)) => g.on_deadline(now, &topics, &self.settings.consumer),
                None => Vec::new(),
            };
            done.push(self.complete(broker, &mut state, &id, records, effects, Reply::Now(())));
        }
        done
    }

    /// Deletes offsets that outlived `offsets.retention.minutes` in groups without
    /// members, and groups left with nothing.
    pub fn expire_offsets(&self, broker: &Broker, now: i64) -> Vec<Completion<()>> {
        let retention = self.settings.offsets_retention_ms;
        let Ok(mut state) = self.lock() else { return Vec::new() };
        let mut done = Vec::new();
        let ids: Vec<String> = state.groups.keys().cloned().collect();
        let Some(topic) = broker.topic(OFFSETS_TOPIC) else { return done };
        for id in ids {
            if self.ensure_loaded(&mut state, &topic, partition_for(&id, topic.partition_count()), now).is_err() {
                continue;
            }
            let Some(entry) = state.groups.get_mut(&id) else { continue };
            if !entry.group.is_empty() {
                continue;
            }
            // How long a classic group has been empty counts; a consumer group keeps no
            // such timestamp, so its offsets age from their commit.
            let since = match &entry.group {
                Group::Classic(g) => g.state_timestamp(),
                Group::Consumer(_) => 0,
            };
            let expired: Vec<(String, i32)> = entry
                .offsets
                .iter()
                .filter(|(_, v)| v.commit_timestamp.max(since).saturating_add(retention) <= now)
                .map(|(k, _)| k.clone())
                .collect();
            let mut records: Vec<KeyValue> = expired
                .iter()
                .map(|(t, p)| KeyValue { key: records::offset_commit_key(&id, t, *p), value: None })
                .collect();
            for k in &expired {
                entry.offsets.remove(k);
            }
            if !entry.holds_offsets() {
                records.extend(entry.group.delete_records(&id));
                state.groups.remove(&id);
                state.reschedule(&id);
            }
            if !records.is_empty() {
                info!(group = %id, offsets = expired.len(), "expired committed offsets");
                match self.append(broker, &mut state, &id, records) {
                    Ok(durable) => {
                        done.push(Completion { durable, effects: Effects::default(), reply: Ok(Reply::Now(())) })
                    }
                    Err(e) => warn!(group = %id, error = ?e, "could not persist expired offsets"),
                }
            }
        }
        done
    }

    /// Answers every parked request (broker shutdown): clients find the coordinator
    /// again once it is back.
    pub fn abandon_waiters(&self) {
        if let Ok(mut state) = self.lock() {
            for entry in state.groups.values_mut() {
                if let Group::Classic(g) = &mut entry.group {
                    g.abandon_waiters().deliver();
                }
            }
        }
    }

    /// ListGroups rows (but those of partitions backing off from a failed write), and
    /// the writes they reflect that are not durable yet.
    pub fn list(&self, broker: &Broker) -> Result<(Vec<Listing>, Vec<Barrier>), ResponseError> {
        let mut state = self.lock()?;
        let offsets_topic = broker.topic(OFFSETS_TOPIC);
        let (now, partitions) = (now_ms(), offsets_topic.as_ref().map_or(1, |t| t.partition_count()));
        if let Some(topic) = &offsets_topic {
            for index in 0..partitions {
                // Rebuilds a partition whose log changed under its groups; a partition
                // still backing off is left out below.
                let _ = self.ensure_loaded(&mut state, topic, index, now);
            }
        }
        let rows = state
            .groups
            .iter()
            .filter(|(id, _)| !state.partitions.blocked(partition_for(id, partitions), now))
            .map(|(id, e)| match &e.group {
                Group::Classic(g) => Listing {
                    group_id: id.clone(),
                    protocol_type: g.protocol_type().unwrap_or_default().to_string(),
                    state: g.state().name(),
                    group_type: "classic",
                },
                Group::Consumer(g) => Listing {
                    group_id: id.clone(),
                    protocol_type: "consumer".to_string(),
                    state: g.state().as_str(),
                    group_type: "consumer",
                },
            })
            .collect();
        Ok((rows, state.partitions.barriers()))
    }

    /// Runs `f` on an existing group; also returns the write its state reflects that is
    /// not durable yet, to wait for before answering.
    pub(crate) fn with_group<T>(
        &self,
        broker: &Broker,
        group_id: &str,
        f: impl FnOnce(Option<&GroupEntry>) -> T,
    ) -> Result<(T, Barrier), ResponseError> {
        let (state, index) = self.lock_group(broker, group_id)?;
        let barrier = index.and_then(|i| state.partitions.barrier(i));
        Ok((f(state.groups.get(group_id)), barrier))
    }

    /// Timer task: sleeps until the next group deadline (or a change), serves it.
    pub async fn run_timers(broker: Arc<Broker>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let groups = &broker.groups;
        let interval = groups.settings.offsets_retention_check_interval_ms;
        let mut next_retention = now_ms().saturating_add(interval);
        loop {
            let next = groups.next_deadline().map_or(next_retention, |d| d.min(next_retention));
            let wait = std::time::Duration::from_millis(u64::try_from(next - now_ms()).unwrap_or(0));
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = groups.timer.notified() => continue,
                _ = shutdown.changed() => break,
            }
            let now = now_ms();
            let retention_due = now >= next_retention;
            if retention_due {
                next_retention = now.saturating_add(interval);
            }
            // Blocking: a write may fail and the partition's groups be rebuilt (an fsync).
            let b = broker.clone();
            let done = tokio::task::spawn_blocking(move || {
                b.groups.retry_fenced(&b);
                let mut done = b.groups.expire_due(&b, now);
                if retention_due {
                    done.extend(b.groups.expire_offsets(&b, now));
                }
                done
            })
            .await
            .unwrap_or_else(|e| {
                warn!(error = %e, "group timers failed");
                Vec::new()
            });
            for c in done {
                c.finish(|_| ()).await;
            }
        }
        groups.abandon_waiters();
    }
}

/// The broker's topics as consumer groups see them.
pub(crate) fn topics_snapshot(broker: &Broker) -> TopicsSnapshot {
    let version = broker.topics.version();
    TopicsSnapshot::new(broker.topics.all().iter().map(|t| (t.name.clone(), t.id, t.partition_count())))
        .with_version(version)
}
