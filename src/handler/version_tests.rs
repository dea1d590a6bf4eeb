//! Every handler's response must encode at every version Jet advertises: the crate
//! refuses to encode a field set outside its versions (e.g. ListOffsets `leader_epoch`
//! before v4), which would otherwise close the connection of older clients.

use bytes::BytesMut;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use kafka_protocol::ResponseError;

use super::test_support::{batch, broker_with, name};
use super::{supported_versions, *};

fn encodes(body: &ResponseKind, key: ApiKey, version: i16) {
    let mut buf = BytesMut::new();
    if let Err(e) = body.encode(&mut buf, version) {
        panic!("{key:?} v{version}: {e:#}");
    }
}

#[tokio::test]
async fn every_response_encodes_at_every_advertised_version() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker_with(dir.path(), &["--set", "group.initial.rebalance.delay.ms=0"]);
    b.create_topic("t", 2, 1, Default::default(), false).unwrap();
    let to_topic = |id: uuid::Uuid| (name("t"), id);
    let id = b.topic("t").unwrap().id;
    for &key in IMPLEMENTED.iter().chain(BETWEEN_BROKERS) {
        let range = supported_versions(key).unwrap();
        for v in range.min..=range.max {
            let (tname, tid) = to_topic(id);
            let body = match key {
                ApiKey::Produce => {
                    let req = ProduceRequest::default().with_acks(1).with_topic_data(vec![
                        produce_request::TopicProduceData::default()
                            .with_name(tname)
                            .with_topic_id(tid)
                            .with_partition_data(vec![
                                produce_request::PartitionProduceData::default()
                                    .with_index(0)
                                    .with_records(Some(batch())),
                                produce_request::PartitionProduceData::default()
                                    .with_index(9)
                                    .with_records(Some(batch())),
                            ]),
                    ]);
                    let to = ReplyTo { api_key: key, version: v, correlation_id: 1, listener: Default::default() };
                    produce::start(b.clone(), req, to).await.await.unwrap().unwrap();
                    continue;
                }
                ApiKey::Fetch => ResponseKind::Fetch(
                    fetch::handle(
                        &b,
                        FetchRequest::default()
                            .with_session_epoch(if v >= 7 { 0 } else { -1 })
                            .with_max_bytes(1 << 20)
                            .with_topics(vec![
                                fetch_request::FetchTopic::default()
                                    .with_topic(tname)
                                    .with_topic_id(tid)
                                    .with_partitions(vec![
                                        fetch_request::FetchPartition::default()
                                            .with_partition(0)
                                            .with_partition_max_bytes(1 << 20),
                                        fetch_request::FetchPartition::default()
                                            .with_partition(1)
                                            .with_fetch_offset(99),
                                    ]),
                            ]),
                        v,
                        Default::default(),
                    )
                    .await
                    .response,
                ),
                ApiKey::ListOffsets => ResponseKind::ListOffsets(list_offsets::handle(
                    &b,
                    ListOffsetsRequest::default().with_topics(vec![
                        list_offsets_request::ListOffsetsTopic::default().with_name(tname).with_partitions(vec![
                            list_offsets_request::ListOffsetsPartition::default()
                                .with_partition_index(0)
                                .with_timestamp(-1),
                            list_offsets_request::ListOffsetsPartition::default()
                                .with_partition_index(0)
                                .with_timestamp(0),
                        ]),
                    ]),
                    v,
                )),
                ApiKey::Metadata => ResponseKind::Metadata(metadata::handle(
                    &b,
                    MetadataRequest::default().with_topics(None),
                    v,
                    Default::default(),
                )),
                ApiKey::ApiVersions => {
                    ResponseKind::ApiVersions(api_versions::handle(ApiVersionsRequest::default(), v))
                }
                ApiKey::CreateTopics => ResponseKind::CreateTopics(create_topics::handle(
                    &b,
                    CreateTopicsRequest::default().with_validate_only(true).with_topics(vec![
                        create_topics_request::CreatableTopic::default()
                            .with_name(name("new"))
                            .with_num_partitions(1)
                            .with_replication_factor(1),
                        create_topics_request::CreatableTopic::default()
                            .with_name(name("t"))
                            .with_num_partitions(1)
                            .with_replication_factor(1),
                    ]),
                    v,
                )),
                ApiKey::DeleteTopics => ResponseKind::DeleteTopics(delete_topics::handle(
                    &b,
                    DeleteTopicsRequest::default().with_topic_names(vec![name("missing")]).with_topics(vec![
                        delete_topics_request::DeleteTopicState::default().with_name(Some(name("missing"))),
                    ]),
                    v,
                )),
                ApiKey::DeleteRecords => ResponseKind::DeleteRecords(delete_records::handle(
                    &b,
                    DeleteRecordsRequest::default().with_topics(vec![
                        delete_records_request::DeleteRecordsTopic::default().with_name(tname).with_partitions(vec![
                            delete_records_request::DeleteRecordsPartition::default()
                                .with_partition_index(1)
                                .with_offset(0),
                        ]),
                    ]),
                    v,
                )),
                ApiKey::InitProducerId => ResponseKind::InitProducerId(
                    init_producer_id::handle(
                        &b,
                        InitProducerIdRequest::default()
                            .with_transactional_id(Some(TransactionalId(StrBytes::from_static_str("tx"))))
                            .with_transaction_timeout_ms(60_000),
                        v,
                    )
                    .await,
                ),
                ApiKey::AddPartitionsToTxn => ResponseKind::AddPartitionsToTxn(
                    add_partitions_to_txn::handle(
                        &b,
                        AddPartitionsToTxnRequest::default()
                            .with_v3_and_below_transactional_id(TransactionalId(StrBytes::from_static_str("tx")))
                            .with_v3_and_below_topics(vec![
                                add_partitions_to_txn_request::AddPartitionsToTxnTopic::default()
                                    .with_name(tname)
                                    .with_partitions(vec![0, 9]),
                            ]),
                    )
                    .await,
                ),
                ApiKey::AddOffsetsToTxn => ResponseKind::AddOffsetsToTxn(
                    add_offsets_to_txn::handle(
                        &b,
                        AddOffsetsToTxnRequest::default()
                            .with_transactional_id(TransactionalId(StrBytes::from_static_str("tx")))
                            .with_group_id(GroupId(StrBytes::from_static_str("simple"))),
                    )
                    .await,
                ),
                ApiKey::TxnOffsetCommit => {
                    txn_offset_commit::start(
                        &b,
                        TxnOffsetCommitRequest::default()
                            .with_transactional_id(TransactionalId(StrBytes::from_static_str("tx")))
                            .with_group_id(GroupId(StrBytes::from_static_str("simple")))
                            .with_generation_id(-1)
                            .with_topics(vec![
                                txn_offset_commit_request::TxnOffsetCommitRequestTopic::default()
                                    .with_name(tname)
                                    .with_partitions(vec![
                                        txn_offset_commit_request::TxnOffsetCommitRequestPartition::default()
                                            .with_committed_offset(3)
                                            .with_committed_metadata(Some(StrBytes::from_static_str("meta"))),
                                    ]),
                            ]),
                        v,
                    )
                    .await
                }
                ApiKey::EndTxn => ResponseKind::EndTxn(
                    end_txn::handle(
                        &b,
                        EndTxnRequest::default()
                            .with_transactional_id(TransactionalId(StrBytes::from_static_str("tx"))),
                    )
                    .await,
                ),
                ApiKey::OffsetForLeaderEpoch => ResponseKind::OffsetForLeaderEpoch(offset_for_leader_epoch::handle(
                    &b,
                    OffsetForLeaderEpochRequest::default().with_topics(vec![
                        offset_for_leader_epoch_request::OffsetForLeaderTopic::default()
                            .with_topic(tname)
                            .with_partitions(vec![
                                offset_for_leader_epoch_request::OffsetForLeaderPartition::default().with_partition(0),
                            ]),
                    ]),
                    v,
                )),
                ApiKey::DescribeConfigs => ResponseKind::DescribeConfigs(describe_configs::handle(
                    &b,
                    DescribeConfigsRequest::default()
                        .with_include_synonyms(v >= 1)
                        .with_include_documentation(v >= 3)
                        .with_resources(vec![
                            describe_configs_request::DescribeConfigsResource::default()
                                .with_resource_type(2)
                                .with_resource_name(StrBytes::from_static_str("t")),
                            describe_configs_request::DescribeConfigsResource::default()
                                .with_resource_type(4)
                                .with_resource_name(StrBytes::from_static_str("1")),
                        ]),
                    v,
                )),
                ApiKey::AlterConfigs => ResponseKind::AlterConfigs(alter_configs::handle(
                    &b,
                    AlterConfigsRequest::default().with_validate_only(true).with_resources(vec![
                        alter_configs_request::AlterConfigsResource::default()
                            .with_resource_type(2)
                            .with_resource_name(StrBytes::from_static_str("t")),
                    ]),
                    v,
                )),
                ApiKey::IncrementalAlterConfigs => {
                    ResponseKind::IncrementalAlterConfigs(incremental_alter_configs::handle(
                        &b,
                        IncrementalAlterConfigsRequest::default().with_validate_only(true).with_resources(vec![
                            incremental_alter_configs_request::AlterConfigsResource::default()
                                .with_resource_type(2)
                                .with_resource_name(StrBytes::from_static_str("t")),
                        ]),
                        v,
                    ))
                }
                ApiKey::DescribeLogDirs => ResponseKind::DescribeLogDirs(describe_log_dirs::handle(
                    &b,
                    DescribeLogDirsRequest::default().with_topics(None),
                    v,
                )),
                ApiKey::CreatePartitions => ResponseKind::CreatePartitions(create_partitions::handle(
                    &b,
                    CreatePartitionsRequest::default().with_validate_only(true).with_topics(vec![
                        create_partitions_request::CreatePartitionsTopic::default().with_name(tname).with_count(3),
                    ]),
                    v,
                )),
                ApiKey::DescribeCluster => ResponseKind::DescribeCluster(describe_cluster::handle(
                    &b,
                    DescribeClusterRequest::default().with_endpoint_type(1),
                    v,
                    Default::default(),
                )),
                ApiKey::FindCoordinator => ResponseKind::FindCoordinator(find_coordinator::handle(
                    &b,
                    FindCoordinatorRequest::default()
                        .with_key(StrBytes::from_static_str("g"))
                        .with_coordinator_keys(vec![StrBytes::from_static_str("g"), StrBytes::default()]),
                    v,
                    Default::default(),
                )),
                ApiKey::JoinGroup => {
                    // A group per version: a second member would wait for a rebalance.
                    let join = |member: &str, instance: Option<&str>| {
                        JoinGroupRequest::default()
                            .with_group_id(GroupId(StrBytes::from_string(format!("g{v}"))))
                            .with_session_timeout_ms(10_000)
                            .with_rebalance_timeout_ms(if v >= 1 { 10_000 } else { -1 })
                            .with_member_id(StrBytes::from_string(member.to_string()))
                            .with_group_instance_id(instance.map(|i| StrBytes::from_string(i.to_string())))
                            .with_protocol_type(StrBytes::from_static_str("consumer"))
                            .with_protocols(vec![
                                join_group_request::JoinGroupRequestProtocol::default()
                                    .with_name(StrBytes::from_static_str("range"))
                                    .with_metadata(bytes::Bytes::from_static(b"m")),
                            ])
                    };
                    let client = Client::new(Some("c"), None);
                    let first =
                        join_group::start(&b, join("", if v >= 5 { Some("i") } else { None }), v, &client).await;
                    encodes(&first, key, v);
                    let ResponseKind::JoinGroup(first) = first else { panic!("a JoinGroup response") };
                    if first.error_code == ResponseError::MemberIdRequired.code() {
                        let joined = join_group::start(&b, join(&first.member_id, None), v, &client).await;
                        let ResponseKind::JoinGroup(joined) = &joined else { panic!("a JoinGroup response") };
                        assert_eq!(joined.error_code, 0, "v{v}");
                        assert_eq!(joined.members.len(), 1);
                    } else {
                        assert_eq!(first.error_code, 0, "v{v}");
                    }
                    let sync = SyncGroupRequest::default()
                        .with_group_id(GroupId(StrBytes::from_string(format!("g{v}"))))
                        .with_generation_id(1)
                        .with_member_id(StrBytes::from_static_str("unknown"));
                    encodes(&sync_group::start(&b, sync, v.min(5)).await, ApiKey::SyncGroup, v.min(5));
                    continue;
                }
                ApiKey::SyncGroup => sync_group::start(&b, SyncGroupRequest::default(), v).await,
                ApiKey::Heartbeat => ResponseKind::Heartbeat(heartbeat::handle(&b, HeartbeatRequest::default(), v)),
                ApiKey::LeaveGroup => {
                    leave_group::start(
                        &b,
                        LeaveGroupRequest::default()
                            .with_group_id(GroupId(StrBytes::from_static_str("g1")))
                            .with_member_id(StrBytes::from_static_str("m"))
                            .with_members(vec![
                                leave_group_request::MemberIdentity::default()
                                    .with_member_id(StrBytes::from_static_str("m")),
                            ]),
                        v,
                    )
                    .await
                }
                ApiKey::OffsetCommit => {
                    offset_commit::start(
                        &b,
                        OffsetCommitRequest::default()
                            .with_group_id(GroupId(StrBytes::from_static_str("simple")))
                            .with_generation_id_or_member_epoch(-1)
                            .with_topics(vec![
                                offset_commit_request::OffsetCommitRequestTopic::default()
                                    .with_name(tname)
                                    .with_partitions(vec![
                                        offset_commit_request::OffsetCommitRequestPartition::default()
                                            .with_committed_offset(3)
                                            .with_committed_metadata(Some(StrBytes::from_static_str("meta"))),
                                    ]),
                            ]),
                        v,
                    )
                    .await
                }
                ApiKey::OffsetFetch => {
                    offset_fetch::start(
                        &b,
                        OffsetFetchRequest::default()
                            .with_group_id(GroupId(StrBytes::from_static_str("simple")))
                            .with_topics(if v >= 8 {
                                None
                            } else {
                                Some(vec![
                                    offset_fetch_request::OffsetFetchRequestTopic::default()
                                        .with_name(tname.clone())
                                        .with_partition_indexes(vec![0, 1]),
                                ])
                            })
                            .with_groups(if v >= 8 {
                                vec![
                                    offset_fetch_request::OffsetFetchRequestGroup::default()
                                        .with_group_id(GroupId(StrBytes::from_static_str("simple")))
                                        .with_topics(None),
                                    offset_fetch_request::OffsetFetchRequestGroup::default()
                                        .with_group_id(GroupId(StrBytes::from_static_str("none")))
                                        .with_topics(Some(vec![
                                            offset_fetch_request::OffsetFetchRequestTopics::default()
                                                .with_name(tname)
                                                .with_partition_indexes(vec![0]),
                                        ])),
                                ]
                            } else {
                                vec![]
                            }),
                        v,
                    )
                    .await
                }
                ApiKey::ListGroups => list_groups::start(&b, ListGroupsRequest::default(), v).await,
                ApiKey::DescribeGroups => {
                    describe_groups::start(
                        &b,
                        DescribeGroupsRequest::default().with_include_authorized_operations(v >= 3).with_groups(vec![
                            GroupId(StrBytes::from_static_str("g5")),
                            GroupId(StrBytes::from_static_str("none")),
                        ]),
                        v,
                    )
                    .await
                }
                ApiKey::DeleteGroups => {
                    delete_groups::start(
                        &b,
                        DeleteGroupsRequest::default()
                            .with_groups_names(vec![GroupId(StrBytes::from_static_str("none"))]),
                        v,
                    )
                    .await
                }
                ApiKey::OffsetDelete => {
                    offset_delete::start(
                        &b,
                        OffsetDeleteRequest::default()
                            .with_group_id(GroupId(StrBytes::from_static_str("simple")))
                            .with_topics(vec![
                                offset_delete_request::OffsetDeleteRequestTopic::default()
                                    .with_name(tname)
                                    .with_partitions(vec![
                                        offset_delete_request::OffsetDeleteRequestPartition::default(),
                                    ]),
                            ]),
                        v,
                    )
                    .await
                }
                ApiKey::ConsumerGroupHeartbeat => {
                    let join = ConsumerGroupHeartbeatRequest::default()
                        .with_group_id(GroupId(StrBytes::from_string(format!("cg{v}"))))
                        .with_member_id(StrBytes::from_string(if v >= 1 {
                            format!("member-{v}")
                        } else {
                            String::new()
                        }))
                        .with_member_epoch(0)
                        .with_rebalance_timeout_ms(10_000)
                        .with_subscribed_topic_names(Some(vec![tname]))
                        .with_topic_partitions(Some(vec![]));
                    let client = Client::new(Some("c"), None);
                    let joined = consumer_group_heartbeat::start(&b, join, v, &client).await;
                    let ResponseKind::ConsumerGroupHeartbeat(r) = &joined else { panic!("a heartbeat response") };
                    assert_eq!(r.error_code, 0, "v{v}: {:?}", r.error_message);
                    assert_eq!(r.member_epoch, 1);
                    joined
                }
                ApiKey::ConsumerGroupDescribe => {
                    consumer_group_describe::start(
                        &b,
                        ConsumerGroupDescribeRequest::default()
                            .with_include_authorized_operations(true)
                            .with_group_ids(vec![
                                GroupId(StrBytes::from_static_str("cg0")),
                                GroupId(StrBytes::from_static_str("g1")),
                            ]),
                        v,
                    )
                    .await
                }
                ApiKey::SaslHandshake => ResponseKind::SaslHandshake(sasl::handshake(
                    SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN")),
                    v,
                )),
                ApiKey::SaslAuthenticate => {
                    ResponseKind::SaslAuthenticate(sasl::authenticate(SaslAuthenticateRequest::default(), v))
                }
                ApiKey::AlterPartitionReassignments => {
                    ResponseKind::AlterPartitionReassignments(alter_partition_reassignments::handle(
                        &b,
                        AlterPartitionReassignmentsRequest::default().with_topics(vec![
                            alter_partition_reassignments_request::ReassignableTopic::default()
                                .with_name(tname)
                                .with_partitions(vec![
                                    alter_partition_reassignments_request::ReassignablePartition::default()
                                        .with_replicas(Some(vec![BrokerId(b.node_id)])),
                                ]),
                        ]),
                        v,
                    ))
                }
                ApiKey::ListPartitionReassignments => ResponseKind::ListPartitionReassignments(
                    list_partition_reassignments::handle(&b, ListPartitionReassignmentsRequest::default(), v),
                ),
                ApiKey::AlterPartition => ResponseKind::AlterPartition(alter_partition::handle(
                    &b,
                    AlterPartitionRequest::default().with_topics(vec![
                        alter_partition_request::TopicData::default()
                            .with_topic_id(tid)
                            .with_partitions(vec![alter_partition_request::PartitionData::default()]),
                    ]),
                    v,
                )),
                ApiKey::AllocateProducerIds => ResponseKind::AllocateProducerIds(allocate_producer_ids::handle(
                    &b,
                    AllocateProducerIdsRequest::default(),
                    v,
                )),
                ApiKey::DescribeTransactions => ResponseKind::DescribeTransactions(
                    describe_transactions::handle(
                        &b,
                        DescribeTransactionsRequest::default()
                            .with_transactional_ids(vec![TransactionalId(StrBytes::from_static_str("tx"))]),
                    )
                    .await,
                ),
                ApiKey::ListTransactions => ResponseKind::ListTransactions(
                    list_transactions::handle(&b, ListTransactionsRequest::default().with_duration_filter(-1), v).await,
                ),
                ApiKey::WriteTxnMarkers => ResponseKind::WriteTxnMarkers(
                    write_txn_markers::handle(
                        &b,
                        WriteTxnMarkersRequest::default().with_markers(vec![
                            write_txn_markers_request::WritableTxnMarker::default()
                                .with_producer_id(ProducerId(7))
                                .with_topics(vec![
                                    write_txn_markers_request::WritableTxnMarkerTopic::default()
                                        .with_name(tname)
                                        .with_partition_indexes(vec![0, 9]),
                                ]),
                        ]),
                    )
                    .await,
                ),
                other => panic!("no version test for {other:?}"),
            };
            encodes(&body, key, v);
        }
    }
}
