//! Request schemas: Produce, Fetch, ListOffsets, Metadata, OffsetForLeaderEpoch, DeleteRecords, DescribeProducers, DescribeTopicPartitions.
//!
//! Field layouts follow the generated decoders of kafka-protocol 0.18
//! (which are what actually runs), cross-checked with Apache Kafka's
//! `*Request.json` message definitions.

use super::schema::Kind::*;
use super::schema::{Field, Schema, V};

/// Every schema defined in this module.
pub(super) const SCHEMAS: &[&Schema] = &[
    &PRODUCE,
    &FETCH,
    &LIST_OFFSETS,
    &METADATA,
    &OFFSET_FOR_LEADER_EPOCH,
    &DELETE_RECORDS,
    &DESCRIBE_PRODUCERS,
    &DESCRIBE_TOPIC_PARTITIONS,
];

const PARTITION_PRODUCE_DATA: &[Field] =
    &[Field::new("index", Int32, V(3, 13)), Field::new("records", Bytes, V(3, 13)).nullable(V(3, 13))];

const TOPIC_PRODUCE_DATA: &[Field] = &[
    Field::new("name", String, V(3, 12)),
    Field::new("topic_id", Uuid, V(13, 13)),
    Field::new("partition_data", Array(&Struct(PARTITION_PRODUCE_DATA)), V(3, 13)),
];

/// `ProduceRequest` (api key 0), versions 3-13, flexible from v9.
pub(crate) const PRODUCE: Schema = Schema {
    name: "Produce",
    api_key: 0,
    versions: V(3, 13),
    flexible: V(9, 13),
    fields: &[
        Field::new("transactional_id", String, V(3, 13)).nullable(V(3, 13)),
        Field::new("acks", Int16, V(3, 13)),
        Field::new("timeout_ms", Int32, V(3, 13)),
        Field::new("topic_data", Array(&Struct(TOPIC_PRODUCE_DATA)), V(3, 13)),
    ],
};

const FETCH_PARTITION: &[Field] = &[
    Field::new("partition", Int32, V(4, 18)),
    Field::new("current_leader_epoch", Int32, V(9, 18)),
    Field::new("fetch_offset", Int64, V(4, 18)),
    Field::new("last_fetched_epoch", Int32, V(12, 18)),
    Field::new("log_start_offset", Int64, V(5, 18)),
    Field::new("partition_max_bytes", Int32, V(4, 18)),
    Field::new("replica_directory_id", Uuid, V(17, 18)).tagged(0),
    Field::new("high_watermark", Int64, V(18, 18)).tagged(1),
];

const FETCH_TOPIC: &[Field] = &[
    Field::new("topic", String, V(4, 12)),
    Field::new("topic_id", Uuid, V(13, 18)),
    Field::new("partitions", Array(&Struct(FETCH_PARTITION)), V(4, 18)),
];

const FORGOTTEN_TOPIC: &[Field] = &[
    Field::new("topic", String, V(7, 12)),
    Field::new("topic_id", Uuid, V(13, 18)),
    Field::new("partitions", Array(&Int32), V(7, 18)),
];

const REPLICA_STATE: &[Field] =
    &[Field::new("replica_id", Int32, V(15, 18)), Field::new("replica_epoch", Int64, V(15, 18))];

/// `FetchRequest` (api key 1), versions 4-18, flexible from v12.
pub(crate) const FETCH: Schema = Schema {
    name: "Fetch",
    api_key: 1,
    versions: V(4, 18),
    flexible: V(12, 18),
    fields: &[
        Field::new("replica_id", Int32, V(4, 14)),
        Field::new("max_wait_ms", Int32, V(4, 18)),
        Field::new("min_bytes", Int32, V(4, 18)),
        Field::new("max_bytes", Int32, V(4, 18)),
        Field::new("isolation_level", Int8, V(4, 18)),
        Field::new("session_id", Int32, V(7, 18)),
        Field::new("session_epoch", Int32, V(7, 18)),
        Field::new("topics", Array(&Struct(FETCH_TOPIC)), V(4, 18)),
        Field::new("forgotten_topics_data", Array(&Struct(FORGOTTEN_TOPIC)), V(7, 18)),
        Field::new("rack_id", String, V(11, 18)),
        Field::new("cluster_id", String, V(12, 18)).nullable(V(12, 18)).tagged(0),
        Field::new("replica_state", Struct(REPLICA_STATE), V(15, 18)).tagged(1),
    ],
};

const LIST_OFFSETS_PARTITION: &[Field] = &[
    Field::new("partition_index", Int32, V(1, 10)),
    Field::new("current_leader_epoch", Int32, V(4, 10)),
    Field::new("timestamp", Int64, V(1, 10)),
];

const LIST_OFFSETS_TOPIC: &[Field] =
    &[Field::new("name", String, V(1, 10)), Field::new("partitions", Array(&Struct(LIST_OFFSETS_PARTITION)), V(1, 10))];

