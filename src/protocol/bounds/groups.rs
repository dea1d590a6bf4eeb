//! Request schemas: OffsetCommit, OffsetFetch, FindCoordinator, JoinGroup, Heartbeat, LeaveGroup, SyncGroup, DescribeGroups, ListGroups, DeleteGroups, OffsetDelete, ConsumerGroupHeartbeat, ConsumerGroupDescribe.
//!
//! Field layouts follow the generated decoders of kafka-protocol 0.18
//! (which are what actually runs), cross-checked with Apache Kafka's
//! `*Request.json` message definitions.

use super::schema::Kind::*;
use super::schema::{Field, Schema, V};

/// Every schema defined in this module.
pub(super) const SCHEMAS: &[&Schema] = &[
    &OFFSET_COMMIT,
    &OFFSET_FETCH,
    &FIND_COORDINATOR,
    &JOIN_GROUP,
    &HEARTBEAT,
    &LEAVE_GROUP,
    &SYNC_GROUP,
    &DESCRIBE_GROUPS,
    &LIST_GROUPS,
    &DELETE_GROUPS,
    &OFFSET_DELETE,
    &CONSUMER_GROUP_HEARTBEAT,
    &CONSUMER_GROUP_DESCRIBE,
];

const OFFSET_COMMIT_REQUEST_PARTITION: &[Field] = &[
    Field::new("partition_index", Int32, V(2, 9)),
    Field::new("committed_offset", Int64, V(2, 9)),
    Field::new("committed_leader_epoch", Int32, V(6, 9)),
    Field::new("committed_metadata", String, V(2, 9)).nullable(V(2, 9)),
];

const OFFSET_COMMIT_REQUEST_TOPIC: &[Field] = &[
    Field::new("name", String, V(2, 9)),
    Field::new("partitions", Array(&Struct(OFFSET_COMMIT_REQUEST_PARTITION)), V(2, 9)),
];

/// `OffsetCommitRequest` (api key 8), versions 2-9, flexible from v8.
pub(crate) const OFFSET_COMMIT: Schema = Schema {
    name: "OffsetCommit",
    api_key: 8,
    versions: V(2, 9),
    flexible: V(8, 9),
    fields: &[
        Field::new("group_id", String, V(2, 9)),
        Field::new("generation_id_or_member_epoch", Int32, V(2, 9)),
        Field::new("member_id", String, V(2, 9)),
        Field::new("group_instance_id", String, V(7, 9)).nullable(V(7, 9)),
        Field::new("retention_time_ms", Int64, V(2, 4)),
        Field::new("topics", Array(&Struct(OFFSET_COMMIT_REQUEST_TOPIC)), V(2, 9)),
    ],
};

const OFFSET_FETCH_REQUEST_TOPIC: &[Field] =
    &[Field::new("name", String, V(1, 7)), Field::new("partition_indexes", Array(&Int32), V(1, 7))];

const OFFSET_FETCH_REQUEST_TOPICS: &[Field] =
    &[Field::new("name", String, V(8, 9)), Field::new("partition_indexes", Array(&Int32), V(8, 9))];

const OFFSET_FETCH_REQUEST_GROUP: &[Field] = &[
    Field::new("group_id", String, V(8, 9)),
    Field::new("member_id", String, V(9, 9)).nullable(V(9, 9)),
    Field::new("member_epoch", Int32, V(9, 9)),
    Field::new("topics", Array(&Struct(OFFSET_FETCH_REQUEST_TOPICS)), V(8, 9)).nullable(V(8, 9)),
];

/// `OffsetFetchRequest` (api key 9), versions 1-9, flexible from v6.
pub(crate) const OFFSET_FETCH: Schema = Schema {
    name: "OffsetFetch",
    api_key: 9,
    versions: V(1, 9),
    flexible: V(6, 9),
    fields: &[
        Field::new("group_id", String, V(1, 7)),
        Field::new("topics", Array(&Struct(OFFSET_FETCH_REQUEST_TOPIC)), V(1, 7)).nullable(V(1, 7)),
        Field::new("groups", Array(&Struct(OFFSET_FETCH_REQUEST_GROUP)), V(8, 9)),
        Field::new("require_stable", Bool, V(7, 9)),
    ],
};

