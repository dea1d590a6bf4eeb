//! Request schemas: Vote, BeginQuorumEpoch, EndQuorumEpoch, DescribeQuorum, AlterPartition, Envelope, FetchSnapshot, BrokerRegistration, BrokerHeartbeat, UnregisterBroker, AllocateProducerIds, ControllerRegistration, AssignReplicasToDirs, AddRaftVoter, RemoveRaftVoter, UpdateRaftVoter.
//!
//! Field layouts follow the generated decoders of kafka-protocol 0.18
//! (which are what actually runs), cross-checked with Apache Kafka's
//! `*Request.json` message definitions.

use super::schema::Kind::*;
use super::schema::{Field, Schema, V};

/// Every schema defined in this module.
pub(super) const SCHEMAS: &[&Schema] = &[
    &VOTE,
    &BEGIN_QUORUM_EPOCH,
    &END_QUORUM_EPOCH,
    &DESCRIBE_QUORUM,
    &ALTER_PARTITION,
    &ENVELOPE,
    &FETCH_SNAPSHOT,
    &BROKER_REGISTRATION,
    &BROKER_HEARTBEAT,
    &UNREGISTER_BROKER,
    &ALLOCATE_PRODUCER_IDS,
    &CONTROLLER_REGISTRATION,
    &ASSIGN_REPLICAS_TO_DIRS,
    &ADD_RAFT_VOTER,
    &REMOVE_RAFT_VOTER,
    &UPDATE_RAFT_VOTER,
];

const PARTITION_DATA: &[Field] = &[
    Field::new("partition_index", Int32, V(0, 2)),
    Field::new("replica_epoch", Int32, V(0, 2)),
    Field::new("replica_id", Int32, V(0, 2)),
    Field::new("replica_directory_id", Uuid, V(1, 2)),
    Field::new("voter_directory_id", Uuid, V(1, 2)),
    Field::new("last_offset_epoch", Int32, V(0, 2)),
    Field::new("last_offset", Int64, V(0, 2)),
    Field::new("pre_vote", Bool, V(2, 2)),
];

const TOPIC_DATA: &[Field] =
    &[Field::new("topic_name", String, V(0, 2)), Field::new("partitions", Array(&Struct(PARTITION_DATA)), V(0, 2))];

/// `VoteRequest` (api key 52), versions 0-2, flexible from v0.
pub(crate) const VOTE: Schema = Schema {
    name: "Vote",
    api_key: 52,
    versions: V(0, 2),
    flexible: V(0, 2),
    fields: &[
        Field::new("cluster_id", String, V(0, 2)).nullable(V(0, 2)),
        Field::new("voter_id", Int32, V(1, 2)),
        Field::new("topics", Array(&Struct(TOPIC_DATA)), V(0, 2)),
    ],
};

const BEGIN_QUORUM_EPOCH_PARTITION_DATA: &[Field] = &[
    Field::new("partition_index", Int32, V(0, 1)),
    Field::new("voter_directory_id", Uuid, V(1, 1)),
    Field::new("leader_id", Int32, V(0, 1)),
    Field::new("leader_epoch", Int32, V(0, 1)),
];

const BEGIN_QUORUM_EPOCH_TOPIC_DATA: &[Field] = &[
    Field::new("topic_name", String, V(0, 1)),
    Field::new("partitions", Array(&Struct(BEGIN_QUORUM_EPOCH_PARTITION_DATA)), V(0, 1)),
];

const LEADER_ENDPOINT: &[Field] =
    &[Field::new("name", String, V(1, 1)), Field::new("host", String, V(1, 1)), Field::new("port", UInt16, V(1, 1))];

/// `BeginQuorumEpochRequest` (api key 53), versions 0-1, flexible from v1.
pub(crate) const BEGIN_QUORUM_EPOCH: Schema = Schema {
    name: "BeginQuorumEpoch",
    api_key: 53,
    versions: V(0, 1),
    flexible: V(1, 1),
    fields: &[
        Field::new("cluster_id", String, V(0, 1)).nullable(V(0, 1)),
        Field::new("voter_id", Int32, V(1, 1)),
        Field::new("topics", Array(&Struct(BEGIN_QUORUM_EPOCH_TOPIC_DATA)), V(0, 1)),
        Field::new("leader_endpoints", Array(&Struct(LEADER_ENDPOINT)), V(1, 1)),
    ],
};

const REPLICA_INFO: &[Field] =
    &[Field::new("candidate_id", Int32, V(1, 1)), Field::new("candidate_directory_id", Uuid, V(1, 1))];