/// `ListOffsetsRequest` (api key 2), versions 1-10, flexible from v6.
pub(crate) const LIST_OFFSETS: Schema = Schema {
    name: "ListOffsets",
    api_key: 2,
    versions: V(1, 10),
    flexible: V(6, 10),
    fields: &[
        Field::new("replica_id", Int32, V(1, 10)),
        Field::new("isolation_level", Int8, V(2, 10)),
        Field::new("topics", Array(&Struct(LIST_OFFSETS_TOPIC)), V(1, 10)),
        Field::new("timeout_ms", Int32, V(10, 10)),
    ],
};

const METADATA_REQUEST_TOPIC: &[Field] =
    &[Field::new("topic_id", Uuid, V(10, 13)), Field::new("name", String, V(0, 13)).nullable(V(0, 13))];

/// `MetadataRequest` (api key 3), versions 0-13, flexible from v9.
pub(crate) const METADATA: Schema = Schema {
    name: "Metadata",
    api_key: 3,
    versions: V(0, 13),
    flexible: V(9, 13),
    fields: &[
        Field::new("topics", Array(&Struct(METADATA_REQUEST_TOPIC)), V(0, 13)).nullable(V(0, 13)),
        Field::new("allow_auto_topic_creation", Bool, V(4, 13)),
        Field::new("include_cluster_authorized_operations", Bool, V(8, 10)),
        Field::new("include_topic_authorized_operations", Bool, V(8, 13)),
    ],
};

const OFFSET_FOR_LEADER_PARTITION: &[Field] = &[
    Field::new("partition", Int32, V(2, 4)),
    Field::new("current_leader_epoch", Int32, V(2, 4)),
    Field::new("leader_epoch", Int32, V(2, 4)),
];

const OFFSET_FOR_LEADER_TOPIC: &[Field] = &[
    Field::new("topic", String, V(2, 4)),
    Field::new("partitions", Array(&Struct(OFFSET_FOR_LEADER_PARTITION)), V(2, 4)),
];

/// `OffsetForLeaderEpochRequest` (api key 23), versions 2-4, flexible from v4.
pub(crate) const OFFSET_FOR_LEADER_EPOCH: Schema = Schema {
    name: "OffsetForLeaderEpoch",
    api_key: 23,
    versions: V(2, 4),
    flexible: V(4, 4),
    fields: &[
        Field::new("replica_id", Int32, V(3, 4)),
        Field::new("topics", Array(&Struct(OFFSET_FOR_LEADER_TOPIC)), V(2, 4)),
    ],
};

const DELETE_RECORDS_PARTITION: &[Field] =
    &[Field::new("partition_index", Int32, V(0, 2)), Field::new("offset", Int64, V(0, 2))];

const DELETE_RECORDS_TOPIC: &[Field] =
    &[Field::new("name", String, V(0, 2)), Field::new("partitions", Array(&Struct(DELETE_RECORDS_PARTITION)), V(0, 2))];

/// `DeleteRecordsRequest` (api key 21), versions 0-2, flexible from v2.
pub(crate) const DELETE_RECORDS: Schema = Schema {
    name: "DeleteRecords",
    api_key: 21,
    versions: V(0, 2),
    flexible: V(2, 2),
    fields: &[
        Field::new("topics", Array(&Struct(DELETE_RECORDS_TOPIC)), V(0, 2)),
        Field::new("timeout_ms", Int32, V(0, 2)),
    ],
};

const TOPIC_REQUEST: &[Field] =
    &[Field::new("name", String, V(0, 0)), Field::new("partition_indexes", Array(&Int32), V(0, 0))];

/// `DescribeProducersRequest` (api key 61), versions 0-0, flexible from v0.
pub(crate) const DESCRIBE_PRODUCERS: Schema = Schema {
    name: "DescribeProducers",
    api_key: 61,
    versions: V(0, 0),
    flexible: V(0, 0),
    fields: &[Field::new("topics", Array(&Struct(TOPIC_REQUEST)), V(0, 0))],
};

const DESCRIBE_TOPIC_PARTITIONS_TOPIC_REQUEST: &[Field] = &[Field::new("name", String, V(0, 0))];

const CURSOR: &[Field] = &[Field::new("topic_name", String, V(0, 0)), Field::new("partition_index", Int32, V(0, 0))];

/// `DescribeTopicPartitionsRequest` (api key 75), versions 0-0, flexible from v0.
pub(crate) const DESCRIBE_TOPIC_PARTITIONS: Schema = Schema {
    name: "DescribeTopicPartitions",
    api_key: 75,
    versions: V(0, 0),
    flexible: V(0, 0),
    fields: &[
        Field::new("topics", Array(&Struct(DESCRIBE_TOPIC_PARTITIONS_TOPIC_REQUEST)), V(0, 0)),
        Field::new("response_partition_limit", Int32, V(0, 0)),
        Field::new("cursor", OptionStruct(CURSOR), V(0, 0)),
    ],
};
