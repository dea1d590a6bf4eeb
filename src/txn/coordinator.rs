//! [`TxnCoordinator`]: the transactional ids of the `__transaction_state` partitions this
//! broker leads, and the requests that change them (see the module docs of
//! [`crate::txn`]). The transitions follow Kafka's `TransactionCoordinator` for
//! transactions v1.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use kafka_protocol::ResponseError;
use kafka_protocol::records::RecordBatchDecoder;
use tracing::{info, warn};

use super::records::{self, TxnMetadata, TxnState};
use super::{TXN_TOPIC, TxnSettings};
use crate::broker::producer_state::{ProducerIdGate, ProducerLimits};
use crate::broker::replica::{Leader, Replica};
use crate::broker::topics::Topic;
use crate::broker::{Broker, now_ms};
use crate::log::BatchIter;
use crate::log::batch::plain_batch;

/// One transactional id's state behind its own lock (`None`: not known yet).
pub(crate) type TxnSlot = Arc<tokio::sync::Mutex<Option<TxnMetadata>>>;

/// A `__transaction_state` partition loaded by its leader.
pub(crate) struct LoadedPartition {
    pub index: i32,
    /// The leader epoch it was loaded at: the coordinator epoch of its markers.
    pub epoch: i32,
    pub replica: Arc<dyn Replica>,
    pub txns: Mutex<HashMap<String, TxnSlot>>,
    /// Cleared once this broker stops serving the partition at this epoch (lost
    /// leadership, a failed write): work in flight stops, requests reload.
    pub live: AtomicBool,
}

impl LoadedPartition {
    fn txns(&self) -> std::sync::MutexGuard<'_, HashMap<String, TxnSlot>> {
        self.txns.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The id's slot, created empty if the id is new (InitProducerId).
    pub fn slot(&self, transactional_id: &str) -> TxnSlot {
        self.txns().entry(transactional_id.to_string()).or_default().clone()
    }

    /// The id's slot if the id is known (requests that need an id's state never create one).
    pub fn existing_slot(&self, transactional_id: &str) -> Option<TxnSlot> {
        self.txns().get(transactional_id).cloned()
    }

    /// Drops an id's slot that stayed empty (a failed InitProducerId) unless another
    /// request holds it too, so ids that were never written take no memory.
    pub fn forget_if_empty(&self, transactional_id: &str, slot: &TxnSlot) {
        let mut txns = self.txns();
        // The map and the caller hold the only references: nobody can be waiting on it.
        if Arc::strong_count(slot) <= 2 && slot.try_lock().is_ok_and(|s| s.is_none()) {
            txns.remove(transactional_id);
        }
    }

    pub fn is_live(&self) -> bool {
        self.live.load(Ordering::Acquire)
    }

    /// Whether this broker still leads the partition at the epoch it was loaded at: a
    /// write of an older epoch's state must never land in a newer epoch's log.
    pub fn still_leading(&self) -> bool {
        self.is_live() && self.replica.leader() == Leader::ThisBroker && self.replica.leader_epoch() == self.epoch
    }
}

pub struct TxnCoordinator {
    pub settings: TxnSettings,
    loaded: Mutex<HashMap<i32, Arc<LoadedPartition>>>,
    /// One load at a time: two requests arriving at a new epoch load the partition once.
    loading: tokio::sync::Mutex<()>,
}

/// What InitProducerId answers.
pub type ProducerIdAndEpoch = (i64, i16);

/// How long a `__transaction_state` write may take to commit.
const WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Kafka's limit on a transactional id (a `string` of the v0 record key).
const MAX_ID_BYTES: usize = i16::MAX as usize;

fn check_id(transactional_id: &str) -> Result<(), ResponseError> {
    if transactional_id.is_empty() || transactional_id.len() > MAX_ID_BYTES {
        return Err(ResponseError::InvalidRequest);
    }
    Ok(())
}

impl TxnCoordinator {
    pub fn new(settings: TxnSettings) -> TxnCoordinator {
        TxnCoordinator { settings, loaded: Mutex::new(HashMap::new()), loading: tokio::sync::Mutex::new(()) }
    }