/// `FindCoordinatorRequest` (api key 10), versions 0-6, flexible from v3.
pub(crate) const FIND_COORDINATOR: Schema = Schema {
    name: "FindCoordinator",
    api_key: 10,
    versions: V(0, 6),
    flexible: V(3, 6),
    fields: &[
        Field::new("key", String, V(0, 3)),
        Field::new("key_type", Int8, V(1, 6)),
        Field::new("coordinator_keys", Array(&String), V(4, 6)),
    ],
};

const JOIN_GROUP_REQUEST_PROTOCOL: &[Field] =
    &[Field::new("name", String, V(0, 9)), Field::new("metadata", Bytes, V(0, 9))];

/// `JoinGroupRequest` (api key 11), versions 0-9, flexible from v6.
pub(crate) const JOIN_GROUP: Schema = Schema {
    name: "JoinGroup",
    api_key: 11,
    versions: V(0, 9),
    flexible: V(6, 9),
    fields: &[
        Field::new("group_id", String, V(0, 9)),
        Field::new("session_timeout_ms", Int32, V(0, 9)),
        Field::new("rebalance_timeout_ms", Int32, V(1, 9)),
        Field::new("member_id", String, V(0, 9)),
        Field::new("group_instance_id", String, V(5, 9)).nullable(V(5, 9)),
        Field::new("protocol_type", String, V(0, 9)),
        Field::new("protocols", Array(&Struct(JOIN_GROUP_REQUEST_PROTOCOL)), V(0, 9)),
        Field::new("reason", String, V(8, 9)).nullable(V(8, 9)),
    ],
};

/// `HeartbeatRequest` (api key 12), versions 0-4, flexible from v4.
pub(crate) const HEARTBEAT: Schema = Schema {
    name: "Heartbeat",
    api_key: 12,
    versions: V(0, 4),
    flexible: V(4, 4),
    fields: &[
        Field::new("group_id", String, V(0, 4)),
        Field::new("generation_id", Int32, V(0, 4)),
        Field::new("member_id", String, V(0, 4)),
        Field::new("group_instance_id", String, V(3, 4)).nullable(V(3, 4)),
    ],
};

const MEMBER_IDENTITY: &[Field] = &[
    Field::new("member_id", String, V(3, 5)),
    Field::new("group_instance_id", String, V(3, 5)).nullable(V(3, 5)),
    Field::new("reason", String, V(5, 5)).nullable(V(5, 5)),
];

/// `LeaveGroupRequest` (api key 13), versions 0-5, flexible from v4.
pub(crate) const LEAVE_GROUP: Schema = Schema {
    name: "LeaveGroup",
    api_key: 13,
    versions: V(0, 5),
    flexible: V(4, 5),
    fields: &[
        Field::new("group_id", String, V(0, 5)),
        Field::new("member_id", String, V(0, 2)),
        Field::new("members", Array(&Struct(MEMBER_IDENTITY)), V(3, 5)),
    ],
};

const SYNC_GROUP_REQUEST_ASSIGNMENT: &[Field] =
    &[Field::new("member_id", String, V(0, 5)), Field::new("assignment", Bytes, V(0, 5))];

/// `SyncGroupRequest` (api key 14), versions 0-5, flexible from v4.
pub(crate) const SYNC_GROUP: Schema = Schema {
    name: "SyncGroup",
    api_key: 14,
    versions: V(0, 5),
    flexible: V(4, 5),
    fields: &[
        Field::new("group_id", String, V(0, 5)),
        Field::new("generation_id", Int32, V(0, 5)),
        Field::new("member_id", String, V(0, 5)),
        Field::new("group_instance_id", String, V(3, 5)).nullable(V(3, 5)),
        Field::new("protocol_type", String, V(5, 5)).nullable(V(5, 5)),
        Field::new("protocol_name", String, V(5, 5)).nullable(V(5, 5)),
        Field::new("assignments", Array(&Struct(SYNC_GROUP_REQUEST_ASSIGNMENT)), V(0, 5)),
    ],
};

