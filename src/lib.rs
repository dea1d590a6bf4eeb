//! Jet: a Kafka-wire-compatible streaming broker.
