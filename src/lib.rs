//! Jet: a Kafka-wire-compatible streaming broker.
//!
//! Stock Kafka clients (Java kafka-clients, librdkafka/kcat/confluent-kafka, franz-go,
//! sarama, kafka-python, aiokafka, kafkajs) connect to Jet unchanged. Jet speaks the
//! Kafka binary protocol at every version Kafka 4 serves, stores each partition as
//! append-only segment files in Kafka's own record-batch format, and acknowledges
//! `acks=all` writes only once they are fsynced (group commit).
//!
//! # Layout
//!
//! Read in this order:
//!
//! - [`config`]: command line, environment variables and Kafka-named settings.
//! - [`server`]: the TCP listener and per-connection loop (ordered responses,
//!   concurrent waits, graceful shutdown). Tests start it on port 0 with [`server::run`].
//! - [`protocol`]: frames with a size cap, request decoding guarded by
//!   [`protocol::bounds`] (a schema walk that rejects lying array counts before the
//!   `kafka-protocol` crate allocates), response encoding.
//! - [`handler`]: one file per Kafka API key, dispatched from one `match` in
//!   [`handler::dispatch`]. Per-partition failures are error codes, never a dropped
//!   connection.
//! - [`broker`]: shared state — topics and partitions, the high watermark, idempotent
//!   producer state, topic configs, fetch sessions, and the fjall metadata store.
//! - [`log`]: one partition's segments (`.log`, `.index`, `.timeindex` named by 20-digit
//!   base offset), batch validation, crash recovery, retention, and the group-commit
//!   flusher.
//!
//! # Durability model
//!
//! A produce request's batches are appended to the active segment in request order;
//! the flusher then fsyncs every file with pending writes once per round, however many
//! requests are waiting. Only then does the high watermark advance, the `acks=all`
//! response go out, and consumers see the data. `flush.ms` trades this for interval
//! flushing (weaker: a crash can lose acknowledged writes).

pub mod broker;
pub mod config;
pub mod handler;
pub mod log;
pub mod protocol;
pub mod server;
