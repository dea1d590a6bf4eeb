//! The cluster: which brokers exist and where each partition's replicas live.
//!
//! Today this holds [`placement`], the pure function that decides replica placement for
//! new topics and partitions. The controller (a raft group for cluster metadata) and
//! gossip discovery build on it (issue 10).

pub mod placement;
