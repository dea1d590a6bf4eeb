//! Request schemas: InitProducerId, AddPartitionsToTxn, AddOffsetsToTxn, EndTxn, TxnOffsetCommit, DescribeTransactions, ListTransactions, WriteTxnMarkers.
//!
//! Field layouts follow the generated decoders of kafka-protocol 0.18
//! (which are what actually runs), cross-checked with Apache Kafka's
//! `*Request.json` message definitions.

use super::schema::Kind::*;
use super::schema::{Field, Schema, V};

/// Every schema defined in this module.
pub(super) const SCHEMAS: &[&Schema] = &[
    &INIT_PRODUCER_ID,
    &ADD_PARTITIONS_TO_TXN,
    &ADD_OFFSETS_TO_TXN,
    &END_TXN,
    &TXN_OFFSET_COMMIT,
    &DESCRIBE_TRANSACTIONS,
    &LIST_TRANSACTIONS,
    &WRITE_TXN_MARKERS,
];

/// `InitProducerIdRequest` (api key 22), versions 0-5, flexible from v2.
pub(crate) const INIT_PRODUCER_ID: Schema = Schema {
    name: "InitProducerId",
    api_key: 22,
    versions: V(0, 5),
    flexible: V(2, 5),
    fields: &[
        Field::new("transactional_id", String, V(0, 5)).nullable(V(0, 5)),
        Field::new("transaction_timeout_ms", Int32, V(0, 5)),
        Field::new("producer_id", Int64, V(3, 5)),
        Field::new("producer_epoch", Int16, V(3, 5)),
    ],
};

const ADD_PARTITIONS_TO_TXN_TOPIC: &[Field] =
    &[Field::new("name", String, V(0, 5)), Field::new("partitions", Array(&Int32), V(0, 5))];

const ADD_PARTITIONS_TO_TXN_TRANSACTION: &[Field] = &[
    Field::new("transactional_id", String, V(4, 5)),
    Field::new("producer_id", Int64, V(4, 5)),
    Field::new("producer_epoch", Int16, V(4, 5)),
    Field::new("verify_only", Bool, V(4, 5)),
    Field::new("topics", Array(&Struct(ADD_PARTITIONS_TO_TXN_TOPIC)), V(4, 5)),
];

/// `AddPartitionsToTxnRequest` (api key 24), versions 0-5, flexible from v3.
pub(crate) const ADD_PARTITIONS_TO_TXN: Schema = Schema {
    name: "AddPartitionsToTxn",
    api_key: 24,
    versions: V(0, 5),
    flexible: V(3, 5),
    fields: &[
        Field::new("transactions", Array(&Struct(ADD_PARTITIONS_TO_TXN_TRANSACTION)), V(4, 5)),
        Field::new("v3_and_below_transactional_id", String, V(0, 3)),
        Field::new("v3_and_below_producer_id", Int64, V(0, 3)),
        Field::new("v3_and_below_producer_epoch", Int16, V(0, 3)),
        Field::new("v3_and_below_topics", Array(&Struct(ADD_PARTITIONS_TO_TXN_TOPIC)), V(0, 3)),
    ],
};

/// `AddOffsetsToTxnRequest` (api key 25), versions 0-4, flexible from v3.
pub(crate) const ADD_OFFSETS_TO_TXN: Schema = Schema {
    name: "AddOffsetsToTxn",
    api_key: 25,
    versions: V(0, 4),
    flexible: V(3, 4),
    fields: &[
        Field::new("transactional_id", String, V(0, 4)),
        Field::new("producer_id", Int64, V(0, 4)),
        Field::new("producer_epoch", Int16, V(0, 4)),
        Field::new("group_id", String, V(0, 4)),
    ],
};