    fn loaded(&self) -> std::sync::MutexGuard<'_, HashMap<i32, Arc<LoadedPartition>>> {
        self.loaded.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `__transaction_state`, created with its own settings on first use.
    pub fn state_topic(&self, broker: &Broker) -> Result<Arc<Topic>, ResponseError> {
        let configs = BTreeMap::from([
            ("cleanup.policy".to_string(), "compact".to_string()),
            ("segment.bytes".to_string(), self.settings.segment_bytes.to_string()),
            ("compression.type".to_string(), "uncompressed".to_string()),
        ]);
        broker.internal_topic(TXN_TOPIC, self.settings.partitions, configs).map_err(|e| {
            warn!(code = ?e.code, message = ?e.message, "cannot create {TXN_TOPIC}");
            ResponseError::CoordinatorNotAvailable
        })
    }

    /// The loaded partition holding `transactional_id`, loading it if this broker leads
    /// it at an epoch not loaded yet.
    pub(crate) async fn partition_of(
        &self,
        broker: &Arc<Broker>,
        transactional_id: &str,
    ) -> Result<Arc<LoadedPartition>, ResponseError> {
        let b = broker.clone();
        let topic = tokio::task::spawn_blocking(move || b.txns.state_topic(&b))
            .await
            .map_err(|_| ResponseError::CoordinatorNotAvailable)??;
        let index = crate::group::partition_for(transactional_id, topic.partition_count());
        self.load(broker, &topic, index).await
    }

    /// Partition `index`, loaded at the current leader epoch.
    pub(crate) async fn load(
        &self,
        broker: &Arc<Broker>,
        topic: &Topic,
        index: i32,
    ) -> Result<Arc<LoadedPartition>, ResponseError> {
        let replica = topic.replica(index).ok_or(ResponseError::NotCoordinator)?;
        if replica.leader() != Leader::ThisBroker {
            self.unload(index);
            return Err(ResponseError::NotCoordinator);
        }
        let epoch = replica.leader_epoch();
        let current = |this: &Self| this.loaded().get(&index).filter(|p| p.epoch == epoch && p.is_live()).cloned();
        if let Some(p) = current(self) {
            return Ok(p);
        }
        let _one = self.loading.lock().await;
        if let Some(p) = current(self) {
            return Ok(p);
        }
        // Everything earlier leaders wrote is committed once this leader's first entry is.
        let offsets = replica.offsets().map_err(|e| e.code())?;
        if offsets.high_watermark < offsets.log_end {
            return Err(ResponseError::CoordinatorLoadInProgress);
        }
        let r = replica.clone();
        let txns = tokio::task::spawn_blocking(move || read_partition(&*r))
            .await
            .map_err(|_| ResponseError::CoordinatorLoadInProgress)??;
        let pending: Vec<(String, TxnMetadata)> = txns
            .iter()
            .filter(|(_, m)| matches!(m.state, TxnState::PrepareCommit | TxnState::PrepareAbort))
            .map(|(id, m)| (id.clone(), m.clone()))
            .collect();
        let count = txns.len();
        let slots = txns.into_iter().map(|(id, m)| (id, Arc::new(tokio::sync::Mutex::new(Some(m))))).collect();
        let loaded =
            Arc::new(LoadedPartition { index, epoch, replica, txns: Mutex::new(slots), live: AtomicBool::new(true) });
        if let Some(old) = self.loaded().insert(index, loaded.clone()) {
            old.live.store(false, Ordering::Release);
        }
        info!(
            partition = index,
            coordinator_epoch = epoch,
            transactional_ids = count,
            pending = pending.len(),
            "loaded a {TXN_TOPIC} partition as its leader"
        );
        // Transactions a previous coordinator prepared are completed by this one.
        for (id, m) in pending {
            super::markers::spawn_completion(broker, &loaded, id, m);
        }
        Ok(loaded)
    }

    /// Drops partition `index` (this broker no longer leads it).
    pub(crate) fn unload(&self, index: i32) {
        if let Some(old) = self.loaded().remove(&index) {
            old.live.store(false, Ordering::Release);
            info!(partition = index, "no longer leading a {TXN_TOPIC} partition: unloaded its transactional ids");
        }
    }

    /// The partitions loaded now (the timer's scan).
    pub(crate) fn loaded_partitions(&self) -> Vec<Arc<LoadedPartition>> {
        self.loaded().values().cloned().collect()
    }

    /// Writes `m` as `transactional_id`'s state and waits for it to commit. A failure
    /// unloads the partition (NOT_COORDINATOR: the client looks the coordinator up
    /// again, and the next request reloads from the log).
    pub(crate) async fn write(
        &self,
        p: &LoadedPartition,
        transactional_id: &str,
        m: &TxnMetadata,
    ) -> Result<(), ResponseError> {
        self.write_value(p, transactional_id, Some(records::encode_value(m))).await
    }

