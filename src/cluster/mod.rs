//! The cluster: which brokers exist and where each partition's replicas live.
//!
//! Today this holds [`placement`], the pure function that decides replica placement for
//! new topics and partitions, [`gossip`], broker discovery and failure detection
//! behind Jet's own `Discovery` trait, and [`directory`], the live brokers a broker tells
//! clients about (Metadata, DescribeCluster, `/v1/cluster`) and `--bootstrap-expect`.
//! The controller (a raft group for cluster metadata) builds on them (issue 10).

pub mod directory;
pub mod gossip;
pub mod placement;
