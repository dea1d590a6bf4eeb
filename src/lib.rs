//! Jet: a Kafka-wire-compatible streaming broker.

pub mod log;
