//! Request schemas: SaslHandshake, ApiVersions, CreateTopics, DeleteTopics, DescribeConfigs, AlterConfigs, DescribeLogDirs, SaslAuthenticate, CreatePartitions, IncrementalAlterConfigs, DescribeCluster.
//!
//! Field layouts follow the generated decoders of kafka-protocol 0.18
//! (which are what actually runs), cross-checked with Apache Kafka's
//! `*Request.json` message definitions.

use super::schema::Kind::*;
use super::schema::{Field, Schema, V};

/// Every schema defined in this module.
pub(super) const SCHEMAS: &[&Schema] = &[
    &SASL_HANDSHAKE,
    &API_VERSIONS,
    &CREATE_TOPICS,
    &DELETE_TOPICS,
    &DESCRIBE_CONFIGS,
    &ALTER_CONFIGS,
    &DESCRIBE_LOG_DIRS,
    &SASL_AUTHENTICATE,
    &CREATE_PARTITIONS,
    &INCREMENTAL_ALTER_CONFIGS,
    &DESCRIBE_CLUSTER,
];

/// `SaslHandshakeRequest` (api key 17), versions 0-1, never flexible.
pub(crate) const SASL_HANDSHAKE: Schema = Schema {
    name: "SaslHandshake",
    api_key: 17,
    versions: V(0, 1),
    flexible: V::NONE,
    fields: &[Field::new("mechanism", String, V(0, 1))],
};

/// `ApiVersionsRequest` (api key 18), versions 0-4, flexible from v3.
pub(crate) const API_VERSIONS: Schema = Schema {
    name: "ApiVersions",
    api_key: 18,
    versions: V(0, 4),
    flexible: V(3, 4),
    fields: &[
        Field::new("client_software_name", String, V(3, 4)),
        Field::new("client_software_version", String, V(3, 4)),
    ],
};

const CREATABLE_REPLICA_ASSIGNMENT: &[Field] =
    &[Field::new("partition_index", Int32, V(2, 7)), Field::new("broker_ids", Array(&Int32), V(2, 7))];

const CREATABLE_TOPIC_CONFIG: &[Field] =
    &[Field::new("name", String, V(2, 7)), Field::new("value", String, V(2, 7)).nullable(V(2, 7))];

const CREATABLE_TOPIC: &[Field] = &[
    Field::new("name", String, V(2, 7)),
    Field::new("num_partitions", Int32, V(2, 7)),
    Field::new("replication_factor", Int16, V(2, 7)),
    Field::new("assignments", Array(&Struct(CREATABLE_REPLICA_ASSIGNMENT)), V(2, 7)),
    Field::new("configs", Array(&Struct(CREATABLE_TOPIC_CONFIG)), V(2, 7)),
];

/// `CreateTopicsRequest` (api key 19), versions 2-7, flexible from v5.
pub(crate) const CREATE_TOPICS: Schema = Schema {
    name: "CreateTopics",
    api_key: 19,
    versions: V(2, 7),
    flexible: V(5, 7),
    fields: &[
        Field::new("topics", Array(&Struct(CREATABLE_TOPIC)), V(2, 7)),
        Field::new("timeout_ms", Int32, V(2, 7)),
        Field::new("validate_only", Bool, V(2, 7)),
    ],
};

const DELETE_TOPIC_STATE: &[Field] =
    &[Field::new("name", String, V(6, 6)).nullable(V(6, 6)), Field::new("topic_id", Uuid, V(6, 6))];

/// `DeleteTopicsRequest` (api key 20), versions 1-6, flexible from v4.
pub(crate) const DELETE_TOPICS: Schema = Schema {
    name: "DeleteTopics",
    api_key: 20,
    versions: V(1, 6),
    flexible: V(4, 6),
    fields: &[
        Field::new("topics", Array(&Struct(DELETE_TOPIC_STATE)), V(6, 6)),
        Field::new("topic_names", Array(&String), V(1, 5)),
        Field::new("timeout_ms", Int32, V(1, 6)),
    ],
};

const DESCRIBE_CONFIGS_RESOURCE: &[Field] = &[
    Field::new("resource_type", Int8, V(1, 4)),
    Field::new("resource_name", String, V(1, 4)),
    Field::new("configuration_keys", Array(&String), V(1, 4)).nullable(V(1, 4)),
];

/// `DescribeConfigsRequest` (api key 32), versions 1-4, flexible from v4.
pub(crate) const DESCRIBE_CONFIGS: Schema = Schema {
    name: "DescribeConfigs",
    api_key: 32,
    versions: V(1, 4),
    flexible: V(4, 4),
    fields: &[
        Field::new("resources", Array(&Struct(DESCRIBE_CONFIGS_RESOURCE)), V(1, 4)),
        Field::new("include_synonyms", Bool, V(1, 4)),
        Field::new("include_documentation", Bool, V(3, 4)),
    ],
};