const END_QUORUM_EPOCH_PARTITION_DATA: &[Field] = &[
    Field::new("partition_index", Int32, V(0, 1)),
    Field::new("leader_id", Int32, V(0, 1)),
    Field::new("leader_epoch", Int32, V(0, 1)),
    Field::new("preferred_successors", Array(&Int32), V(0, 0)),
    Field::new("preferred_candidates", Array(&Struct(REPLICA_INFO)), V(1, 1)),
];

const END_QUORUM_EPOCH_TOPIC_DATA: &[Field] = &[
    Field::new("topic_name", String, V(0, 1)),
    Field::new("partitions", Array(&Struct(END_QUORUM_EPOCH_PARTITION_DATA)), V(0, 1)),
];

const END_QUORUM_EPOCH_LEADER_ENDPOINT: &[Field] =
    &[Field::new("name", String, V(1, 1)), Field::new("host", String, V(1, 1)), Field::new("port", UInt16, V(1, 1))];

/// `EndQuorumEpochRequest` (api key 54), versions 0-1, flexible from v1.
pub(crate) const END_QUORUM_EPOCH: Schema = Schema {
    name: "EndQuorumEpoch",
    api_key: 54,
    versions: V(0, 1),
    flexible: V(1, 1),
    fields: &[
        Field::new("cluster_id", String, V(0, 1)).nullable(V(0, 1)),
        Field::new("topics", Array(&Struct(END_QUORUM_EPOCH_TOPIC_DATA)), V(0, 1)),
        Field::new("leader_endpoints", Array(&Struct(END_QUORUM_EPOCH_LEADER_ENDPOINT)), V(1, 1)),
    ],
};

const DESCRIBE_QUORUM_PARTITION_DATA: &[Field] = &[Field::new("partition_index", Int32, V(0, 2))];

const DESCRIBE_QUORUM_TOPIC_DATA: &[Field] = &[
    Field::new("topic_name", String, V(0, 2)),
    Field::new("partitions", Array(&Struct(DESCRIBE_QUORUM_PARTITION_DATA)), V(0, 2)),
];

/// `DescribeQuorumRequest` (api key 55), versions 0-2, flexible from v0.
pub(crate) const DESCRIBE_QUORUM: Schema = Schema {
    name: "DescribeQuorum",
    api_key: 55,
    versions: V(0, 2),
    flexible: V(0, 2),
    fields: &[Field::new("topics", Array(&Struct(DESCRIBE_QUORUM_TOPIC_DATA)), V(0, 2))],
};

const BROKER_STATE: &[Field] = &[Field::new("broker_id", Int32, V(3, 3)), Field::new("broker_epoch", Int64, V(3, 3))];

const ALTER_PARTITION_PARTITION_DATA: &[Field] = &[
    Field::new("partition_index", Int32, V(2, 3)),
    Field::new("leader_epoch", Int32, V(2, 3)),
    Field::new("new_isr", Array(&Int32), V(2, 2)),
    Field::new("new_isr_with_epochs", Array(&Struct(BROKER_STATE)), V(3, 3)),
    Field::new("leader_recovery_state", Int8, V(2, 3)),
    Field::new("partition_epoch", Int32, V(2, 3)),
];

const ALTER_PARTITION_TOPIC_DATA: &[Field] = &[
    Field::new("topic_id", Uuid, V(2, 3)),
    Field::new("partitions", Array(&Struct(ALTER_PARTITION_PARTITION_DATA)), V(2, 3)),
];

/// `AlterPartitionRequest` (api key 56), versions 2-3, flexible from v2.
pub(crate) const ALTER_PARTITION: Schema = Schema {
    name: "AlterPartition",
    api_key: 56,
    versions: V(2, 3),
    flexible: V(2, 3),
    fields: &[
        Field::new("broker_id", Int32, V(2, 3)),
        Field::new("broker_epoch", Int64, V(2, 3)),
        Field::new("topics", Array(&Struct(ALTER_PARTITION_TOPIC_DATA)), V(2, 3)),
    ],
};

/// `EnvelopeRequest` (api key 58), versions 0-0, flexible from v0.
pub(crate) const ENVELOPE: Schema = Schema {
    name: "Envelope",
    api_key: 58,
    versions: V(0, 0),
    flexible: V(0, 0),
    fields: &[
        Field::new("request_data", Bytes, V(0, 0)),
        Field::new("request_principal", Bytes, V(0, 0)).nullable(V(0, 0)),
        Field::new("client_host_address", Bytes, V(0, 0)),
    ],
};

const SNAPSHOT_ID: &[Field] = &[Field::new("end_offset", Int64, V(0, 1)), Field::new("epoch", Int32, V(0, 1))];

const PARTITION_SNAPSHOT: &[Field] = &[
    Field::new("partition", Int32, V(0, 1)),
    Field::new("current_leader_epoch", Int32, V(0, 1)),
    Field::new("snapshot_id", Struct(SNAPSHOT_ID), V(0, 1)),
    Field::new("position", Int64, V(0, 1)),
    Field::new("replica_directory_id", Uuid, V(1, 1)).tagged(0),
];

