//! Completing transactions: the COMMIT or ABORT marker of a prepared transaction is
//! written to every partition in it — appended here when this broker leads the
//! partition, sent with WriteTxnMarkers to its leader otherwise — and retried until each
//! is committed (a partition whose topic was deleted needs none). Then the transaction's
//! `Complete*` state is written. A coordinator that stops leading its partition stops
//! here; the next leader loads the prepared state and completes it (a marker written
//! twice closes nothing the second time).
//!
//! The timer ([`run_timers`]) loads every `__transaction_state` partition this broker
//! has come to lead (so prepared transactions complete without waiting for a client) and
//! aborts transactions open longer than their `transaction.timeout.ms`, bumping the
//! producer's epoch so the timed-out producer is fenced, as Kafka does.

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::{ProducerId, TopicName, WriteTxnMarkersRequest, write_txn_markers_request};
use kafka_protocol::protocol::StrBytes;
use tracing::{debug, info, warn};

use super::coordinator::LoadedPartition;
use super::records::{TxnMetadata, TxnState};
use crate::broker::replica::Leader;
use crate::broker::{Broker, now_ms};
use crate::log::txn::TxnMarker;

/// How long one WriteTxnMarkers to another broker may take: longer than the leader's own
/// bound on a marker (30 s, see `handler::write_txn_markers`), so the leader answers (if
/// only with REQUEST_TIMED_OUT) before a retry is sent.
const REMOTE_TIMEOUT: Duration = Duration::from_secs(60);
/// WriteTxnMarkers requests in flight to other brokers at once (each opens a connection).
static REMOTE_MARKERS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(32);
/// Retry backoff of a marker that could not be written yet (no leader, a leader change).
const RETRY_MIN: Duration = Duration::from_millis(50);
const RETRY_MAX: Duration = Duration::from_secs(1);
/// How often the timer looks for newly led partitions.
const LOAD_CHECK: Duration = Duration::from_millis(500);

/// Completes the prepared transaction `m` of `transactional_id` in the background.
pub(crate) fn spawn_completion(
    broker: &Arc<Broker>,
    p: &Arc<LoadedPartition>,
    transactional_id: String,
    m: TxnMetadata,
) {
    let (broker, p) = (broker.clone(), p.clone());
    tokio::spawn(async move { complete(&broker, &p, &transactional_id, m).await });
}

async fn complete(broker: &Arc<Broker>, p: &Arc<LoadedPartition>, transactional_id: &str, m: TxnMetadata) {
    let commit = m.state == TxnState::PrepareCommit;
    let marker = TxnMarker { commit, coordinator_epoch: p.epoch };
    let writes = m.partitions.iter().map(|(topic, index)| async move {
        let mut backoff = RETRY_MIN;
        loop {
            if !p.still_leading() {
                return false;
            }
            match write_marker(broker, topic, *index, m.producer_id, m.producer_epoch, marker).await {
                Ok(()) => return true,
                Err(code @ (ResponseError::ProducerFenced | ResponseError::TransactionCoordinatorFenced)) => {
                    // A newer coordinator (or producer epoch) wrote to the partition: this
                    // coordinator is stale and stops, as Kafka's does; the current one completes.
                    warn!(
                        topic,
                        partition = index,
                        transactional_id,
                        ?code,
                        "transaction marker refused as stale; leaving the transaction to the current coordinator"
                    );
                    return false;
                }
                Err(code) => {
                    debug!(
                        topic,
                        partition = index,
                        transactional_id,
                        ?code,
                        "transaction marker not written yet; retrying"
                    );
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(RETRY_MAX);
                }
            }
        }
    });
    let written = futures::future::join_all(writes).await;
    if !written.iter().all(|w| *w) {
        return;
    }
    let slot = p.slot(transactional_id);
    let mut current = slot.lock().await;
    if current.as_ref() != Some(&m) {
        // Changed meanwhile (a reload completed it already).
        return;
    }
    let done = TxnMetadata {
        state: if commit { TxnState::CompleteCommit } else { TxnState::CompleteAbort },
        partitions: Default::default(),
        last_update_ms: now_ms(),
        ..m
    };
    if broker.txns.write(p, transactional_id, &done).await.is_ok() {
        *current = Some(done);
    }
}

