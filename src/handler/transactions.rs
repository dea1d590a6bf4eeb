//! Transactions are not implemented: a transactional producer is told so at its first
//! step, looking up its transaction coordinator, and again if it asks for a producer id
//! directly.
//!
//! The error is `UNSUPPORTED_VERSION`, Kafka's code for "this broker does not support
//! what you ask" (the Java client's `UnsupportedVersionException`), with an error message
//! naming the reason. Read from the clients' sources (Apache Kafka 4.x
//! `TransactionManager`, librdkafka 2.x `rdkafka_txnmgr.c`/`rdkafka_idempotence.c`):
//! - Java, FindCoordinator: any non-retriable error other than an authorization failure is
//!   fatal at once, printed as "Could not find a coordinator with type TRANSACTION with
//!   key … due to unexpected error: <error_message>" — our message reaches the user.
//!   `TRANSACTIONAL_ID_AUTHORIZATION_FAILED` is fatal too but printed without the message
//!   ("Transactional Id authorization failed."), which sends users to their ACLs.
//!   Retriable codes (`COORDINATOR_NOT_AVAILABLE`, …) make it retry until `max.block.ms`.
//! - librdkafka, FindCoordinator: only `TRANSACTIONAL_ID_AUTHORIZATION_FAILED` is fatal;
//!   any other code is retried until `init_transactions()` times out, with the message in
//!   its coordinator-lookup reason.
//! - InitProducerId has no error_message field; Java prints "Unexpected error in
//!   InitProducerIdResponse; The version of API is not supported." (fatal).
//!
//! So Java users get a fast, clear failure; librdkafka users get a timeout of their
//! `init_transactions()` whose reason carries the message. The authorization code would
//! fail librdkafka fast too, but tells Java users (and both clients' error names) the
//! wrong story, which the issue rules out.

use kafka_protocol::ResponseError;

/// The code a transactional request gets.
pub const CODE: ResponseError = ResponseError::UnsupportedVersion;

/// What a transactional producer is told.
pub const MESSAGE: &str = "Jet does not support Kafka transactions yet; unset transactional.id (an idempotent producer, enable.idempotence=true, is supported)";
