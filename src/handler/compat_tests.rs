//! Behaviour checked against Apache Kafka 4 (ControllerApis, ReplicationControlManager,
//! ReplicaManager.fetchOffset, KafkaApis metadata/describe-cluster, ConfigHelper).

use kafka_protocol::ResponseError;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use super::test_support::{broker, name};
use super::*;
use crate::broker::Broker;

fn creatable(n: &str, partitions: i32, rf: i16) -> create_topics_request::CreatableTopic {
    create_topics_request::CreatableTopic::default()
        .with_name(name(n))
        .with_num_partitions(partitions)
        .with_replication_factor(rf)
}

fn assignment(partition: i32, brokers: &[i32]) -> create_topics_request::CreatableReplicaAssignment {
    create_topics_request::CreatableReplicaAssignment::default()
        .with_partition_index(partition)
        .with_broker_ids(brokers.iter().map(|&b| BrokerId(b)).collect())
}

fn create(b: &Broker, topics: Vec<create_topics_request::CreatableTopic>) -> CreateTopicsResponse {
    create_topics::handle(b, CreateTopicsRequest::default().with_topics(topics), 7)
}

fn code_of(r: &CreateTopicsResponse, n: &str) -> Vec<i16> {
    r.topics.iter().filter(|t| t.name.0.as_str() == n).map(|t| t.error_code).collect()
}

#[test]
fn create_topics_duplicate_names_create_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path());
    let r = create(&b, vec![creatable("dup", 1, 1), creatable("ok", 1, 1), creatable("dup", 2, 1)]);
    // Kafka answers a duplicated name once, with INVALID_REQUEST, and creates neither.
    assert_eq!(code_of(&r, "dup"), vec![ResponseError::InvalidRequest.code()]);
    assert_eq!(code_of(&r, "ok"), vec![0]);
    assert!(b.topic("dup").is_none());
}

#[test]
fn create_topics_manual_assignment_rules() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path());
    let me = b.node_id;
    let with = |n: &str, p: i32, rf: i16, a: Vec<_>| creatable(n, p, rf).with_assignments(a);
    let r = create(
        &b,
        vec![
            with("rf-set", -1, 1, vec![assignment(0, &[me])]),
            with("np-set", 1, -1, vec![assignment(0, &[me])]),
            with("gap", -1, -1, vec![assignment(0, &[me]), assignment(2, &[me])]),
            with("twice", -1, -1, vec![assignment(0, &[me]), assignment(0, &[me])]),
            with("empty", -1, -1, vec![assignment(0, &[])]),
            with("same-broker", -1, -1, vec![assignment(0, &[me, me])]),
            with("stranger", -1, -1, vec![assignment(0, &[me + 1])]),
            with("good", -1, -1, vec![assignment(1, &[me]), assignment(0, &[me])]),
        ],
    );
    assert_eq!(code_of(&r, "rf-set"), vec![ResponseError::InvalidRequest.code()]);
    assert_eq!(code_of(&r, "np-set"), vec![ResponseError::InvalidRequest.code()]);
    for n in ["gap", "twice", "empty", "same-broker", "stranger"] {
        assert_eq!(code_of(&r, n), vec![ResponseError::InvalidReplicaAssignment.code()], "{n}");
    }
    assert_eq!(code_of(&r, "good"), vec![0]);
    assert_eq!(b.topic("good").unwrap().partition_count(), 2);
}

#[test]
fn excessive_partition_counts_are_a_policy_violation() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path());
    // Kafka's controller refuses operations of more than 10000 records.
    let r = create(&b, vec![creatable("huge", i32::MAX, 1)]);
    assert_eq!(code_of(&r, "huge"), vec![ResponseError::PolicyViolation.code()]);
    assert!(b.topic("huge").is_none());
    create(&b, vec![creatable("small", 1, 1)]);
    let req = CreatePartitionsRequest::default().with_topics(vec![
        create_partitions_request::CreatePartitionsTopic::default().with_name(name("small")).with_count(i32::MAX),
    ]);
    let r = create_partitions::handle(&b, req, 3);
    assert_eq!(r.results[0].error_code, ResponseError::PolicyViolation.code());
    assert_eq!(b.topic("small").unwrap().partition_count(), 1);
}

#[test]
fn delete_topics_v6_name_and_id_rules() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path());
    create(&b, vec![creatable("a", 1, 1), creatable("b", 1, 1), creatable("c", 1, 1)]);
    let a_id = b.topic("a").unwrap().id;
    let c_id = b.topic("c").unwrap().id;
    let state = |n: Option<&str>, id: uuid::Uuid| {
        delete_topics_request::DeleteTopicState::default().with_name(n.map(name)).with_topic_id(id)
    };
    let req = DeleteTopicsRequest::default().with_topics(vec![
        state(Some("a"), a_id),
        state(None, uuid::Uuid::nil()),
        state(Some("b"), uuid::Uuid::nil()),
        state(Some("b"), uuid::Uuid::nil()),
        state(None, c_id),
    ]);
    let r = delete_topics::handle(&b, req, 6);
    let invalid = ResponseError::InvalidRequest.code();
    let by_name = |n: &str| {
        r.responses
            .iter()
            .filter(|t| t.name.as_ref().is_some_and(|x| x.0.as_str() == n))
            .map(|t| t.error_code)
            .collect::<Vec<_>>()
    };
    assert_eq!(by_name("a"), vec![invalid], "name and id together");
    assert_eq!(by_name("b"), vec![invalid], "duplicate name");
    assert_eq!(by_name("c"), vec![0]);
    assert!(r.responses.iter().any(|t| t.name.is_none() && t.topic_id.is_nil() && t.error_code == invalid));
    assert_eq!(r.responses.len(), 4);
    assert!(b.topic("a").is_some() && b.topic("b").is_some() && b.topic("c").is_none());
}