/// Writes one marker to `topic`-`index` wherever its leader is; `Ok` once committed.
async fn write_marker(
    broker: &Arc<Broker>,
    topic: &str,
    index: i32,
    producer_id: i64,
    producer_epoch: i16,
    marker: TxnMarker,
) -> Result<(), ResponseError> {
    let Some(replica) = broker.topic(topic).and_then(|t| t.replica(index)) else {
        // Deleted with its data: nothing is left to mark.
        return Ok(());
    };
    match replica.leader() {
        Leader::ThisBroker => {
            crate::handler::write_txn_markers::write_marker(broker, &*replica, producer_id, producer_epoch, marker)
                .await
        }
        Leader::Broker(id) => {
            let address =
                broker.replication().and_then(|c| c.kafka_address(id)).ok_or(ResponseError::CoordinatorNotAvailable)?;
            let request = WriteTxnMarkersRequest::default().with_markers(vec![
                write_txn_markers_request::WritableTxnMarker::default()
                    .with_producer_id(ProducerId(producer_id))
                    .with_producer_epoch(producer_epoch)
                    .with_transaction_result(marker.commit)
                    .with_coordinator_epoch(marker.coordinator_epoch)
                    .with_topics(vec![
                        write_txn_markers_request::WritableTxnMarkerTopic::default()
                            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                            .with_partition_indexes(vec![index]),
                    ]),
            ]);
            let _permit = REMOTE_MARKERS.acquire().await.map_err(|_closed| ResponseError::CoordinatorNotAvailable)?;
            let response = super::call_broker(&address, &request, 1, REMOTE_TIMEOUT).await?;
            let code = response
                .markers
                .first()
                .and_then(|m| m.topics.first())
                .and_then(|t| t.partitions.first())
                .map_or(ResponseError::UnknownServerError.code(), |p| p.error_code);
            match ResponseError::try_from_code(code) {
                None => Ok(()),
                Some(ResponseError::UnknownTopicOrPartition) if broker.topic(topic).is_none() => Ok(()),
                Some(e) => Err(e),
            }
        }
        Leader::Unknown => Err(ResponseError::LeaderNotAvailable),
    }
}

/// The coordinator's timer: loads newly led partitions and aborts expired transactions
/// until shutdown.
pub async fn run_timers(broker: Arc<Broker>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let interval = broker.txns.settings.abort_check_interval_ms;
    let mut next_abort_check = now_ms().saturating_add(interval);
    let id_interval = broker.txns.settings.id_expiration_check_interval_ms;
    let mut next_id_check = now_ms().saturating_add(id_interval);
    loop {
        tokio::select! {
            () = tokio::time::sleep(LOAD_CHECK) => {}
            _ = shutdown.changed() => break,
        }
        load_led_partitions(&broker).await;
        let now = now_ms();
        if now >= next_abort_check {
            next_abort_check = now.saturating_add(interval);
            abort_expired(&broker, now).await;
        }
        if now >= next_id_check {
            next_id_check = now.saturating_add(id_interval);
            expire_ids(&broker, now);
        }
    }
}

/// Loads every `__transaction_state` partition this broker leads at an epoch it has not
/// loaded (and unloads those it no longer leads).
async fn load_led_partitions(broker: &Arc<Broker>) {
    let Some(topic) = broker.topic(super::TXN_TOPIC) else { return };
    // Partition index -> the leader epoch it is loaded at.
    let loaded: std::collections::HashMap<i32, i32> =
        broker.txns.loaded_partitions().iter().map(|p| (p.index, p.epoch)).collect();
    for replica in topic.replicas() {
        let index = replica.index();
        if replica.leader() != Leader::ThisBroker {
            if loaded.contains_key(&index) {
                broker.txns.unload(index);
            }
        } else if loaded.get(&index) != Some(&replica.leader_epoch())
            && let Err(code) = broker.txns.load(broker, &topic, index).await
        {
            debug!(partition = index, ?code, "a led {} partition is not loaded yet", super::TXN_TOPIC);
        }
    }
}

