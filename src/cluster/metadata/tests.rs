use std::collections::BTreeMap;

use super::records::{decode, encode};
use super::*;

fn id(n: u128) -> uuid::Uuid {
    uuid::Uuid::from_u128(n)
}

fn create(name: &str, n: u128, assignments: Vec<Vec<i32>>) -> MetadataRecord {
    MetadataRecord::CreateTopic { name: name.into(), id: id(n), configs: BTreeMap::new(), assignments }
}

#[test]
fn records_round_trip_through_a_batch_and_raft_control_batches_are_skipped() {
    let records = vec![
        create("orders", 1, vec![vec![1, 2, 3], vec![2, 3, 1]]),
        MetadataRecord::AlterTopicConfigs {
            name: "orders".into(),
            id: id(1),
            set: BTreeMap::from([("retention.ms".into(), "1000".into())]),
            delete: vec!["segment.bytes".into()],
        },
        MetadataRecord::AllocateProducerIds { broker: 2, count: 1000 },
    ];
    let batch = encode(&records, 7).expect("encode");
    let blank = crate::raft::control::blank_batch(7).expect("blank");
    let mut both = bytes::BytesMut::new();
    both.extend_from_slice(&blank);
    both.extend_from_slice(&batch);
    let decoded = decode(&both.freeze()).expect("decode");
    assert_eq!(decoded.iter().map(|(_, r)| r.clone()).collect::<Vec<_>>(), records);
    assert_eq!(decoded.iter().map(|(o, _)| *o).collect::<Vec<_>>(), vec![0, 1, 2]);
}

#[test]
fn a_damaged_record_value_is_an_error_naming_its_offset() {
    let batch = encode(&[create("t", 1, vec![vec![1]])], 0).expect("encode");
    // Rewrite the value through the decoder/encoder so the CRC stays valid.
    let mut set = kafka_protocol::records::RecordBatchDecoder::decode(&mut batch.clone()).expect("decode");
    set.records[0].value = Some(bytes::Bytes::from_static(b"{not json"));
    let mut buf = bytes::BytesMut::new();
    let options = kafka_protocol::records::RecordEncodeOptions {
        version: 2,
        compression: kafka_protocol::records::Compression::None,
    };
    kafka_protocol::records::RecordBatchEncoder::encode(&mut buf, &set.records, &options).expect("encode");
    let e = decode(&buf.freeze()).expect_err("bad json");
    assert!(matches!(e, RecordsError::Json { offset: 0, .. }), "{e}");
}

#[test]
fn creating_an_existing_topic_is_rejected_and_changes_nothing() {
    let mut image = MetadataImage::default();
    image.apply(&create("t", 1, vec![vec![1, 2]])).expect("created");
    let before = image.topics.clone();
    let e = image.apply(&create("t", 2, vec![vec![3]])).expect_err("exists");
    assert_eq!(e.code(), kafka_protocol::ResponseError::TopicAlreadyExists);
    assert_eq!(image.topics, before);
    assert_eq!(image.applied_records, 2, "a rejected record is still applied");
}

#[test]
fn assignments_are_checked_on_apply() {
    let mut image = MetadataImage::default();
    for bad in [vec![vec![]], vec![vec![1, 1]], vec![vec![1, 2], vec![3]], vec![vec![-1]]] {
        let e = image.apply(&create("t", 1, bad.clone())).expect_err("bad assignment");
        assert_eq!(e.code(), kafka_protocol::ResponseError::InvalidReplicaAssignment, "{bad:?}");
    }
    assert!(image.topics.is_empty());
}

#[test]
fn a_record_for_a_recreated_topic_does_not_touch_the_new_one() {
    let mut image = MetadataImage::default();
    image.apply(&create("t", 1, vec![vec![1]])).expect("created");
    image.apply(&MetadataRecord::DeleteTopic { name: "t".into(), id: id(1) }).expect("deleted");
    image.apply(&create("t", 2, vec![vec![2]])).expect("created again");
    let stale = MetadataRecord::DeleteTopic { name: "t".into(), id: id(1) };
    assert!(matches!(image.apply(&stale), Err(MetadataError::TopicIdMismatch { .. })));
    assert_eq!(image.topics["t"].id, id(2));
    let stale_add = MetadataRecord::CreatePartitions { name: "t".into(), id: id(1), added: vec![vec![1]] };
    assert!(image.apply(&stale_add).is_err());
    assert_eq!(image.topics["t"].partition_count(), 1);
}