const ALTERABLE_CONFIG: &[Field] =
    &[Field::new("name", String, V(0, 2)), Field::new("value", String, V(0, 2)).nullable(V(0, 2))];

const ALTER_CONFIGS_RESOURCE: &[Field] = &[
    Field::new("resource_type", Int8, V(0, 2)),
    Field::new("resource_name", String, V(0, 2)),
    Field::new("configs", Array(&Struct(ALTERABLE_CONFIG)), V(0, 2)),
];

/// `AlterConfigsRequest` (api key 33), versions 0-2, flexible from v2.
pub(crate) const ALTER_CONFIGS: Schema = Schema {
    name: "AlterConfigs",
    api_key: 33,
    versions: V(0, 2),
    flexible: V(2, 2),
    fields: &[
        Field::new("resources", Array(&Struct(ALTER_CONFIGS_RESOURCE)), V(0, 2)),
        Field::new("validate_only", Bool, V(0, 2)),
    ],
};

const DESCRIBABLE_LOG_DIR_TOPIC: &[Field] =
    &[Field::new("topic", String, V(1, 4)), Field::new("partitions", Array(&Int32), V(1, 4))];

/// `DescribeLogDirsRequest` (api key 35), versions 1-4, flexible from v2.
pub(crate) const DESCRIBE_LOG_DIRS: Schema = Schema {
    name: "DescribeLogDirs",
    api_key: 35,
    versions: V(1, 4),
    flexible: V(2, 4),
    fields: &[Field::new("topics", Array(&Struct(DESCRIBABLE_LOG_DIR_TOPIC)), V(1, 4)).nullable(V(1, 4))],
};

/// `SaslAuthenticateRequest` (api key 36), versions 0-2, flexible from v2.
pub(crate) const SASL_AUTHENTICATE: Schema = Schema {
    name: "SaslAuthenticate",
    api_key: 36,
    versions: V(0, 2),
    flexible: V(2, 2),
    fields: &[Field::new("auth_bytes", Bytes, V(0, 2))],
};

const CREATE_PARTITIONS_ASSIGNMENT: &[Field] = &[Field::new("broker_ids", Array(&Int32), V(0, 3))];

const CREATE_PARTITIONS_TOPIC: &[Field] = &[
    Field::new("name", String, V(0, 3)),
    Field::new("count", Int32, V(0, 3)),
    Field::new("assignments", Array(&Struct(CREATE_PARTITIONS_ASSIGNMENT)), V(0, 3)).nullable(V(0, 3)),
];

/// `CreatePartitionsRequest` (api key 37), versions 0-3, flexible from v2.
pub(crate) const CREATE_PARTITIONS: Schema = Schema {
    name: "CreatePartitions",
    api_key: 37,
    versions: V(0, 3),
    flexible: V(2, 3),
    fields: &[
        Field::new("topics", Array(&Struct(CREATE_PARTITIONS_TOPIC)), V(0, 3)),
        Field::new("timeout_ms", Int32, V(0, 3)),
        Field::new("validate_only", Bool, V(0, 3)),
    ],
};

const INCREMENTAL_ALTER_CONFIGS_ALTERABLE_CONFIG: &[Field] = &[
    Field::new("name", String, V(0, 1)),
    Field::new("config_operation", Int8, V(0, 1)),
    Field::new("value", String, V(0, 1)).nullable(V(0, 1)),
];

const INCREMENTAL_ALTER_CONFIGS_ALTER_CONFIGS_RESOURCE: &[Field] = &[
    Field::new("resource_type", Int8, V(0, 1)),
    Field::new("resource_name", String, V(0, 1)),
    Field::new("configs", Array(&Struct(INCREMENTAL_ALTER_CONFIGS_ALTERABLE_CONFIG)), V(0, 1)),
];

/// `IncrementalAlterConfigsRequest` (api key 44), versions 0-1, flexible from v1.
pub(crate) const INCREMENTAL_ALTER_CONFIGS: Schema = Schema {
    name: "IncrementalAlterConfigs",
    api_key: 44,
    versions: V(0, 1),
    flexible: V(1, 1),
    fields: &[
        Field::new("resources", Array(&Struct(INCREMENTAL_ALTER_CONFIGS_ALTER_CONFIGS_RESOURCE)), V(0, 1)),
        Field::new("validate_only", Bool, V(0, 1)),
    ],
};

/// `DescribeClusterRequest` (api key 60), versions 0-2, flexible from v0.
pub(crate) const DESCRIBE_CLUSTER: Schema = Schema {
    name: "DescribeCluster",
    api_key: 60,
    versions: V(0, 2),
    flexible: V(0, 2),
    fields: &[
        Field::new("include_cluster_authorized_operations", Bool, V(0, 2)),
        Field::new("endpoint_type", Int8, V(1, 2)),
        Field::new("include_fenced_brokers", Bool, V(2, 2)),
    ],
};
