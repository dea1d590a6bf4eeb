//! Request schemas: ShareGroupHeartbeat, ShareGroupDescribe, ShareFetch, ShareAcknowledge, InitializeShareGroupState, ReadShareGroupState, WriteShareGroupState, DeleteShareGroupState, ReadShareGroupStateSummary, DescribeShareGroupOffsets, AlterShareGroupOffsets, DeleteShareGroupOffsets.
//!
//! Field layouts follow the generated decoders of kafka-protocol 0.18
//! (which are what actually runs), cross-checked with Apache Kafka's
//! `*Request.json` message definitions.

use super::schema::Kind::*;
use super::schema::{Field, Schema, V};

/// Every schema defined in this module.
pub(super) const SCHEMAS: &[&Schema] = &[
    &SHARE_GROUP_HEARTBEAT,
    &SHARE_GROUP_DESCRIBE,
    &SHARE_FETCH,
    &SHARE_ACKNOWLEDGE,
    &INITIALIZE_SHARE_GROUP_STATE,
    &READ_SHARE_GROUP_STATE,
    &WRITE_SHARE_GROUP_STATE,
    &DELETE_SHARE_GROUP_STATE,
    &READ_SHARE_GROUP_STATE_SUMMARY,
    &DESCRIBE_SHARE_GROUP_OFFSETS,
    &ALTER_SHARE_GROUP_OFFSETS,
    &DELETE_SHARE_GROUP_OFFSETS,
];

/// `ShareGroupHeartbeatRequest` (api key 76), versions 1-1, flexible from v1.
pub(crate) const SHARE_GROUP_HEARTBEAT: Schema = Schema {
    name: "ShareGroupHeartbeat",
    api_key: 76,
    versions: V(1, 1),
    flexible: V(1, 1),
    fields: &[
        Field::new("group_id", String, V(1, 1)),
        Field::new("member_id", String, V(1, 1)),
        Field::new("member_epoch", Int32, V(1, 1)),
        Field::new("rack_id", String, V(1, 1)).nullable(V(1, 1)),
        Field::new("subscribed_topic_names", Array(&String), V(1, 1)).nullable(V(1, 1)),
    ],
};

/// `ShareGroupDescribeRequest` (api key 77), versions 1-1, flexible from v1.
pub(crate) const SHARE_GROUP_DESCRIBE: Schema = Schema {
    name: "ShareGroupDescribe",
    api_key: 77,
    versions: V(1, 1),
    flexible: V(1, 1),
    fields: &[
        Field::new("group_ids", Array(&String), V(1, 1)),
        Field::new("include_authorized_operations", Bool, V(1, 1)),
    ],
};

const ACKNOWLEDGEMENT_BATCH: &[Field] = &[
    Field::new("first_offset", Int64, V(1, 1)),
    Field::new("last_offset", Int64, V(1, 1)),
    Field::new("acknowledge_types", Array(&Int8), V(1, 1)),
];

const FETCH_PARTITION: &[Field] = &[
    Field::new("partition_index", Int32, V(1, 1)),
    Field::new("acknowledgement_batches", Array(&Struct(ACKNOWLEDGEMENT_BATCH)), V(1, 1)),
];

const FETCH_TOPIC: &[Field] =
    &[Field::new("topic_id", Uuid, V(1, 1)), Field::new("partitions", Array(&Struct(FETCH_PARTITION)), V(1, 1))];

const FORGOTTEN_TOPIC: &[Field] =
    &[Field::new("topic_id", Uuid, V(1, 1)), Field::new("partitions", Array(&Int32), V(1, 1))];

/// `ShareFetchRequest` (api key 78), versions 1-1, flexible from v1.
pub(crate) const SHARE_FETCH: Schema = Schema {
    name: "ShareFetch",
    api_key: 78,
    versions: V(1, 1),
    flexible: V(1, 1),
    fields: &[
        Field::new("group_id", String, V(1, 1)).nullable(V(1, 1)),
        Field::new("member_id", String, V(1, 1)).nullable(V(1, 1)),
        Field::new("share_session_epoch", Int32, V(1, 1)),
        Field::new("max_wait_ms", Int32, V(1, 1)),
        Field::new("min_bytes", Int32, V(1, 1)),
        Field::new("max_bytes", Int32, V(1, 1)),
        Field::new("max_records", Int32, V(1, 1)),
        Field::new("batch_size", Int32, V(1, 1)),
        Field::new("topics", Array(&Struct(FETCH_TOPIC)), V(1, 1)),
        Field::new("forgotten_topics_data", Array(&Struct(FORGOTTEN_TOPIC)), V(1, 1)),
    ],
};

const SHARE_ACKNOWLEDGE_ACKNOWLEDGEMENT_BATCH: &[Field] = &[
    Field::new("first_offset", Int64, V(1, 1)),
    Field::new("last_offset", Int64, V(1, 1)),
    Field::new("acknowledge_types", Array(&Int8), V(1, 1)),
];