/// `DescribeGroupsRequest` (api key 15), versions 0-6, flexible from v5.
pub(crate) const DESCRIBE_GROUPS: Schema = Schema {
    name: "DescribeGroups",
    api_key: 15,
    versions: V(0, 6),
    flexible: V(5, 6),
    fields: &[
        Field::new("groups", Array(&String), V(0, 6)),
        Field::new("include_authorized_operations", Bool, V(3, 6)),
    ],
};

/// `ListGroupsRequest` (api key 16), versions 0-5, flexible from v3.
pub(crate) const LIST_GROUPS: Schema = Schema {
    name: "ListGroups",
    api_key: 16,
    versions: V(0, 5),
    flexible: V(3, 5),
    fields: &[
        Field::new("states_filter", Array(&String), V(4, 5)),
        Field::new("types_filter", Array(&String), V(5, 5)),
    ],
};

/// `DeleteGroupsRequest` (api key 42), versions 0-2, flexible from v2.
pub(crate) const DELETE_GROUPS: Schema = Schema {
    name: "DeleteGroups",
    api_key: 42,
    versions: V(0, 2),
    flexible: V(2, 2),
    fields: &[Field::new("groups_names", Array(&String), V(0, 2))],
};

const OFFSET_DELETE_REQUEST_PARTITION: &[Field] = &[Field::new("partition_index", Int32, V(0, 0))];

const OFFSET_DELETE_REQUEST_TOPIC: &[Field] = &[
    Field::new("name", String, V(0, 0)),
    Field::new("partitions", Array(&Struct(OFFSET_DELETE_REQUEST_PARTITION)), V(0, 0)),
];

/// `OffsetDeleteRequest` (api key 47), versions 0-0, never flexible.
pub(crate) const OFFSET_DELETE: Schema = Schema {
    name: "OffsetDelete",
    api_key: 47,
    versions: V(0, 0),
    flexible: V::NONE,
    fields: &[
        Field::new("group_id", String, V(0, 0)),
        Field::new("topics", Array(&Struct(OFFSET_DELETE_REQUEST_TOPIC)), V(0, 0)),
    ],
};

const TOPIC_PARTITIONS: &[Field] =
    &[Field::new("topic_id", Uuid, V(0, 1)), Field::new("partitions", Array(&Int32), V(0, 1))];

/// `ConsumerGroupHeartbeatRequest` (api key 68), versions 0-1, flexible from v0.
pub(crate) const CONSUMER_GROUP_HEARTBEAT: Schema = Schema {
    name: "ConsumerGroupHeartbeat",
    api_key: 68,
    versions: V(0, 1),
    flexible: V(0, 1),
    fields: &[
        Field::new("group_id", String, V(0, 1)),
        Field::new("member_id", String, V(0, 1)),
        Field::new("member_epoch", Int32, V(0, 1)),
        Field::new("instance_id", String, V(0, 1)).nullable(V(0, 1)),
        Field::new("rack_id", String, V(0, 1)).nullable(V(0, 1)),
        Field::new("rebalance_timeout_ms", Int32, V(0, 1)),
        Field::new("subscribed_topic_names", Array(&String), V(0, 1)).nullable(V(0, 1)),
        Field::new("subscribed_topic_regex", String, V(1, 1)).nullable(V(1, 1)),
        Field::new("server_assignor", String, V(0, 1)).nullable(V(0, 1)),
        Field::new("topic_partitions", Array(&Struct(TOPIC_PARTITIONS)), V(0, 1)).nullable(V(0, 1)),
    ],
};

/// `ConsumerGroupDescribeRequest` (api key 69), versions 0-1, flexible from v0.
pub(crate) const CONSUMER_GROUP_DESCRIBE: Schema = Schema {
    name: "ConsumerGroupDescribe",
    api_key: 69,
    versions: V(0, 1),
    flexible: V(0, 1),
    fields: &[
        Field::new("group_ids", Array(&String), V(0, 1)),
        Field::new("include_authorized_operations", Bool, V(0, 1)),
    ],
};
