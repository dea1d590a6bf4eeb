//! The cluster: which brokers exist and where each partition's replicas live.
//!
//! Today this holds [`placement`], the pure function that decides replica placement for
//! new topics and partitions, [`gossip`], broker discovery and failure detection
//! behind Jet's own `Discovery` trait, and [`directory`], the live brokers a broker tells
//! clients about (Metadata, DescribeCluster, `/v1/cluster`) and `--bootstrap-expect`.
//! [`metadata`] is the replicated cluster metadata (records applied to an image) and
//! [`controller`] the raft group that replicates it. [`runtime`] runs both on a broker
//! in a cluster: the raft transport, the controller member, and a raft replica per
//! partition the image places here. [`read_replica`] picks the follower a consumer in
//! another rack reads from (KIP-392).

pub mod controller;
pub mod directory;
pub mod gossip;
pub mod metadata;
pub mod placement;
pub mod read_replica;
pub mod runtime;