const TOPIC_SNAPSHOT: &[Field] =
    &[Field::new("name", String, V(0, 1)), Field::new("partitions", Array(&Struct(PARTITION_SNAPSHOT)), V(0, 1))];

/// `FetchSnapshotRequest` (api key 59), versions 0-1, flexible from v0.
pub(crate) const FETCH_SNAPSHOT: Schema = Schema {
    name: "FetchSnapshot",
    api_key: 59,
    versions: V(0, 1),
    flexible: V(0, 1),
    fields: &[
        Field::new("replica_id", Int32, V(0, 1)),
        Field::new("max_bytes", Int32, V(0, 1)),
        Field::new("topics", Array(&Struct(TOPIC_SNAPSHOT)), V(0, 1)),
        Field::new("cluster_id", String, V(0, 1)).nullable(V(0, 1)).tagged(0),
    ],
};

const LISTENER: &[Field] = &[
    Field::new("name", String, V(0, 4)),
    Field::new("host", String, V(0, 4)),
    Field::new("port", UInt16, V(0, 4)),
    Field::new("security_protocol", Int16, V(0, 4)),
];

const FEATURE: &[Field] = &[
    Field::new("name", String, V(0, 4)),
    Field::new("min_supported_version", Int16, V(0, 4)),
    Field::new("max_supported_version", Int16, V(0, 4)),
];

/// `BrokerRegistrationRequest` (api key 62), versions 0-4, flexible from v0.
pub(crate) const BROKER_REGISTRATION: Schema = Schema {
    name: "BrokerRegistration",
    api_key: 62,
    versions: V(0, 4),
    flexible: V(0, 4),
    fields: &[
        Field::new("broker_id", Int32, V(0, 4)),
        Field::new("cluster_id", String, V(0, 4)),
        Field::new("incarnation_id", Uuid, V(0, 4)),
        Field::new("listeners", Array(&Struct(LISTENER)), V(0, 4)),
        Field::new("features", Array(&Struct(FEATURE)), V(0, 4)),
        Field::new("rack", String, V(0, 4)).nullable(V(0, 4)),
        Field::new("is_migrating_zk_broker", Bool, V(1, 4)),
        Field::new("log_dirs", Array(&Uuid), V(2, 4)),
        Field::new("previous_broker_epoch", Int64, V(3, 4)),
    ],
};

/// `BrokerHeartbeatRequest` (api key 63), versions 0-1, flexible from v0.
pub(crate) const BROKER_HEARTBEAT: Schema = Schema {
    name: "BrokerHeartbeat",
    api_key: 63,
    versions: V(0, 1),
    flexible: V(0, 1),
    fields: &[
        Field::new("broker_id", Int32, V(0, 1)),
        Field::new("broker_epoch", Int64, V(0, 1)),
        Field::new("current_metadata_offset", Int64, V(0, 1)),
        Field::new("want_fence", Bool, V(0, 1)),
        Field::new("want_shut_down", Bool, V(0, 1)),
        Field::new("offline_log_dirs", Array(&Uuid), V(1, 1)).tagged(0),
    ],
};

/// `UnregisterBrokerRequest` (api key 64), versions 0-0, flexible from v0.
pub(crate) const UNREGISTER_BROKER: Schema = Schema {
    name: "UnregisterBroker",
    api_key: 64,
    versions: V(0, 0),
    flexible: V(0, 0),
    fields: &[Field::new("broker_id", Int32, V(0, 0))],
};

/// `AllocateProducerIdsRequest` (api key 67), versions 0-0, flexible from v0.
pub(crate) const ALLOCATE_PRODUCER_IDS: Schema = Schema {
    name: "AllocateProducerIds",
    api_key: 67,
    versions: V(0, 0),
    flexible: V(0, 0),
    fields: &[Field::new("broker_id", Int32, V(0, 0)), Field::new("broker_epoch", Int64, V(0, 0))],
};

const CONTROLLER_REGISTRATION_LISTENER: &[Field] = &[
    Field::new("name", String, V(0, 0)),
    Field::new("host", String, V(0, 0)),
    Field::new("port", UInt16, V(0, 0)),
    Field::new("security_protocol", Int16, V(0, 0)),
];

const CONTROLLER_REGISTRATION_FEATURE: &[Field] = &[
    Field::new("name", String, V(0, 0)),
    Field::new("min_supported_version", Int16, V(0, 0)),
    Field::new("max_supported_version", Int16, V(0, 0)),
];