    /// [`write`](Self::write) of a tombstone: the id is gone (expired).
    pub(crate) async fn write_tombstone(
        &self,
        p: &LoadedPartition,
        transactional_id: &str,
    ) -> Result<(), ResponseError> {
        self.write_value(p, transactional_id, None).await
    }

    async fn write_value(
        &self,
        p: &LoadedPartition,
        transactional_id: &str,
        value: Option<bytes::Bytes>,
    ) -> Result<(), ResponseError> {
        if !p.still_leading() {
            p.live.store(false, Ordering::Release);
            self.unload_if(p);
            return Err(ResponseError::NotCoordinator);
        }
        let now = now_ms();
        let key = records::encode_key(transactional_id);
        let (batch, headers) = plain_batch([(key, value)], now).map_err(|e| {
            warn!(error = %e, "a {TXN_TOPIC} batch could not be built");
            ResponseError::UnknownServerError
        })?;
        let gate = ProducerIdGate::unlimited();
        let limits = ProducerLimits {
            per_partition: usize::MAX,
            gate: &gate,
            txn: crate::broker::txn_verification::TxnVerification::Off,
        };
        let written = async {
            let appended = p.replica.append(batch, &headers, now, limits).await?;
            match appended.commit {
                Some(commit) => commit.wait().await,
                None => Ok(()),
            }
        };
        // A write that cannot commit (no quorum) must not hold the id's lock for ever; its
        // outcome is unknown, so the partition is reloaded from the log before serving again.
        let outcome = match tokio::time::timeout(WRITE_TIMEOUT, written).await {
            Ok(Ok(())) if p.still_leading() => return Ok(()),
            Ok(Ok(())) => "leadership moved while it committed".to_string(),
            Ok(Err(e)) => e.to_string(),
            Err(_elapsed) => format!("not committed within {WRITE_TIMEOUT:?}"),
        };
        warn!(partition = p.index, transactional_id, error = %outcome, "a {TXN_TOPIC} write failed; unloading the partition");
        p.live.store(false, Ordering::Release);
        self.unload_if(p);
        Err(ResponseError::NotCoordinator)
    }

    fn unload_if(&self, p: &LoadedPartition) {
        let mut loaded = self.loaded();
        // This very instance: a reload at the same epoch may have replaced it already.
        if loaded.get(&p.index).is_some_and(|l| std::ptr::eq(Arc::as_ptr(l), p)) {
            loaded.remove(&p.index);
        }
    }

    /// InitProducerId with a transactional id: a new producer id at epoch 0 for a new
    /// id; otherwise the epoch is bumped (fencing the previous producer), after aborting
    /// an open transaction first (the client retries on CONCURRENT_TRANSACTIONS).
    pub async fn init_producer_id(
        &self,
        broker: &Arc<Broker>,
        transactional_id: &str,
        timeout_ms: i32,
        expected: Option<ProducerIdAndEpoch>,
    ) -> Result<ProducerIdAndEpoch, ResponseError> {
        check_id(transactional_id)?;
        if timeout_ms <= 0 || timeout_ms > self.settings.max_timeout_ms {
            return Err(ResponseError::InvalidTransactionTimeout);
        }
        let p = self.partition_of(broker, transactional_id).await?;
        let slot = p.slot(transactional_id);
        let outcome = self.init_locked(broker, &p, &slot, transactional_id, timeout_ms, expected).await;
        if outcome.is_err() {
            p.forget_if_empty(transactional_id, &slot);
        }
        outcome
    }

