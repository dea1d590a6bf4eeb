//! Producer ids on a cluster: unique across every broker, as Kafka's are. The controller
//! hands each broker blocks of ids (an `AllocateProducerIds` metadata record, committed
//! before the block is used), and a broker serves InitProducerId from its current block.
//! A broker that is not the controller asks for a block with Kafka's AllocateProducerIds
//! request (key 67, as a KRaft broker asks its controller).
//!
//! Without this, brokers handed out ids from their own counters, so two producers
//! connected to different brokers could share an id: the second's first batch, carrying
//! the same id, epoch and sequence as one the first producer wrote, would be answered as
//! a duplicate and never written.
//!
//! A block is not kept across restarts: ids left in it are skipped, never reused.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::{AllocateProducerIdsRequest, BrokerId};

use super::ClusterRuntime;
use super::admin::{ADMIN_TIMEOUT, block_on, forward_error, timed_out};
use crate::broker::{ApiError, poisoned};
use crate::cli::wire::Connection;
use crate::cluster::metadata::{Applied, MetadataRecord, PRODUCER_ID_BLOCK_SIZE};

impl ClusterRuntime {
    /// A producer id never handed out before by any broker of the cluster.
    pub fn next_producer_id(&self) -> Result<i64, ApiError> {
        if let Some(id) = self.producer_ids.lock().map_err(poisoned)?.next() {
            return Ok(id);
        }
        let (first, count) = block_on(self.with_controller(|| self.request_block()))??;
        let mut block = first..first.saturating_add(count);
        let id = block
            .next()
            .ok_or_else(|| ApiError::with_message(ResponseError::UnknownServerError, "an empty producer id block"))?;
        let mut current = self.producer_ids.lock().map_err(poisoned)?;
        // Another request may have fetched a block meanwhile: keep the larger remainder,
        // the ids of the other are never used (there are 2^63).
        if block.end - block.start > current.end - current.start {
            *current = block;
        }
        Ok(id)
    }

    /// A new block for `broker`, when this broker is the controller (the AllocateProducerIds
    /// handler): `(first id, count)`.
    pub fn allocate_producer_ids(&self, broker: i32) -> Result<(i64, i64), ApiError> {
        if !self.is_controller() {
            return Err(ApiError::with_message(ResponseError::NotController, "this broker is not the controller"));
        }
        block_on(self.propose_block(broker))?
    }

    /// One block, from the controller wherever it is.
    async fn request_block(&self) -> Result<(i64, i64), ApiError> {
        if self.is_controller() {
            return self.propose_block(i32::try_from(self.node_id).unwrap_or(-1)).await;
        }
        let request = AllocateProducerIdsRequest::default()
            .with_broker_id(BrokerId(i32::try_from(self.node_id).unwrap_or(-1)))
            .with_broker_epoch(-1);
        let response = tokio::time::timeout(ADMIN_TIMEOUT, async {
            let mut conn = Connection::open(&self.controller_addr()?, ADMIN_TIMEOUT).await.map_err(forward_error)?;
            conn.call_at(&request, 0).await.map_err(forward_error)
        })
        .await
        .map_err(|_| timed_out("asking the controller for producer ids"))??;
        if let Some(code) = ResponseError::try_from_code(response.error_code) {
            return Err(ApiError::with_message(code, "the controller refused a block of producer ids"));
        }
        Ok((response.producer_id_start.0, i64::from(response.producer_id_len)))
    }

    async fn propose_block(&self, broker: i32) -> Result<(i64, i64), ApiError> {
        let record = MetadataRecord::AllocateProducerIds { broker, count: PRODUCER_ID_BLOCK_SIZE };
        match self.propose_one(record, "a producer id block").await? {
            Applied::ProducerIds { first, count } => Ok((first, count)),
            Applied::Done => {
                Err(ApiError::with_message(ResponseError::UnknownServerError, "the controller gave no producer ids"))
            }
        }
    }
}
