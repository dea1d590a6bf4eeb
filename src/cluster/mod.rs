//! The cluster: which brokers exist and where each partition's replicas live.
//!
//! Today this holds [`placement`], the pure function that decides replica placement for
//! new topics and partitions, and [`gossip`], broker discovery and failure detection
//! behind Jet's own `Discovery` trait. The controller (a raft group for cluster metadata)
//! builds on them (issue 10).

pub mod controller;
pub mod gossip;
pub mod metadata;
pub mod placement;