/// `ControllerRegistrationRequest` (api key 70), versions 0-0, flexible from v0.
pub(crate) const CONTROLLER_REGISTRATION: Schema = Schema {
    name: "ControllerRegistration",
    api_key: 70,
    versions: V(0, 0),
    flexible: V(0, 0),
    fields: &[
        Field::new("controller_id", Int32, V(0, 0)),
        Field::new("incarnation_id", Uuid, V(0, 0)),
        Field::new("zk_migration_ready", Bool, V(0, 0)),
        Field::new("listeners", Array(&Struct(CONTROLLER_REGISTRATION_LISTENER)), V(0, 0)),
        Field::new("features", Array(&Struct(CONTROLLER_REGISTRATION_FEATURE)), V(0, 0)),
    ],
};

const ASSIGN_REPLICAS_TO_DIRS_PARTITION_DATA: &[Field] = &[Field::new("partition_index", Int32, V(0, 0))];

const ASSIGN_REPLICAS_TO_DIRS_TOPIC_DATA: &[Field] = &[
    Field::new("topic_id", Uuid, V(0, 0)),
    Field::new("partitions", Array(&Struct(ASSIGN_REPLICAS_TO_DIRS_PARTITION_DATA)), V(0, 0)),
];

const DIRECTORY_DATA: &[Field] = &[
    Field::new("id", Uuid, V(0, 0)),
    Field::new("topics", Array(&Struct(ASSIGN_REPLICAS_TO_DIRS_TOPIC_DATA)), V(0, 0)),
];

/// `AssignReplicasToDirsRequest` (api key 73), versions 0-0, flexible from v0.
pub(crate) const ASSIGN_REPLICAS_TO_DIRS: Schema = Schema {
    name: "AssignReplicasToDirs",
    api_key: 73,
    versions: V(0, 0),
    flexible: V(0, 0),
    fields: &[
        Field::new("broker_id", Int32, V(0, 0)),
        Field::new("broker_epoch", Int64, V(0, 0)),
        Field::new("directories", Array(&Struct(DIRECTORY_DATA)), V(0, 0)),
    ],
};

const ADD_RAFT_VOTER_LISTENER: &[Field] =
    &[Field::new("name", String, V(0, 0)), Field::new("host", String, V(0, 0)), Field::new("port", UInt16, V(0, 0))];

/// `AddRaftVoterRequest` (api key 80), versions 0-0, flexible from v0.
pub(crate) const ADD_RAFT_VOTER: Schema = Schema {
    name: "AddRaftVoter",
    api_key: 80,
    versions: V(0, 0),
    flexible: V(0, 0),
    fields: &[
        Field::new("cluster_id", String, V(0, 0)).nullable(V(0, 0)),
        Field::new("timeout_ms", Int32, V(0, 0)),
        Field::new("voter_id", Int32, V(0, 0)),
        Field::new("voter_directory_id", Uuid, V(0, 0)),
        Field::new("listeners", Array(&Struct(ADD_RAFT_VOTER_LISTENER)), V(0, 0)),
    ],
};

/// `RemoveRaftVoterRequest` (api key 81), versions 0-0, flexible from v0.
pub(crate) const REMOVE_RAFT_VOTER: Schema = Schema {
    name: "RemoveRaftVoter",
    api_key: 81,
    versions: V(0, 0),
    flexible: V(0, 0),
    fields: &[
        Field::new("cluster_id", String, V(0, 0)).nullable(V(0, 0)),
        Field::new("voter_id", Int32, V(0, 0)),
        Field::new("voter_directory_id", Uuid, V(0, 0)),
    ],
};

const UPDATE_RAFT_VOTER_LISTENER: &[Field] =
    &[Field::new("name", String, V(0, 0)), Field::new("host", String, V(0, 0)), Field::new("port", UInt16, V(0, 0))];

const K_RAFT_VERSION_FEATURE: &[Field] =
    &[Field::new("min_supported_version", Int16, V(0, 0)), Field::new("max_supported_version", Int16, V(0, 0))];

/// `UpdateRaftVoterRequest` (api key 82), versions 0-0, flexible from v0.
pub(crate) const UPDATE_RAFT_VOTER: Schema = Schema {
    name: "UpdateRaftVoter",
    api_key: 82,
    versions: V(0, 0),
    flexible: V(0, 0),
    fields: &[
        Field::new("cluster_id", String, V(0, 0)).nullable(V(0, 0)),
        Field::new("current_leader_epoch", Int32, V(0, 0)),
        Field::new("voter_id", Int32, V(0, 0)),
        Field::new("voter_directory_id", Uuid, V(0, 0)),
        Field::new("listeners", Array(&Struct(UPDATE_RAFT_VOTER_LISTENER)), V(0, 0)),
        Field::new("k_raft_version_feature", Struct(K_RAFT_VERSION_FEATURE), V(0, 0)),
    ],
};