/// Removes every transactional id without an open transaction whose last change is older
/// than `transactional.id.expiration.ms` (Kafka's states Empty, CompleteCommit and
/// CompleteAbort): a tombstone is committed first, then the id is forgotten; its
/// producer gets INVALID_PRODUCER_ID_MAPPING and a new InitProducerId starts afresh.
/// An id busy with a request is looked at again next time.
fn expire_ids(broker: &Arc<Broker>, now: i64) {
    let expiration = broker.txns.settings.id_expiration_ms;
    let idle = move |m: &TxnMetadata| {
        matches!(m.state, TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort)
            && m.last_update_ms.saturating_add(expiration) <= now
    };
    for p in broker.txns.loaded_partitions() {
        let slots: Vec<(String, super::coordinator::TxnSlot)> = {
            let txns = p.txns.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            txns.iter().map(|(id, s)| (id.clone(), s.clone())).collect()
        };
        for (id, slot) in slots {
            if !slot.try_lock().is_ok_and(|current| current.as_ref().is_some_and(idle)) {
                continue;
            }
            let (broker, p) = (broker.clone(), p.clone());
            tokio::spawn(async move {
                let Ok(mut current) = slot.try_lock() else { return };
                if !current.as_ref().is_some_and(idle) {
                    return;
                }
                match broker.txns.write_tombstone(&p, &id).await {
                    Ok(()) => {
                        info!(transactional_id = %id, "removed a transactional id idle for transactional.id.expiration.ms");
                        *current = None;
                        drop(current);
                        p.forget_if_empty(&id, &slot);
                    }
                    Err(code) => warn!(transactional_id = %id, ?code, "could not remove an expired transactional id"),
                }
            });
        }
    }
}

/// Aborts every open transaction past its timeout, fencing its producer. An id busy
/// with a request is looked at again next time; each abort runs in a task of its own, so
/// a write that cannot commit holds up nothing else.
async fn abort_expired(broker: &Arc<Broker>, now: i64) {
    for p in broker.txns.loaded_partitions() {
        let slots: Vec<(String, super::coordinator::TxnSlot)> = {
            let txns = p.txns.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            txns.iter().map(|(id, s)| (id.clone(), s.clone())).collect()
        };
        for (id, slot) in slots {
            let expired = move |m: &TxnMetadata| {
                m.state == TxnState::Ongoing && now >= m.start_ms.saturating_add(i64::from(m.timeout_ms))
            };
            if !slot.try_lock().is_ok_and(|current| current.as_ref().is_some_and(expired)) {
                continue;
            }
            let (broker, p) = (broker.clone(), p.clone());
            tokio::spawn(async move {
                let Ok(mut current) = slot.try_lock() else { return };
                let Some(m) = current.clone().filter(expired) else { return };
                let aborting = TxnMetadata {
                    producer_epoch: m.producer_epoch.saturating_add(1),
                    state: TxnState::PrepareAbort,
                    last_update_ms: now,
                    last_epoch: -1,
                    ..m
                };
                match broker.txns.write(&p, &id, &aborting).await {
                    Ok(()) => {
                        info!(transactional_id = %id, timeout_ms = aborting.timeout_ms, "aborting a transaction past its timeout");
                        *current = Some(aborting.clone());
                        drop(current);
                        spawn_completion(&broker, &p, id, aborting);
                    }
                    Err(code) => warn!(transactional_id = %id, ?code, "could not abort an expired transaction"),
                }
            });
        }
    }
}
