//! Kafka wire-protocol helpers.

pub mod bounds;