const ACKNOWLEDGE_PARTITION: &[Field] = &[
    Field::new("partition_index", Int32, V(1, 1)),
    Field::new("acknowledgement_batches", Array(&Struct(SHARE_ACKNOWLEDGE_ACKNOWLEDGEMENT_BATCH)), V(1, 1)),
];

const ACKNOWLEDGE_TOPIC: &[Field] =
    &[Field::new("topic_id", Uuid, V(1, 1)), Field::new("partitions", Array(&Struct(ACKNOWLEDGE_PARTITION)), V(1, 1))];

/// `ShareAcknowledgeRequest` (api key 79), versions 1-1, flexible from v1.
pub(crate) const SHARE_ACKNOWLEDGE: Schema = Schema {
    name: "ShareAcknowledge",
    api_key: 79,
    versions: V(1, 1),
    flexible: V(1, 1),
    fields: &[
        Field::new("group_id", String, V(1, 1)).nullable(V(1, 1)),
        Field::new("member_id", String, V(1, 1)).nullable(V(1, 1)),
        Field::new("share_session_epoch", Int32, V(1, 1)),
        Field::new("topics", Array(&Struct(ACKNOWLEDGE_TOPIC)), V(1, 1)),
    ],
};

const PARTITION_DATA: &[Field] = &[
    Field::new("partition", Int32, V(0, 0)),
    Field::new("state_epoch", Int32, V(0, 0)),
    Field::new("start_offset", Int64, V(0, 0)),
];

const INITIALIZE_STATE_DATA: &[Field] =
    &[Field::new("topic_id", Uuid, V(0, 0)), Field::new("partitions", Array(&Struct(PARTITION_DATA)), V(0, 0))];

/// `InitializeShareGroupStateRequest` (api key 83), versions 0-0, flexible from v0.
pub(crate) const INITIALIZE_SHARE_GROUP_STATE: Schema = Schema {
    name: "InitializeShareGroupState",
    api_key: 83,
    versions: V(0, 0),
    flexible: V(0, 0),
    fields: &[
        Field::new("group_id", String, V(0, 0)),
        Field::new("topics", Array(&Struct(INITIALIZE_STATE_DATA)), V(0, 0)),
    ],
};

const READ_SHARE_GROUP_STATE_PARTITION_DATA: &[Field] =
    &[Field::new("partition", Int32, V(0, 0)), Field::new("leader_epoch", Int32, V(0, 0))];

const READ_STATE_DATA: &[Field] = &[
    Field::new("topic_id", Uuid, V(0, 0)),
    Field::new("partitions", Array(&Struct(READ_SHARE_GROUP_STATE_PARTITION_DATA)), V(0, 0)),
];

/// `ReadShareGroupStateRequest` (api key 84), versions 0-0, flexible from v0.
pub(crate) const READ_SHARE_GROUP_STATE: Schema = Schema {
    name: "ReadShareGroupState",
    api_key: 84,
    versions: V(0, 0),
    flexible: V(0, 0),
    fields: &[Field::new("group_id", String, V(0, 0)), Field::new("topics", Array(&Struct(READ_STATE_DATA)), V(0, 0))],
};

const STATE_BATCH: &[Field] = &[
    Field::new("first_offset", Int64, V(0, 0)),
    Field::new("last_offset", Int64, V(0, 0)),
    Field::new("delivery_state", Int8, V(0, 0)),
    Field::new("delivery_count", Int16, V(0, 0)),
];

const WRITE_SHARE_GROUP_STATE_PARTITION_DATA: &[Field] = &[
    Field::new("partition", Int32, V(0, 0)),
    Field::new("state_epoch", Int32, V(0, 0)),
    Field::new("leader_epoch", Int32, V(0, 0)),
    Field::new("start_offset", Int64, V(0, 0)),
    Field::new("state_batches", Array(&Struct(STATE_BATCH)), V(0, 0)),
];

const WRITE_STATE_DATA: &[Field] = &[
    Field::new("topic_id", Uuid, V(0, 0)),
    Field::new("partitions", Array(&Struct(WRITE_SHARE_GROUP_STATE_PARTITION_DATA)), V(0, 0)),
];

/// `WriteShareGroupStateRequest` (api key 85), versions 0-0, flexible from v0.
pub(crate) const WRITE_SHARE_GROUP_STATE: Schema = Schema {
    name: "WriteShareGroupState",
    api_key: 85,
    versions: V(0, 0),
    flexible: V(0, 0),
    fields: &[Field::new("group_id", String, V(0, 0)), Field::new("topics", Array(&Struct(WRITE_STATE_DATA)), V(0, 0))],
};

const DELETE_SHARE_GROUP_STATE_PARTITION_DATA: &[Field] = &[Field::new("partition", Int32, V(0, 0))];

