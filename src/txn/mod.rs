//! The transaction coordinator (KIP-98, transactions v1 as Kafka 4 clients use them when
//! the broker advertises no `transaction.version` feature).
//!
//! Each transactional id lives in partition `abs(javaHash(id)) %
//! transaction.state.log.num.partitions` of `__transaction_state` (compacted, created
//! on first use like `__consumer_offsets`), and its coordinator is that partition's
//! leader. The leader loads the partition's ids when it starts leading it at a new epoch
//! (that epoch is the coordinator epoch its markers carry) and drops them when it stops.
//!
//! - [`records`]: Kafka's `TransactionLogKey`/`TransactionLogValue` records.
//! - [`coordinator`]: the state per transactional id and the requests that change it
//!   (InitProducerId with a transactional id, AddPartitionsToTxn, EndTxn). Every change
//!   is written to the id's partition and committed before it is answered or acted on
//!   (durable before visible); changes of one id are serialized by its own lock, ids
//!   proceed concurrently.
//! - [`markers`]: completing a transaction — COMMIT or ABORT markers written to every
//!   partition in it (locally, or with WriteTxnMarkers at the partition's leader),
//!   retried until each is committed, then the `Complete*` state; the timer that loads
//!   newly led partitions (resuming the markers of transactions a previous coordinator
//!   prepared), aborts transactions past their `transaction.timeout.ms`, and removes
//!   transactional ids idle (no transaction open) for `transactional.id.expiration.ms`
//!   with a tombstone, as Kafka does, so ids a client stops using take no memory for ever.

pub mod coordinator;
pub mod markers;
pub mod records;
pub mod verify;

pub use coordinator::TxnCoordinator;

/// Sends one request to another broker at `address` on a connection of its own and
/// returns its response, all within `timeout`; NETWORK_EXCEPTION (the cause logged) when
/// it cannot be had. The coordinator's markers and a leader's KIP-890 verification use it.
pub(crate) async fn call_broker<R: kafka_protocol::protocol::Request>(
    address: &str,
    request: &R,
    version: i16,
    timeout: std::time::Duration,
) -> Result<R::Response, kafka_protocol::ResponseError> {
    let called = tokio::time::timeout(timeout, async {
        let mut conn = crate::cli::wire::Connection::open(address, timeout).await?;
        conn.call_at(request, version).await
    })
    .await;
    match called {
        Ok(Ok(response)) => Ok(response),
        Ok(Err(e)) => {
            tracing::debug!(address, error = %e, "a request to another broker failed");
            Err(kafka_protocol::ResponseError::NetworkException)
        }
        Err(_elapsed) => {
            tracing::debug!(address, ?timeout, "a request to another broker timed out");
            Err(kafka_protocol::ResponseError::NetworkException)
        }
    }
}

/// The internal topic holding transaction state.
pub const TXN_TOPIC: &str = "__transaction_state";

/// Transaction coordinator settings, from the broker's Kafka settings.
#[derive(Debug, Clone)]
pub struct TxnSettings {
    /// `transaction.state.log.num.partitions`.
    pub partitions: i32,
    /// `transaction.state.log.segment.bytes`.
    pub segment_bytes: i32,
    /// `transaction.max.timeout.ms`.
    pub max_timeout_ms: i32,
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms`.
    pub abort_check_interval_ms: i64,
    /// `transactional.id.expiration.ms`.
    pub id_expiration_ms: i64,
    /// `transaction.remove.expired.transaction.cleanup.interval.ms`.
    pub id_expiration_check_interval_ms: i64,
}

impl TxnSettings {
    pub fn from_kafka(k: &crate::config::KafkaSettings) -> TxnSettings {
        TxnSettings {
            partitions: k.transaction_state_log_num_partitions,
            segment_bytes: k.transaction_state_log_segment_bytes,
            max_timeout_ms: k.transaction_max_timeout_ms,
            abort_check_interval_ms: k.transaction_abort_timed_out_transaction_cleanup_interval_ms.max(1),
            id_expiration_ms: k.transactional_id_expiration_ms.max(1),
            id_expiration_check_interval_ms: k.transaction_remove_expired_transaction_cleanup_interval_ms.max(1),
        }
    }
}