#[test]
fn list_offsets_latest_tiered_and_duplicate_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path());
    create(&b, vec![creatable("t", 2, 1)]);
    let part = |p: i32, ts: i64| {
        list_offsets_request::ListOffsetsPartition::default().with_partition_index(p).with_timestamp(ts)
    };
    let req = ListOffsetsRequest::default().with_replica_id(BrokerId(-1)).with_topics(vec![
        list_offsets_request::ListOffsetsTopic::default().with_name(name("t")).with_partitions(vec![
            part(0, -5),
            part(1, -1),
            part(1, -2),
        ]),
    ]);
    let r = list_offsets::handle(&b, req, 9);
    let ps = &r.topics[0].partitions;
    // Without tiered storage Kafka answers LATEST_TIERED with offset -1.
    assert_eq!((ps[0].error_code, ps[0].offset, ps[0].leader_epoch), (0, -1, -1));
    assert_eq!(ps[1].error_code, ResponseError::InvalidRequest.code());
    assert_eq!(ps[2].error_code, ResponseError::InvalidRequest.code());
}

/// Kafka's bit fields with no authorizer: every operation the resource type supports.
const TOPIC_OPS: i32 = (1 << 3) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 7) | (1 << 8) | (1 << 10) | (1 << 11);
const CLUSTER_OPS: i32 = (1 << 5) | (1 << 7) | (1 << 8) | (1 << 9) | (1 << 10) | (1 << 11) | (1 << 12);

#[test]
fn metadata_internal_flag_and_authorized_operations() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path());
    create(&b, vec![creatable("__mine", 1, 1)]);
    let req = MetadataRequest::default().with_topics(None);
    let r = metadata::handle(&b, req.clone(), 12, Default::default());
    assert!(!r.topics[0].is_internal, "only Kafka's own topics are internal");
    assert_eq!(r.topics[0].topic_authorized_operations, i32::MIN, "not asked for");
    let r = metadata::handle(
        &b,
        req.with_include_topic_authorized_operations(true).with_include_cluster_authorized_operations(true),
        10,
        Default::default(),
    );
    assert_eq!(r.topics[0].topic_authorized_operations, TOPIC_OPS);
    assert_eq!(r.cluster_authorized_operations, CLUSTER_OPS);
}

#[test]
fn describe_cluster_endpoint_types_and_authorized_operations() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path());
    let r =
        describe_cluster::handle(&b, DescribeClusterRequest::default().with_endpoint_type(2), 1, Default::default());
    assert_eq!(r.error_code, ResponseError::MismatchedEndpointType.code());
    let r =
        describe_cluster::handle(&b, DescribeClusterRequest::default().with_endpoint_type(7), 1, Default::default());
    assert_eq!(r.error_code, ResponseError::UnsupportedEndpointType.code());
    let r =
        describe_cluster::handle(&b, DescribeClusterRequest::default().with_endpoint_type(1), 1, Default::default());
    assert_eq!((r.error_code, r.cluster_authorized_operations), (0, i32::MIN));
    let req = DescribeClusterRequest::default().with_endpoint_type(1).with_include_cluster_authorized_operations(true);
    assert_eq!(describe_cluster::handle(&b, req, 1, Default::default()).cluster_authorized_operations, CLUSTER_OPS);
}

#[test]
fn describe_configs_broker_default_resource_and_synonyms() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path());
    create(&b, vec![creatable("t", 1, 1)]);
    let res = |kind: i8, n: &str| {
        describe_configs_request::DescribeConfigsResource::default()
            .with_resource_type(kind)
            .with_resource_name(StrBytes::from_string(n.into()))
    };
    let req = DescribeConfigsRequest::default()
        .with_include_synonyms(true)
        .with_resources(vec![res(describe_configs::RESOURCE_BROKER, ""), res(describe_configs::RESOURCE_TOPIC, "t")]);
    let r = describe_configs::handle(&b, req, 4);
    // "" is the cluster-wide dynamic default resource: nothing is set there.
    assert_eq!(r.results[0].error_code, 0);
    assert!(r.results[0].configs.is_empty());
    let topic = &r.results[1].configs;
    // A topic config without a broker synonym has no synonyms unless overridden.
    let delete_delay = topic.iter().find(|c| c.name.as_str() == "file.delete.delay.ms").unwrap();
    assert!(delete_delay.synonyms.is_empty());
    // The cleaner's topic configs have Kafka's log.cleaner.* broker synonyms.
    let delete_retention = topic.iter().find(|c| c.name.as_str() == "delete.retention.ms").unwrap();
    assert_eq!(delete_retention.synonyms.len(), 1);
    assert_eq!(delete_retention.synonyms[0].name.as_str(), "log.cleaner.delete.retention.ms");
    let retention = topic.iter().find(|c| c.name.as_str() == "retention.bytes").unwrap();
    assert_eq!(retention.synonyms.len(), 1);
    assert_eq!(retention.synonyms[0].name.as_str(), "log.retention.bytes");
}
