"""The group-coordinator APIs at fixed versions, as kproto schemas, plus the "consumer"
protocol's embedded subscription and assignment (used by test_groups_wire.py)."""

from __future__ import annotations

from kproto import Api, Array, Reader, decode, encode


ERR_NONE = 0
ERR_ILLEGAL_GENERATION = 22
ERR_UNKNOWN_MEMBER_ID = 25
ERR_REBALANCE_IN_PROGRESS = 27
ERR_NON_EMPTY_GROUP = 68
ERR_GROUP_ID_NOT_FOUND = 69
ERR_MEMBER_ID_REQUIRED = 79
ERR_FENCED_INSTANCE_ID = 82

FIND_COORDINATOR_V4 = Api(
    10, 4, True,
    request=[("key_type", "int8"), ("coordinator_keys", Array("string"))],
    response=[
        ("throttle_time_ms", "int32"),
        ("coordinators", Array([("key", "string"), ("node_id", "int32"), ("host", "string"), ("port", "int32"),
                                ("error_code", "int16"), ("error_message", "nullable_string")])),
    ],
)

JOIN_GROUP_V9 = Api(
    11, 9, True,
    request=[
        ("group_id", "string"), ("session_timeout_ms", "int32"), ("rebalance_timeout_ms", "int32"),
        ("member_id", "string"), ("group_instance_id", "nullable_string"), ("protocol_type", "string"),
        ("protocols", Array([("name", "string"), ("metadata", "bytes")])), ("reason", "nullable_string"),
    ],
    response=[
        ("throttle_time_ms", "int32"), ("error_code", "int16"), ("generation_id", "int32"),
        ("protocol_type", "nullable_string"), ("protocol_name", "nullable_string"), ("leader", "string"),
        ("skip_assignment", "bool"), ("member_id", "string"),
        ("members", Array([("member_id", "string"), ("group_instance_id", "nullable_string"), ("metadata", "bytes")])),
    ],
)

HEARTBEAT_V4 = Api(
    12, 4, True,
    request=[("group_id", "string"), ("generation_id", "int32"), ("member_id", "string"), ("group_instance_id", "nullable_string")],
    response=[("throttle_time_ms", "int32"), ("error_code", "int16")],
)

LEAVE_GROUP_V5 = Api(
    13, 5, True,
    request=[("group_id", "string"),
             ("members", Array([("member_id", "string"), ("group_instance_id", "nullable_string"), ("reason", "nullable_string")]))],
    response=[("throttle_time_ms", "int32"), ("error_code", "int16"),
              ("members", Array([("member_id", "string"), ("group_instance_id", "nullable_string"), ("error_code", "int16")]))],
)

SYNC_GROUP_V5 = Api(
    14, 5, True,
    request=[
        ("group_id", "string"), ("generation_id", "int32"), ("member_id", "string"), ("group_instance_id", "nullable_string"),
        ("protocol_type", "nullable_string"), ("protocol_name", "nullable_string"),
        ("assignments", Array([("member_id", "string"), ("assignment", "bytes")])),
    ],
    response=[("throttle_time_ms", "int32"), ("error_code", "int16"), ("protocol_type", "nullable_string"),
              ("protocol_name", "nullable_string"), ("assignment", "bytes")],
)

DESCRIBE_GROUPS_V5 = Api(
    15, 5, True,
    request=[("groups", Array("string")), ("include_authorized_operations", "bool")],
    response=[
        ("throttle_time_ms", "int32"),
        ("groups", Array([
            ("error_code", "int16"), ("group_id", "string"), ("group_state", "string"), ("protocol_type", "string"),
            ("protocol_data", "string"),
            ("members", Array([("member_id", "string"), ("group_instance_id", "nullable_string"), ("client_id", "string"),
                               ("client_host", "string"), ("member_metadata", "bytes"), ("member_assignment", "bytes")])),
            ("authorized_operations", "int32"),
        ])),
    ],
)

LIST_GROUPS_V5 = Api(
    16, 5, True,
    request=[("states_filter", Array("string")), ("types_filter", Array("string"))],
    response=[("throttle_time_ms", "int32"), ("error_code", "int16"),
              ("groups", Array([("group_id", "string"), ("protocol_type", "string"), ("group_state", "string"),
                                ("group_type", "string")]))],
)

DELETE_GROUPS_V2 = Api(
    42, 2, True,
    request=[("groups_names", Array("string"))],
    response=[("throttle_time_ms", "int32"), ("results", Array([("group_id", "string"), ("error_code", "int16")]))],
)

OFFSET_COMMIT_V8 = Api(
    8, 8, True,
    request=[
        ("group_id", "string"), ("generation_id_or_member_epoch", "int32"), ("member_id", "string"),
        ("group_instance_id", "nullable_string"),
        ("topics", Array([("name", "string"),
                          ("partitions", Array([("partition_index", "int32"), ("committed_offset", "int64"),
                                                ("committed_leader_epoch", "int32"), ("committed_metadata", "nullable_string")]))])),
    ],
    response=[("throttle_time_ms", "int32"),
              ("topics", Array([("name", "string"), ("partitions", Array([("partition_index", "int32"), ("error_code", "int16")]))]))],
)

OFFSET_FETCH_V8 = Api(
    9, 8, True,
    request=[
        ("groups", Array([("group_id", "string"),
                          ("topics", Array([("name", "string"), ("partition_indexes", Array("int32"))], nullable=True))])),
        ("require_stable", "bool"),
    ],
    response=[
        ("throttle_time_ms", "int32"),
        ("groups", Array([
            ("group_id", "string"),
            ("topics", Array([("name", "string"),
                              ("partitions", Array([("partition_index", "int32"), ("committed_offset", "int64"),
                                                    ("committed_leader_epoch", "int32"), ("metadata", "nullable_string"),
                                                    ("error_code", "int16")]))])),
            ("error_code", "int16"),
        ])),
    ],
)

# the "consumer" protocol's embedded (non-flexible) JoinGroup metadata and SyncGroup assignment, v0
CONSUMER_SUBSCRIPTION_V0 = [("version", "int16"), ("topics", Array("string")), ("user_data", "nullable_bytes")]
CONSUMER_ASSIGNMENT_V0 = [
    ("version", "int16"),
    ("assigned_partitions", Array([("topic", "string"), ("partitions", Array("int32"))])),
    ("user_data", "nullable_bytes"),
]


def consumer_subscription(topics: list[str]) -> bytes:
    return encode(CONSUMER_SUBSCRIPTION_V0, {"version": 0, "topics": topics, "user_data": None}, flexible=False)


def consumer_assignment(assigned: dict[str, list[int]]) -> bytes:
    parts = [{"topic": t, "partitions": ps} for t, ps in assigned.items()]
    return encode(CONSUMER_ASSIGNMENT_V0, {"version": 0, "assigned_partitions": parts, "user_data": None}, flexible=False)


def parse_consumer_assignment(b: bytes) -> dict[str, list[int]]:
    a = decode(CONSUMER_ASSIGNMENT_V0, Reader(b), flexible=False)
    return {p["topic"]: p["partitions"] for p in a["assigned_partitions"]}