#[test]
fn partitions_are_added_after_the_existing_ones_with_the_same_replication_factor() {
    let mut image = MetadataImage::default();
    image.apply(&create("t", 1, vec![vec![1, 2], vec![2, 3]])).expect("created");
    let add = MetadataRecord::CreatePartitions { name: "t".into(), id: id(1), added: vec![vec![3, 1]] };
    image.apply(&add).expect("added");
    assert_eq!(image.topics["t"].assignments, vec![vec![1, 2], vec![2, 3], vec![3, 1]]);
    assert_eq!(image.replicas_on(1).map(|(t, p)| (t.name.as_str(), p)).collect::<Vec<_>>(), vec![("t", 0), ("t", 2)]);
    let empty = MetadataRecord::CreatePartitions { name: "t".into(), id: id(1), added: vec![] };
    assert_eq!(
        image.apply(&empty).expect_err("nothing added").code(),
        kafka_protocol::ResponseError::InvalidPartitions
    );
}

#[test]
fn configs_alter_incrementally() {
    let mut image = MetadataImage::default();
    let mut configs = BTreeMap::new();
    configs.insert("segment.bytes".to_string(), "1024".to_string());
    configs.insert("cleanup.policy".to_string(), "compact".to_string());
    image
        .apply(&MetadataRecord::CreateTopic { name: "t".into(), id: id(1), configs, assignments: vec![vec![1]] })
        .expect("created");
    let alter = MetadataRecord::AlterTopicConfigs {
        name: "t".into(),
        id: id(1),
        set: BTreeMap::from([("retention.ms".into(), "5".into())]),
        delete: vec!["segment.bytes".into()],
    };
    image.apply(&alter).expect("altered");
    let got: Vec<_> = image.topics["t"].configs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(got, vec![("cleanup.policy", "compact"), ("retention.ms", "5")]);
}

#[test]
fn producer_id_blocks_never_overlap_and_are_bounded() {
    let mut image = MetadataImage::default();
    let a = image.apply(&MetadataRecord::AllocateProducerIds { broker: 1, count: 1000 }).expect("a");
    let b = image.apply(&MetadataRecord::AllocateProducerIds { broker: 2, count: 1000 }).expect("b");
    assert_eq!(
        (a, b),
        (Applied::ProducerIds { first: 0, count: 1000 }, Applied::ProducerIds { first: 1000, count: 1000 })
    );
    for bad in [0, -5, PRODUCER_ID_BLOCK_SIZE + 1] {
        assert!(image.apply(&MetadataRecord::AllocateProducerIds { broker: 1, count: bad }).is_err());
    }
    image.next_producer_id = i64::MAX - 10;
    assert_eq!(
        image.apply(&MetadataRecord::AllocateProducerIds { broker: 1, count: 1000 }),
        Err(MetadataError::ProducerIdsExhausted)
    );
}

#[test]
fn the_image_is_a_function_of_the_log_prefix() {
    let log = vec![
        create("a", 1, vec![vec![1, 2, 3]]),
        create("b", 2, vec![vec![2, 3, 1], vec![3, 1, 2]]),
        create("a", 3, vec![vec![1]]),
        MetadataRecord::DeleteTopic { name: "a".into(), id: id(1) },
        MetadataRecord::AllocateProducerIds { broker: 3, count: 10 },
    ];
    let replay = |records: &[MetadataRecord]| {
        let mut image = MetadataImage::default();
        for r in records {
            let _ = image.apply(r);
        }
        image
    };
    let once = replay(&log);
    let json = serde_json::to_string(&once).expect("snapshot");
    let restored: MetadataImage = serde_json::from_str(&json).expect("restore");
    assert_eq!(restored, replay(&log));
    assert_eq!(once.topics.keys().collect::<Vec<_>>(), vec!["b"]);
    assert_eq!(once.next_producer_id, 10);
}