/// `EndTxnRequest` (api key 26), versions 0-5, flexible from v3.
pub(crate) const END_TXN: Schema = Schema {
    name: "EndTxn",
    api_key: 26,
    versions: V(0, 5),
    flexible: V(3, 5),
    fields: &[
        Field::new("transactional_id", String, V(0, 5)),
        Field::new("producer_id", Int64, V(0, 5)),
        Field::new("producer_epoch", Int16, V(0, 5)),
        Field::new("committed", Bool, V(0, 5)),
    ],
};

const TXN_OFFSET_COMMIT_REQUEST_PARTITION: &[Field] = &[
    Field::new("partition_index", Int32, V(0, 5)),
    Field::new("committed_offset", Int64, V(0, 5)),
    Field::new("committed_leader_epoch", Int32, V(2, 5)),
    Field::new("committed_metadata", String, V(0, 5)).nullable(V(0, 5)),
];

const TXN_OFFSET_COMMIT_REQUEST_TOPIC: &[Field] = &[
    Field::new("name", String, V(0, 5)),
    Field::new("partitions", Array(&Struct(TXN_OFFSET_COMMIT_REQUEST_PARTITION)), V(0, 5)),
];

/// `TxnOffsetCommitRequest` (api key 28), versions 0-5, flexible from v3.
pub(crate) const TXN_OFFSET_COMMIT: Schema = Schema {
    name: "TxnOffsetCommit",
    api_key: 28,
    versions: V(0, 5),
    flexible: V(3, 5),
    fields: &[
        Field::new("transactional_id", String, V(0, 5)),
        Field::new("group_id", String, V(0, 5)),
        Field::new("producer_id", Int64, V(0, 5)),
        Field::new("producer_epoch", Int16, V(0, 5)),
        Field::new("generation_id", Int32, V(3, 5)),
        Field::new("member_id", String, V(3, 5)),
        Field::new("group_instance_id", String, V(3, 5)).nullable(V(3, 5)),
        Field::new("topics", Array(&Struct(TXN_OFFSET_COMMIT_REQUEST_TOPIC)), V(0, 5)),
    ],
};

/// `DescribeTransactionsRequest` (api key 65), versions 0-0, flexible from v0.
pub(crate) const DESCRIBE_TRANSACTIONS: Schema = Schema {
    name: "DescribeTransactions",
    api_key: 65,
    versions: V(0, 0),
    flexible: V(0, 0),
    fields: &[Field::new("transactional_ids", Array(&String), V(0, 0))],
};

/// `ListTransactionsRequest` (api key 66), versions 0-2, flexible from v0.
pub(crate) const LIST_TRANSACTIONS: Schema = Schema {
    name: "ListTransactions",
    api_key: 66,
    versions: V(0, 2),
    flexible: V(0, 2),
    fields: &[
        Field::new("state_filters", Array(&String), V(0, 2)),
        Field::new("producer_id_filters", Array(&Int64), V(0, 2)),
        Field::new("duration_filter", Int64, V(1, 2)),
        Field::new("transactional_id_pattern", String, V(2, 2)).nullable(V(2, 2)),
    ],
};

const WRITABLE_TXN_MARKER_TOPIC: &[Field] =
    &[Field::new("name", String, V(1, 1)), Field::new("partition_indexes", Array(&Int32), V(1, 1))];

const WRITABLE_TXN_MARKER: &[Field] = &[
    Field::new("producer_id", Int64, V(1, 1)),
    Field::new("producer_epoch", Int16, V(1, 1)),
    Field::new("transaction_result", Bool, V(1, 1)),
    Field::new("topics", Array(&Struct(WRITABLE_TXN_MARKER_TOPIC)), V(1, 1)),
    Field::new("coordinator_epoch", Int32, V(1, 1)),
];

/// `WriteTxnMarkersRequest` (api key 27), versions 1-1, flexible from v1.
pub(crate) const WRITE_TXN_MARKERS: Schema = Schema {
    name: "WriteTxnMarkers",
    api_key: 27,
    versions: V(1, 1),
    flexible: V(1, 1),
    fields: &[Field::new("markers", Array(&Struct(WRITABLE_TXN_MARKER)), V(1, 1))],
};
