//! Hand-built requests (encoded by kafka-protocol) and hostile bodies.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::broker_heartbeat_request::BrokerHeartbeatRequest;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchRequest, FetchTopic, ForgottenTopic, ReplicaState};
use kafka_protocol::messages::metadata_request::{MetadataRequest, MetadataRequestTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, ProduceRequest, TopicProduceData};
use kafka_protocol::messages::{BrokerId, TopicName, TransactionalId};
use kafka_protocol::protocol::{Encodable, StrBytes};
use uuid::Uuid;

use super::tests::put_uvarint;
use super::{BoundsError, check_request, walk_request};

fn encode<T: Encodable>(msg: &T, version: i16) -> Vec<u8> {
    let mut buf = BytesMut::new();
    if let Err(e) = msg.encode(&mut buf, version) {
        panic!("encode v{version}: {e:#}");
    }
    buf.to_vec()
}

fn assert_walks(api_key: i16, version: i16, body: &[u8]) {
    assert_eq!(walk_request(api_key, version, body), Ok(body.len()), "api {api_key} v{version}");
}

fn topic(name: &'static str) -> TopicName {
    TopicName(StrBytes::from_static_str(name))
}

#[test]
fn crate_encoded_produce() {
    for v in 3..=13 {
        let topics: Vec<TopicProduceData> = (0..2)
            .map(|t| {
                let t = if v <= 12 {
                    TopicProduceData::default().with_name(topic(["a", "bb"][t]))
                } else {
                    TopicProduceData::default().with_topic_id(Uuid::from_u128(t as u128 + 1))
                };
                t.with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(Bytes::from_static(b"recordbatch"))),
                    PartitionProduceData::default().with_index(1).with_records(None),
                ])
            })
            .collect();
        for txn in [None, Some(TransactionalId(StrBytes::from_static_str("tx")))] {
            let req = ProduceRequest::default()
                .with_transactional_id(txn)
                .with_acks(-1)
                .with_timeout_ms(30_000)
                .with_topic_data(topics.clone());
            assert_walks(0, v, &encode(&req, v));
        }
    }
}

#[test]
fn crate_encoded_fetch_with_tagged_fields() {
    for v in 4..=18 {
        let mut partition =
            FetchPartition::default().with_partition(3).with_fetch_offset(100).with_partition_max_bytes(1 << 20);
        if v >= 9 {
            partition = partition.with_current_leader_epoch(5);
        }
        if v >= 12 {
            partition = partition.with_last_fetched_epoch(4);
        }
        if v >= 17 {
            partition = partition.with_replica_directory_id(Uuid::from_u128(7));
        }
        if v >= 18 {
            partition = partition.with_high_watermark(99);
        }
        let mut t = FetchTopic::default().with_partitions(vec![partition.clone(), partition]);
        let mut forgotten = ForgottenTopic::default().with_partitions(vec![1, 2, 3]);
        if v <= 12 {
            t = t.with_topic(topic("events"));
            forgotten = forgotten.with_topic(topic("old"));
        } else {
            t = t.with_topic_id(Uuid::from_u128(42));
            forgotten = forgotten.with_topic_id(Uuid::from_u128(43));
        }
        let mut req = FetchRequest::default()
            .with_max_wait_ms(500)
            .with_min_bytes(1)
            .with_isolation_level(1)
            .with_topics(vec![t]);
        if v <= 14 {
            req = req.with_replica_id(BrokerId(-1));
        } else {
            req = req.with_replica_state(ReplicaState::default().with_replica_id(BrokerId(2)).with_replica_epoch(9));
        }
        if v >= 7 {
            req = req.with_session_id(11).with_session_epoch(1).with_forgotten_topics_data(vec![forgotten]);
        }
        if v >= 11 {
            req = req.with_rack_id(StrBytes::from_static_str("rack-1"));
        }
        if v >= 12 {
            req = req
                .with_cluster_id(Some(StrBytes::from_static_str("cluster")))
                .with_unknown_tagged_field(77, Bytes::from_static(b"xyz"));
        }
        assert_walks(1, v, &encode(&req, v));
    }
}