const DELETE_STATE_DATA: &[Field] = &[
    Field::new("topic_id", Uuid, V(0, 0)),
    Field::new("partitions", Array(&Struct(DELETE_SHARE_GROUP_STATE_PARTITION_DATA)), V(0, 0)),
];

/// `DeleteShareGroupStateRequest` (api key 86), versions 0-0, flexible from v0.
pub(crate) const DELETE_SHARE_GROUP_STATE: Schema = Schema {
    name: "DeleteShareGroupState",
    api_key: 86,
    versions: V(0, 0),
    flexible: V(0, 0),
    fields: &[
        Field::new("group_id", String, V(0, 0)),
        Field::new("topics", Array(&Struct(DELETE_STATE_DATA)), V(0, 0)),
    ],
};

const READ_SHARE_GROUP_STATE_SUMMARY_PARTITION_DATA: &[Field] =
    &[Field::new("partition", Int32, V(0, 0)), Field::new("leader_epoch", Int32, V(0, 0))];

const READ_STATE_SUMMARY_DATA: &[Field] = &[
    Field::new("topic_id", Uuid, V(0, 0)),
    Field::new("partitions", Array(&Struct(READ_SHARE_GROUP_STATE_SUMMARY_PARTITION_DATA)), V(0, 0)),
];

/// `ReadShareGroupStateSummaryRequest` (api key 87), versions 0-0, flexible from v0.
pub(crate) const READ_SHARE_GROUP_STATE_SUMMARY: Schema = Schema {
    name: "ReadShareGroupStateSummary",
    api_key: 87,
    versions: V(0, 0),
    flexible: V(0, 0),
    fields: &[
        Field::new("group_id", String, V(0, 0)),
        Field::new("topics", Array(&Struct(READ_STATE_SUMMARY_DATA)), V(0, 0)),
    ],
};

const DESCRIBE_SHARE_GROUP_OFFSETS_REQUEST_TOPIC: &[Field] =
    &[Field::new("topic_name", String, V(0, 0)), Field::new("partitions", Array(&Int32), V(0, 0))];

const DESCRIBE_SHARE_GROUP_OFFSETS_REQUEST_GROUP: &[Field] = &[
    Field::new("group_id", String, V(0, 0)),
    Field::new("topics", Array(&Struct(DESCRIBE_SHARE_GROUP_OFFSETS_REQUEST_TOPIC)), V(0, 0)).nullable(V(0, 0)),
];

/// `DescribeShareGroupOffsetsRequest` (api key 90), versions 0-0, flexible from v0.
pub(crate) const DESCRIBE_SHARE_GROUP_OFFSETS: Schema = Schema {
    name: "DescribeShareGroupOffsets",
    api_key: 90,
    versions: V(0, 0),
    flexible: V(0, 0),
    fields: &[Field::new("groups", Array(&Struct(DESCRIBE_SHARE_GROUP_OFFSETS_REQUEST_GROUP)), V(0, 0))],
};

const ALTER_SHARE_GROUP_OFFSETS_REQUEST_PARTITION: &[Field] =
    &[Field::new("partition_index", Int32, V(0, 0)), Field::new("start_offset", Int64, V(0, 0))];

const ALTER_SHARE_GROUP_OFFSETS_REQUEST_TOPIC: &[Field] = &[
    Field::new("topic_name", String, V(0, 0)),
    Field::new("partitions", Array(&Struct(ALTER_SHARE_GROUP_OFFSETS_REQUEST_PARTITION)), V(0, 0)),
];

/// `AlterShareGroupOffsetsRequest` (api key 91), versions 0-0, flexible from v0.
pub(crate) const ALTER_SHARE_GROUP_OFFSETS: Schema = Schema {
    name: "AlterShareGroupOffsets",
    api_key: 91,
    versions: V(0, 0),
    flexible: V(0, 0),
    fields: &[
        Field::new("group_id", String, V(0, 0)),
        Field::new("topics", Array(&Struct(ALTER_SHARE_GROUP_OFFSETS_REQUEST_TOPIC)), V(0, 0)),
    ],
};

const DELETE_SHARE_GROUP_OFFSETS_REQUEST_TOPIC: &[Field] = &[Field::new("topic_name", String, V(0, 0))];

/// `DeleteShareGroupOffsetsRequest` (api key 92), versions 0-0, flexible from v0.
pub(crate) const DELETE_SHARE_GROUP_OFFSETS: Schema = Schema {
    name: "DeleteShareGroupOffsets",
    api_key: 92,
    versions: V(0, 0),
    flexible: V(0, 0),
    fields: &[
        Field::new("group_id", String, V(0, 0)),
        Field::new("topics", Array(&Struct(DELETE_SHARE_GROUP_OFFSETS_REQUEST_TOPIC)), V(0, 0)),
    ],
};