    async fn init_locked(
        &self,
        broker: &Arc<Broker>,
        p: &Arc<LoadedPartition>,
        slot: &TxnSlot,
        transactional_id: &str,
        timeout_ms: i32,
        expected: Option<ProducerIdAndEpoch>,
    ) -> Result<ProducerIdAndEpoch, ResponseError> {
        let mut current = slot.lock().await;
        let now = now_ms();
        let Some(m) = current.clone() else {
            let b = broker.clone();
            let producer_id = tokio::task::spawn_blocking(move || b.next_producer_id())
                .await
                .map_err(|_| ResponseError::CoordinatorNotAvailable)?
                .map_err(|e| e.code)?;
            let m = TxnMetadata {
                producer_id,
                producer_epoch: 0,
                timeout_ms,
                state: TxnState::Empty,
                partitions: Default::default(),
                last_update_ms: now,
                start_ms: -1,
                last_epoch: -1,
            };
            self.write(p, transactional_id, &m).await?;
            *current = Some(m);
            return Ok((producer_id, 0));
        };
        // KIP-360: a producer recovering from an error names the id and epoch it had. A
        // retry of a bump already made (its answer was lost) names the epoch before it:
        // answered with the current one, as Kafka's `prepareIncrementProducerEpoch` does.
        if let Some((id, epoch)) = expected {
            let settled = !matches!(m.state, TxnState::Ongoing | TxnState::PrepareCommit | TxnState::PrepareAbort);
            if id == m.producer_id && epoch == m.last_epoch && epoch >= 0 && settled {
                return Ok((m.producer_id, m.producer_epoch));
            }
            if id != m.producer_id || epoch != m.producer_epoch {
                return Err(ResponseError::ProducerFenced);
            }
        }
        match m.state {
            TxnState::PrepareCommit | TxnState::PrepareAbort | TxnState::PrepareEpochFence => {
                Err(ResponseError::ConcurrentTransactions)
            }
            TxnState::Ongoing => {
                // Fence the running producer and abort its transaction with the new epoch.
                let aborting = TxnMetadata {
                    producer_epoch: m.producer_epoch.saturating_add(1),
                    state: TxnState::PrepareAbort,
                    last_update_ms: now,
                    last_epoch: -1,
                    ..m
                };
                self.write(p, transactional_id, &aborting).await?;
                *current = Some(aborting.clone());
                drop(current);
                super::markers::spawn_completion(broker, p, transactional_id.to_string(), aborting);
                Err(ResponseError::ConcurrentTransactions)
            }
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort | TxnState::Dead => {
                let (producer_id, producer_epoch) = if m.producer_epoch >= i16::MAX - 1 {
                    // The epoch is exhausted: a new producer id, as Kafka does.
                    let b = broker.clone();
                    let id = tokio::task::spawn_blocking(move || b.next_producer_id())
                        .await
                        .map_err(|_| ResponseError::CoordinatorNotAvailable)?
                        .map_err(|e| e.code)?;
                    (id, 0)
                } else {
                    (m.producer_id, m.producer_epoch + 1)
                };
                let next = TxnMetadata {
                    producer_id,
                    producer_epoch,
                    timeout_ms,
                    state: TxnState::Empty,
                    partitions: Default::default(),
                    last_update_ms: now,
                    start_ms: -1,
                    // Remembered (in memory, as Kafka) so a retry of this bump is answered.
                    last_epoch: if expected.is_some() && producer_id == m.producer_id { m.producer_epoch } else { -1 },
                };
                self.write(p, transactional_id, &next).await?;
                *current = Some(next);
                Ok((producer_id, producer_epoch))
            }
        }
    }

    /// Checks a request's producer id and epoch against the id's state.
    fn check_producer(m: Option<&TxnMetadata>, producer_id: i64, epoch: i16) -> Result<&TxnMetadata, ResponseError> {
        let m = m.ok_or(ResponseError::InvalidProducerIdMapping)?;
        if m.producer_id != producer_id {
            return Err(ResponseError::InvalidProducerIdMapping);
        }
        if m.producer_epoch != epoch {
            return Err(ResponseError::ProducerFenced);
        }
        Ok(m)
    }

    /// AddPartitionsToTxn (v0-v3): the partitions join the producer's transaction, which
    /// starts if none is open.
    pub async fn add_partitions(
        &self,
        broker: &Arc<Broker>,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: &[(String, i32)],
    ) -> Result<(), ResponseError> {
        check_id(transactional_id)?;
        let p = self.partition_of(broker, transactional_id).await?;
        let slot = p.existing_slot(transactional_id).ok_or(ResponseError::InvalidProducerIdMapping)?;
        let mut current = slot.lock().await;
        let m = Self::check_producer(current.as_ref(), producer_id, epoch)?;
        match m.state {
            TxnState::PrepareCommit | TxnState::PrepareAbort | TxnState::PrepareEpochFence => {
                return Err(ResponseError::ConcurrentTransactions);
            }
            TxnState::Dead => return Err(ResponseError::InvalidTxnState),
            _ => {}
        }
        if m.state == TxnState::Ongoing && partitions.iter().all(|tp| m.partitions.contains(tp)) {
            return Ok(());
        }
        let now = now_ms();
        let mut next = m.clone();
        if next.state != TxnState::Ongoing {
            next.partitions.clear();
            next.start_ms = now;
        }
        next.state = TxnState::Ongoing;
        next.last_update_ms = now;
        // The producer got its epoch: no retry of the bump can come any more.
        next.last_epoch = -1;
        next.partitions.extend(partitions.iter().cloned());
        self.write(&p, transactional_id, &next).await?;
        *current = Some(next);
        Ok(())
    }