#[test]
fn crate_encoded_metadata() {
    for v in 0..=13 {
        let name = |n: &'static str| Some(topic(n));
        let mut topics = vec![
            MetadataRequestTopic::default().with_name(name("a")),
            MetadataRequestTopic::default().with_name(name("b")),
        ];
        if v >= 10 {
            topics.push(MetadataRequestTopic::default().with_name(None).with_topic_id(Uuid::from_u128(5)));
        }
        let mut req = MetadataRequest::default().with_topics(Some(topics));
        if v >= 8 {
            req = req.with_include_topic_authorized_operations(true);
        }
        assert_walks(3, v, &encode(&req, v));
        if v >= 1 {
            assert_walks(3, v, &encode(&req.with_topics(None), v));
        }
    }
}

#[test]
fn crate_encoded_broker_heartbeat_tagged_array() {
    let req = BrokerHeartbeatRequest::default()
        .with_broker_id(BrokerId(1))
        .with_offline_log_dirs(vec![Uuid::from_u128(1), Uuid::from_u128(2)]);
    assert_walks(63, 1, &encode(&req, 1));
    assert_walks(63, 0, &encode(&BrokerHeartbeatRequest::default(), 0));
}

fn too_long(r: Result<(), BoundsError>) -> (u64, usize) {
    match r {
        Err(BoundsError::ArrayTooLong { declared, remaining, .. }) => (declared, remaining),
        other => panic!("expected ArrayTooLong, got {other:?}"),
    }
}

/// Pads a hostile prefix to a 20-byte frame body.
fn frame(mut body: Vec<u8>) -> Vec<u8> {
    body.resize(body.len().max(20), 0);
    body
}

#[test]
fn produce_huge_topic_array_compact() {
    for count in [u32::MAX, 1 << 31] {
        // v9: null transactional id, acks, timeout, compact topic array.
        let mut b = vec![0x00, 0xff, 0xff, 0, 0, 0x75, 0x30];
        put_uvarint(&mut b, count);
        let (declared, remaining) = too_long(check_request(0, 9, &frame(b)));
        assert_eq!(declared, u64::from(count - 1));
        assert!(remaining < 20);
    }
}

#[test]
fn produce_huge_topic_array_classic() {
    for count in [i32::MAX, 1 << 20] {
        let mut b = vec![0xff, 0xff, 0xff, 0xff, 0, 0, 0x75, 0x30];
        b.extend_from_slice(&count.to_be_bytes());
        let (declared, _) = too_long(check_request(0, 8, &frame(b)));
        assert_eq!(declared, count as u64);
    }
    // Counts below -1 are rejected outright.
    let mut b = vec![0xff, 0xff, 0xff, 0xff, 0, 0, 0x75, 0x30];
    b.extend_from_slice(&i32::MIN.to_be_bytes());
    assert!(matches!(check_request(0, 8, &frame(b)), Err(BoundsError::NegativeLength { length: i32::MIN, .. })));
}

#[test]
fn produce_huge_nested_partition_array() {
    // v3: null txn id, acks, timeout, 1 topic "t", partitions = i32::MAX.
    let mut b = vec![0xff, 0xff, 0, 1, 0, 0, 0x03, 0xe8, 0, 0, 0, 1, 0, 1, b't'];
    b.extend_from_slice(&i32::MAX.to_be_bytes());
    too_long(check_request(0, 3, &frame(b)));
    // v9 compact equivalent.
    let mut b = vec![0x00, 0, 1, 0, 0, 0x03, 0xe8, 2, 2, b't'];
    put_uvarint(&mut b, u32::MAX);
    too_long(check_request(0, 9, &frame(b)));
    // v13: topics are identified by a 16-byte id.
    let mut b = vec![0x00, 0, 1, 0, 0, 0x03, 0xe8, 2];
    b.extend_from_slice(&[7; 16]);
    put_uvarint(&mut b, 1 << 30);
    too_long(check_request(0, 13, &frame(b)));
}