fn reassign(partition: i32, target: Option<Vec<i32>>) -> MetadataRecord {
    MetadataRecord::ReassignPartition { name: "t".into(), id: id(1), partition, target }
}

fn complete(partition: i32, target: Vec<i32>) -> MetadataRecord {
    MetadataRecord::CompleteReassignment { name: "t".into(), id: id(1), partition, target }
}

#[test]
fn a_move_lists_old_and_new_replicas_until_it_completes() {
    let mut image = MetadataImage::default();
    image.apply(&create("t", 1, vec![vec![1, 2, 3], vec![2, 3, 1]])).expect("created");
    image.apply(&reassign(0, Some(vec![4, 2, 3]))).expect("reassigned");
    let t = &image.topics["t"];
    assert_eq!(t.replicas(0), &[4, 2, 3, 1], "target first, then the replica being removed");
    assert_eq!(t.reassignments[&0].adding(), vec![4]);
    assert_eq!(t.removing(0), vec![1]);
    assert!(!t.forms_own_group(0), "a moving partition's group is never formed afresh");
    assert!(t.forms_own_group(1));
    // A completion for another target is stale: rejected, nothing changes.
    let before = image.topics.clone();
    let e = image.apply(&complete(0, vec![5, 2, 3])).expect_err("stale");
    assert_eq!(e.code(), kafka_protocol::ResponseError::ReassignmentInProgress);
    assert_eq!(image.topics, before);
    image.apply(&complete(0, vec![4, 2, 3])).expect("completed");
    let t = &image.topics["t"];
    assert_eq!(t.replicas(0), &[4, 2, 3]);
    assert!(t.reassignments.is_empty() && t.removing(0).is_empty());
    assert!(!t.forms_own_group(0), "moved once: broker 4 never forms it afresh");
    assert_eq!(
        image.apply(&complete(0, vec![4, 2, 3])).expect_err("done").code(),
        kafka_protocol::ResponseError::NoReassignmentInProgress
    );
}

#[test]
fn a_redirected_or_cancelled_move_keeps_every_replica_that_may_be_a_voter() {
    let mut image = MetadataImage::default();
    image.apply(&create("t", 1, vec![vec![1, 2, 3]])).expect("created");
    image.apply(&reassign(0, Some(vec![4, 2, 3]))).expect("to 4");
    image.apply(&reassign(0, Some(vec![5, 2, 3]))).expect("to 5 instead");
    let t = &image.topics["t"];
    assert_eq!(t.replicas(0), &[5, 2, 3, 4, 1], "4 may have joined the group already");
    assert_eq!(t.reassignments[&0].original, vec![1, 2, 3], "the original is kept");
    image.apply(&reassign(0, None)).expect("cancelled");
    let t = &image.topics["t"];
    assert_eq!(t.reassignments[&0].target, vec![1, 2, 3], "a cancel moves back to the original");
    assert_eq!(t.replicas(0), &[1, 2, 3, 5, 4]);
    image.apply(&complete(0, vec![1, 2, 3])).expect("completed");
    assert_eq!(image.topics["t"].replicas(0), &[1, 2, 3]);
}

#[test]
fn bad_moves_are_rejected_with_kafkas_errors() {
    let mut image = MetadataImage::default();
    image.apply(&create("t", 1, vec![vec![1, 2, 3]])).expect("created");
    let code = |image: &mut MetadataImage, r: MetadataRecord| image.apply(&r).expect_err("rejected").code();
    use kafka_protocol::ResponseError::*;
    assert_eq!(code(&mut image, reassign(0, None)), NoReassignmentInProgress);
    assert_eq!(code(&mut image, reassign(1, Some(vec![1]))), UnknownTopicOrPartition);
    assert_eq!(code(&mut image, reassign(0, Some(vec![]))), InvalidReplicaAssignment);
    assert_eq!(code(&mut image, reassign(0, Some(vec![1, 1]))), InvalidReplicaAssignment);
    let before = image.topics.clone();
    image.apply(&reassign(0, Some(vec![1, 2, 3]))).expect("a move to where it is does nothing");
    assert_eq!(image.topics, before);
}