    /// EndTxn: the transaction is prepared for commit or abort (durably), answered, and
    /// completed by its markers in the background. A retry of a decision already made
    /// is answered as the first was.
    pub async fn end_txn(
        &self,
        broker: &Arc<Broker>,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        commit: bool,
    ) -> Result<(), ResponseError> {
        check_id(transactional_id)?;
        let p = self.partition_of(broker, transactional_id).await?;
        let slot = p.existing_slot(transactional_id).ok_or(ResponseError::InvalidProducerIdMapping)?;
        let mut current = slot.lock().await;
        let m = Self::check_producer(current.as_ref(), producer_id, epoch)?;
        match (m.state, commit) {
            (TxnState::Ongoing, _) => {
                let prepared = TxnMetadata {
                    state: if commit { TxnState::PrepareCommit } else { TxnState::PrepareAbort },
                    last_update_ms: now_ms(),
                    ..m.clone()
                };
                self.write(&p, transactional_id, &prepared).await?;
                *current = Some(prepared.clone());
                drop(current);
                super::markers::spawn_completion(broker, &p, transactional_id.to_string(), prepared);
                Ok(())
            }
            (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) => Ok(()),
            (TxnState::PrepareCommit, true) | (TxnState::PrepareAbort, false) => {
                Err(ResponseError::ConcurrentTransactions)
            }
            _ => Err(ResponseError::InvalidTxnState),
        }
    }
}

impl TxnCoordinator {
    /// DescribeTransactions: `transactional_id`'s state, where this broker coordinates it.
    pub async fn describe(&self, broker: &Arc<Broker>, transactional_id: &str) -> Result<TxnMetadata, ResponseError> {
        check_id(transactional_id)?;
        let p = self.partition_of(broker, transactional_id).await?;
        let slot = p.existing_slot(transactional_id).ok_or(ResponseError::TransactionalIdNotFound)?;
        let state = slot.lock().await.clone();
        state.ok_or(ResponseError::TransactionalIdNotFound)
    }

    /// ListTransactions: every transactional id this broker coordinates now, with its
    /// state (an id busy with a request is read once the request is done).
    pub async fn list(&self) -> Vec<(String, TxnMetadata)> {
        let mut out = Vec::new();
        for p in self.loaded_partitions() {
            let slots: Vec<(String, TxnSlot)> = p.txns().iter().map(|(id, s)| (id.clone(), s.clone())).collect();
            for (id, slot) in slots {
                if let Some(m) = slot.lock().await.clone() {
                    out.push((id, m));
                }
            }
        }
        out
    }
}

/// Every transactional id's last state in a partition's log, up to its high watermark.
fn read_partition(partition: &dyn Replica) -> Result<HashMap<String, TxnMetadata>, ResponseError> {
    let mut txns = HashMap::new();
    let offsets = partition.offsets().map_err(|e| e.code())?;
    let (mut offset, end) = (offsets.log_start, offsets.high_watermark);
    while offset < end {
        let read = partition.read(offset, 1 << 20, true).map_err(|e| e.code())?;
        if read.records.is_empty() {
            break;
        }
        for batch in BatchIter::new(&read.records) {
            let (header, range) = batch.map_err(|_| ResponseError::CorruptMessage)?;
            offset = header.next_offset();
            if header.is_control() {
                continue;
            }
            let mut slice = read.records.slice(range);
            let set = match RecordBatchDecoder::decode(&mut slice) {
                Ok(set) => set,
                Err(e) => {
                    warn!(partition = partition.index(), offset, error = %e, "skipping an undecodable {TXN_TOPIC} batch");
                    continue;
                }
            };
            for r in set.records {
                let Some(key) = r.key.as_deref() else { continue };
                let id = match records::decode_key(key) {
                    Ok(id) => id,
                    Err(e) => {
                        warn!(partition = partition.index(), error = %e, "skipping a {TXN_TOPIC} record");
                        continue;
                    }
                };
                match r.value.as_deref().map(records::decode_value) {
                    None => {
                        txns.remove(&id);
                    }
                    Some(Ok(m)) => {
                        txns.insert(id, m);
                    }
                    Some(Err(e)) => {
                        warn!(partition = partition.index(), transactional_id = %id, error = %e, "skipping a {TXN_TOPIC} record")
                    }
                }
            }
        }
    }
    Ok(txns)
}
