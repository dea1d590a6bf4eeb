//! Transactions are not implemented: a transactional producer is told so at its first
//! step, looking up its transaction coordinator, and again if it asks for a producer id
//! directly.
//!
//! Which error code, read from the clients' sources (Apache Kafka 4.x
//! `TransactionManager`, librdkafka 2.x `rdkafka_txnmgr.c`/`rdkafka_idempotence.c`) and
//! tried with kcat 1.7:
//! - Java, FindCoordinator: any non-retriable error other than an authorization failure is
//!   fatal at once, printed as "Could not find a coordinator with type TRANSACTION with
//!   key … due to unexpected error: <error_message>". `TRANSACTIONAL_ID_AUTHORIZATION_FAILED`
//!   is fatal too but printed without our message ("Transactional Id authorization
//!   failed."), sending users to their ACLs. Java sends FindCoordinator v4 and later.
//! - librdkafka, FindCoordinator (it sends v0-v2): only `TRANSACTIONAL_ID_AUTHORIZATION_FAILED`
//!   is fatal; every other code is retried until `init_transactions()` times out — kcat
//!   then prints only "Timed out waiting for operation to finish". With the authorization
//!   code it fails at once and prints our message after the code's name: "Failed to find
//!   transaction coordinator: …: Broker: Transactional Id authorization failed: Jet does not
//!   support Kafka transactions yet; …".
//! - InitProducerId has no error_message field; Java prints "Unexpected error in
//!   InitProducerIdResponse; The version of API is not supported." (fatal).
//!
//! So FindCoordinator v4+ answers `UNSUPPORTED_VERSION` (Kafka's code for "this broker
//! does not support what you ask") with the message; v0-v3 answer the only code that
//! makes the clients using those versions stop at once, with the same message; and
//! InitProducerId answers `UNSUPPORTED_VERSION`.

use kafka_protocol::ResponseError;

/// The code a transactional InitProducerId gets.
pub const CODE: ResponseError = ResponseError::UnsupportedVersion;

/// The code a FindCoordinator for a transaction coordinator gets at `version` (see above).
pub fn find_coordinator_code(version: i16) -> ResponseError {
    if version >= 4 { CODE } else { ResponseError::TransactionalIdAuthorizationFailed }
}

/// What a transactional producer is told.
pub const MESSAGE: &str = "Jet does not support Kafka transactions yet; unset transactional.id (an idempotent producer, enable.idempotence=true, is supported)";
