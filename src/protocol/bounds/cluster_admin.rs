//! Request schemas: AlterReplicaLogDirs, ElectLeaders, AlterPartitionReassignments, ListPartitionReassignments, UpdateFeatures, GetTelemetrySubscriptions, PushTelemetry, ListConfigResources.
//!
//! Field layouts follow the generated decoders of kafka-protocol 0.18
//! (which are what actually runs), cross-checked with Apache Kafka's
//! `*Request.json` message definitions.

use super::schema::Kind::*;
use super::schema::{Field, Schema, V};

/// Every schema defined in this module.
pub(super) const SCHEMAS: &[&Schema] = &[
    &ALTER_REPLICA_LOG_DIRS,
    &ELECT_LEADERS,
    &ALTER_PARTITION_REASSIGNMENTS,
    &LIST_PARTITION_REASSIGNMENTS,
    &UPDATE_FEATURES,
    &GET_TELEMETRY_SUBSCRIPTIONS,
    &PUSH_TELEMETRY,
    &LIST_CONFIG_RESOURCES,
];

const ALTER_REPLICA_LOG_DIR_TOPIC: &[Field] =
    &[Field::new("name", String, V(1, 2)), Field::new("partitions", Array(&Int32), V(1, 2))];

const ALTER_REPLICA_LOG_DIR: &[Field] =
    &[Field::new("path", String, V(1, 2)), Field::new("topics", Array(&Struct(ALTER_REPLICA_LOG_DIR_TOPIC)), V(1, 2))];

/// `AlterReplicaLogDirsRequest` (api key 34), versions 1-2, flexible from v2.
pub(crate) const ALTER_REPLICA_LOG_DIRS: Schema = Schema {
    name: "AlterReplicaLogDirs",
    api_key: 34,
    versions: V(1, 2),
    flexible: V(2, 2),
    fields: &[Field::new("dirs", Array(&Struct(ALTER_REPLICA_LOG_DIR)), V(1, 2))],
};

const TOPIC_PARTITIONS: &[Field] =
    &[Field::new("topic", String, V(0, 2)), Field::new("partitions", Array(&Int32), V(0, 2))];

/// `ElectLeadersRequest` (api key 43), versions 0-2, flexible from v2.
pub(crate) const ELECT_LEADERS: Schema = Schema {
    name: "ElectLeaders",
    api_key: 43,
    versions: V(0, 2),
    flexible: V(2, 2),
    fields: &[
        Field::new("election_type", Int8, V(1, 2)),
        Field::new("topic_partitions", Array(&Struct(TOPIC_PARTITIONS)), V(0, 2)).nullable(V(0, 2)),
        Field::new("timeout_ms", Int32, V(0, 2)),
    ],
};

const REASSIGNABLE_PARTITION: &[Field] =
    &[Field::new("partition_index", Int32, V(0, 1)), Field::new("replicas", Array(&Int32), V(0, 1)).nullable(V(0, 1))];

const REASSIGNABLE_TOPIC: &[Field] =
    &[Field::new("name", String, V(0, 1)), Field::new("partitions", Array(&Struct(REASSIGNABLE_PARTITION)), V(0, 1))];

/// `AlterPartitionReassignmentsRequest` (api key 45), versions 0-1, flexible from v0.
pub(crate) const ALTER_PARTITION_REASSIGNMENTS: Schema = Schema {
    name: "AlterPartitionReassignments",
    api_key: 45,
    versions: V(0, 1),
    flexible: V(0, 1),
    fields: &[
        Field::new("timeout_ms", Int32, V(0, 1)),
        Field::new("allow_replication_factor_change", Bool, V(1, 1)),
        Field::new("topics", Array(&Struct(REASSIGNABLE_TOPIC)), V(0, 1)),
    ],
};

const LIST_PARTITION_REASSIGNMENTS_TOPICS: &[Field] =
    &[Field::new("name", String, V(0, 0)), Field::new("partition_indexes", Array(&Int32), V(0, 0))];

/// `ListPartitionReassignmentsRequest` (api key 46), versions 0-0, flexible from v0.
pub(crate) const LIST_PARTITION_REASSIGNMENTS: Schema = Schema {
    name: "ListPartitionReassignments",
    api_key: 46,
    versions: V(0, 0),
    flexible: V(0, 0),
    fields: &[
        Field::new("timeout_ms", Int32, V(0, 0)),
        Field::new("topics", Array(&Struct(LIST_PARTITION_REASSIGNMENTS_TOPICS)), V(0, 0)).nullable(V(0, 0)),
    ],
};

const FEATURE_UPDATE_KEY: &[Field] = &[
    Field::new("feature", String, V(0, 2)),
    Field::new("max_version_level", Int16, V(0, 2)),
    Field::new("allow_downgrade", Bool, V(0, 0)),
    Field::new("upgrade_type", Int8, V(1, 2)),
];

/// `UpdateFeaturesRequest` (api key 57), versions 0-2, flexible from v0.
pub(crate) const UPDATE_FEATURES: Schema = Schema {
    name: "UpdateFeatures",
    api_key: 57,
    versions: V(0, 2),
    flexible: V(0, 2),
    fields: &[
        Field::new("timeout_ms", Int32, V(0, 2)),
        Field::new("feature_updates", Array(&Struct(FEATURE_UPDATE_KEY)), V(0, 2)),
        Field::new("validate_only", Bool, V(1, 2)),
    ],
};

/// `GetTelemetrySubscriptionsRequest` (api key 71), versions 0-0, flexible from v0.
pub(crate) const GET_TELEMETRY_SUBSCRIPTIONS: Schema = Schema {
    name: "GetTelemetrySubscriptions",
    api_key: 71,
    versions: V(0, 0),
    flexible: V(0, 0),
    fields: &[Field::new("client_instance_id", Uuid, V(0, 0))],
};

/// `PushTelemetryRequest` (api key 72), versions 0-0, flexible from v0.
pub(crate) const PUSH_TELEMETRY: Schema = Schema {
    name: "PushTelemetry",
    api_key: 72,
    versions: V(0, 0),
    flexible: V(0, 0),
    fields: &[
        Field::new("client_instance_id", Uuid, V(0, 0)),
        Field::new("subscription_id", Int32, V(0, 0)),
        Field::new("terminating", Bool, V(0, 0)),
        Field::new("compression_type", Int8, V(0, 0)),
        Field::new("metrics", Bytes, V(0, 0)),
    ],
};

/// `ListConfigResourcesRequest` (api key 74), versions 0-1, flexible from v0.
pub(crate) const LIST_CONFIG_RESOURCES: Schema = Schema {
    name: "ListConfigResources",
    api_key: 74,
    versions: V(0, 1),
    flexible: V(0, 1),
    fields: &[Field::new("resource_types", Array(&Int8), V(1, 1))],
};