#[test]
fn metadata_huge_topic_array() {
    for v in 0..=8 {
        let mut b = i32::MAX.to_be_bytes().to_vec();
        b.push(1);
        too_long(check_request(3, v, &frame(b)));
    }
    for v in 9..=13 {
        let mut b = Vec::new();
        put_uvarint(&mut b, u32::MAX);
        too_long(check_request(3, v, &frame(b)));
    }
}

#[test]
fn array_count_uses_minimum_element_size() {
    // Fetch v4 topics: 2 topics declared, each needs >= 6 bytes; 8 remain.
    let mut b = vec![0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    b.extend_from_slice(&2i32.to_be_bytes());
    b.extend_from_slice(&[0; 8]);
    let (declared, remaining) = too_long(check_request(1, 4, &b));
    assert_eq!((declared, remaining), (2, 8));
}

#[test]
fn known_tagged_array_is_descended_not_skipped() {
    // BrokerHeartbeat v1 ends with tagged field 0 = compact array of UUIDs.
    // The crate decodes it from the main buffer (ignoring the size prefix),
    // so a consistent size prefix must not let a huge count through.
    let mut b = encode(&BrokerHeartbeatRequest::default(), 1);
    assert_eq!(b.pop(), Some(0)); // drop the empty tagged-field section
    b.extend_from_slice(&[1, 0, 5]);
    put_uvarint(&mut b, u32::MAX);
    too_long(check_request(63, 1, &b));
}

#[test]
fn known_tagged_field_size_must_match() {
    let req = FetchRequest::default()
        .with_replica_state(ReplicaState::default().with_replica_id(BrokerId(2)).with_replica_epoch(9));
    let mut b = encode(&req, 15);
    assert_walks(1, 15, &b);
    // Tail: [count=1][tag=1][size=13][4 + 8 bytes][empty tagged section].
    let at = b.len() - 14;
    assert_eq!(&b[at - 2..=at], &[1, 1, 13]);
    b[at] = 0;
    assert!(matches!(
        check_request(1, 15, &b),
        Err(BoundsError::TaggedFieldSize { tag: 1, declared: 0, actual: 13, .. })
    ));
    // Tag 1 is not valid before v15, as in the crate.
    let mut b = encode(&FetchRequest::default(), 12);
    let last = b.len() - 1;
    b[last] = 1;
    b.extend_from_slice(&[1, 13]);
    b.extend_from_slice(&[0; 13]);
    assert!(matches!(check_request(1, 12, &b), Err(BoundsError::TagNotValidForVersion { tag: 1, version: 12, .. })));
}

#[test]
fn unknown_tagged_fields_are_bounded() {
    let mut b = encode(&MetadataRequest::default(), 12);
    let last = b.len() - 1;
    // Two unknown tags: one fits, the other declares more than remains.
    b[last] = 2;
    b.extend_from_slice(&[50, 2, 0xaa, 0xbb, 51]);
    put_uvarint(&mut b, u32::MAX);
    assert!(matches!(check_request(3, 12, &b), Err(BoundsError::Truncated { .. })));
    // A tagged-field count that cannot fit.
    let mut b = encode(&MetadataRequest::default(), 12);
    b.pop();
    put_uvarint(&mut b, u32::MAX);
    too_long(check_request(3, 12, &b));
}

#[test]
fn strings_and_nulls() {
    // Produce v3, topic name declares 0x7fff bytes.
    let mut b = vec![0xff, 0xff, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0x7f, 0xff];
    b.extend_from_slice(&[b'x'; 11]);
    assert!(matches!(
        check_request(0, 3, &b),
        Err(BoundsError::Truncated { field: "name", needed: 0x7fff, remaining: 11, .. })
    ));
    // Topic name is not nullable.
    let b = vec![0xff, 0xff, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0xff, 0xff, 0, 0, 0, 0];
    assert!(matches!(check_request(0, 3, &b), Err(BoundsError::UnexpectedNull { field: "name", .. })));
}

#[test]
fn unknown_schemas() {
    for (key, v) in [(0, 2), (0, 14), (1, 3), (1, 19), (9999, 0), (-1, 0), (8, 10)] {
        assert_eq!(check_request(key, v, &[]), Err(BoundsError::UnknownSchema { api_key: key, api_version: v }));
    }
}
